"""Outliers: an IsolationForest fitted on the trusted reference scores each incoming row.

An IsolationForest cannot tell a value just past the edge of its training data from one far
beyond it (its splits are drawn between the training sample's minimum and maximum), so it
is paired with an extreme-value signal: each numeric feature's absolute z-score, standardised
on the reference. Every threshold (the forest's, and one per feature for |z|) is calibrated on
the reference's own scores (a high quantile plus a margin), so it adapts to each dataset and
each column's tails; the batch is never used to fit or calibrate its own detector. The row's
score is the largest signal divided by its threshold: above 1 is an outlier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.context import GateContext
from poisonguard.parts import Fitted, PartScores
from poisonguard.results import CheckResult, Finding, Severity
from poisonguard.spec import CheckSpec
from poisonguard.stats import rate_exceeds

NAME = "outliers"
PHASE = "rows"
CODES: dict[str, Severity] = {
    "feature_outlier": Severity.QUARANTINE,
    "outlier_fraction_exceeded": Severity.BLOCK,
}


class Spec(CheckSpec):
    n_estimators: int = Field(100, ge=10, le=2000, description="Trees in the IsolationForest.")
    max_samples: int = Field(256, ge=16, description="Rows each tree is grown on (IsolationForest's max_samples).")
    reference_quantile: float = Field(
        0.999, gt=0.5, lt=1,
        description="A row is an outlier when its score is above this quantile of the reference's own scores.",
    )
    score_margin: float = Field(
        0.02, ge=0, le=1, description="Added to the calibrated threshold, so rows at the reference's edge pass.",
    )
    z_margin_fraction: float = Field(
        0.25, ge=0, le=10,
        description="Extreme-value threshold per numeric feature: the reference_quantile of the reference's own "
        "|z| for that feature, widened by this share.")
    min_excess_fraction: float = Field(
        0.01, ge=0, le=1,
        description="Block when the batch's outlier share exceeds the reference's own by this much...",
    )
    max_p_value: float = Field(1e-4, gt=0, lt=1, description="...and a binomial test puts it below this p-value.")


def fit_detector(x_reference: np.ndarray, spec: Spec, seed: int):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=spec.n_estimators, max_samples=min(spec.max_samples, len(x_reference)),
                            random_state=seed, n_jobs=1)
    return model.fit(x_reference)


def _forest(spec: Spec, ctx: GateContext):  # type: ignore[no-untyped-def]
    """The forest fitted on the reference; refitted (deterministically, from the seed) in each
    process that scores rows, so no fitted model is ever stored or unpickled."""
    return ctx.cached(("outliers.forest", spec.n_estimators, spec.max_samples),
                      lambda: fit_detector(ctx.encode(ctx.reference), spec, ctx.seed))


def outlier_scores(model, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Anomaly score per row: the higher, the more abnormal (IsolationForest's negated score)."""
    return -model.score_samples(x)


def abs_z(x: np.ndarray, n_numeric: int) -> np.ndarray:
    """|z| of every numeric feature (the encoding standardises them on the reference)."""
    return np.abs(x[:, :n_numeric]).astype(np.float64)


def fit(spec: Spec, ctx: GateContext) -> Fitted:
    """Thresholds from the reference's own scores: the forest's, and each numeric feature's |z|."""
    x_ref = ctx.encode(ctx.reference)
    n_numeric = len(ctx.features.numeric_columns)
    ref_iso = outlier_scores(_forest(spec, ctx), x_ref)
    iso_threshold = float(np.quantile(ref_iso, spec.reference_quantile)) + spec.score_margin
    ref_z = abs_z(x_ref, n_numeric)
    # Per feature, so one heavy-tailed column does not set the bar for every other one.
    z_thresholds = np.maximum(np.quantile(ref_z, spec.reference_quantile, axis=0) * (1 + spec.z_margin_fraction),
                              1e-9) if n_numeric else np.zeros(0)
    ref_scores = _combine(ref_iso, ref_z, iso_threshold, z_thresholds)
    return Fitted({"isolation_threshold": iso_threshold, "reference_flagged_fraction": float(np.mean(ref_scores > 1))},
                  {"z_thresholds": z_thresholds})


def _combine(iso: np.ndarray, z: np.ndarray, iso_threshold: float, z_thresholds: np.ndarray) -> np.ndarray:
    z_ratio = (z / z_thresholds).max(axis=1) if z.shape[1] else np.zeros(len(iso))
    return np.maximum(iso / iso_threshold, z_ratio)


def score(frame: pd.DataFrame, fitted: Fitted, spec: Spec, ctx: GateContext) -> PartScores:
    """Per row: the larger of the two signals over its threshold (above 1 = outlier), and
    whether a single feature alone is extreme."""
    x = ctx.encode(frame)
    z_thresholds = fitted.arrays["z_thresholds"]
    iso, z = outlier_scores(_forest(spec, ctx), x), abs_z(x, len(z_thresholds))
    scores = _combine(iso, z, fitted.meta["isolation_threshold"], z_thresholds)
    extreme = (z > z_thresholds).any(axis=1) if len(z_thresholds) else np.zeros(len(x), dtype=bool)
    return PartScores(len(frame), {"score": scores, "extreme": extreme})


def summarize(scores: PartScores, fitted: Fitted, spec: Spec, ctx: GateContext) -> CheckResult:
    s, n = scores.rows["score"], scores.n
    flagged = np.flatnonzero(s > 1.0)
    ref_fraction = fitted.meta["reference_flagged_fraction"]
    findings = []
    if len(flagged):
        n_extreme = int(np.sum(scores.rows["extreme"][flagged]))
        findings.append(Finding.at_rows(NAME, "feature_outlier",
            f"{len(flagged)} row(s) lie outside what the reference holds ({n_extreme} with a feature beyond "
            "its reference-calibrated z-score bound, the rest isolated by the IsolationForest)",
            flagged, threshold=1.0))
    exceeded, p_value = rate_exceeds(len(flagged), n, ref_fraction,
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    if exceeded:
        findings.append(Finding.at_rows(NAME, "outlier_fraction_exceeded",
            f"{len(flagged) / n:.1%} of the batch are outliers; the reference's own share is "
            f"{ref_fraction:.2%} (p={p_value:.1e})", [], value=len(flagged) / n,
            threshold=ref_fraction + spec.min_excess_fraction))
    metrics = {
        "isolation_threshold": fitted.meta["isolation_threshold"],
        "z_thresholds": dict(zip(ctx.features.numeric_columns, fitted.arrays["z_thresholds"].tolist(), strict=True)),
        "flagged_fraction": len(flagged) / n,
        "reference_flagged_fraction": ref_fraction,
        "p_value": p_value,
        "score_quantiles": dict(zip(("p50", "p99", "max"), np.quantile(s, [0.5, 0.99, 1.0]).tolist(), strict=True)),
    }
    return CheckResult(NAME, tuple(findings), metrics, s)
