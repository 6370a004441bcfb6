"""Baseline comparison: does training on the batch make a model worse on trusted data?

Three models of one kind, scored on the trusted holdout, overall and per class:
``reference`` (trusted rows only), ``clean`` (reference + the batch's rows the row checks did not
flag) and ``raw`` (reference + the whole batch, to show what filtering saved). A drop counts only
when it is both larger than the policy allows and significant on the holdout (a one-sided sign
test over the holdout rows the two models disagree on), so small holdouts do not block by chance.

Two models trained on nearly the same rows disagree on more holdout rows, and more together, than
a coin would: the sign test alone reads that training noise as harm. So the test is calibrated on
trusted data: ``null_models`` models are trained on the reference minus a pseudo-batch of its own
rows (at the batch's size, rounded up to a power of two) and compared with the reference model,
exactly as a batch is; the spread of their sign-test z-scores (overall and per class, pooled) is
the test's dispersion. A batch's lost and gained rows are divided by it before the sign test
(a quasi-binomial test; dispersion 1 is the plain sign test). Kept in the fitted state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.kernel.batch import Batch, as_batch
from poisonguard.kernel.context import GateContext
from poisonguard.kernel.models import classifier, side_by_side
from poisonguard.kernel.parts import Fitted
from poisonguard.kernel.results import UNCALIBRATED, CheckResult, Finding, Severity, null_of, uncalibrated
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import p_text, rate_excess_p_value

NAME = "baseline"
PHASE = "batch"
READS = "batch"
HEADLINE = "accuracy_drop"  # holdout accuracy lost when the clean rows are added (negative: gained)
CODES: dict[str, Severity] = {
    "accuracy_drop": Severity.BLOCK,
    "class_recall_drop": Severity.BLOCK,
    "raw_batch_harm": Severity.WARN,
    "holdout_too_small": Severity.WARN,
    UNCALIBRATED: Severity.WARN,
}


class Spec(CheckSpec):
    model: Literal["gradient_boosting", "logistic"] = Field(
        "gradient_boosting", description="Model family trained for the comparison.")
    max_accuracy_drop: float = Field(
        0.02, ge=0, le=1, description="Largest holdout accuracy drop (reference -> reference + clean rows) allowed.")
    max_class_recall_drop: float = Field(
        0.10, ge=0, le=1, description="Largest drop in any one class's holdout recall allowed.")
    min_class_rows: int = Field(20, ge=1, description="Classes with fewer holdout rows are not judged per class.")
    min_holdout_rows: int = Field(30, ge=1, description="Below this many holdout rows the comparison only warns.")
    max_p_value: float = Field(
        0.01, gt=0, lt=1,
        description="Significance a drop needs (sign test on the holdout; per class, divided by the classes judged).")
    max_train_rows: int = Field(
        20_000, ge=100, description="Batch rows sampled (seeded) into training; the reference is always used whole.")
    null_models: int = Field(
        4, ge=0, le=50,
        description="Models trained without a pseudo-batch of trusted rows to measure how much training noise "
        "alone moves holdout accuracy (0: the plain sign test).")


# How a drop is judged, for the reviewer (the finding's null).
_NULL_TEST = ("sign test over the holdout rows the two models disagree on, its counts divided by the dispersion "
              "that models trained without pseudo-batches of trusted rows show")


def _lost_gained(correct_before: np.ndarray, correct_after: np.ndarray) -> tuple[int, int]:
    """Rows the second model gets wrong that the first got right, and the other way round."""
    return int(np.sum(correct_before & ~correct_after)), int(np.sum(~correct_before & correct_after))


def _drop(correct_before: np.ndarray, correct_after: np.ndarray, dispersion: float = 1.0) -> tuple[float, float]:
    """Accuracy drop and the sign-test p-value that the second model is worse, on the same rows,
    with the counts divided by ``dispersion`` (quasi-binomial; 1 is the exact sign test)."""
    from scipy.special import betainc

    lost, gained = _lost_gained(correct_before, correct_after)
    drop = (lost - gained) / max(len(correct_before), 1)
    if lost <= gained:
        return drop, 1.0
    if dispersion <= 1.0:
        return drop, rate_excess_p_value(lost, lost + gained, 0.5)
    k, n = lost / dispersion, (lost + gained) / dispersion
    return drop, float(betainc(k, n - k + 1, 0.5))  # P(X >= k), X ~ Binomial(n, 1/2), for real k and n


def _z(correct_before: np.ndarray, correct_after: np.ndarray) -> float | None:
    """The sign test's z-score of a drop (None when the models agree on every row)."""
    lost, gained = _lost_gained(correct_before, correct_after)
    return (lost - gained) / np.sqrt(lost + gained) if lost + gained else None


