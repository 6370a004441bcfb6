"""The gate split into stages that hand over through files, for orchestrators (Airflow runs
each stage as its own task; XCom carries only the small dicts these functions return).

    prepare(...)            -> reads and validates inputs once, writes them to ``work_dir``
    run_stage(work_dir, c)  -> runs check ``c``, writes its result to ``work_dir/results``
    finish(work_dir, out)   -> decides from every result, writes the outputs

Same inputs, same policy, same verdict as :func:`poisonguard.gate.run_gate`. Nothing is
unpickled: frames are Parquet, results JSON, scores ``.npy`` loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.checks import REGISTRY, provenance
from poisonguard.context import GateContext
from poisonguard.decide import decide
from poisonguard.errors import UsageError
from poisonguard.gate import GateRun, build_context, run_check
from poisonguard.policy import Policy, load_policy, policy_from_dict
from poisonguard.reading import check_usable, read_table
from poisonguard.results import CheckResult
from poisonguard.telemetry import disable_telemetry

FRAMES = ("reference", "holdout", "incoming")


def prepare(reference: str | Path, incoming: str | Path, *, label: str, work_dir: str | Path,
            holdout: str | Path | None = None, policy: Policy | str | Path | None = None,
            id_column: str | None = None) -> dict[str, Any]:
    """Read, validate and stage the inputs. Raises InputError/PolicyError like the CLI."""
    disable_telemetry()
    work = Path(work_dir)
    (work / "results").mkdir(parents=True, exist_ok=True)
    for stale in (work / "results").glob("*"):
        stale.unlink()
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    ref_t = read_table(reference, role="reference")
    inc_t = read_table(incoming, role="incoming")
    hold_t = read_table(holdout, role="holdout") if holdout is not None else None
    frame = check_usable(ref_t.frame, inc_t.frame, None if hold_t is None else hold_t.frame, label, id_column)
    ctx = build_context(ref_t.frame, None if hold_t is None else hold_t.frame[list(ref_t.frame.columns)], label,
                        policy, id_column=id_column)
    for name, f in zip(FRAMES, (ctx.reference, ctx.holdout, frame), strict=True):
        f.to_parquet(work / f"{name}.parquet", index=False)
    sources = {"reference": ref_t.files, "incoming": inc_t.files} | ({"holdout": hold_t.files} if hold_t else {})
    meta = {"label": label, "id_column": id_column, "policy": policy.to_dict(), "started": time.time(),
            "sources": {k: [str(p) for p in v] for k, v in sources.items()}}
    (work / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return {"work_dir": str(work), "rows": len(frame), "reference_rows": len(ctx.reference),
            "holdout_rows": len(ctx.holdout), "checks": enabled_checks(policy)}


def enabled_checks(policy: Policy) -> list[str]:
    return [name for name in REGISTRY if policy.spec(name).enabled]


def _load(work: Path) -> tuple[GateContext, pd.DataFrame, Policy, dict[str, Any]]:
    meta = json.loads((work / "meta.json").read_text())
    policy = policy_from_dict(meta["policy"], source=str(work / "meta.json"))
    ref, hold, frame = (pd.read_parquet(work / f"{n}.parquet") for n in FRAMES)
    ctx = GateContext(reference=ref, holdout=hold, label=meta["label"], seed=policy.seed,
                      id_column=meta["id_column"], sources={k: tuple(Path(p) for p in v)
                                                            for k, v in meta["sources"].items()})
    return ctx, frame, policy, meta


def _result_path(work: Path, name: str) -> Path:
    return work / "results" / f"{name}.json"


def save_result(work: Path, result: CheckResult) -> None:
    doc = result.to_dict(with_scores=False)
    if result.scores is not None:
        np.save(work / "results" / f"{result.check}.scores.npy", result.scores, allow_pickle=False)
        doc["scores_file"] = f"{result.check}.scores.npy"
    _result_path(work, result.check).write_text(json.dumps(doc, sort_keys=True, allow_nan=False))


def load_result(work: Path, name: str) -> CheckResult:
    doc = json.loads(_result_path(work, name).read_text())
    scores_file = doc.pop("scores_file", None)
    result = CheckResult.from_dict(doc | {"scores": None})
    if scores_file is None:
        return result
    scores = np.load(work / "results" / scores_file, allow_pickle=False)
    return CheckResult(result.check, result.findings, result.metrics, scores, result.error, result.seconds,
                       result.artifacts)


def run_stage(work_dir: str | Path, name: str, *, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Run one check on the staged inputs. Batch checks need every row check's result first."""
    disable_telemetry()
    if name not in REGISTRY:
        raise UsageError(f"unknown check '{name}'. Known checks: {', '.join(REGISTRY)}.")
    work = Path(work_dir)
    ctx, frame, policy, _ = _load(work)
    ctx.out_dir = Path(out_dir) if out_dir is not None else None
    if ctx.out_dir is not None:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
    check = REGISTRY[name]
    if check.phase == "batch":
        row_checks = [c for c in enabled_checks(policy) if REGISTRY[c].phase == "rows"]
        prior = [load_result(work, c) for c in row_checks]
        ctx.suspect_rows = np.asarray(decide(prior, policy, len(frame)).quarantined_rows, dtype=np.int64)
    result = run_check(check, frame, policy.spec(name), ctx)
    save_result(work, result)
    return {"check": name, "flagged_rows": len(result.flagged_rows), "error": result.error,
            "findings": sorted({f.code for f in result.findings}), "seconds": round(result.seconds, 3)}


def finish(work_dir: str | Path, out_dir: str | Path) -> GateRun:
    """Decide from every staged result and write the outputs to ``out_dir``."""
    from poisonguard import outputs

    work, out = Path(work_dir), Path(out_dir)
    ctx, frame, policy, meta = _load(work)
    results = tuple(load_result(work, n) if _result_path(work, n).exists()
                    else CheckResult(n, error="no result: the check's stage did not run")
                    for n in enabled_checks(policy))
    verdict = decide(results, policy, len(frame))
    document = outputs.verdict_document(verdict, results, provenance.describe(frame, ctx), policy,
                                        label=meta["label"], started=meta["started"])
    keep = {a for r in results for a in r.artifacts}
    out.mkdir(parents=True, exist_ok=True)
    for name in outputs.OUTPUT_FILES:
        if name not in keep:
            (out / name).unlink(missing_ok=True)
    run = GateRun(verdict, results, frame, document, out)
    outputs.write_outputs(run, ctx)
    return run
