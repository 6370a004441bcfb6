"""One contract (``poisonguard.testing.check_contract``, public for plug-in authors), run over
every registered check: deterministic, input not mutated, JSON round-trip, one score per row,
row positions inside the batch, the same result however the batch is cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.checks import REGISTRY
from poisonguard.testing import check_contract


def _poisoned(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A batch with a bit of everything, so every check has something to report."""
    inc = frames["incoming"].copy()
    inc.loc[:39, "y"] = np.where(inc.loc[:39, "y"] == "c0", "c1", "c0")
    inc.loc[40:44, "f0"] = 80.0
    inc.loc[45:64, ["f3", "f4"]] = [0.123457, -0.654321]
    inc.loc[45:64, "y"] = "c1"
    return inc


@pytest.mark.parametrize("name", list(REGISTRY))
def test_check_contract(name, frames):
    check_contract(REGISTRY[name], reference=frames["reference"], holdout=frames["holdout"], batch=_poisoned(frames),
                   label="y")


def test_registry_matches_policy_schema():
    from poisonguard.engine.policy import Policy

    policy = Policy()
    for name in REGISTRY:
        assert isinstance(policy.spec(name), REGISTRY[name].spec)


def test_the_contract_catches_a_check_that_breaks_it(frames):
    """A check that modifies its input, one that is not deterministic, and one whose headline is
    not among its metrics are all refused."""
    import dataclasses
    import itertools

    outliers = REGISTRY["outliers"]

    def mutating(frame, spec, *, ctx):
        frame.loc[frame.index[0], "f0"] = -1.0
        return outliers.run(frame, spec, ctx=ctx)

    counter = itertools.count()

    def moody(frame, spec, *, ctx):
        result = outliers.run(frame, spec, ctx=ctx)
        return dataclasses.replace(result, metrics=result.metrics | {"call": next(counter)})

    for run, clause, headline in ((mutating, "modified", outliers.headline),
                                  (moody, "same input and seed", outliers.headline),
                                  (outliers.run, "headline metric 'flagged_share'", "flagged_share")):
        broken = dataclasses.replace(outliers, run=run, fit=None, score=None, summarize=None, headline=headline)
        with pytest.raises(AssertionError, match=clause):
            check_contract(broken, reference=frames["reference"], holdout=frames["holdout"],
                           batch=frames["incoming"].copy(), label="y")