def _pseudo_batch_rows(batch_rows: int, reference_rows: int) -> int:
    """The pseudo-batch size of the null: the batch's, rounded up to a power of two (so batches of
    similar size share one null), at most a quarter of the reference."""
    return int(min(2 ** int(np.ceil(np.log2(max(batch_rows, 2)))), max(reference_rows // 4, 1)))


def run(frame: pd.DataFrame | Batch, spec: Spec, *, ctx: GateContext) -> CheckResult:
    batch = as_batch(frame)
    x_ref, y_ref = ctx.encode(ctx.reference), ctx.label_codes(ctx.reference)
    x_hold, y_hold = ctx.encode(ctx.holdout), ctx.label_codes(ctx.holdout)
    y = ctx.label_codes(batch.frame([ctx.label]))
    rng = np.random.default_rng(ctx.seed)
    usable = np.flatnonzero(y >= 0)
    if len(usable) > spec.max_train_rows:
        usable = np.sort(rng.choice(usable, spec.max_train_rows, replace=False))
    # Only the rows that train are read and encoded (a 1M-row batch would otherwise cost ~160 MB here).
    x_used, y_used = ctx.features.transform(batch.take(usable)), y[usable]
    suspect = np.zeros(len(batch), dtype=bool)
    if ctx.suspect_rows is not None:
        suspect[np.asarray(ctx.suspect_rows, dtype=np.int64)] = True
    is_clean = ~suspect[usable]
    clean = usable[is_clean]

    hold_ok = y_hold >= 0
    x_hold, y_hold = x_hold[hold_ok], y_hold[hold_ok]
    if len(y_hold) < spec.min_holdout_rows:
        return CheckResult(NAME, (Finding.at_rows(NAME, "holdout_too_small",
            f"the holdout has {len(y_hold)} rows; at least {spec.min_holdout_rows} are needed to compare models",
            [], value=len(y_hold), threshold=spec.min_holdout_rows),), {"holdout_rows": len(y_hold)})

    def reference_model() -> Fitted:  # trusted data only: kept in the fitted state
        return Fitted(arrays={"correct": classifier(spec.model, ctx.seed).fit(x_ref, y_ref).predict(x_hold) == y_hold})

    correct = {"reference": ctx.persisted("baseline.reference_model", (spec.model, ),
                                          reference_model).arrays["correct"]}
    judged_classes = [c for c in range(len(ctx.classes)) if np.sum(y_hold == c) >= spec.min_class_rows]
    null_rows = _pseudo_batch_rows(len(usable), len(y_ref))

    def null() -> Fitted:  # trusted data only: kept in the fitted state
        rng = np.random.default_rng([ctx.seed, null_rows])
        kept = []
        for _ in range(spec.null_models):
            left_out = np.zeros(len(y_ref), dtype=bool)
            left_out[rng.choice(len(y_ref), null_rows, replace=False)] = True
            kept.append(~left_out)

        def without(keep: np.ndarray) -> Callable[[], np.ndarray]:
            return lambda: classifier(spec.model, ctx.seed).fit(x_ref[keep], y_ref[keep]).predict(x_hold) == y_hold
        z = []
        for before in side_by_side([without(keep) for keep in kept]):
            z += [_z(before, correct["reference"])]
            z += [_z(before[y_hold == c], correct["reference"][y_hold == c]) for c in judged_classes]
        seen = np.array([v for v in z if v is not None])
        return Fitted({"dispersion": max(1.0, float(np.mean(seen ** 2))) if len(seen) else 1.0,
                       "models": spec.null_models, "rows": null_rows, "z_scores": len(seen)})

    dispersion = 1.0
    null_meta: Mapping[str, Any] = {"models": 0}
    if spec.null_models and len(y_ref) >= 8:
        null_meta = ctx.persisted("baseline.null", (spec.model, spec.null_models, null_rows, spec.min_class_rows),
                                  null).meta
        dispersion = float(null_meta["dispersion"])
    def with_batch(keep: np.ndarray) -> Callable[[], np.ndarray]:
        def job() -> np.ndarray:
            xt, yt = np.vstack([x_ref, x_used[keep]]), np.concatenate([y_ref, y_used[keep]])
            return classifier(spec.model, ctx.seed).fit(xt, yt).predict(x_hold) == y_hold
        return job

    if is_clean.all():  # the same training rows: the same model
        correct["clean"] = correct["raw"] = with_batch(is_clean)()
    else:
        correct["clean"], correct["raw"] = side_by_side([with_batch(is_clean),
                                                         with_batch(np.ones(len(usable), dtype=bool))])

    findings = []
    metrics: dict[str, object] = {"holdout_rows": len(y_hold), "model": spec.model,
                                  "train_rows": {"reference": len(y_ref), "clean": len(y_ref) + len(clean),
                                                 "raw": len(y_ref) + len(usable)}}
    metrics["accuracy"] = {k: float(v.mean()) for k, v in correct.items()}
    metrics["null"] = null_meta
    drop, p = _drop(correct["reference"], correct["clean"], dispersion)
    metrics["accuracy_drop"], metrics["accuracy_drop_p_value"] = drop, p
    if drop > spec.max_accuracy_drop and p < spec.max_p_value:
        findings.append(Finding.at_rows(NAME, "accuracy_drop",
            f"holdout accuracy falls from {correct['reference'].mean():.1%} to {correct['clean'].mean():.1%} "
            f"when the batch's clean rows are added ({p_text(p)})", [], value=drop, threshold=spec.max_accuracy_drop,
            null=null_of(_NULL_TEST, len(y_hold), p, spec.max_p_value, dispersion=dispersion)))
    raw_drop, raw_p = _drop(correct["reference"], correct["raw"], dispersion)
    metrics["raw_accuracy_drop"] = raw_drop
    if raw_drop > spec.max_accuracy_drop and raw_p < spec.max_p_value:
        findings.append(Finding.at_rows(NAME, "raw_batch_harm",
            f"the unfiltered batch would cut holdout accuracy from {correct['reference'].mean():.1%} to "
            f"{correct['raw'].mean():.1%}", [], value=raw_drop, threshold=spec.max_accuracy_drop))

    per_class = {}
    # One test per class judged: Bonferroni, so a 16-class dataset is not 16 times as likely to block.
    judged = max(len(judged_classes), 1)
    for c, cls in enumerate(ctx.classes):
        in_class = y_hold == c
        if in_class.sum() == 0:
            continue
        recalls = {k: float(v[in_class].mean()) for k, v in correct.items()}
        c_drop, c_p = _drop(correct["reference"][in_class], correct["clean"][in_class], dispersion)
        per_class[cls] = {"holdout_rows": int(in_class.sum()), "recall": recalls, "recall_drop": c_drop,
                          "p_value": c_p}
        if in_class.sum() >= spec.min_class_rows and c_drop > spec.max_class_recall_drop \
                and c_p < spec.max_p_value / judged:
            findings.append(Finding.at_rows(NAME, "class_recall_drop",
                f"holdout recall of class '{cls}' falls from {recalls['reference']:.1%} to {recalls['clean']:.1%} "
                f"when the batch's clean rows are added ({p_text(c_p)})", [], value=c_drop,
                threshold=spec.max_class_recall_drop,
                null=null_of(_NULL_TEST, int(in_class.sum()), c_p, spec.max_p_value / judged, dispersion=dispersion)))
    metrics["per_class"] = per_class
    if spec.null_models:
        note = uncalibrated(NAME, "the accuracy-drop test", int(null_meta.get("rows", 0)), len(usable), len(y_ref),
                            "its dispersion comes from models trained without fewer rows than the batch adds, so it "
                            "may read training noise as harm" if null_meta.get("rows") else
                            "it is the plain sign test, which may read training noise as harm")
        findings += [note] if note else []
    return CheckResult(NAME, tuple(findings), metrics)
