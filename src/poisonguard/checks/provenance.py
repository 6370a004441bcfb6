"""Provenance: file SHA-256s, per-row hashes and their root, a schema fingerprint; duplicates and replay.

A row's hash covers every column in the reference's column order, numbers canonicalised as
float64 (so the same row read from CSV or Parquet hashes the same). The rows root is the
SHA-256 of all row hashes in order: changing, adding, removing or reordering one row changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.context import GateContext, is_numeric
from poisonguard.results import CheckResult, Finding, Severity
from poisonguard.spec import CheckSpec
from poisonguard.stats import rate_exceeds

NAME = "provenance"
PHASE = "rows"
CODES: dict[str, Severity] = {
    "duplicate_row": Severity.QUARANTINE,
    "replayed_row": Severity.QUARANTINE,
    "replay_label_conflict": Severity.QUARANTINE,
    "duplicate_fraction_exceeded": Severity.BLOCK,
}
_CHUNK = 1 << 20


class Spec(CheckSpec):
    max_natural_duplicate_fraction: float = Field(
        0.01, ge=0, le=1,
        description="If more than this share of the reference's own rows repeat a trusted feature "
        "vector, exact repeats are natural for this dataset and are not flagged row by row.",
    )
    min_excess_fraction: float = Field(
        0.005, ge=0, le=1,
        description="Block only when the batch's share of repeated rows exceeds the reference's own by this much...",
    )
    max_p_value: float = Field(
        1e-4, gt=0, lt=1, description="...and a binomial test puts it below this p-value.",
    )


def hash_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_files(paths: Iterable[Path]) -> str | None:
    """SHA-256 of one file; for several, SHA-256 over their ``name sha256`` lines in order."""
    paths = list(paths)
    if not paths:
        return None
    if len(paths) == 1:
        return hash_file(paths[0])
    lines = "".join(f"{p.name} {hash_file(p)}\n" for p in paths)
    return hashlib.sha256(lines.encode()).hexdigest()


def _column_bytes(series: pd.Series) -> np.ndarray:
    """Canonical fixed-width bytes per value: float64 for numbers, a 16-byte digest for others."""
    if is_numeric(series):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        values = np.where(np.isnan(values), np.nan, values) + 0.0  # one NaN pattern; -0.0 -> 0.0
        return values.astype("<f8").view(np.uint8).reshape(len(series), 8)
    codes, uniques = pd.factorize(series.astype("object"), use_na_sentinel=True)
    digests = [hashlib.sha256(b"s" + str(u).encode()).digest()[:16] for u in uniques]
    table = np.frombuffer(b"".join([*digests, hashlib.sha256(b"<null>").digest()[:16]]), dtype=np.uint8)
    table = table.reshape(-1, 16)
    return table[np.where(codes < 0, len(uniques), codes)]


def hash_rows(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """SHA-256 digest of each row over ``columns``: a (rows, 32) uint8 array."""
    block = np.ascontiguousarray(np.hstack([_column_bytes(frame[c]) for c in columns]))
    width = block.shape[1]
    flat = block.tobytes()
    sha = hashlib.sha256
    out = b"".join(sha(flat[i:i + width]).digest() for i in range(0, len(flat), width))
    return np.frombuffer(out, dtype=np.uint8).reshape(len(frame), 32)


def rows_root(digests: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(digests).tobytes()).hexdigest()


def schema_fingerprint(frame: pd.DataFrame, label: str) -> str:
    """SHA-256 of the column names, their order, type families and which one is the label."""
    cols = [[str(c), "numeric" if is_numeric(frame[c]) else "categorical", c == label] for c in frame.columns]
    return hashlib.sha256(json.dumps(cols, separators=(",", ":")).encode()).hexdigest()


def _keys(digests: np.ndarray) -> np.ndarray:
    """First 8 bytes of each digest as one integer: collision odds ~ n^2 / 2^64."""
    return np.ascontiguousarray(digests[:, :8]).view("<u8").ravel()


def describe(frame: pd.DataFrame, ctx: GateContext) -> dict[str, object]:
    """The provenance block of the verdict: file hashes, rows root, schema fingerprint."""
    digests = ctx.memo("row_hashes", frame, lambda f: hash_rows(f, list(f.columns)))
    return {
        "incoming_sha256": hash_files(ctx.sources.get("incoming", ())),
        "reference_sha256": hash_files(ctx.sources.get("reference", ())),
        "holdout_sha256": hash_files(ctx.sources.get("holdout", ())),
        "incoming_files": [str(p) for p in ctx.sources.get("incoming", ())],
        "rows_root": rows_root(digests),
        "row_hash": "sha256 over canonical row values (numbers as float64), columns in reference order",
        "schema_fingerprint": schema_fingerprint(frame, ctx.label),
        "rows": len(frame),
    }


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    """Find exact repeats within the batch and replays of trusted rows.

    Score per row: 1 for a replay with a conflicting label, 0.5 for another repeat, else 0.
    """
    feats = ctx.feature_columns
    trusted = pd.concat([ctx.reference, ctx.holdout], ignore_index=True)
    batch_feat = _keys(ctx.memo("feature_hashes", frame, lambda f: hash_rows(f, feats)))
    batch_full = _keys(hash_rows(frame, [*feats, ctx.label]))
    ref_feat = _keys(hash_rows(trusted, feats))
    ref_full = _keys(hash_rows(trusted, [*feats, ctx.label]))

    # How repetitive is trusted data on its own? Discrete datasets repeat naturally.
    natural_dup = float(pd.Series(ref_feat).duplicated(keep=False).mean()) if len(ref_feat) else 0.0
    ref_conflict = float(pd.Series(ref_feat).duplicated(keep=False).mean()
                         - pd.Series(ref_full).duplicated(keep=False).mean()) if len(ref_feat) else 0.0
    natural = natural_dup > spec.max_natural_duplicate_fraction

    dup = pd.Series(batch_full).duplicated(keep="first").to_numpy()
    in_ref_feat = np.isin(batch_feat, ref_feat)
    in_ref_full = np.isin(batch_full, ref_full)
    conflict = in_ref_feat & ~in_ref_full
    replay = in_ref_full & ~dup

    findings: list[Finding] = []
    n = len(frame)
    if not natural:
        if dup.any():
            findings.append(Finding.at_rows(NAME, "duplicate_row",
                f"{int(dup.sum())} row(s) repeat an earlier row of the batch exactly", np.flatnonzero(dup)))
        if replay.any():
            findings.append(Finding.at_rows(NAME, "replayed_row",
                f"{int(replay.sum())} row(s) are exact copies of trusted rows", np.flatnonzero(replay)))
    if conflict.any() and ref_conflict <= spec.max_natural_duplicate_fraction:
        findings.append(Finding.at_rows(NAME, "replay_label_conflict",
            f"{int(conflict.sum())} row(s) copy a trusted row's features with a different label",
            np.flatnonzero(conflict)))
    repeated = dup | replay | conflict
    exceeded, p_value = rate_exceeds(int(repeated.sum()), n, natural_dup,
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    if exceeded:
        findings.append(Finding.at_rows(NAME, "duplicate_fraction_exceeded",
            f"{repeated.mean():.1%} of the batch repeats trusted or earlier rows; the reference's own "
            f"repeat rate is {natural_dup:.1%} (p={p_value:.1e})", [], value=float(repeated.mean()),
            threshold=natural_dup + spec.min_excess_fraction))
    scores = np.where(conflict, 1.0, np.where(dup | replay, 0.5, 0.0))
    metrics = {
        "duplicate_rows": int(dup.sum()),
        "replayed_rows": int(replay.sum()),
        "replay_label_conflicts": int(conflict.sum()),
        "repeated_fraction": float(repeated.mean()) if n else 0.0,
        "reference_repeat_fraction": natural_dup,
        "repeats_are_natural": natural,
        "p_value": p_value,
    }
    return CheckResult(NAME, tuple(findings), metrics, scores)
