"""Label flips: rows whose label disagrees with what trusted data says about their features.

Two complementary signals, both learned from the reference only:

- *model*: the probability a classifier fitted on the reference gives the row's label
  (out-of-fold on the reference itself, so its rows are scored like unseen ones);
- *neighbours*: the share of the row's k nearest trusted neighbours that carry its label.

The row's score is ``1 - (p_model + p_neighbours) / 2`` for its given label: 0 = everything
agrees with the label, 1 = nothing does. The higher, the more suspicious. A row is flagged
when its score is above its class's threshold, calibrated on the reference's own scores.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.context import GateContext
from poisonguard.results import CheckResult, Finding, Severity
from poisonguard.spec import CheckSpec
from poisonguard.stats import rate_exceeds

NAME = "label_flips"
PHASE = "rows"
CODES: dict[str, Severity] = {
    "label_flip": Severity.QUARANTINE,
    "flip_fraction_exceeded": Severity.BLOCK,
    "label_disagreement_exceeded": Severity.BLOCK,
    "targeted_flip": Severity.BLOCK,
}


class Spec(CheckSpec):
    model: Literal["logistic", "gradient_boosting"] = Field(
        "logistic", description="Classifier giving the model signal.")
    n_neighbors: int = Field(10, ge=1, le=200, description="Trusted neighbours consulted per row.")
    n_folds: int = Field(5, ge=2, le=20, description="Folds for the out-of-fold scores on the reference.")
    reference_quantile: float = Field(
        0.995, gt=0.5, lt=1,
        description="Per-class threshold: this quantile of the reference's own scores for that class...")
    min_threshold: float = Field(0.5, ge=0, le=1, description="...but never below this (the signals must disagree)...")
    max_threshold: float = Field(
        0.99, ge=0, le=1, description="...and never above this (so a very noisy reference still flags something).")
    min_class_rows: int = Field(
        200, ge=1, description="Classes with fewer reference rows use the pooled threshold of all classes.")
    max_fit_rows: int = Field(50_000, ge=100, description="Reference rows used to fit (seeded sample above this).")
    min_excess_fraction: float = Field(
        0.01, ge=0, le=1,
        description="Block when the batch's flagged share exceeds the reference's own by this much...")
    max_p_value: float = Field(
        1e-3, gt=0, lt=1, description="...and a binomial test (or, for the mean doubt, a z-test) puts it below this p-value.")
    min_targeted_share: float = Field(
        0.6, gt=0, le=1,
        description="Call it a targeted flip when one (given, predicted) pair holds this share of flagged rows...")
    min_targeted_rows: int = Field(3, ge=1, description="...and at least this many rows, significantly above its reference rate.")


def _classifier(kind: str, seed: int):  # type: ignore[no-untyped-def]
    if kind == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=500)


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Probabilities over all reference classes (a fold may lack one)."""
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _neighbour_proba(index, y_fit: np.ndarray, x: np.ndarray, k: int, n_classes: int,
                     skip_self: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Share of each class among the k nearest trusted rows (self excluded when ``skip_self``)."""
    idx = index.kneighbors(x, n_neighbors=k + int(skip_self), return_distance=False)
    if skip_self:
        idx = idx[:, 1:]
    labels = y_fit[idx]
    out = np.zeros((len(x), n_classes))
    for c in range(n_classes):
        out[:, c] = (labels == c).mean(axis=1)
    return out


def reference_agreement(x_ref: np.ndarray, y_ref: np.ndarray, n_classes: int, spec: Spec, seed: int):  # type: ignore[no-untyped-def]
    """Out-of-fold class agreement for every reference row, and the fitted model + neighbour index.

    Returns ``(p_model, p_neighbours, model, index, k)``; the p's are (rows, classes) arrays.
    """
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import NearestNeighbors

    k = min(spec.n_neighbors, len(x_ref) - 1)
    index = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x_ref)
    ref_nb = _neighbour_proba(index, y_ref, x_ref, k, n_classes, skip_self=True)
    ref_model = np.zeros((len(x_ref), n_classes))
    folds = min(spec.n_folds, int(np.bincount(y_ref).min()))
    if folds >= 2:
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x_ref, y_ref):
            model = _classifier(spec.model, seed).fit(x_ref[train], y_ref[train])
            ref_model[test] = _proba(model, x_ref[test], n_classes)
    else:  # a class too small to split: fall back to neighbours only for the reference
        ref_model = ref_nb
    model = _classifier(spec.model, seed).fit(x_ref, y_ref)
    return ref_model, ref_nb, model, index, k


def batch_agreement(model, index, k: int, y_ref: np.ndarray, x: np.ndarray, y: np.ndarray,  # type: ignore[no-untyped-def]
                    n_classes: int, max_threshold_by_row: np.ndarray) -> np.ndarray:
    """Class agreement for batch rows: the mean of model and neighbour probabilities.

    Neighbours are the costly signal, so they are looked up only for rows the model alone cannot
    clear: since agreement = (p_model + p_neighbours) / 2 and p_neighbours <= 1, a row whose
    ``p_model(label) >= 2 * (1 - threshold)`` can never score above its threshold. Those rows
    keep the model's probabilities as their agreement (their scores are the model's alone).
    """
    p_model = _proba(model, x, n_classes)
    agree = p_model.copy()
    rows = np.arange(len(x))
    given = p_model[rows, np.maximum(y, 0)]
    need = np.flatnonzero(given < 2 * (1 - max_threshold_by_row))
    for start in range(0, len(need), 50_000):
        chunk = need[start:start + 50_000]
        nb = _neighbour_proba(index, y_ref, x[chunk], k, n_classes, skip_self=False)
        agree[chunk] = (p_model[chunk] + nb) / 2
    return agree


def class_thresholds(ref_scores: np.ndarray, y_ref: np.ndarray, n_classes: int, spec: Spec) -> np.ndarray:
    pooled = float(np.quantile(ref_scores, spec.reference_quantile))
    out = np.full(n_classes, pooled)
    for c in range(n_classes):
        s = ref_scores[y_ref == c]
        if len(s) >= spec.min_class_rows:
            out[c] = float(np.quantile(s, spec.reference_quantile))
    return np.clip(out, spec.min_threshold, spec.max_threshold)


def consistent_scores(p_model_given: np.ndarray, agree_given: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Row scores under one rule for the reference and the batch: rows the model alone clears
    (``p_model >= 2 * (1 - threshold)``, see :func:`batch_agreement`) score ``(1 - p_model) / 2``,
    a lower bound of their two-signal score that can never pass a threshold; the rest score
    ``1 - agreement``."""
    cleared = p_model_given >= 2 * (1 - thresholds)
    return np.where(cleared, (1 - p_model_given) / 2, 1 - agree_given)


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    from scipy.stats import norm

    classes = ctx.classes
    n_classes = len(classes)
    x_ref, y_ref = ctx.encode(ctx.reference), ctx.label_codes(ctx.reference)
    if len(x_ref) > spec.max_fit_rows:
        keep = np.sort(np.random.default_rng(ctx.seed).choice(len(x_ref), spec.max_fit_rows, replace=False))
        x_ref, y_ref = x_ref[keep], y_ref[keep]
    y = ctx.label_codes(frame)
    known = np.flatnonzero(y >= 0)  # unknown labels are the schema check's to report
    yk = y[known]

    ref_model, ref_nb, model, index, k = reference_agreement(x_ref, y_ref, n_classes, spec, ctx.seed)
    ref_rows = np.arange(len(y_ref))
    ref_agree = (ref_model + ref_nb) / 2
    thresholds = class_thresholds(1 - ref_agree[ref_rows, y_ref], y_ref, n_classes, spec)
    ref_scores = consistent_scores(ref_model[ref_rows, y_ref], ref_agree[ref_rows, y_ref], thresholds[y_ref])

    x = ctx.encode(frame)[known]
    agree = batch_agreement(model, index, k, y_ref, x, yk, n_classes, thresholds[yk])
    p_model = _proba(model, x, n_classes)
    rows = np.arange(len(known))
    scores = np.zeros(len(frame))
    scores[known] = consistent_scores(p_model[rows, yk], agree[rows, yk], thresholds[yk])
    flagged_k = scores[known] > thresholds[yk]
    flagged = known[flagged_k]
    predicted = agree.argmax(axis=1)

    n_known = max(len(known), 1)
    ref_flagged = ref_scores > thresholds[y_ref]
    ref_flag_fraction = float(ref_flagged.mean())
    # Where labels are noisy by nature, few flips pass a high threshold, but the reference model's
    # average doubt about the batch's labels still rises: a one-sided z-test of the mean
    # (1 - p_model(label)) against the reference's own out-of-fold mean.
    ref_doubt = 1 - ref_model[ref_rows, y_ref]
    doubt = float(np.mean(1 - p_model[rows, yk])) if len(known) else 0.0
    doubt_z = (doubt - ref_doubt.mean()) / max(float(ref_doubt.std()) / np.sqrt(n_known), 1e-12)
    doubt_p = float(norm.sf(doubt_z))
    doubt_exceeded = doubt > ref_doubt.mean() + spec.min_excess_fraction and doubt_p < spec.max_p_value
    exceeded, p_value = rate_exceeds(len(flagged), n_known, ref_flag_fraction,
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    pairs = _pair_table(yk[flagged_k], predicted[flagged_k], yk, y_ref, ref_flagged, ref_agree.argmax(axis=1),
                        classes, spec)

    findings = []
    if len(flagged):
        findings.append(Finding.at_rows(NAME, "label_flip",
            f"{len(flagged)} row(s) carry a label their trusted neighbours and the reference model disagree with",
            flagged))
    if exceeded:
        findings.append(Finding.at_rows(NAME, "flip_fraction_exceeded",
            f"{len(flagged) / n_known:.1%} of the batch look relabelled; the reference's own share is "
            f"{ref_flag_fraction:.2%} (p={p_value:.1e})", [], value=len(flagged) / n_known,
            threshold=ref_flag_fraction + spec.min_excess_fraction))
    elif doubt_exceeded:
        findings.append(Finding.at_rows(NAME, "label_disagreement_exceeded",
            f"the reference model doubts the batch's labels more than its own: mean doubt {doubt:.3f} against "
            f"{ref_doubt.mean():.3f} (p={doubt_p:.1e})", [], value=doubt,
            threshold=float(ref_doubt.mean()) + spec.min_excess_fraction))
    top = pairs[0] if pairs else None
    if top and top["significant"] and top["share_of_flagged"] >= spec.min_targeted_share:
        findings.append(Finding.at_rows(NAME, "targeted_flip",
            f"{top['flagged']} of {len(flagged)} flagged rows are labelled '{top['given']}' but look like "
            f"'{top['predicted']}' ({top['batch_rate']:.1%} of rows labelled '{top['given']}', against "
            f"{top['reference_rate']:.2%} in the reference): a targeted relabelling of one class", [],
            value=top["batch_rate"], threshold=top["reference_rate"]))
    metrics = {
        "flagged_fraction": len(flagged) / n_known,
        "reference_flagged_fraction": ref_flag_fraction,
        "p_value": p_value,
        "mean_doubt": doubt,
        "reference_mean_doubt": float(ref_doubt.mean()),
        "doubt_p_value": doubt_p,
        "thresholds": dict(zip(classes, thresholds.tolist(), strict=True)),
        "flip_pairs": pairs,
        "model": spec.model,
    }
    return CheckResult(NAME, tuple(findings), metrics, scores)


def _pair_table(given: np.ndarray, predicted: np.ndarray, y_batch: np.ndarray, y_ref: np.ndarray,
                ref_flagged: np.ndarray, ref_predicted: np.ndarray, classes: list[str], spec: Spec) -> list[dict]:
    """Flagged rows per (given label, predicted label), largest first, each with the rate among the
    batch's rows of that given label, the reference's own rate for the pair, and whether the
    excess is significant: a binomial test, Bonferroni-corrected over the pairs that could pass
    (those with at least ``min_targeted_rows`` flagged rows; Tarone's refinement)."""
    from poisonguard.stats import rate_excess_p_value

    total = max(len(given), 1)
    counts = pd.Series(list(zip(given.tolist(), predicted.tolist(), strict=True))).value_counts(sort=False)
    n_pairs = max(int((counts >= spec.min_targeted_rows).sum()), 1)
    rows = []
    for (g, p), count in counts.items():
        in_class = max(int(np.sum(y_ref == g)), 1)
        # The reference cannot show a rate below one row in its class; use half of that as floor.
        ref_rate = max(float(np.sum(ref_flagged & (y_ref == g) & (ref_predicted == p)) / in_class), 0.5 / in_class)
        in_batch = max(int(np.sum(y_batch == g)), 1)
        p_value = rate_excess_p_value(int(count), in_batch, ref_rate)
        rows.append({"given": classes[g], "predicted": classes[p], "flagged": int(count),
                     "share_of_flagged": count / total, "batch_rate": count / in_batch, "reference_rate": ref_rate,
                     "p_value": p_value,
                     "significant": bool(count >= spec.min_targeted_rows and p_value < spec.max_p_value / n_pairs)})
    return sorted(rows, key=lambda r: (-r["flagged"], r["given"], r["predicted"]))
