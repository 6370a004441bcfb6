"""One contract, run over every registered check: deterministic, input not mutated,
JSON round-trip, one score per row, row positions inside the batch."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from poisonguard.checks import REGISTRY
from poisonguard.context import GateContext
from poisonguard.results import CheckResult


def _context(frames: dict[str, pd.DataFrame], tmp_path) -> GateContext:
    return GateContext(reference=frames["reference"], holdout=frames["holdout"], label="y", seed=7,
                       out_dir=tmp_path)


def _poisoned(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A batch with a bit of everything, so every check has something to report."""
    inc = frames["incoming"].copy()
    inc.loc[:39, "y"] = np.where(inc.loc[:39, "y"] == "c0", "c1", "c0")
    inc.loc[40:44, "f0"] = 80.0
    inc.loc[45:64, ["f3", "f4"]] = [0.123457, -0.654321]
    inc.loc[45:64, "y"] = "c1"
    return inc


@pytest.mark.parametrize("name", list(REGISTRY))
def test_check_contract(name, frames, tmp_path):
    check = REGISTRY[name]
    spec = check.spec()
    batch = _poisoned(frames)
    before = {k: v.copy(deep=True) for k, v in frames.items()}
    batch_before = batch.copy(deep=True)

    first = check.run(batch, spec, ctx=_context(frames, tmp_path / "a"))
    second = check.run(batch, spec, ctx=_context(frames, tmp_path / "b"))

    assert isinstance(first, CheckResult) and first.check == name
    assert first.error is None
    assert first.to_dict() == second.to_dict(), "same input and seed must give the same result"
    pd.testing.assert_frame_equal(batch, batch_before)
    for k, v in before.items():
        pd.testing.assert_frame_equal(frames[k], v)
    blob = json.dumps(first.to_dict(), allow_nan=False)
    assert CheckResult.from_dict(json.loads(blob)) == first
    if first.scores is not None:
        assert first.scores.shape == (len(batch),)
        assert np.all(np.isfinite(first.scores))
    assert all(0 <= r < len(batch) for r in first.flagged_rows)
    for finding in first.findings:
        assert finding.code in check.codes, f"{finding.code} is not declared in {name}.CODES"
        assert finding.message


def test_registry_matches_policy_schema():
    from poisonguard.policy import Policy

    policy = Policy()
    for name in REGISTRY:
        assert isinstance(policy.spec(name), REGISTRY[name].spec)


@pytest.mark.parametrize("name", [n for n, c in REGISTRY.items() if c.partitioned])
def test_scoring_in_parts_gives_the_same_result(name, frames, tmp_path):
    """A row check's rows do not depend on how the batch is split (mapped tasks, chunks)."""
    from poisonguard.parts import merge

    check = REGISTRY[name]
    spec = check.spec()
    batch = _poisoned(frames)
    whole = check.run(batch, spec, ctx=_context(frames, tmp_path / "whole"))
    ctx = _context(frames, tmp_path / "parts")
    fitted = check.fit(spec, ctx)
    cuts = [0, 1, 250, 251, len(batch)]  # uneven parts, one of a single row
    parts = [check.score(batch.iloc[a:b], fitted, spec, ctx) for a, b in itertools.pairwise(cuts)]
    assert check.summarize(merge(parts), fitted, spec, ctx).to_dict() == whole.to_dict()
