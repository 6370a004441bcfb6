"""The quality section: every defence on every scenario of the matrix, one process per run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from bench.data import load
from bench.harness import PASS_GOLDEN, Files, run_defence
from bench.metrics import Evaluator, row_scores, without
from bench.scenarios import Scenario, build_matrix


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def run_dataset(name: str, scenario_names: set[str] | None, defences: Iterable[str], work: Path,
                env: dict[str, str], emit: Callable[[dict], None], say: Callable[[str], None]) -> None:
    """Gate every scenario of dataset ``name`` with every defence; one row per (scenario, defence)."""
    ds = load(name)
    defences = list(defences)
    evaluator = Evaluator(ds.reference, ds.eval_holdout, ds.label)
    folder = work / "matrix" / name
    reference = _write(ds.reference, folder / "reference.parquet")
    holdout = _write(ds.gate_holdout, folder / "gate_holdout.parquet")
    # A series (multi-batch attack) gates each batch against a reference grown by what each
    # defence promoted before it, as a rolling store would; one rolling reference per defence.
    rolling: dict[str, pd.DataFrame] = {}
    for sc in build_matrix(ds, scenario_names):
        batch = _write(sc.frame, folder / "incoming" / f"{sc.name}.parquet")
        truth = {"raw": evaluator.judge(sc.frame, sc.trigger, sc.target),
                 "truly_clean": evaluator.judge(without(sc.frame, sc.poisoned), sc.trigger, sc.target)}
        for defence in defences:
            ref_path = reference
            if sc.series is not None and defence in rolling:
                ref_path = _write(rolling[defence], folder / "rolling" / defence / f"before_{sc.name}.parquet")
            files = Files(ref_path, batch, holdout, ds.label, golden=reference if sc.series else None,
                          state=work / "state")
            outcome = run_defence(defence, files, folder / "runs" / defence / sc.name, env=env)
            kept = without(sc.frame, outcome.flagged_rows)
            if sc.series is not None and outcome.decision == "promote":
                base = rolling.get(defence, ds.reference)
                rolling[defence] = pd.concat([base, kept[list(base.columns)]], ignore_index=True)
            row = scenario_row(sc, defence, outcome, truth, evaluator.judge(kept, sc.trigger, sc.target))
            row["reference_rows"] = len(pd.read_parquet(ref_path, columns=[ds.label]))
            row["golden_passed"] = bool(PASS_GOLDEN and sc.series)
            row["load_average_1m"] = os.getloadavg()[0]
            emit(row)
            ok = "ok " if outcome.decision == sc.expected else "XX "
            say(f"{ok}{sc.key:34s} {defence:12s} {outcome.decision:8s} (expected {sc.expected}) "
                f"P/R/F1={_fmt(row['precision'])}/{_fmt(row['recall'])}/{_fmt(row['f1'])} "
                f"{outcome.wall_seconds or 0:.1f}s {outcome.note}")


def scenario_row(sc: Scenario, defence: str, outcome, truth: dict, promoted: dict) -> dict:  # type: ignore[no-untyped-def]
    row = {"section": "matrix", "dataset": sc.dataset, "scenario": sc.name, "kind": sc.kind, "series": sc.series,
           "defence": defence, "rows": len(sc.frame), "expected": sc.expected, "why": sc.why,
           "decision": outcome.decision, "decision_correct": outcome.decision == sc.expected,
           **row_scores(outcome.flagged_rows, sc.poisoned, len(sc.frame)),
           "wall_seconds": outcome.wall_seconds, "peak_rss_bytes": outcome.peak_rss_bytes,
           "stage_seconds": outcome.stage_seconds, "details": outcome.details, "note": outcome.note}
    for which, scores in (("raw", truth["raw"]), ("truly_clean", truth["truly_clean"]), ("promoted", promoted)):
        for metric, value in scores.items():
            row[f"{metric}_{which}"] = value
    return row


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
