"""Hashing files and rows: SHA-256 per file, per row and their root, and 64-bit row keys.

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

from poisonguard.kernel.context import is_numeric

_CHUNK = 1 << 20


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
    return hashlib.sha256(np.ascontiguousarray(digests).data.cast("B")).hexdigest()  # no copy


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
