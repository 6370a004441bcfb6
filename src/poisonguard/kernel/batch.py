"""The incoming batch as the batch-level checks and the output writer read it: some columns of every
row, or every column of some rows, one file ("part") at a time — never all of a large batch at once.

A 10M-row batch in 10 files holds ~4 GB as one DataFrame; a column of it ~80 MB, and a seeded
sample of 50k rows a few MB. So a check that needs a column's value counts reads that column, one
that needs a sample reads those rows, and the batch as one frame (:meth:`Batch.frame` with no
columns) is only built for a check that asks for it (a plug-in without ``READS = "batch"``).

Rows keep the order of the batch's files: positions are batch positions, as in the verdict. A
:class:`Batch` is built by the engine from the batch's parts (read back from the run's work
directory) or, in memory, from a DataFrame (:meth:`Batch.of`, for tests and notebooks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Reads one part: the given columns (None: every column) of all its rows, in file order.
PartReader = Callable[[Sequence[str] | None], pd.DataFrame]


@dataclass(frozen=True)
class Batch:
    """The batch as ``readers``, one per part, of ``sizes`` rows each, with ``columns``."""

    columns: tuple[str, ...]
    sizes: tuple[int, ...]
    readers: tuple[PartReader, ...]

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.readers):
            raise ValueError(f"{len(self.sizes)} part sizes for {len(self.readers)} readers")

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Batch:
        """A batch held in memory as one part."""
        def read(columns: Sequence[str] | None) -> pd.DataFrame:
            return frame if columns is None else frame[list(columns)]
        return cls(tuple(str(c) for c in frame.columns), (len(frame),), (read,))

    def __len__(self) -> int:
        return int(sum(self.sizes))

    @property
    def offsets(self) -> np.ndarray:
        """The batch position of each part's first row."""
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def parts(self, columns: Sequence[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(offset, frame)`` for each part in order: ``columns`` of its rows."""
        for offset, size, read in zip(self.offsets, self.sizes, self.readers, strict=True):
            if size:
                yield int(offset), _checked(read(columns), size)

    def frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """``columns`` (None: all of them) of every row, as one frame with a fresh index."""
        frames = [f for _, f in self.parts(columns)]
        if not frames:
            return pd.DataFrame(columns=list(self.columns if columns is None else columns))
        return frames[0].reset_index(drop=True) if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def column(self, name: str) -> pd.Series:
        """One column of every row."""
        return self.frame([name])[name]

    def take(self, positions: np.ndarray | Sequence[int], columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows at ``positions`` (batch positions, in the order given), with a fresh index;
        only the parts that hold one of them are read."""
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"row positions must lie in [0, {len(self)}); got {pos.min()}..{pos.max()}")
        order = np.argsort(pos, kind="stable")
        ordered = pos[order]
        frames = []
        for offset, size, read in zip(self.offsets, self.sizes, self.readers, strict=True):
            lo, hi = np.searchsorted(ordered, [offset, offset + size])
            if hi > lo:
                frames.append(_checked(read(columns), size).iloc[ordered[lo:hi] - offset])
        if not frames:
            cols = list(self.columns if columns is None else columns)
            empty = next(self.parts(cols), (0, pd.DataFrame(columns=cols)))[1]
            return empty.iloc[:0].reset_index(drop=True)
        rows = frames[0] if len(frames) == 1 else pd.concat(frames)
        if not np.array_equal(order, np.arange(len(pos))):  # back to the order asked for
            rows = rows.iloc[np.argsort(order, kind="stable")]
        return rows.reset_index(drop=True)

    def sample_positions(self, n: int, seed: int) -> np.ndarray:
        """:func:`sample_positions` of this batch's rows."""
        return sample_positions(len(self), n, seed)


def sample_positions(total: int, n: int, seed: int) -> np.ndarray:
    """``n`` of ``total`` positions drawn without replacement (seeded), sorted; every position when
    ``total`` is at most ``n``. The one seeded sample the checks draw from a batch, a reference or
    the history since the golden reference."""
    if total <= n:
        return np.arange(total, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def _checked(frame: pd.DataFrame, size: int) -> pd.DataFrame:
    if len(frame) != size:
        raise ValueError(f"a part of the batch read {len(frame)} rows; it had {size} when the run started")
    return frame


def as_batch(data: pd.DataFrame | Batch) -> Batch:
    """``data`` as a :class:`Batch` (a DataFrame becomes a batch of one part in memory)."""
    return data if isinstance(data, Batch) else Batch.of(data)
