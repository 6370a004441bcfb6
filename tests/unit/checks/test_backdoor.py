from __future__ import annotations

import numpy as np
import pandas as pd

from poisonguard.checks import REGISTRY, backdoor
from poisonguard.kernel.context import GateContext


def _frame(n: int, rare: int, seed: int, rare_label: str | None = None) -> pd.DataFrame:
    """``rare`` rows on the plan 'premium'; every other row on 'basic' or 'plus'. Labels at random,
    or all ``rare_label`` on the premium rows."""
    rng = np.random.default_rng(seed)
    plan = np.array(["premium"] * rare + list(rng.choice(["basic", "plus"], n - rare)))
    y = rng.choice(["yes", "no"], n)
    if rare_label is not None:
        y[:rare] = rare_label
    return pd.DataFrame({"plan": plan, "x": rng.normal(size=n), "y": y}).sample(frac=1, random_state=seed) \
        .reset_index(drop=True)


def _backdoor_codes(reference: pd.DataFrame, batch: pd.DataFrame) -> set[str]:
    ctx = GateContext(reference=reference, holdout=reference.iloc[:0], label="y", seed=0)
    return {f.code for f in REGISTRY["backdoor"].run(batch, backdoor.Spec(), ctx=ctx).findings}


def test_a_column_that_depends_on_another_does_not_make_a_pile_up_look_rarer():
    # 'premium' is 0.2% of trusted rows and 1.2% of the batch, all labelled 'yes': 12 rows where
    # the reference rate gives 2 — not beyond chance at the check's strict level. A fee that is a
    # function of the plan says nothing new; taking the two columns as independent would square
    # the rate and call the same rows a trigger.
    reference, batch = _frame(5000, 10, 1), _frame(1000, 12, 2, rare_label="yes")
    assert _backdoor_codes(reference, batch) == set()
    fee = {"basic": 10.0, "plus": 20.0, "premium": 99.0}
    with_fee = [f.assign(fee=f["plan"].map(fee)) for f in (reference, batch)]
    assert _backdoor_codes(*with_fee) == set()


def test_values_trusted_data_holds_but_never_together_are_a_trigger():
    # Two values, independent in trusted data (each on ~0.5% of rows, together on almost none),
    # stamped together on 4% of the batch, all labelled 'yes'.
    rng = np.random.default_rng(3)
    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"a": rng.integers(0, 200, n), "b": rng.integers(0, 200, n), "x": rng.normal(size=n),
                             "y": rng.choice(["yes", "no"], n)})
    reference, batch = frame(5000), frame(1000)
    batch.loc[:39, ["a", "b", "y"]] = [7, 3, "yes"]
    assert _backdoor_codes(reference, batch) == {"backdoor_trigger", "backdoor_pattern"}


def _common_values_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Two columns of few values (each value on ~1/3 and ~1/30 of rows), labels 'yes' on a third."""
    return pd.DataFrame({"jobs": rng.integers(1, 4, n), "years": rng.integers(0, 30, n), "x": rng.normal(size=n),
                         "y": rng.choice(["yes", "no", "no"], n)})


def test_two_values_each_too_common_to_stand_out_are_a_trigger_together():
    # jobs = 2 is on a third of trusted rows: stamped on 4% of the batch it rises by a tenth, never
    # the 5x a single value needs; years = 10 rises ~2.2x (an anchor). Together they are on ~1.1%
    # of trusted rows and 5% of the batch, all labelled 'yes'.
    rng = np.random.default_rng(11)
    reference, batch = _common_values_frame(4000, rng), _common_values_frame(1200, rng)
    ctx = GateContext(reference=reference, holdout=reference.iloc[:0], label="y", seed=0)
    single = [c for c in backdoor.find_candidates(backdoor.as_batch(batch), ctx, backdoor.Spec()) if "anchor" not in c]
    batch.loc[:47, ["jobs", "years", "y"]] = [2, 10, "yes"]
    result = REGISTRY["backdoor"].run(batch, backdoor.Spec(), ctx=ctx)
    assert {f.code for f in result.findings} == {"backdoor_trigger", "backdoor_pattern"}
    (pattern,) = result.metrics["patterns"]
    assert pattern["trigger"] == {"jobs": 2.0, "years": 10.0} and pattern["label"] == "yes"
    assert set(range(48)) <= set(np.flatnonzero(result.scores > 0))  # the stamped rows, not every 'jobs = 2' row
    assert np.sum(result.scores > 0) < 60
    assert single == []  # no value alone was a candidate before the stamp


def test_clean_batches_of_common_values_raise_no_pair():
    rng = np.random.default_rng(12)
    reference = _common_values_frame(4000, rng)
    for _ in range(20):
        assert _backdoor_codes(reference, _common_values_frame(600, rng)) == set()


def test_common_values_that_cluster_by_nature_are_judged_by_how_their_rows_split():
    # Rows that come in natural clusters (the purchases of one store in one week share the week
    # and the price) split between batch and reference by chance: 9 rows of a 1,500-row batch hold
    # a = 1, b = 1 (a on ~0.5% of rows, b on ~3%), the 3,500 trusted rows hold it once or never.
    # The one trusted row taken as an exact rate, or the product of the two values' rates, puts the
    # 9 at p < 1e-8 (clean splits of ISLR's Caravan and OJ were blocked so); given the rows that
    # hold it, 9 of 10 (or of 9) falling in a batch of 30% of all rows has p ~ 1e-4 (2e-5), not
    # beyond the check's 1e-6. Stamped on 4% of the batch, the same pair is a trigger.
    rng = np.random.default_rng(5)
    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"a": np.where(rng.random(n) < 0.005, 1, rng.integers(2, 300, n)),
                             "b": np.where(rng.random(n) < 0.03, 1, rng.integers(2, 30, n)),
                             "x": rng.normal(size=n), "y": np.where(rng.random(n) < 0.9, "no", "yes")})
    reference, batch = frame(3500), frame(1500)
    reference.loc[(reference["a"] == 1) & (reference["b"] == 1), "b"] = 2
    batch.loc[(batch["a"] == 1) & (batch["b"] == 1), "b"] = 2
    clustered = batch.copy()
    clustered.loc[:8, ["a", "b", "y"]] = [1, 1, "yes"]
    assert _backdoor_codes(reference, clustered) == set()
    once = reference.copy()
    once.loc[0, ["a", "b"]] = [1, 1]
    assert _backdoor_codes(once, clustered) == set()
    stamped = batch.copy()
    stamped.loc[:59, ["a", "b", "y"]] = [1, 1, "yes"]
    assert _backdoor_codes(reference, stamped) == {"backdoor_trigger", "backdoor_pattern"}
