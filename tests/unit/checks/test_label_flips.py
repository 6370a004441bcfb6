"""The label checks' batch tests judge what would be promoted: flips caught row by row are
quarantined, and only what is left decides whether the batch is blocked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from poisonguard.checks import REGISTRY
from poisonguard.engine.policy import Policy
from poisonguard.engine.runner import run_check
from poisonguard.kernel.context import GateContext
from poisonguard.testing import attacks

DIGITS = Path(__file__).resolve().parents[3] / "datasets" / "digits"


def _label_flips(batch: pd.DataFrame):
    ctx = GateContext(reference=pd.read_parquet(DIGITS / "reference.parquet"),
                      holdout=pd.read_parquet(DIGITS / "holdout.parquet"), label="digit", seed=0)
    return run_check(REGISTRY["label_flips"], batch, Policy().spec("label_flips"), ctx)


def test_a_few_flips_caught_row_by_row_are_quarantined_not_a_reason_to_block():
    """digits, 2% of a batch's labels flipped (the matrix's flips_2, its seed): every flip is flagged;
    over all rows the mean surprise is far above the reference's (p = 1e-4, under the 5e-4 the test
    needs), but the rows left to promote look like trusted data, so nothing blocks."""
    base = pd.read_parquet(DIGITS / "incoming" / "clean_1.parquet")
    poisoned = attacks.flip_random(base, "digit", 0.02, seed=6304242)
    result = _label_flips(poisoned.frame)
    assert set(result.flagged_rows) >= set(int(r) for r in poisoned.rows)
    assert result.metrics["surprise_p_value"] < 5e-4
    assert result.metrics["changed_label_estimate"] < 0.03
    assert not [f.code for f in result.findings if f.code.endswith("exceeded")]


def test_flips_beyond_what_is_caught_still_block():
    """The same batch with 10% flipped: more is left in the rows it would promote than the policy allows."""
    base = pd.read_parquet(DIGITS / "incoming" / "clean_1.parquet")
    result = _label_flips(attacks.flip_random(base, "digit", 0.10, seed=6304242).frame)
    assert {"flip_fraction_exceeded", "label_disagreement_exceeded"} & {f.code for f in result.findings}
