"""The batch read part by part (kernel/batch.py) and clean.parquet written part by part
(kernel/fsio.py): the same rows, and the same bytes, as the batch held as one frame."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pandas as pd
import pytest

from poisonguard.kernel import fsio
from poisonguard.kernel.batch import Batch


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "k": rng.choice(["a", "b", None], size=n),
                         "y": rng.integers(0, 3, size=n)})


def _split(frame: pd.DataFrame, sizes: list[int]) -> Batch:
    cuts = np.cumsum([0, *sizes])
    parts = [frame.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(cuts)]
    reads = [(lambda cols, p=p: p if cols is None else p[list(cols)]) for p in parts]
    return Batch(tuple(frame.columns), tuple(sizes), tuple(reads))


def test_a_split_batch_reads_like_the_whole_frame():
    frame = _frame(1000)
    batch = _split(frame, [300, 0, 450, 250])
    assert len(batch) == 1000 and list(batch.offsets) == [0, 300, 300, 750]
    pd.testing.assert_frame_equal(batch.frame(), frame)
    pd.testing.assert_series_equal(batch.column("k"), frame["k"])
    positions = np.array([999, 0, 301, 299, 750, 5])  # unsorted, across every part
    pd.testing.assert_frame_equal(batch.take(positions, ["x", "y"]),
                                  frame.iloc[positions][["x", "y"]].reset_index(drop=True))
    assert len(batch.take([])) == 0 and list(batch.take([]).columns) == list(frame.columns)
    sample = batch.sample_positions(100, seed=7)
    expected = np.sort(np.random.default_rng(7).choice(1000, 100, replace=False))  # what drift sampled before
    assert np.array_equal(sample, expected)
    with pytest.raises(IndexError):
        batch.take([1000])


def test_a_part_that_changed_size_is_refused():
    frame = _frame(10)
    batch = Batch(tuple(frame.columns), (11,), (lambda cols: frame,))
    with pytest.raises(ValueError, match="11"):
        batch.frame()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sizes", [[50], [20, 0, 30], [0, 0], [fsio.ROW_GROUP_ROWS - 5, 10, 7]])
def test_clean_parquet_written_in_parts_has_the_bytes_of_the_whole(tmp_path, sizes):
    frame = _frame(sum(sizes), seed=1)
    whole, parts = tmp_path / "whole.parquet", tmp_path / "parts.parquet"
    fsio.atomic_write_parquet(whole, frame)
    fsio.atomic_write_parquet_parts(parts, (f for _, f in _split(frame, sizes).parts()) if sum(sizes) else
                                    [frame.iloc[:0]] * len(sizes))
    assert _sha(parts) == _sha(whole)
    pd.testing.assert_frame_equal(pd.read_parquet(parts), frame)


def test_parts_whose_column_types_cannot_agree_are_an_error_and_leave_nothing(tmp_path):
    a = pd.DataFrame({"x": [1.5, 2.5]})
    b = pd.DataFrame({"x": ["text", "more"]})
    with pytest.raises(ValueError, match=r"columns \['x'\]"):
        fsio.atomic_write_parquet_parts(tmp_path / "c.parquet", [a, b])
    assert list(tmp_path.iterdir()) == []
