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
    max_threshold: float = Field(0.9, ge=0, le=1, description="...and never above this (noisy references).")
    min_class_rows: int = Field(
        200, ge=1, description="Classes with fewer reference rows use the pooled threshold of all classes.")
    max_fit_rows: int = Field(50_000, ge=100, description="Reference rows used to fit (seeded sample above this).")
    min_excess_fraction: float = Field(
        0.01, ge=0, le=1,
        description="Block when the batch's flagged share exceeds the reference's own by this much...")
    max_p_value: float = Field(1e-4, gt=0, lt=1, description="...and a binomial test puts it below this p-value.")
    min_targeted_share: float = Field(
        0.6, gt=0, le=1,
        description="Call it a targeted flip when one (given, predicted) pair holds this share of flagged rows.")


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

    Returns ``(agreement, model, index, k)``; agreement is a (rows, classes) array in [0, 1].
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
    return (ref_model + ref_nb) / 2, model, index, k


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


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    classes = ctx.classes
    n_classes = len(classes)
    x_ref, y_ref = ctx.encode(ctx.reference), ctx.label_codes(ctx.reference)
    if len(x_ref) > spec.max_fit_rows:
        keep = np.sort(np.random.default_rng(ctx.seed).choice(len(x_ref), spec.max_fit_rows, replace=False))
        x_ref, y_ref = x_ref[keep], y_ref[keep]
    y = ctx.label_codes(frame)
    known = y >= 0  # unknown labels are the schema check's to report
    ref_agree, model, index, k = reference_agreement(x_ref, y_ref, n_classes, spec, ctx.seed)
    ref_scores = 1.0 - ref_agree[np.arange(len(y_ref)), y_ref]
    thresholds = class_thresholds(ref_scores, y_ref, n_classes, spec)
    agree = batch_agreement(model, index, k, y_ref, ctx.encode(frame), y, n_classes,
                            np.where(known, thresholds[np.maximum(y, 0)], 0.0))
    scores = np.zeros(len(frame))
    scores[known] = 1.0 - agree[np.flatnonzero(known), y[known]]
    predicted = agree.argmax(axis=1)
    flagged_mask = known & (scores > thresholds[np.where(known, y, 0)])
    flagged = np.flatnonzero(flagged_mask)
    ref_flag_fraction = float(np.mean(ref_scores > thresholds[y_ref]))

    n = len(frame)
    findings = []
    if len(flagged):
        findings.append(Finding.at_rows(NAME, "label_flip",
            f"{len(flagged)} row(s) carry a label their trusted neighbours and the reference model disagree with",
            flagged))
    exceeded, p_value = rate_exceeds(len(flagged), n, ref_flag_fraction,
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    pairs = _pair_table(y[flagged], predicted[flagged], y_ref, ref_scores > thresholds[y_ref],
                        ref_agree.argmax(axis=1), classes)
    if exceeded:
        findings.append(Finding.at_rows(NAME, "flip_fraction_exceeded",
            f"{len(flagged) / n:.1%} of the batch look relabelled; the reference's own share is "
            f"{ref_flag_fraction:.2%} (p={p_value:.1e})", [], value=len(flagged) / n,
            threshold=ref_flag_fraction + spec.min_excess_fraction))
        top = pairs[0] if pairs else None
        if top and top["share_of_flagged"] >= spec.min_targeted_share and _targeted(top, len(flagged), spec):
            findings.append(Finding.at_rows(NAME, "targeted_flip",
                f"{top['flagged']} of {len(flagged)} flagged rows are labelled '{top['given']}' but look like "
                f"'{top['predicted']}': a targeted relabelling of one class", [],
                value=top["share_of_flagged"], threshold=spec.min_targeted_share))
    metrics = {
        "flagged_fraction": len(flagged) / n,
        "reference_flagged_fraction": ref_flag_fraction,
        "p_value": p_value,
        "thresholds": dict(zip(classes, thresholds.tolist(), strict=True)),
        "flip_pairs": pairs,
        "model": spec.model,
    }
    return CheckResult(NAME, tuple(findings), metrics, scores)


def _targeted(top: dict, n_flagged: int, spec: Spec) -> bool:
    """The top pair holds far more of the flagged rows than random relabelling would give it.

    Under random flips, rows truly of class p are relabelled g with odds 1 / (classes - 1), so the
    pair (given g, predicted p) gets about prior(p) / (classes - 1) of the flagged rows
    (``expected_share``, with the reference's class prior).
    """
    from poisonguard.stats import rate_excess_p_value

    return rate_excess_p_value(top["flagged"], n_flagged, top["expected_share"]) < spec.max_p_value


def _pair_table(given: np.ndarray, predicted: np.ndarray, y_ref: np.ndarray,
                ref_flagged: np.ndarray, ref_predicted: np.ndarray, classes: list[str]) -> list[dict]:
    """Flagged rows per (given label, predicted label), beside the reference's own rate and the share
    random relabelling would give the pair, largest first."""
    total = max(len(given), 1)
    prior = np.bincount(y_ref, minlength=len(classes)) / max(len(y_ref), 1)
    counts = pd.Series(list(zip(given.tolist(), predicted.tolist(), strict=True))).value_counts(sort=False)
    rows = []
    for (g, p), count in counts.items():
        ref_in_class = max(int(np.sum(y_ref == g)), 1)
        ref_rate = float(np.sum(ref_flagged & (y_ref == g) & (ref_predicted == p)) / ref_in_class)
        rows.append({"given": classes[g], "predicted": classes[p], "flagged": int(count),
                     "share_of_flagged": count / total, "reference_rate": ref_rate,
                     "expected_share": float(prior[p]) / max(len(classes) - 1, 1)})
    return sorted(rows, key=lambda r: (-r["flagged"], r["given"], r["predicted"]))
