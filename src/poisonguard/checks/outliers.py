"""Outliers: an IsolationForest fitted on the trusted reference scores each incoming row.

An IsolationForest cannot tell a value just past the edge of its training data from one far
beyond it (its splits are drawn between the training sample's minimum and maximum), so it
is paired with an extreme-value signal: the row's largest absolute z-score over the numeric
features, standardised on the reference. Each signal's threshold is calibrated on the
reference's own scores (a high quantile plus a margin), so it adapts to each dataset; the
batch is never used to fit or calibrate its own detector. The row's score is the larger of
the two signals, each divided by its threshold: above 1 is an outlier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.context import GateContext
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
        description="Extreme-value threshold: the reference_quantile of the reference's own largest |z| per row, "
        "widened by this share.")
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


def outlier_scores(model, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Anomaly score per row: the higher, the more abnormal (IsolationForest's negated score)."""
    return -model.score_samples(x)


def max_abs_z(x: np.ndarray, n_numeric: int) -> np.ndarray:
    """Largest |z| per row over the numeric features (the encoding standardises them)."""
    if n_numeric == 0:
        return np.zeros(len(x))
    return np.abs(x[:, :n_numeric]).max(axis=1).astype(np.float64)


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    x_ref, x = ctx.encode(ctx.reference), ctx.encode(frame)
    n_numeric = len(ctx.features.numeric_columns)
    model = fit_detector(x_ref, spec, ctx.seed)
    ref_iso, ref_z = outlier_scores(model, x_ref), max_abs_z(x_ref, n_numeric)
    iso_threshold = float(np.quantile(ref_iso, spec.reference_quantile)) + spec.score_margin
    z_threshold = max(float(np.quantile(ref_z, spec.reference_quantile)) * (1 + spec.z_margin_fraction), 1e-9)
    iso, z = outlier_scores(model, x), max_abs_z(x, n_numeric)
    scores = np.maximum(iso / iso_threshold, z / z_threshold)
    ref_scores = np.maximum(ref_iso / iso_threshold, ref_z / z_threshold)
    flagged = np.flatnonzero(scores > 1.0)
    ref_fraction = float(np.mean(ref_scores > 1.0))
    n = len(frame)

    findings = []
    if len(flagged):
        n_extreme = int(np.sum(z[flagged] > z_threshold))
        findings.append(Finding.at_rows(NAME, "feature_outlier",
            f"{len(flagged)} row(s) lie outside what the reference holds ({n_extreme} with a feature beyond "
            f"{z_threshold:.1f} standard deviations, the rest isolated by the IsolationForest)",
            flagged, threshold=1.0))
    exceeded, p_value = rate_exceeds(len(flagged), n, ref_fraction,
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    if exceeded:
        findings.append(Finding.at_rows(NAME, "outlier_fraction_exceeded",
            f"{len(flagged) / n:.1%} of the batch are outliers; the reference's own share is "
            f"{ref_fraction:.2%} (p={p_value:.1e})", [], value=len(flagged) / n,
            threshold=ref_fraction + spec.min_excess_fraction))
    metrics = {
        "isolation_threshold": iso_threshold,
        "z_threshold": z_threshold,
        "flagged_fraction": len(flagged) / n,
        "reference_flagged_fraction": ref_fraction,
        "p_value": p_value,
        "score_quantiles": dict(zip(("p50", "p99", "max"), np.quantile(scores, [0.5, 0.99, 1.0]).tolist(),
                                    strict=True)),
    }
    return CheckResult(NAME, tuple(findings), metrics, scores)
