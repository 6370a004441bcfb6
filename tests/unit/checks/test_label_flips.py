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


CREDIT = DIGITS.parent / "credit"


def test_near_copies_of_trusted_rows_relabelled_are_flagged_and_block():
    """credit (noisy labels, a weak model): 10% of a batch replaced by jittered near-copies of
    trusted 'bad' rows labelled 'good' (the matrix's priors_10). The model alone cannot tell them
    (the rule off: 5 of 44 flagged, nothing blocks); a doubted row closer to a trusted row of
    another class than the reference's own rows come is flagged, and that is far more than the
    reference shows. Clean batches gain at most a row or two."""
    ref = pd.read_parquet(CREDIT / "reference.parquet")
    ctx = GateContext(reference=ref, holdout=pd.read_parquet(CREDIT / "holdout.parquet"), label="status", seed=0)
    base = pd.read_parquet(CREDIT / "incoming" / "clean_1.parquet")
    poisoned = attacks.shift_priors(base, ref, "status", "good", 0.10, seed=20261758)
    truth = set(int(r) for r in poisoned.rows)
    spec = Policy().spec("label_flips")

    off = run_check(REGISTRY["label_flips"], poisoned.frame, spec.model_copy(update={"near_copy_quantile": 0.0}), ctx)
    on = run_check(REGISTRY["label_flips"], poisoned.frame, spec, ctx)
    assert len(truth & set(map(int, off.flagged_rows))) <= 6
    assert not [f.code for f in off.findings if f.code.endswith("exceeded")]
    assert on.metrics["near_copy_rows"] >= 20
    assert len(truth & set(map(int, on.flagged_rows))) >= 20
    assert "flip_fraction_exceeded" in {f.code for f in on.findings}
    for name in ("clean_1", "clean_2", "clean_3"):
        clean = run_check(REGISTRY["label_flips"], pd.read_parquet(CREDIT / "incoming" / f"{name}.parquet"), spec, ctx)
        assert clean.metrics["near_copy_rows"] <= 3
        assert not [f.code for f in clean.findings if f.code != "label_flip"]


def test_a_batch_row_meets_the_same_fold_model_in_any_batch_and_any_order():
    """Batch rows are scored by the reference's fold models, picked by a hash of each row's values:
    the pick depends on the row alone (so cold, warm and file-by-file runs agree) and spreads rows
    evenly over the folds, as the reference's own rows are spread."""
    import numpy as np

    from poisonguard.checks.label_flips import fold_of

    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(10_000, 6)), 1)
    folds = fold_of(x, 5)
    order = rng.permutation(len(x))
    assert np.array_equal(fold_of(x[order], 5), folds[order])
    assert np.array_equal(fold_of(x[:100], 5), folds[:100])
    share = np.bincount(folds, minlength=5) / len(x)
    assert share.min() > 0.18 and share.max() < 0.22
    assert len(np.unique(fold_of(x[:, :1], 3))) == 3  # one feature is enough to spread
