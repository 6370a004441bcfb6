"""Backdoor triggers: rows sharing an unusual feature pattern that all carry the same label.

A tabular backdoor stamps a fixed value on one or a few features ("the trigger") and ties it to
a target label, so the model learns "trigger => target". Trigger values are usually in range
(so outlier detectors miss them) and may sit on rows already of the target class (so label
checks miss them). What gives them away is that the same exact value turns up far more often
in the batch than in trusted data, on rows whose labels are almost all one class, while the
reference does not associate that value with that class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.kernel.batch import Batch, as_batch
from poisonguard.kernel.context import GateContext, label_strings
from poisonguard.kernel.results import CheckResult, Finding, Severity, null_of
from poisonguard.kernel.spec import CheckSpec

NAME = "backdoor"
PHASE = "rows"
READS = "batch"
HEADLINE = "flagged_fraction"  # share of rows carrying a suspected trigger
CODES: dict[str, Severity] = {
    "backdoor_trigger": Severity.QUARANTINE,
    "backdoor_pattern": Severity.BLOCK,
}


class Spec(CheckSpec):
    min_rows: int = Field(5, ge=2, description="A pattern needs at least this many rows in the batch...")
    min_fraction: float = Field(0.005, ge=0, le=1, description="...and at least this share of the batch.")
    min_lift: float = Field(
        5.0, ge=1, description="How many times more frequent in the batch than in the reference a value must be.")
    min_label_purity: float = Field(
        0.9, gt=0.5, le=1, description="Share of the pattern's rows that must carry its most common label.")
    min_association_gap: float = Field(
        0.3, gt=0, le=1,
        description="How far that share must exceed the reference's own share of that label for the value "
        "(or half the distance to 100%, when that is smaller).")
    max_p_value: float = Field(
        1e-6, gt=0, lt=1,
        description="How unlikely the pile-up must be at the reference's rate (Poisson tail); strict, "
        "because every value of every column is a test.")
    prior_strength: float = Field(
        10.0, gt=0, description="Pseudo-rows of the reference's class prior blended into the value's label share.")
    min_row_overlap: float = Field(
        0.5, gt=0, le=1, description="Values whose row sets overlap this much are one pattern (multi-column trigger).")
    min_anchor_lift: float = Field(
        2.0, ge=1, description="A value this many times more frequent than in the reference (but below min_lift) "
        "anchors a search for a second value its rows share: a trigger of two values trusted data holds often, "
        "each alone too common to stand out, whose combination is rare.")
    max_anchors: int = Field(50, ge=0, le=1000, description="At most this many anchors (the highest lifts) per batch.")


def _value_keys(series: pd.Series) -> pd.Series:
    """Comparable keys: numbers as float64, everything else as strings; missing stays missing."""
    if pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype("float64")
    return series.astype("object").where(series.notna(), None).map(lambda v: None if v is None else str(v))


def _min_support(n: int, spec: Spec) -> int:
    """Rows a pattern needs in a batch of ``n``."""
    return max(spec.min_rows, int(np.ceil(spec.min_fraction * n)))


def find_candidates(batch: Batch, ctx: GateContext, spec: Spec) -> list[dict]:
    """Every (column, value) at least ``min_lift`` times more frequent in the batch than in the
    reference, on at least ``min_rows`` rows; and every pair of values on two columns whose rows
    together are, where one of the two is an anchor (see :func:`_paired`). One column of the batch
    is read at a time."""
    n, n_ref = len(batch), len(ctx.reference)
    min_support = _min_support(n, spec)
    found: list[dict] = []
    anchors: list[dict] = []
    for col in ctx.feature_columns:
        keys = _value_keys(batch.column(col))
        counts = keys.value_counts(dropna=True)
        counts = counts[counts >= min_support]
        if counts.empty:
            continue
        ref_keys = _value_keys(ctx.reference[col])
        ref_counts = ref_keys.value_counts(dropna=True).reindex(counts.index, fill_value=0)
        lift = (counts / n) / ((ref_counts + 1) / (n_ref + 1))
        for value in lift.index[lift.to_numpy() >= spec.min_anchor_lift]:
            candidate = {"column": col, "value": _plain(value), "rows": np.flatnonzero((keys == value).to_numpy()),
                         "reference_count": int(ref_counts[value]), "lift": float(lift[value])}
            (found if lift[value] >= spec.min_lift else anchors).append(candidate)
    anchors = sorted(anchors, key=lambda a: (-a["lift"], a["column"]))[: spec.max_anchors]
    return found + _paired(anchors, batch, ctx, spec, min_support) if anchors else found


def _paired(anchors: list[dict], batch: Batch, ctx: GateContext, spec: Spec, min_support: int) -> list[dict]:
    """Pairs (anchor value, value of another column) on at least ``min_support`` rows of the batch,
    ``min_lift`` times more frequent together than in the reference. A trigger stamped on 4% of
    rows with values trusted data holds often (jobs = 4 on a third of its rows) lifts that value
    by a few percent only; together with the other value, its rows stand out."""
    n, n_ref = len(batch), len(ctx.reference)
    ref_at = {id(a): (_value_keys(ctx.reference[a["column"]]) == a["value"]).to_numpy() for a in anchors}
    found = []
    for col in ctx.feature_columns:
        keys, ref_keys = None, None
        for anchor in anchors:
            if anchor["column"] == col:
                continue
            keys = _value_keys(batch.column(col)) if keys is None else keys
            ref_keys = _value_keys(ctx.reference[col]) if ref_keys is None else ref_keys
            at = keys.iloc[anchor["rows"]]
            counts = at.value_counts(dropna=True)
            counts = counts[counts >= min_support]
            if counts.empty:
                continue
            ref_counts = ref_keys[ref_at[id(anchor)]].value_counts(dropna=True).reindex(counts.index, fill_value=0)
            lift = (counts / n) / ((ref_counts + 1) / (n_ref + 1))
            for value in lift.index[lift.to_numpy() >= spec.min_lift]:
                rows = anchor["rows"][(at == value).to_numpy()]
                found.append({"column": col, "value": _plain(value), "rows": rows, "lift": float(lift[value]),
                              "reference_count": int((ref_keys == value).sum()), "anchor": anchor})
    return found


def merge_patterns(candidates: list[dict], spec: Spec) -> list[dict]:
    """Group candidates whose rows overlap into patterns: one trigger over several columns. A
    paired candidate (see :func:`_paired`) is a pattern of its own, its two values, once."""
    patterns: list[dict] = []
    pairs: dict[frozenset, dict] = {}
    for cand in sorted(candidates, key=lambda c: (-len(c["rows"]), c["column"])):
        if "anchor" in cand:
            anchor = cand["anchor"]
            trigger = {anchor["column"]: anchor["value"], cand["column"]: cand["value"]}
            pairs.setdefault(frozenset(trigger.items()), {
                "trigger": trigger, "rows": cand["rows"],
                "reference_counts": {anchor["column"]: anchor["reference_count"],
                                     cand["column"]: cand["reference_count"]}})
            continue
        for pat in patterns:
            overlap = len(np.intersect1d(pat["rows"], cand["rows"])) / min(len(pat["rows"]), len(cand["rows"]))
            if overlap >= spec.min_row_overlap:
                pat["rows"] = np.union1d(pat["rows"], cand["rows"])
                pat["trigger"][cand["column"]] = cand["value"]
                pat["reference_counts"][cand["column"]] = cand["reference_count"]
                break
        else:
            patterns.append({"trigger": {cand["column"]: cand["value"]}, "rows": cand["rows"],
                             "reference_counts": {cand["column"]: cand["reference_count"]}})
    return patterns + list(pairs.values())


def strongest(patterns: list[dict], spec: Spec) -> list[dict]:
    """The backdoors found, strongest (smallest p-value) first, less any whose rows are mostly
    those of a stronger one: two values that ride along on one trigger's rows are one finding."""
    kept: list[dict] = []
    for pat in sorted(patterns, key=lambda p: (p["p_value"], -len(p["rows"]))):
        if not any(len(np.intersect1d(pat["rows"], k["rows"])) >= spec.min_row_overlap * len(pat["rows"])
                   for k in kept):
            kept.append(pat)
    return kept


