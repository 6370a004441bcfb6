from __future__ import annotations

import numpy as np
import pandas as pd

from poisonguard.checks import REGISTRY, provenance
from poisonguard.kernel import hashing
from poisonguard.kernel.context import GateContext


def test_rows_root_changes_with_one_value(frames):
    inc = frames["incoming"]
    cols = list(inc.columns)
    root = hashing.rows_root(hashing.hash_rows(inc, cols))
    changed = inc.copy()
    changed.loc[123, "f2"] += 1e-6
    assert hashing.rows_root(hashing.hash_rows(changed, cols)) != root
    reordered = inc.iloc[::-1].reset_index(drop=True)
    assert hashing.rows_root(hashing.hash_rows(reordered, cols)) != root
    assert hashing.rows_root(hashing.hash_rows(inc.copy(), cols)) == root


def test_row_hash_is_the_same_from_csv_and_parquet(tmp_path, frames):
    inc = frames["incoming"].assign(n=np.arange(len(frames["incoming"])))
    inc.to_csv(tmp_path / "a.csv", index=False)
    inc.to_parquet(tmp_path / "a.parquet", index=False)
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_parquet(tmp_path / "a.parquet")
    cols = list(inc.columns)
    assert np.array_equal(hashing.hash_rows(a, cols), hashing.hash_rows(b, cols))


def test_file_hash_matches_hashlib(tmp_path):
    import hashlib

    p = tmp_path / "x.bin"
    p.write_bytes(b"abc" * 1_000_000)
    assert hashing.hash_file(p) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


def test_duplicates_and_replays_are_flagged_exactly(frames):
    ref, inc = frames["reference"], frames["incoming"].copy()
    ctx = GateContext(reference=ref, holdout=frames["holdout"], label="y", seed=0)
    inc.iloc[10] = inc.iloc[3]  # in-batch duplicate
    inc.iloc[20] = ref.iloc[5]  # replay, same label
    inc.iloc[30] = ref.iloc[6]
    inc.loc[30, "y"] = "c1" if ref.loc[6, "y"] == "c0" else "c0"  # replay, label changed
    result = REGISTRY["provenance"].run(inc, provenance.Spec(), ctx=ctx)
    by_code = {f.code: set(f.rows) for f in result.findings}
    assert by_code["duplicate_row"] == {10}
    assert by_code["replayed_row"] == {20}
    assert by_code["replay_label_conflict"] == {30}
    assert "duplicate_fraction_exceeded" not in by_code  # 3 of 600 is within the excess allowed


def test_a_replay_attack_is_a_batch_finding(frames):
    ref, inc = frames["reference"], frames["incoming"].copy()
    ctx = GateContext(reference=ref, holdout=frames["holdout"], label="y", seed=0)
    inc.iloc[:60] = ref.iloc[:60].to_numpy()
    result = REGISTRY["provenance"].run(inc, provenance.Spec(), ctx=ctx)
    codes = {f.code for f in result.findings}
    assert "duplicate_fraction_exceeded" in codes
    assert set(next(f for f in result.findings if f.code == "replayed_row").rows) == set(range(60))


def test_natural_repeats_in_discrete_data_are_not_flagged_row_by_row():
    rng = np.random.default_rng(0)
    def discrete(n, seed):
        r = np.random.default_rng(seed)
        x = r.integers(0, 3, size=(n, 3))
        return pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=np.where(x.sum(1) > 3, "hi", "lo"))
    ref, inc = discrete(2000, 1), discrete(500, 2)
    ctx = GateContext(reference=ref, holdout=ref.iloc[:0], label="y", seed=0)
    result = REGISTRY["provenance"].run(inc, provenance.Spec(), ctx=ctx)
    assert result.metrics["repeats_are_natural"] is True
    assert not [f for f in result.findings if f.code in ("duplicate_row", "replayed_row")]
    assert rng is not None
