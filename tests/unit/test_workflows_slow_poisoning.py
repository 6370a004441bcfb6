"""A slow attack: ten batches, each under every per-batch threshold, that together skew the
class priors. The rolling reference moves with them; the golden reference does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.engine.gate import GateInputs, run_gate
from poisonguard.store.records import Actor
from poisonguard.workflows import gate_batch
from support.data import make_frame

POLICY = """\
checks:
  label_flips: {model: logistic, n_folds: 3}
  baseline: {enabled: false}
  drift: {noise_draws: 2}
"""


def _batch(path, seed: int, c1_share: float, n: int = 300) -> None:
    """Natural rows (correct labels), with class c1 over-represented."""
    pool = make_frame(4 * n, seed)
    c1 = pool[pool["y"] == "c1"].head(round(c1_share * n))
    c0 = pool[pool["y"] == "c0"].head(n - len(c1))
    pd.concat([c0, c1]).sample(frac=1.0, random_state=seed).to_parquet(path, index=False)


@pytest.mark.slow
def test_a_ten_batch_prior_skew_is_blocked_by_the_cumulative_budget(tmp_path, store):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    golden_share = float((pd.read_parquet(store.golden_path)["y"] == "c1").mean())
    paths = []
    for day in range(10):
        paths.append(tmp_path / f"2026-02-{day + 1:02d}.parquet")
        _batch(paths[-1], 500 + day, c1_share=golden_share + 0.05)  # 5 points more c1 than trusted data
    # Each batch alone, against the golden reference, passes every per-batch check.
    alone = run_gate(GateInputs(store.golden_path, paths[0], "y", holdout=store.holdout_path, policy=policy), out_dir=None)
    assert alone.verdict.promoted, alone.verdict.reasons
    assert alone.verdict.checks["drift"].status.value in ("pass", "warn")  # at most a column warning

    outcomes = []
    for path in paths:
        day = path.stem
        run, _promotion = gate_batch(store, path, day, actor=Actor("test"), policy=policy, key=day)
        outcomes.append((day, str(run.verdict.decision), [f"{r.check}/{r.code}" for r in run.verdict.reasons]))
        if not run.verdict.promoted:
            break
    blocked = [o for o in outcomes if o[1] == "block"]
    assert blocked, outcomes
    assert blocked[0][2] == ["cumulative/cumulative_label_shift"], outcomes
    assert len(outcomes) >= 3  # the first batches passed: it was the accumulation that was caught


@pytest.mark.slow
def test_ten_clean_batches_stay_within_the_cumulative_budget(tmp_path, store):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    for day in range(10):
        path = tmp_path / f"2026-03-{day + 1:02d}.parquet"
        make_frame(300, 700 + day).to_parquet(path, index=False)
        run, promotion = gate_batch(store, path, path.stem, actor=Actor("test"), policy=policy, key=path.stem)
        assert promotion is not None, (path.stem, run.verdict.reasons)
        assert run.verdict.checks["cumulative"].status.value in ("pass", "warn")
    metrics = run.verdict.checks["cumulative"].metrics
    assert metrics["history_rows"] == sum(p["clean_rows"] for p in store.promoted()[:-1])
    assert np.isfinite(metrics["label_shift"]) and metrics["label_shift"] < 0.03
