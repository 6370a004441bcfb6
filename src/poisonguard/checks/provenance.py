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
from poisonguard.parts import Fitted, PartScores
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


def canonical_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The rows' canonical bytes over ``columns``, in that order: a (rows, width) uint8 array."""
    if not columns:
        return np.zeros((len(frame), 0), dtype=np.uint8)
    return np.ascontiguousarray(np.hstack([_column_bytes(frame[c]) for c in columns]))


def hash_rows(frame: pd.DataFrame, columns: list[str], chunk_rows: int = 100_000) -> np.ndarray:
    """SHA-256 digest of each row over ``columns``: a (rows, 32) uint8 array (built chunk by
    chunk, so the canonical bytes of a large batch are never all in memory at once)."""
    out = np.empty((len(frame), 32), dtype=np.uint8)
    sha = hashlib.sha256
    for start in range(0, len(frame), chunk_rows):
        block = canonical_block(frame.iloc[start:start + chunk_rows], columns)
        width = block.shape[1]
        flat = memoryview(block.data).cast("B")
        digests = b"".join(sha(flat[i:i + width]).digest() for i in range(0, len(flat), width))
        out[start:start + len(block)] = np.frombuffer(digests, dtype=np.uint8).reshape(len(block), 32)
    return out


def rows_root(digests: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(digests).tobytes()).hexdigest()


def schema_fingerprint(frame: pd.DataFrame, label: str) -> str:
    """SHA-256 of the column names, their order, type families and which one is the label."""
    cols = [[str(c), "numeric" if is_numeric(frame[c]) else "categorical", c == label] for c in frame.columns]
    return hashlib.sha256(json.dumps(cols, separators=(",", ":")).encode()).hexdigest()


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def row_keys(block: np.ndarray) -> np.ndarray:
    """A 64-bit key per row of a canonical block, for finding equal rows (a splitmix64 chain over
    the row's 8-byte words; collision odds ~ rows^2 / 2^64). Not a security hash: the SHA-256
    row digests are the provenance record."""
    words = block.view("<u8") if block.shape[1] else np.zeros((len(block), 0), dtype="<u8")
    h = np.full(len(block), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for j in range(words.shape[1]):
        h = h ^ words[:, j]
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        h = h ^ (h >> np.uint64(31))
    return h


def feature_and_row_keys(frame: pd.DataFrame, ctx: GateContext) -> tuple[np.ndarray, np.ndarray]:
    """Keys of each row's features, and of its features and label."""
    feats = canonical_block(frame, ctx.feature_columns)
    full = np.hstack([feats, canonical_block(frame, [ctx.label])])
    return row_keys(feats), row_keys(full)


def describe(ctx: GateContext, digests: np.ndarray, frame_columns: pd.DataFrame) -> dict[str, object]:
    """The provenance block of the verdict: file hashes, rows root, schema fingerprint.

    ``digests`` are the batch's SHA-256 row digests over all its columns (:func:`hash_rows`);
    ``frame_columns`` is any part of the batch (only its columns and dtypes are read)."""
    return {
        "incoming_sha256": hash_files(ctx.sources.get("incoming", ())),
        "reference_sha256": hash_files(ctx.sources.get("reference", ())),
        "holdout_sha256": hash_files(ctx.sources.get("holdout", ())),
        "incoming_files": [str(p) for p in ctx.sources.get("incoming", ())],
        "rows_root": rows_root(digests),
        "row_hash": "sha256 over canonical row values (numbers as float64), columns in reference order",
        "schema_fingerprint": schema_fingerprint(frame_columns, ctx.label),
        "rows": len(digests),
    }


def fit(spec: Spec, ctx: GateContext) -> Fitted:
    """Keys of every trusted row (reference and holdout), and how repetitive trusted data is."""
    trusted = pd.concat([ctx.reference, ctx.holdout], ignore_index=True)
    ref_feat, ref_full = feature_and_row_keys(trusted, ctx)
    n = len(trusted)
    natural_dup = float(pd.Series(ref_feat).duplicated(keep=False).mean()) if n else 0.0
    ref_conflict = (natural_dup - float(pd.Series(ref_full).duplicated(keep=False).mean())) if n else 0.0
    return Fitted({"natural_duplicate_fraction": natural_dup, "natural_conflict_fraction": ref_conflict},
                  {"feature_keys": np.unique(ref_feat), "row_keys": np.unique(ref_full)})


def _isin_sorted(keys: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    if not len(sorted_unique):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_unique, keys), len(sorted_unique) - 1)
    return sorted_unique[at] == keys


def score(frame: pd.DataFrame, fitted: Fitted, spec: Spec, ctx: GateContext) -> PartScores:
    """Per row: its keys (for repeats within the batch) and whether trusted data holds its
    features, and its features with this label."""
    feat, full = feature_and_row_keys(frame, ctx)
    return PartScores(len(frame), {"row_key": full,
                                   "trusted_features": _isin_sorted(feat, fitted.arrays["feature_keys"]),
                                   "trusted_row": _isin_sorted(full, fitted.arrays["row_keys"])})


def summarize(scores: PartScores, fitted: Fitted, spec: Spec, ctx: GateContext) -> CheckResult:
    """Exact repeats within the batch and replays of trusted rows.

    Score per row: 1 for a replay with a conflicting label, 0.5 for another repeat, else 0.
    """
    n = scores.n
    natural_dup = fitted.meta["natural_duplicate_fraction"]
    natural = natural_dup > spec.max_natural_duplicate_fraction
    dup = pd.Series(scores.rows["row_key"]).duplicated(keep="first").to_numpy()
    in_ref_feat, in_ref_full = scores.rows["trusted_features"], scores.rows["trusted_row"]
    conflict = in_ref_feat & ~in_ref_full
    replay = in_ref_full & ~dup

    findings: list[Finding] = []
    if not natural:
        if dup.any():
            findings.append(Finding.at_rows(NAME, "duplicate_row",
                f"{int(dup.sum())} row(s) repeat an earlier row of the batch exactly", np.flatnonzero(dup)))
        if replay.any():
            findings.append(Finding.at_rows(NAME, "replayed_row",
                f"{int(replay.sum())} row(s) are exact copies of trusted rows", np.flatnonzero(replay)))
    if conflict.any() and fitted.meta["natural_conflict_fraction"] <= spec.max_natural_duplicate_fraction:
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
    scores_out = np.where(conflict, 1.0, np.where(dup | replay, 0.5, 0.0))
    metrics = {
        "duplicate_rows": int(dup.sum()),
        "replayed_rows": int(replay.sum()),
        "replay_label_conflicts": int(conflict.sum()),
        "repeated_fraction": float(repeated.mean()) if n else 0.0,
        "reference_repeat_fraction": natural_dup,
        "repeats_are_natural": natural,
        "p_value": p_value,
    }
    return CheckResult(NAME, tuple(findings), metrics, scores_out)
