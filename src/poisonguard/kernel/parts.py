"""What a row check hands between its three steps, so a batch can be scored in parts.

A row check that supports partitions splits its work in three:

- ``fit(spec, ctx) -> Fitted``: everything learned from trusted data, once per run;
- ``score(frame, fitted, spec, ctx) -> PartScores``: per-row work on one part of the batch;
  a row's output depends only on that row and ``fitted``, so any split gives the same rows;
- ``summarize(scores, fitted, spec, ctx) -> CheckResult``: batch-level statistics and findings
  over the merged scores of every part.

Both values hold only numbers and JSON, and are stored as ``.npz`` (loaded with
``allow_pickle=False``) next to a ``.json``: nothing is ever unpickled between steps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from poisonguard.kernel.results import clean_json


def _frozen(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype == object:
            raise TypeError(f"array '{k}' has dtype object; only numbers and fixed-width strings can be stored")
        a = a.copy() if a.flags.writeable else a
        a.setflags(write=False)
        out[k] = a
    return out


def _save_npz(path: Path, arrays: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **dict(arrays))
    tmp.replace(path)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: _owned(data[k]) for k in data.files}


def _owned(a: np.ndarray) -> np.ndarray:
    """``a``, which nothing else refers to, read-only: frozen without a copy."""
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Fitted:
    """What a check learned from trusted data: JSON-safe ``meta`` plus numeric ``arrays``."""

    meta: Mapping[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", clean_json(dict(self.meta)))
        object.__setattr__(self, "arrays", _frozen(self.arrays))

    def save(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _save_npz(folder / f"{name}.npz", self.arrays)
        (folder / f"{name}.json").write_text(json.dumps(self.meta, sort_keys=True, allow_nan=False))

    @classmethod
    def load(cls, folder: Path, name: str) -> Fitted:
        return cls(json.loads((folder / f"{name}.json").read_text()), _load_npz(folder / f"{name}.npz"))


@dataclass(frozen=True)
class PartScores:
    """One check's output on a part of ``n`` rows.

    - ``rows``: arrays with one value per row (scores, predictions, hashes);
    - ``positions``: lists of 0-based row positions within the part (e.g. rows failing one
      expectation), shifted to batch positions when parts are merged;
    - ``counts``: numbers that add up across parts.
    """

    n: int
    rows: Mapping[str, np.ndarray] = field(default_factory=dict)
    positions: Mapping[str, np.ndarray] = field(default_factory=dict)
    counts: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = _frozen(self.rows)
        for k, v in rows.items():
            if len(v) != self.n:
                raise ValueError(f"per-row array '{k}' has {len(v)} values for {self.n} rows")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "positions",
                           _frozen({k: np.asarray(v, dtype=np.int64) for k, v in self.positions.items()}))
        object.__setattr__(self, "counts", {k: float(v) for k, v in self.counts.items()})

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {f"row/{k}": v for k, v in self.rows.items()}
        arrays |= {f"pos/{k}": v for k, v in self.positions.items()}
        arrays |= {f"count/{k}": np.float64(v) for k, v in self.counts.items()}
        arrays["n"] = np.int64(self.n)
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_npz(path, arrays)


class _Part(Protocol):
    """What :func:`merge` reads of a part: a :class:`PartScores`, or one still on disk."""

    @property
    def n(self) -> int: ...
    @property
    def rows(self) -> Mapping[str, np.ndarray]: ...
    @property
    def positions(self) -> Mapping[str, np.ndarray]: ...
    @property
    def counts(self) -> Mapping[str, float]: ...


def merge(parts: Sequence[_Part]) -> PartScores:
    """The parts as one, in order: rows concatenated, positions shifted, counts added."""
    if len(parts) == 1 and isinstance(parts[0], PartScores):
        return parts[0]
    offsets = np.cumsum([0, *(p.n for p in parts)])
    keys = {k for p in parts for k in p.rows}
    rows = {k: _owned(np.concatenate([p.rows[k] for p in parts])) for k in sorted(keys)}
    pos_keys = sorted({k for p in parts for k in p.positions})
    positions = {k: np.concatenate([p.positions.get(k, np.empty(0, np.int64)) + off
                                    for p, off in zip(parts, offsets, strict=False)]) for k in pos_keys}
    count_keys = sorted({k for p in parts for k in p.counts})
    counts = {k: sum(p.counts.get(k, 0.0) for p in parts) for k in count_keys}
    return PartScores(int(offsets[-1]), rows, positions, counts)


def merge_files(paths: Sequence[Path]) -> PartScores:
    """``merge`` of the parts saved at ``paths``, each array read when it is merged: a 10M-row
    batch's scores are never held twice (parts and merged) at once."""
    files = [np.load(p, allow_pickle=False) for p in paths]
    try:
        return merge([_Stored(f) for f in files])
    finally:
        for f in files:
            f.close()


class _Stored:
    """A saved part as :func:`merge` reads it (``n``, ``rows``, ``positions``, ``counts``), its
    arrays read from the ``.npz`` only when asked for."""

    def __init__(self, data: Any) -> None:
        self.n = int(data["n"])
        self.rows, self.positions, self.counts = (_Prefixed(data, p) for p in ("row", "pos", "count"))


class _Prefixed(Mapping[str, Any]):
    def __init__(self, data: Any, prefix: str) -> None:
        self._data, self._prefix = data, f"{prefix}/"

    def __getitem__(self, key: str) -> Any:
        return self._data[self._prefix + key]

    def __iter__(self) -> Iterator[str]:
        return (k[len(self._prefix):] for k in self._data.files if k.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)
