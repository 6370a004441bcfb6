"""The gate as stages that hand over through files in a work directory.

    prepare(...)                   read and check the trusted inputs; describe the batch's files
    fit(work, check)               a row check learns from trusted data            (once per check)
    score_part(work, i)            every row check scores file i of the batch      (once per file)
    summarize(work, check, out)    one check's result over the whole batch         (once per check)
    finish(work, out)              decide; write verdict.json and the other outputs

:func:`run_all` runs them in order in one process; that is what the CLI and the DVC stage run,
and Airflow runs each stage as a task (``score_part`` as mapped tasks, one per file), so every
surface gives the same verdict. Every function returns a small JSON-safe dict (fit for XCom)
except :func:`finish`. Nothing is unpickled: frames are Parquet, fitted state and scores ``.npz``
loaded with ``allow_pickle=False``, results JSON.

A check that crashes or times out in any stage is recorded as an error result, and the gate
blocks (fail closed). Input that cannot be read raises :class:`~poisonguard.errors.InputError`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.checks import REGISTRY, CheckDef, provenance, score_in_chunks
from poisonguard.engine.decide import decide, verdict_document
from poisonguard.engine.inputs import GateInputs
from poisonguard.engine.policy import Policy, policy_from_dict
from poisonguard.engine.runner import build_context, guarded, run_check
from poisonguard.errors import InputError, UsageError
from poisonguard.io import outputs
from poisonguard.io.reading import (
    PARQUET_SUFFIXES,
    CsvFormat,
    Part,
    check_columns,
    check_trusted,
    input_files,
    parquet_part,
    read_kept,
    read_part,
    read_table,
)
from poisonguard.kernel.batch import Batch
from poisonguard.kernel.context import GateContext
from poisonguard.kernel.hashing import hash_files, hash_rows
from poisonguard.kernel.memory import release_memory
from poisonguard.kernel.parts import Fitted, PartScores, merge_files
from poisonguard.kernel.results import CheckResult, GateRun, Status
from poisonguard.kernel.signing import SigningKey
from poisonguard.kernel.state import StateDir, address
from poisonguard.kernel.telemetry import disable_telemetry

log = logging.getLogger("poisonguard")
TRUSTED = ("reference", "holdout")
_STALE = ("results", "fitted", "parts", "incoming", "golden.parquet")


# --------------------------------------------------------------------------- prepare

def prepare(inputs: GateInputs, *, work_dir: str | Path) -> dict[str, Any]:
    """Read and check the trusted inputs, split the holdout, and describe each file of the batch
    (Parquet files from their footer; a CSV file is read and stored as one Parquet part).

    Raises :class:`InputError` / :class:`~poisonguard.errors.PolicyError` like the CLI."""
    disable_telemetry()
    work = Path(work_dir)
    for sub in _STALE:
        if (work / sub).is_dir():
            shutil.rmtree(work / sub)
        else:
            (work / sub).unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    policy = inputs.loaded_policy()
    reference, incoming, label, id_column = inputs.reference, inputs.incoming, inputs.label, inputs.id_column
    holdout, golden = inputs.holdout, inputs.golden
    started = time.time()
    csv_format = inputs.csv_format
    ref_t = read_table(reference, role="reference", csv_format=csv_format)
    check_trusted(ref_t.frame, label, id_column)
    columns = [str(c) for c in ref_t.frame.columns]
    hold_t = read_table(holdout, role="holdout", csv_format=csv_format) if holdout is not None else None
    if hold_t is not None:
        check_columns(list(hold_t.frame.columns), columns, "holdout", hold_t.files[0], label, id_column)
    gold_t = read_table(golden, role="golden", csv_format=csv_format) if golden is not None else None
    if gold_t is not None:
        check_columns(list(gold_t.frame.columns), columns, "golden", gold_t.files[0], label, id_column)
        gold_t.frame[columns].to_parquet(work / "golden.parquet", index=False)
    state = StateDir(inputs.state) if inputs.state is not None else None  # a bad --state fails before any work
    parts, incoming_files = _describe_incoming(Path(incoming), work, columns, label, id_column, csv_format)
    ctx = build_context(ref_t.frame, None if hold_t is None else hold_t.frame[columns], label, policy,
                        id_column=id_column)
    if len(ctx.reference) < 2:
        raise InputError("the reference has too few rows to fit detectors once the holdout is split off.")
    for name, frame in zip(TRUSTED, (ctx.reference, ctx.holdout), strict=True):
        frame.to_parquet(work / f"{name}.parquet", index=False)
    sources = {"reference": ref_t.files, "incoming": incoming_files} | ({"holdout": hold_t.files} if hold_t else {})
    sources |= {"golden": gold_t.files} if gold_t else {}
    sources = {k: tuple(p.resolve() for p in v) for k, v in sources.items()}  # promotion re-reads them from anywhere
    # The identity of the trusted inputs: the fitted state is keyed by it (and by each check's spec).
    trusted: dict[str, Any] = {"reference": hash_files(ref_t.files), "holdout": hash_files(hold_t.files) if hold_t else None,
               "golden": hash_files(gold_t.files) if gold_t else None, "label": label, "id_column": id_column,
               "columns": columns, "seed": policy.seed,
               "holdout_fraction": None if hold_t else policy.holdout_fraction}
    if csv_format.to_dict():  # the same bytes split another way are other data
        trusted["csv"] = csv_format.to_dict()
    meta = {"label": label, "id_column": id_column, "policy": policy.to_dict(), "started": started,
            "state": str(state.root.resolve()) if state else None, "trusted_key": address("trusted", trusted),
            "columns": columns, "sources": {k: [str(p) for p in v] for k, v in sources.items()},
            "csv": csv_format.to_dict(),
            "parts": [{"path": str(p.path), "rows": p.rows, "sha256": p.sha256} for p in parts]}
    (work / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return {"work_dir": str(work), "rows": sum(p.rows for p in parts), "parts": list(range(len(parts))),
            "reference_rows": len(ctx.reference), "holdout_rows": len(ctx.holdout),
            "row_checks": [c.name for c in enabled(policy) if c.partitioned],
            "checks": [c.name for c in enabled(policy)]}


def _describe_incoming(path: Path, work: Path, columns: list[str], label: str, id_column: str | None,
                       csv_format: CsvFormat) -> tuple[list[Part], tuple[Path, ...]]:
    files = input_files(path, "incoming")
    if len(files) == 1 and files[0].suffix.lower() not in PARQUET_SUFFIXES:
        table = read_table(files[0], role="incoming", csv_format=csv_format)
        check_columns(list(table.frame.columns), columns, "incoming", files[0], label, id_column)
        (work / "incoming").mkdir(exist_ok=True)
        stored = work / "incoming" / "part-00000.parquet"
        table.frame[columns].to_parquet(stored, index=False)
        parts = [parquet_part(stored, "incoming")]
    else:
        parts = [parquet_part(f, "incoming") for f in files]
        for p in parts:
            check_columns(list(p.columns), columns, "incoming", p.path, label, id_column)
    if sum(p.rows for p in parts) == 0:
        raise InputError(f"incoming {path} has a header but no rows. A batch needs at least one row.")
    return [p for p in parts if p.rows > 0], files


def enabled(policy: Policy) -> list[CheckDef]:
    return [c for c in REGISTRY.values() if policy.spec(c.name).enabled]


# --------------------------------------------------------------------------- loading (cached per process)

@dataclass
class Loaded:
    ctx: GateContext
    policy: Policy
    meta: dict[str, Any]
    parts: list[Part]
    fitted: dict[str, Fitted]
    work: Path

    @property
    def batch(self) -> Batch:
        """The batch, read part by part: from the copy :func:`score_part` kept of each verified file
        (Arrow IPC in the work directory), or from the file itself (hash checked) when there is none."""
        columns = list(self.meta["columns"])

        def reader(index: int) -> Callable[[Sequence[str] | None], pd.DataFrame]:
            kept = _kept_path(self.work, index)

            def read(cols: Sequence[str] | None) -> pd.DataFrame:
                wanted = columns if cols is None else list(cols)
                if kept.exists():
                    return read_kept(kept, wanted)
                return read_part(self.parts[index], "incoming")[wanted]
            return read
        return Batch(tuple(columns), tuple(p.rows for p in self.parts),
                     tuple(reader(i) for i in range(len(self.parts))))


_LOADED: dict[tuple[str, int], Loaded] = {}


def load(work: Path, signing_key: SigningKey | None = None) -> Loaded:
    """The staged inputs of ``work``, read once per process (stages run in one process share them,
    and the models the checks refit from the reference). ``signing_key`` signs and checks the
    fitted state's manifests."""
    meta_path = work / "meta.json"
    if not meta_path.exists():
        raise UsageError(f"{work} holds no prepared gate run (meta.json is missing). Run prepare first.")
    key = (str(work.resolve()), meta_path.stat().st_mtime_ns)
    if key not in _LOADED:
        meta = json.loads(meta_path.read_text())
        policy = policy_from_dict(meta["policy"], source=str(meta_path))
        ref, hold = (pd.read_parquet(work / f"{n}.parquet") for n in TRUSTED)
        golden = pd.read_parquet(work / "golden.parquet") if (work / "golden.parquet").exists() else None
        ctx = GateContext(reference=ref, holdout=hold, label=meta["label"], seed=policy.seed,
                          id_column=meta["id_column"], golden=golden,
                          sources={k: tuple(Path(p) for p in v) for k, v in meta["sources"].items()})
        if meta.get("state"):
            ctx.state, ctx.trusted_key = StateDir(meta["state"]), meta["trusted_key"]
        parts = [Part(Path(p["path"]), p["rows"], tuple(meta["columns"]), p["sha256"]) for p in meta["parts"]]
        _LOADED.clear()
        _LOADED[key] = Loaded(ctx, policy, meta, parts, {}, work)
    loaded = _LOADED[key]
    if signing_key is not None and loaded.ctx.state is not None:
        loaded.ctx.state.key = signing_key
    return loaded


