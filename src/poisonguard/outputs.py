"""Writing a run's outputs: verdict.json, quarantine.parquet, report.html, and clean.parquet
(on promote only). Each file is written to a temporary name and renamed into place;
verdict.json is written last, so its presence means the run's outputs are complete."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poisonguard import __version__
from poisonguard.checks import REGISTRY
from poisonguard.errors import UsageError
from poisonguard.policy import Policy
from poisonguard.results import CheckResult, Verdict

if TYPE_CHECKING:
    from poisonguard.context import GateContext
    from poisonguard.gate import GateRun
    from poisonguard.ledger import SigningKey

OUTPUT_FILES = ("verdict.json", "clean.parquet", "quarantine.parquet", "report.html", "drift.html",
                "schema_suite.json")
POSITION = "_pg_position"
REASONS = "_pg_reasons"
SCORE_PREFIX = "_pg_score_"


def prepare_out_dir(out: Path) -> None:
    """Create ``out`` and remove a previous run's outputs, so a failed run never leaves a stale
    clean.parquet or verdict that looks like this run's."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory. Name a directory for the outputs (it is created "
                         "if missing).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out} cannot be created ({e.strerror}). Name a directory you can write.") from None
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so that a crash leaves the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def verdict_document(verdict: Verdict, results: tuple[CheckResult, ...], provenance: dict[str, Any],
                     policy: Policy, *, label: str, started: float) -> dict[str, Any]:
    """The content of verdict.json. Everything but the ``run`` block is a function of the
    inputs, the policy and the seed."""
    doc = verdict.to_dict()
    doc["provenance"] = provenance
    doc["policy_sha256"] = policy.sha256
    doc["policy"] = policy.to_dict()
    doc["label"] = label
    doc["seed"] = policy.seed
    doc["poisonguard_version"] = __version__
    doc["skipped_checks"] = [name for name in REGISTRY if not policy.spec(name).enabled]
    doc["artifacts"] = sorted({a for r in results for a in r.artifacts})
    doc["run"] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "check_seconds": {r.check: round(r.seconds, 3) for r in results},
    }
    return doc


def quarantine_frame(frame: pd.DataFrame, verdict: Verdict, results: tuple[CheckResult, ...]) -> pd.DataFrame:
    """Quarantined rows with their position, reason codes and every check's score."""
    rows = np.asarray(verdict.quarantined_rows, dtype=np.int64)
    q = frame.iloc[rows].reset_index(drop=True).copy()
    q[POSITION] = rows
    q[REASONS] = [",".join(verdict.row_reasons[int(r)]) for r in rows]
    for r in results:
        if r.scores is not None:
            q[SCORE_PREFIX + r.check] = r.scores[rows]
    return q


def write_outputs(run: GateRun, ctx: GateContext, key: SigningKey | None = None) -> dict[str, Any]:
    """Write the outputs; verdict.json last, with the SHA-256 of every other output in its
    ``outputs`` block and, when a key is set, an HMAC ``signature``. Returns the document written."""
    from poisonguard.checks.provenance import hash_file
    from poisonguard.report import render_report
    from poisonguard.store import sign_document

    out = run.out_dir
    assert out is not None
    verdict = run.verdict
    atomic_write_parquet(out / "quarantine.parquet", quarantine_frame(run.incoming, verdict, run.results))
    if verdict.promoted:
        keep = np.setdiff1d(np.arange(len(run.incoming)), np.asarray(verdict.quarantined_rows, dtype=np.int64))
        atomic_write_parquet(out / "clean.parquet", run.incoming.iloc[keep].reset_index(drop=True))
    atomic_write_bytes(out / "report.html", render_report(run, ctx).encode("utf-8"))
    # The data files only: the HTML pages carry timestamps and ids that differ between identical runs.
    data = [n for n in ("clean.parquet", "quarantine.parquet") if (out / n).exists()]
    document = sign_document(run.document | {"outputs": {n: hash_file(out / n) for n in data}}, key)
    blob = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(out / "verdict.json", blob.encode("utf-8"))
    return document
