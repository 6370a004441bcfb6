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

from poisonguard.kernel.context import GateContext
from poisonguard.kernel.models import ForestScorer, forest_arrays
from poisonguard.kernel.parts import Fitted, PartScores
from poisonguard.kernel.results import CheckResult, Finding, Severity, null_of, reference_quantiles
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import p_text, rate_exceeds

NAME = "outliers"
PHASE = "rows"
HEADLINE = "flagged_fraction"  # share of rows flagged as outliers
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


def fit_detector(x_reference: np.ndarray, spec: Spec, seed: int):
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=spec.n_estimators, max_samples=min(spec.max_samples, len(x_reference)),
                            random_state=seed, n_jobs=1)
    return model.fit(x_reference)


def _forest(spec: Spec, ctx: GateContext, fitted: Fitted):
    """The forest fitted on the reference, once per process: rebuilt from the numbers ``fitted``
    keeps (see :func:`fit`; no fitted model is ever pickled), or refitted, deterministically from
    the seed, when it keeps none."""
    def build():
        numbers = {n.removeprefix("forest/"): a for n, a in fitted.arrays.items() if n.startswith("forest/")}
        return ForestScorer(numbers) if numbers else fit_detector(ctx.encode(ctx.reference), spec, ctx.seed)
    return ctx.cached(("outliers.forest", spec.n_estimators, spec.max_samples), build)


def outlier_scores(model, x: np.ndarray) -> np.ndarray:
    """Anomaly score per row: the higher, the more abnormal (IsolationForest's negated score)."""
    return -model.score_samples(x)


def max_abs_z(x: np.ndarray, n_numeric: int) -> np.ndarray:
    """Largest |z| per row over the numeric features (the encoding standardises them on the reference)."""
    if n_numeric == 0:
        return np.zeros(len(x))
    return np.abs(x[:, :n_numeric]).max(axis=1).astype(np.float64)


def out_of_fold_scores(x_reference: np.ndarray, spec: Spec, seed: int, folds: int = 5) -> np.ndarray:
    """Each reference row's anomaly score from a forest grown without it (k folds), so the
    reference is scored the way a batch is: by a detector that never saw its rows (a forest
    scores the rows it was grown on as less abnormal, most of all on a small reference)."""
    out = np.zeros(len(x_reference))
    order = np.random.default_rng(seed).permutation(len(x_reference))
    for fold in np.array_split(order, min(folds, len(x_reference))):
        rest = np.setdiff1d(order, fold)
        out[fold] = outlier_scores(fit_detector(x_reference[rest], spec, seed), x_reference[fold])
    return out


def fit(spec: Spec, ctx: GateContext) -> Fitted:
    """Thresholds from the reference's own scores: the forest's, and the row's largest |z|.

    One |z| threshold per row, not per feature: a per-feature bound set at the reference's edge
    is crossed by some feature of many clean rows when the reference is small (on a 228-row
    reference with 30 skewed features, 4.7% of a clean batch)."""
    x_ref = ctx.encode(ctx.reference)
    n_numeric = len(ctx.features.numeric_columns)
    ref_iso, ref_z = out_of_fold_scores(x_ref, spec, ctx.seed), max_abs_z(x_ref, n_numeric)
    iso_threshold = float(np.quantile(ref_iso, spec.reference_quantile)) + spec.score_margin
    z_threshold = max(float(np.quantile(ref_z, spec.reference_quantile)) * (1 + spec.z_margin_fraction), 1e-9)
    ref_scores = np.maximum(ref_iso / iso_threshold, ref_z / z_threshold)
    # The forest scoring the batch, as numbers: warm runs and scoring processes rebuild it instead
    # of refitting it (0.9 s of a 3 s warm run on a 1k-row batch).
    forest = {f"forest/{n}": a for n, a in forest_arrays(fit_detector(x_ref, spec, ctx.seed)).items()}
    return Fitted({"isolation_threshold": iso_threshold, "z_threshold": z_threshold, "numeric_columns": n_numeric,
                   "reference_flagged_fraction": float(np.mean(ref_scores > 1)), "reference_rows": len(x_ref),
                   "reference_score_quantiles": reference_quantiles(ref_scores)}, forest)


def score(frame: pd.DataFrame, fitted: Fitted, spec: Spec, ctx: GateContext) -> PartScores:
    """Per row: the larger of the two signals over its threshold (above 1 = outlier), and
    whether the extreme-value signal alone crosses its threshold."""
    x = ctx.encode(frame)
    iso, z = outlier_scores(_forest(spec, ctx, fitted), x), max_abs_z(x, fitted.meta["numeric_columns"])
    z_ratio = z / fitted.meta["z_threshold"]
    scores = np.maximum(iso / fitted.meta["isolation_threshold"], z_ratio)
    return PartScores(len(frame), {"score": scores, "extreme": z_ratio > 1})


def summarize(scores: PartScores, fitted: Fitted, spec: Spec, ctx: GateContext) -> CheckResult:
    s, n = scores.rows["score"], scores.n
    flagged = np.flatnonzero(s > 1.0)
    ref_fraction = fitted.meta["reference_flagged_fraction"]
    findings = []
    if len(flagged):
        n_extreme = int(np.sum(scores.rows["extreme"][flagged]))
        findings.append(Finding.at_rows(NAME, "feature_outlier",
            f"{len(flagged)} row(s) lie outside what the reference holds ({n_extreme} with a feature beyond "
            f"{fitted.meta['z_threshold']:.1f} standard deviations, the rest isolated by the IsolationForest)",
            flagged, threshold=1.0))
    exceeded, p_value = rate_exceeds(len(flagged), n, ref_fraction, reference_n=fitted.meta["reference_rows"],
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    if exceeded:
        findings.append(Finding.at_rows(NAME, "outlier_fraction_exceeded",
            f"{len(flagged) / n:.1%} of the batch are outliers; the reference's own share is "
            f"{ref_fraction:.2%} ({p_text(p_value)})", [], value=len(flagged) / n,
            threshold=ref_fraction + spec.min_excess_fraction,
            null=null_of("out-of-fold outlier share of the reference's rows (beta-binomial)",
                         fitted.meta["reference_rows"], p_value, spec.max_p_value)))
    metrics = {
        "isolation_threshold": fitted.meta["isolation_threshold"],
        "z_threshold": fitted.meta["z_threshold"],
        "flagged_fraction": len(flagged) / n,
        "reference_flagged_fraction": ref_fraction,
        "p_value": p_value,
        "score_quantiles": dict(zip(("p50", "p99", "max"), np.quantile(s, [0.5, 0.99, 1.0]).tolist(), strict=True)),
        "reference_score_quantiles": fitted.meta["reference_score_quantiles"],
    }
    return CheckResult(NAME, tuple(findings), metrics, s)