def _part_folder(work: Path, index: int) -> Path:
    return work / "parts" / f"{index:05d}"


def _kept_path(work: Path, index: int) -> Path:
    return _part_folder(work, index) / "rows.arrow"


# --------------------------------------------------------------------------- fit / score / summarize

def _error_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.error.json"


def _record(folder: Path, name: str, step: Callable[[], Any], seconds: float) -> tuple[Any, float, str | None]:
    """Run one step of a check under its timeout; a failure is written next to where the step's
    output would be, so later stages (maybe in other processes) report it."""
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    value, error = guarded(step, seconds)
    elapsed = time.perf_counter() - start
    (folder / f"{name}.seconds").write_text(f"{elapsed:.6f}")
    if error is not None:
        _error_file(folder, name).write_text(json.dumps({"error": error}))
    return value, elapsed, error


def fit(work_dir: str | Path, name: str, *, signing_key: SigningKey | None = None) -> dict[str, Any]:
    """Fit row check ``name`` on the trusted data of ``work_dir`` — or, with a fitted state, take
    what an earlier run fitted on the same trusted data (``"state": "reused"``)."""
    disable_telemetry()
    work = Path(work_dir)
    loaded = load(work, signing_key)
    check = _partitioned(name)
    spec = loaded.policy.spec(name)
    fit_ = check.fit
    assert fit_ is not None
    ctx = loaded.ctx
    reused = len(ctx.state.hits) if ctx.state else 0

    def step() -> Fitted:
        return ctx.persisted(name, (spec.fit_parameters(),), lambda: fit_(spec, ctx))

    fitted, elapsed, error = _record(work / "fitted", name, step, spec.timeout_seconds)
    if fitted is not None:
        fitted.save(work / "fitted", name)
        loaded.fitted[name] = fitted
    state = None if ctx.state is None or error else "reused" if len(ctx.state.hits) > reused else "built"
    return {"check": name, "error": error, "seconds": round(elapsed, 3), "state": state}


