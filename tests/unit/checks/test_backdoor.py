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