def judge_pattern(pattern: dict, batch: Batch, labels: np.ndarray, ctx: GateContext, spec: Spec) -> dict | None:
    """The pattern as a backdoor (with its label, purity, lift, p-value), or None when it is not one.

    It is one when (1) the rows carrying every value of the trigger at once are far beyond
    chance — a Poisson tail at the rate the reference gives the values: the larger of the product
    of their own rates (values that trusted data holds but never together), the rate at which
    they occur together there (columns that depend on each other, e.g. a plan and its fee, share
    their rows, so the product would understate it) and, for several values, the products of
    their rates within each class (values tied through the label); where the reference holds each
    of the trigger's values, also beyond the batch's binomial share of all the rows that hold the
    whole trigger (the reference's count is a sample, not an exact rate) — and (2) the rows
    carrying the whole trigger, beyond those that rate puts there, almost all carry one label that
    the reference does not tie to those values. ``labels``: the batch's, as strings.
    """
    from scipy.stats import binom, poisson

    n, n_ref = len(batch), len(ctx.reference)
    joint = np.ones(n, dtype=bool)
    ref_joint = np.ones(n_ref, dtype=bool)
    ref_labels = label_strings(ctx.reference[ctx.label])
    ref_codes, ref_classes = pd.factorize(ref_labels)
    class_rows = np.bincount(ref_codes, minlength=len(ref_classes)).astype(float)
    prior = class_rows / max(n_ref, 1)  # each class's smoothing share: the classes add up to the overall +1
    rate, by_class = 1.0, prior.copy()
    for col, value in pattern["trigger"].items():
        joint &= (_value_keys(batch.column(col)) == value).to_numpy()
        at = (_value_keys(ctx.reference[col]) == value).to_numpy()
        ref_joint &= at
        rate *= (pattern["reference_counts"][col] + 1) / (n_ref + 1)
        by_class *= (np.bincount(ref_codes[at], minlength=len(ref_classes)) + prior) / (class_rows + 1)
    # Values that go together through the label (a species' bill and weight) are as common
    # together as each class makes them: the product of their rates within each class.
    if len(pattern["trigger"]) > 1:
        rate = max(rate, float(by_class.sum()))
    in_reference = int(ref_joint.sum())
    rate = max(rate, in_reference / max(n_ref, 1))
    k = int(joint.sum())
    p_value = float(poisson.sf(k - 1, n * rate)) if k else 1.0
    if k and all(count > 0 for count in pattern["reference_counts"].values()):
        # Trusted data holds each of the pattern's values (always so when it holds the whole
        # pattern): the pattern's count there is a sample too, not an exact rate, and the product
        # of the values' rates is only a guess that they are independent. Rows that come in
        # natural clusters (the households of one postcode, the purchases of one store in one
        # week) split between batch and reference by chance: given the pattern's rows in both, the
        # batch's share of them is binomial at the batch's share of all rows when the two are
        # alike. A value trusted data never holds (a stamped measurement) keeps the rate alone.
        p_value = max(p_value, float(binom.sf(k - 1, k + in_reference, n / (n + n_ref))))
    if p_value >= spec.max_p_value or k < _min_support(n, spec):
        return None
    # The label is judged on the rows carrying the whole trigger: rows that hold one of its
    # values by nature (age = 41 in a survey) are not part of it.
    rows = np.flatnonzero(joint)
    carried = labels[rows]
    top_label, top_count = pd.Series(carried).value_counts().agg(["idxmax", "max"])
    top_prior = float((ref_labels == top_label).mean())
    ref_top = int(np.sum(ref_labels.to_numpy()[ref_joint] == top_label))
    p_ref = (ref_top + spec.prior_strength * top_prior) / (int(ref_joint.sum()) + spec.prior_strength)
    # The label share of the rows beyond those trusted data would put there (n * rate of them,
    # carrying the label at the reference's share): values trusted data holds together now and
    # then bring a few rows of every label along, which say nothing about the pile-up.
    natural = min(n * rate, 0.5 * len(carried))
    purity = min(1.0, max(0.0, (top_count - natural * p_ref) / (len(carried) - natural)))
    # The label share must clear the reference's by the policy's gap, or by half of what is
    # left above it when the label is already common (a majority-class target).
    if purity < spec.min_label_purity or purity - p_ref < min(spec.min_association_gap, (1 - p_ref) / 2):
        return None
    return pattern | {"rows": rows, "label": str(top_label), "purity": float(purity), "reference_label_share": float(p_ref),
                      "lift": k / max(n * rate, 1e-12), "p_value": p_value}


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def run(frame: pd.DataFrame | Batch, spec: Spec, *, ctx: GateContext) -> CheckResult:
    """Score per row: the label-share gap of the pattern it carries (0 when none)."""
    batch = as_batch(frame)
    merged = merge_patterns(find_candidates(batch, ctx, spec), spec)
    labels = label_strings(batch.column(ctx.label)).to_numpy() if merged else np.array([], dtype=object)
    patterns = strongest([p for p in (judge_pattern(m, batch, labels, ctx, spec) for m in merged) if p is not None],
                         spec)
    scores = np.zeros(len(batch))
    findings = []
    summaries = []
    for pat in patterns:
        carriers = pat["rows"][labels[pat["rows"]] == pat["label"]]
        gap = pat["purity"] - pat["reference_label_share"]
        scores[carriers] = np.maximum(scores[carriers], gap)
        trigger = ", ".join(f"{c} = {v!r}" for c, v in pat["trigger"].items())
        msg = (f"{len(pat['rows'])} rows share {trigger} ({pat['lift']:.0f}x their reference frequency); "
               f"{pat['purity']:.0%} are labelled '{pat['label']}', against "
               f"{pat['reference_label_share']:.0%} in the reference")
        findings.append(Finding.at_rows(NAME, "backdoor_trigger", msg, carriers))
        findings.append(Finding.at_rows(NAME, "backdoor_pattern", msg, [], value=pat["purity"],
                                        threshold=pat["reference_label_share"] + spec.min_association_gap,
                                        null=null_of("the values' pile-up at their reference rate (Poisson tail)",
                                                     len(ctx.reference), pat["p_value"], spec.max_p_value)))
        summaries.append({"trigger": pat["trigger"], "label": pat["label"], "rows": len(pat["rows"]),
                          "purity": pat["purity"], "reference_label_share": pat["reference_label_share"],
                          "lift": pat["lift"], "p_value": pat["p_value"]})
    metrics = {"patterns": summaries, "flagged_fraction": float(np.mean(scores > 0)) if len(batch) else 0.0}
    return CheckResult(NAME, tuple(findings), metrics, scores)