def _fitted(work: Path, loaded: Loaded, name: str) -> Fitted:
    if name not in loaded.fitted:
        loaded.fitted[name] = Fitted.load(work / "fitted", name)
    return loaded.fitted[name]


def score_part(work_dir: str | Path, index: int) -> dict[str, Any]:
    """Score file ``index`` of the batch with every enabled row check, and hash its rows."""
    disable_telemetry()
    work = Path(work_dir)
    loaded = load(work)
    if not 0 <= index < len(loaded.parts):
        raise UsageError(f"part {index} does not exist; the batch has {len(loaded.parts)} part(s).")
    folder = _part_folder(work, index)
    folder.mkdir(parents=True, exist_ok=True)
    # The verified rows are kept (Arrow IPC) for the batch-level checks and the outputs, which
    # read them back column by column instead of decoding and hashing the file again.
    frame = read_part(loaded.parts[index], "incoming", keep_as=_kept_path(work, index))[loaded.meta["columns"]]
    PartScores(len(frame), {"digest": hash_rows(frame, list(frame.columns))}).save(folder / "rows.npz")
    errors: dict[str, str] = {}
    for check in (c for c in enabled(loaded.policy) if c.partitioned):
        if _error_file(work / "fitted", check.name).exists():
            continue  # the fit failed: summarize reports it
        spec = loaded.policy.spec(check.name)
        fitted = _fitted(work, loaded, check.name)
        scores, _, error = _record(folder, check.name, _scorer(check, frame, fitted, spec, loaded.ctx),
                                   spec.timeout_seconds)
        if scores is not None:
            scores.save(folder / f"{check.name}.npz")
        else:
            errors[check.name] = str(error)
    rows = len(frame)
    del frame
    release_memory()
    return {"part": index, "rows": rows, "errors": errors}


