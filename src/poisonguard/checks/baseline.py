"""Baseline comparison: does training on the batch make a model worse on trusted data?

Three models of one kind, scored on the trusted holdout, overall and per class:
``reference`` (trusted rows only), ``clean`` (reference + the batch's rows the row checks did not
flag) and ``raw`` (reference + the whole batch, to show what filtering saved). A drop counts only
when it is both larger than the policy allows and significant on the holdout (a one-sided sign
test over the holdout rows the two models disagree on), so small holdouts do not block by chance.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.kernel.context import GateContext
from poisonguard.kernel.models import classifier
from poisonguard.kernel.parts import Fitted
from poisonguard.kernel.results import CheckResult, Finding, Severity
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import p_text, rate_excess_p_value

NAME = "baseline"
PHASE = "batch"
HEADLINE = "accuracy_drop"  # holdout accuracy lost when the clean rows are added (negative: gained)
CODES: dict[str, Severity] = {
    "accuracy_drop": Severity.BLOCK,
    "class_recall_drop": Severity.BLOCK,
    "raw_batch_harm": Severity.WARN,
    "holdout_too_small": Severity.WARN,
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


def _drop(correct_before: np.ndarray, correct_after: np.ndarray) -> tuple[float, float]:
    """Accuracy drop and the sign-test p-value that the second model is worse, on the same rows."""
    lost = int(np.sum(correct_before & ~correct_after))
    gained = int(np.sum(~correct_before & correct_after))
    drop = (lost - gained) / max(len(correct_before), 1)
    p = rate_excess_p_value(lost, lost + gained, 0.5) if lost > gained else 1.0
    return drop, p


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    x_ref, y_ref = ctx.encode(ctx.reference), ctx.label_codes(ctx.reference)
    x_hold, y_hold = ctx.encode(ctx.holdout), ctx.label_codes(ctx.holdout)
    y = ctx.label_codes(frame)
    rng = np.random.default_rng(ctx.seed)
    usable = np.flatnonzero(y >= 0)
    if len(usable) > spec.max_train_rows:
        usable = np.sort(rng.choice(usable, spec.max_train_rows, replace=False))
    # Only the rows that train are encoded (a 1M-row batch would otherwise cost ~160 MB here).
    x_used, y_used = ctx.features.transform(frame.iloc[usable]), y[usable]
    suspect = np.zeros(len(frame), dtype=bool)
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
    for name, keep in (("clean", is_clean), ("raw", np.ones(len(usable), dtype=bool))):
        if name == "raw" and is_clean.all():  # the same training rows: the same model
            correct["raw"] = correct["clean"]
            continue
        xt, yt = np.vstack([x_ref, x_used[keep]]), np.concatenate([y_ref, y_used[keep]])
        correct[name] = classifier(spec.model, ctx.seed).fit(xt, yt).predict(x_hold) == y_hold

    findings = []
    metrics: dict[str, object] = {"holdout_rows": len(y_hold), "model": spec.model,
                                  "train_rows": {"reference": len(y_ref), "clean": len(y_ref) + len(clean),
                                                 "raw": len(y_ref) + len(usable)}}
    metrics["accuracy"] = {k: float(v.mean()) for k, v in correct.items()}
    drop, p = _drop(correct["reference"], correct["clean"])
    metrics["accuracy_drop"], metrics["accuracy_drop_p_value"] = drop, p
    if drop > spec.max_accuracy_drop and p < spec.max_p_value:
        findings.append(Finding.at_rows(NAME, "accuracy_drop",
            f"holdout accuracy falls from {correct['reference'].mean():.1%} to {correct['clean'].mean():.1%} "
            f"when the batch's clean rows are added ({p_text(p)})", [], value=drop, threshold=spec.max_accuracy_drop))
    raw_drop, raw_p = _drop(correct["reference"], correct["raw"])
    metrics["raw_accuracy_drop"] = raw_drop
    if raw_drop > spec.max_accuracy_drop and raw_p < spec.max_p_value:
        findings.append(Finding.at_rows(NAME, "raw_batch_harm",
            f"the unfiltered batch would cut holdout accuracy from {correct['reference'].mean():.1%} to "
            f"{correct['raw'].mean():.1%}", [], value=raw_drop, threshold=spec.max_accuracy_drop))

    per_class = {}
    # One test per class judged: Bonferroni, so a 16-class dataset is not 16 times as likely to block.
    judged = max(sum(int(np.sum(y_hold == c)) >= spec.min_class_rows for c in range(len(ctx.classes))), 1)
    for c, cls in enumerate(ctx.classes):
        in_class = y_hold == c
        if in_class.sum() == 0:
            continue
        recalls = {k: float(v[in_class].mean()) for k, v in correct.items()}
        c_drop, c_p = _drop(correct["reference"][in_class], correct["clean"][in_class])
        per_class[cls] = {"holdout_rows": int(in_class.sum()), "recall": recalls, "recall_drop": c_drop,
                          "p_value": c_p}
        if in_class.sum() >= spec.min_class_rows and c_drop > spec.max_class_recall_drop \
                and c_p < spec.max_p_value / judged:
            findings.append(Finding.at_rows(NAME, "class_recall_drop",
                f"holdout recall of class '{cls}' falls from {recalls['reference']:.1%} to {recalls['clean']:.1%} "
                f"when the batch's clean rows are added ({p_text(c_p)})", [], value=c_drop,
                threshold=spec.max_class_recall_drop))
    metrics["per_class"] = per_class
    return CheckResult(NAME, tuple(findings), metrics)
