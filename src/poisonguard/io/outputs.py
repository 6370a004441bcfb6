"""Writing a run's outputs: verdict.json, quarantine.parquet, report.html, and clean.parquet
(on promote only). Each file is written to a temporary name and renamed into place;
verdict.json is written last, so its presence means the run's outputs are complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.errors import UsageError
from poisonguard.io.report import render_report
from poisonguard.kernel.batch import Batch, as_batch
from poisonguard.kernel.fsio import atomic_write_bytes, atomic_write_parquet, atomic_write_parquet_parts
from poisonguard.kernel.hashing import hash_file
from poisonguard.kernel.results import CheckResult, GateRun, Verdict
from poisonguard.kernel.signing import SigningKey, sign_document

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


def quarantine_frame(batch: Batch | pd.DataFrame, verdict: Verdict, results: tuple[CheckResult, ...]) -> pd.DataFrame:
    """Quarantined rows with their position, reason codes and every check's score."""
    rows = np.asarray(verdict.quarantined_rows, dtype=np.int64)
    q = as_batch(batch).take(rows)
    q[POSITION] = rows
    q[REASONS] = [",".join(verdict.row_reasons[int(r)]) for r in rows]
    for r in results:
        if r.scores is not None:
            q[SCORE_PREFIX + r.check] = r.scores[rows]
    return q


def clean_parts(batch: Batch, verdict: Verdict) -> Iterator[pd.DataFrame]:
    """The rows of ``batch`` not quarantined, one frame per part (in order)."""
    held = np.zeros(len(batch), dtype=bool)
    held[np.asarray(verdict.quarantined_rows, dtype=np.int64)] = True
    for offset, frame in batch.parts():
        yield frame.iloc[np.flatnonzero(~held[offset:offset + len(frame)])].reset_index(drop=True)


def write_outputs(run: GateRun, batch: Batch | pd.DataFrame, key: SigningKey | None = None) -> dict[str, Any]:
    """Write the outputs of ``run`` on ``batch``; verdict.json last, with the SHA-256 of every
    other output in its ``outputs`` block and, when a key is set, an HMAC ``signature``. The batch
    is read part by part (clean.parquet is written as it goes). Returns the document written."""
    out = run.out_dir
    assert out is not None
    verdict, batch = run.verdict, as_batch(batch)
    quarantine = quarantine_frame(batch, verdict, run.results)
    atomic_write_parquet(out / "quarantine.parquet", quarantine)
    if verdict.promoted:
        atomic_write_parquet_parts(out / "clean.parquet", clean_parts(batch, verdict))
    atomic_write_bytes(out / "report.html", render_report(run, quarantine).encode("utf-8"))
    # The data files only: the HTML pages carry timestamps and ids that differ between identical runs.
    data = [n for n in ("clean.parquet", "quarantine.parquet") if (out / n).exists()]
    document = sign_document(run.document | {"outputs": {n: hash_file(out / n) for n in data}}, key)
    blob = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(out / "verdict.json", blob.encode("utf-8"))
    return document