def _scorer(check: CheckDef, frame: pd.DataFrame, fitted: Fitted, spec: Any,
            ctx: GateContext) -> Callable[[], PartScores]:
    score = check.score
    assert score is not None
    return lambda: score_in_chunks(score, frame, fitted, spec, ctx)


def summarize(work_dir: str | Path, name: str, *, out_dir: str | Path | None = None,
              signing_key: SigningKey | None = None) -> dict[str, Any]:
    """Check ``name``'s result over the whole batch: merged part scores for a row check, a run over
    the whole batch for the others. Batch-level checks see the rows the row checks would quarantine
    (``ctx.suspect_rows``), so run them after every row check."""
    disable_telemetry()
    work = Path(work_dir)
    loaded = load(work, signing_key)
    if name not in REGISTRY:
        raise UsageError(f"unknown check '{name}'. Known checks: {', '.join(REGISTRY)}.")
    check, ctx = REGISTRY[name], loaded.ctx
    ctx.out_dir = Path(out_dir) if out_dir is not None else None
    if ctx.out_dir is not None:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
    spec = loaded.policy.spec(name)
    if check.partitioned:
        result = _summarize_parts(work, loaded, check, spec)
    else:
        batch = loaded.batch
        if check.phase == "batch":
            prior = [load_result(work, c.name) for c in enabled(loaded.policy) if c.phase == "rows"]
            ctx.suspect_rows = np.asarray(decide(prior, loaded.policy, len(batch)).quarantined_rows, dtype=np.int64)
        result = run_check(check, batch, spec, ctx)
    save_result(work, result)
    release_memory()
    return summary_of(result, loaded.policy)


def _summarize_parts(work: Path, loaded: Loaded, check: CheckDef, spec: Any) -> CheckResult:
    folders = [_part_folder(work, i) for i in range(len(loaded.parts))]
    steps = [work / "fitted", *folders]
    seconds = sum(float(f.read_text()) for f in (d / f"{check.name}.seconds" for d in steps) if f.exists())
    for d in steps:
        if _error_file(d, check.name).exists():
            error = json.loads(_error_file(d, check.name).read_text())["error"]
            return CheckResult(check.name, error=error, seconds=seconds)
    missing = [str(i) for i, d in enumerate(folders) if not (d / f"{check.name}.npz").exists()]
    if not (work / "fitted" / f"{check.name}.npz").exists() or missing:
        what = "its fit" if missing == [] else f"part(s) {', '.join(missing)}"
        return CheckResult(check.name, error=f"no scores: {what} did not run", seconds=seconds)
    scores = merge_files([d / f"{check.name}.npz" for d in folders])
    fitted = _fitted(work, loaded, check.name)
    assert check.summarize is not None
    summarize_ = check.summarize
    start = time.perf_counter()
    result, error = guarded(lambda: summarize_(scores, fitted, spec, loaded.ctx), spec.timeout_seconds)
    seconds += time.perf_counter() - start
    if result is None:
        return CheckResult(check.name, error=error, seconds=seconds)
    return CheckResult(result.check, result.findings, result.metrics, result.scores, None, seconds, result.artifacts)


def _partitioned(name: str) -> CheckDef:
    check = REGISTRY.get(name)
    if check is None or not check.partitioned:
        row_checks = [c.name for c in REGISTRY.values() if c.partitioned]
        raise UsageError(f"'{name}' is not a row check that scores in parts. Those are: {', '.join(row_checks)}.")
    return check


def summary_of(result: CheckResult, policy: Policy) -> dict[str, Any]:
    """A check's outcome in a few fields (for XCom and progress lines)."""
    verdict = decide([result], policy, 0)
    status = verdict.checks[result.check].status
    return {"check": result.check, "status": str(status), "flagged_rows": len(result.flagged_rows),
            "findings": sorted({f.code for f in result.findings}), "error": result.error,
            "reasons": [r.to_dict() for r in verdict.reasons], "seconds": round(result.seconds, 3),
            "blocks": status in (Status.FAIL, Status.ERROR)}


# --------------------------------------------------------------------------- results on disk

def _result_path(work: Path, name: str) -> Path:
    return work / "results" / f"{name}.json"


