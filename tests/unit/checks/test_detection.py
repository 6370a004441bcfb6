"""Planted poison with known ground truth: each attack is blocked and its rows are found (recall
and precision asserted), and clean batches promote with at most 1% of rows quarantined.

The committed datasets (datasets/README.md) carry the ground truth. Detectors are fitted once per
dataset and reused for every batch, exactly as the gate's stages do; the decision is the gate's
own pure function."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poisonguard.checks import REGISTRY, score_in_chunks
from poisonguard.engine.decide import decide
from poisonguard.engine.policy import Policy
from poisonguard.engine.runner import run_check
from poisonguard.kernel.context import GateContext
from poisonguard.kernel.results import Verdict
from poisonguard.kernel.state import StateDir

DATASETS = Path(__file__).resolve().parents[3] / "datasets"


class Gate:
    """Every check of the default policy, fitted once on a dataset's trusted data."""

    def __init__(self, name: str) -> None:
        meta = json.loads((DATASETS / name / "meta.json").read_text())
        self.name, self.label, self.policy = name, meta["label"], Policy()
        # What batch checks learn from trusted data only (baseline's models, drift's thresholds) is
        # kept in a fitted state, as the gate keeps it, so it is learned once per dataset here too.
        self._state = tempfile.TemporaryDirectory(prefix="pg-detection-state-")
        self.ctx = GateContext(reference=pd.read_parquet(DATASETS / name / "reference.parquet"),
                               holdout=pd.read_parquet(DATASETS / name / "holdout.parquet"), label=self.label,
                               state=StateDir(self._state.name), trusted_key=name)
        self.fitted = {c.name: c.fit(self.policy.spec(c.name), self.ctx) for c in REGISTRY.values() if c.partitioned}

    def __call__(self, scenario: str) -> tuple[Verdict, set[int], set[int]]:
        """Verdict, quarantined rows and truly poisoned rows of one committed batch."""
        frame = pd.read_parquet(DATASETS / self.name / "incoming" / f"{scenario}.parquet")
        truth = json.loads((DATASETS / self.name / "incoming" / f"{scenario}.truth.json").read_text())
        results = []
        for check in (c for c in REGISTRY.values() if c.phase == "rows"):
            spec = self.policy.spec(check.name)
            if check.partitioned:
                assert check.score is not None and check.summarize is not None
                scores = score_in_chunks(check.score, frame, self.fitted[check.name], spec, self.ctx)
                results.append(check.summarize(scores, self.fitted[check.name], spec, self.ctx))
            else:
                results.append(run_check(check, frame, spec, self.ctx))
        self.ctx.suspect_rows = np.asarray(decide(results, self.policy, len(frame)).quarantined_rows)
        results += [run_check(c, frame, self.policy.spec(c.name), self.ctx) for c in REGISTRY.values()
                    if c.phase == "batch"]
        assert not [r.error for r in results if r.error], [r.error for r in results if r.error]
        verdict = decide(results, self.policy, len(frame))
        assert str(verdict.decision) == truth["expected_decision"], (scenario, verdict.reasons)
        return verdict, set(verdict.quarantined_rows), set(truth["poisoned_rows"])


def _recall_precision(found: set[int], truth: set[int]) -> tuple[float, float]:
    hit = len(found & truth)
    return hit / len(truth), hit / max(len(found), 1)


@functools.cache
def gate_for(name: str) -> Gate:
    """One fitted gate per dataset for the whole session (fitting is the costly part)."""
    return Gate(name)


@pytest.fixture
def synthetic() -> Gate:
    return gate_for("synthetic")


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "min_recall", "min_precision"), [
    ("flips_5", 0.7, 0.8),
    ("flips_10", 0.9, 0.8),
    ("flips_20", 0.85, 0.85),
    ("targeted_flip", 0.75, 0.85),
    ("outliers_3", 1.0, 0.8),
    ("backdoor_3", 1.0, 0.8),
    ("backdoor_clean_3", 1.0, 0.8),
    ("replay_10", 1.0, 0.9),
])
def test_planted_poison_is_blocked_and_found(synthetic, scenario, min_recall, min_precision):
    _verdict, found, truth = synthetic(scenario)
    recall, precision = _recall_precision(found, truth)
    assert recall >= min_recall and precision >= min_precision, (recall, precision)


@pytest.mark.slow
def test_a_targeted_flip_is_named_as_such(synthetic):
    verdict, _, _ = synthetic("targeted_flip")
    assert "targeted_flip" in {r.code for r in verdict.reasons}


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "scenario"), [("synthetic", "clean_1"), ("synthetic", "clean_2"),
                                                   ("synthetic", "clean_3"), ("credit", "clean_1"),
                                                   ("credit", "clean_2"), ("credit", "clean_3"),
                                                   ("breast_cancer", "clean_1"), ("digits", "clean_1")])
def test_clean_batches_promote_with_at_most_one_percent_quarantined(dataset, scenario):
    verdict, found, _ = gate_for(dataset)(scenario)
    assert verdict.promoted and len(found) <= 0.01 * verdict.n_rows, (len(found), verdict.reasons)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["breast_cancer", "digits", "credit"])
def test_backdoors_and_replays_are_found_on_every_dataset(dataset):
    gate = gate_for(dataset)
    for scenario in ("backdoor_3", "backdoor_clean_3", "replay_10"):
        _, found, truth = gate(scenario)
        recall, precision = _recall_precision(found, truth)
        assert recall >= 0.9 and precision >= 0.35, (scenario, recall, precision)


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "rate"), [("flips_10", 0.10), ("flips_20", 0.20)])
def test_random_flips_on_naturally_noisy_labels_are_blocked_and_their_share_estimated(scenario, rate):
    """credit's own labels are noisy: few flipped rows stand out one by one (row recall is low
    there for every method), but the batch's share of changed labels is estimated from its mean
    surprise, and that blocks it. The gate call asserts the block; here, the estimate itself.
    (At 5% the estimate is right too, 0.059, but its bootstrap p-value, 1.2e-3, misses the
    5e-4 budget: 22 changed labels among 445 noisy ones is at the edge of what can be told.)"""
    verdict, _, _ = gate_for("credit")(scenario)
    assert {r.code for r in verdict.reasons if r.check == "label_flips"}, verdict.reasons
    estimate = verdict.checks["label_flips"].metrics["changed_label_estimate"]
    assert rate / 2 <= estimate <= rate * 1.5, estimate