def save_result(work: Path, result: CheckResult) -> None:
    (work / "results").mkdir(parents=True, exist_ok=True)
    doc = result.to_dict(with_scores=False)
    if result.scores is not None:
        np.save(work / "results" / f"{result.check}.scores.npy", result.scores, allow_pickle=False)
        doc["scores_file"] = f"{result.check}.scores.npy"
    _result_path(work, result.check).write_text(json.dumps(doc, sort_keys=True, allow_nan=False))


def load_result(work: Path, name: str) -> CheckResult:
    path = _result_path(work, name)
    if not path.exists():
        return CheckResult(name, error="no result: the check's stage did not run")
    doc = json.loads(path.read_text())
    scores_file = doc.pop("scores_file", None)
    result = CheckResult.from_dict(doc | {"scores": None})
    if scores_file is None:
        return result
    scores = np.load(work / "results" / scores_file, allow_pickle=False)
    return CheckResult(result.check, result.findings, result.metrics, scores, result.error, result.seconds,
                       result.artifacts)


# --------------------------------------------------------------------------- finish

def finish(work_dir: str | Path, out_dir: str | Path | None, *, signing_key: SigningKey | None = None) -> GateRun:
    """Decide from every check's result and write the outputs to ``out_dir`` (when given); the
    verdict is signed with ``signing_key`` when one is given."""
    work = Path(work_dir)
    loaded = load(work)
    results = tuple(load_result(work, c.name) for c in enabled(loaded.policy))
    batch = loaded.batch
    verdict = decide(results, loaded.policy, len(batch))
    digests = _row_digests(work, loaded, batch)
    # Column types as the batch has them as one frame: the first row of each part, together.
    described = provenance.describe(loaded.ctx, digests, batch.take(batch.offsets))
    if loaded.meta.get("csv"):  # how CSV inputs were split, when given: promotion re-reads them the same way
        described["csv"] = dict(loaded.meta["csv"])
    document = verdict_document(verdict, results, described, loaded.policy, label=loaded.meta["label"],
                                started=loaded.meta["started"])
    out = Path(out_dir) if out_dir is not None else None
    run = GateRun(verdict, results, document, out)
    if out is None:
        return run
    keep = {a for r in results for a in r.artifacts}
    out.mkdir(parents=True, exist_ok=True)
    for name in outputs.OUTPUT_FILES:
        if name not in keep:
            (out / name).unlink(missing_ok=True)
    written = outputs.write_outputs(run, batch, signing_key)
    return GateRun(verdict, results, written, out)


def _row_digests(work: Path, loaded: Loaded, batch: Batch) -> np.ndarray:
    files = [_part_folder(work, i) / "rows.npz" for i in range(len(loaded.parts))]
    if all(f.exists() for f in files):
        return merge_files(files).rows["digest"]
    return np.concatenate([hash_rows(f, list(f.columns)) for _, f in batch.parts()]
                          or [np.empty((0, 32), dtype=np.uint8)])


# --------------------------------------------------------------------------- all stages, one process

def run_all(inputs: GateInputs, *, work_dir: str | Path, out_dir: str | Path | None,
            progress: Callable[[str], None] | None = None, signing_key: SigningKey | None = None) -> GateRun:
    """Every stage in order, in this process."""
    say = progress or log.info
    work = Path(work_dir)
    plan = prepare(inputs, work_dir=work)
    say(f"read {plan['reference_rows']} reference and {plan['holdout_rows']} holdout rows; "
        f"the batch has {plan['rows']} rows in {len(plan['parts'])} part(s)")
    for name in plan["row_checks"]:
        info = fit(work, name, signing_key=signing_key)
        how = "taken from the fitted state" if info["state"] == "reused" else "fitted on trusted data"
        say(f"{name}: {how} ({info['seconds']:.1f} s)" + (f" ERROR {info['error']}" if info["error"] else ""))
    for index in plan["parts"]:
        score_part(work, index)
        if len(plan["parts"]) > 1:
            say(f"scored part {index + 1} of {len(plan['parts'])}")
    loaded = load(work)
    for phase in ("rows", "batch"):
        for check in (c for c in enabled(loaded.policy) if c.phase == phase):
            if not check.partitioned:
                say(f"{check.name}: running")
            info = summarize(work, check.name, out_dir=out_dir, signing_key=signing_key)
            state = f"ERROR {info['error']}" if info["error"] else \
                f"{info['flagged_rows']} row(s) flagged, {len(info['reasons'])} blocking finding(s)"
            say(f"{check.name}: {state} ({info['seconds']:.1f} s)")
    return finish(work, out_dir, signing_key=signing_key)
