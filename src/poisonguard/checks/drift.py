"""Drift: Evidently 0.7 per-column drift of every feature and of the label, batch vs reference.

Methods are distances, not p-values (a p-value test fires on 5% of clean batches and on
nearly every huge one): normed Wasserstein for numeric columns, Jensen-Shannon for
categorical ones and the label. Each column's threshold is relative to the reference's own
sampling noise: the largest distance Evidently's own test gives between disjoint reference
splits of the batch's size, times a margin — never below the policy's floor. The label, which
blocks alone, gets an empirical null instead: the Jensen-Shannon distance (computed as Evidently
computes it) between many pseudo-batches of reference labels at the batch's size and the rest of
the reference; its threshold is the quantile that only ``label_false_block_rate`` of them reach.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from poisonguard.kernel.batch import Batch, as_batch, sample_positions
from poisonguard.kernel.context import GateContext, is_numeric, label_strings
from poisonguard.kernel.imports import quiet_import
from poisonguard.kernel.parts import Fitted
from poisonguard.kernel.results import UNCALIBRATED, CheckResult, Finding, Severity, uncalibrated
from poisonguard.kernel.spec import CheckSpec

NAME = "drift"
PHASE = "batch"
READS = "batch"
HEADLINE = "drifted_column_fraction"  # share of feature columns that drifted
CODES: dict[str, Severity] = {
    "column_drift": Severity.WARN,
    "drifted_column_fraction_exceeded": Severity.BLOCK,
    "label_drift": Severity.BLOCK,
    UNCALIBRATED: Severity.WARN,
}
NUMERIC_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"


class Spec(CheckSpec):
    min_column_threshold: float = Field(
        0.1, gt=0, description="Floor of every column's drift threshold (Evidently's default for both methods).")
    min_label_threshold: float = Field(
        0.05, gt=0, description="Floor of the label drift threshold (a label prior moving that far is worth a review).")
    noise_margin: float = Field(
        1.5, ge=1, description="Thresholds are this many times the largest distance between reference splits.")
    noise_draws: int = Field(8, ge=1, le=100, description="Reference splits drawn to measure sampling noise.")
    label_false_block_rate: float = Field(
        1e-3, gt=0, lt=0.5,
        description="Share of clean batches the label drift test may block: its threshold is this upper quantile "
        "of the distances between pseudo-batches of reference labels and the rest (never below the floor).")
    max_drifted_column_fraction: float = Field(
        0.3, ge=0, le=1, description="Block when more than this share of feature columns drifted.")
    max_rows: int = Field(
        50_000, ge=1000, description="Rows per side compared (seeded sample above this).")
    html_report: Literal["always", "on_drift", "never"] = Field(
        "on_drift", description="When to save Evidently's HTML report as drift.html beside report.html: on_drift "
        "when a column or the label drifted (Evidently's import and plots cost ~2.5 s a run), always, or never "
        "(true/false mean always/never).")

    @field_validator("html_report", mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        return {True: "always", False: "never"}.get(value, value) if isinstance(value, bool) else value


def _distance(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    """Evidently's drift score of one column, reference first, on values without missing ones:
    its normed Wasserstein test (``wasserstein_stat_test``: the distance over the reference's
    standard deviation, at least 0.001) or its Jensen-Shannon test (``jensenshannon_stat_test``
    on category frequencies), computed with the same scipy calls, without Evidently's ~2 s
    import on every run; a test holds the two equal."""
    if numeric:
        from scipy.stats import wasserstein_distance

        ref = reference.to_numpy(np.float64)
        return float(wasserstein_distance(ref, current.to_numpy(np.float64)) / max(float(np.std(ref)), 0.001))
    keys = pd.Index(reference.unique()).union(pd.Index(current.unique()))
    p = reference.value_counts().reindex(keys, fill_value=0).to_numpy(np.float64)
    q = current.value_counts().reindex(keys, fill_value=0).to_numpy(np.float64)
    return float(jensen_shannon_rows(p[None, :], q[None, :])[0])


@contextmanager
def _evidently_quiet() -> Iterator[None]:
    """Evidently calls pandas/numpy APIs that emit FutureWarning/RuntimeWarning on some inputs
    (e.g. constant columns); they change neither the scores nor the report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def noise_threshold(reference: pd.Series, n_batch: int, numeric: bool, floor: float, spec: Spec,
                    rng: np.random.Generator) -> float:
    """The drift threshold for one column: max(floor, margin x the largest distance Evidently's
    test gives between two disjoint reference parts, one of the batch's size)."""
    values = reference.dropna().reset_index(drop=True)
    m = min(n_batch, len(values) // 2)
    if m < 2:
        return floor
    worst = 0.0
    for _ in range(spec.noise_draws):
        perm = rng.permutation(len(values))
        part, rest = values.iloc[perm[:m]], values.iloc[perm[m:]]
        worst = max(worst, _distance(rest, part, numeric))
    return max(floor, spec.noise_margin * worst)


LABEL_NULL_DRAWS = 20_000


def jensen_shannon_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """scipy's ``jensenshannon`` (natural log) between the rows of two count matrices, as
    Evidently's test computes it on category frequencies."""
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(a / m), 0.0).sum(axis=1)
    return np.sqrt(np.maximum((kl(p) + kl(q)) / 2, 0.0))


def label_null_threshold(labels: pd.Series, n_batch: int, spec: Spec, seed: int) -> tuple[float, int]:
    """The label drift threshold and the pseudo-batch size of its null: the upper
    ``label_false_block_rate`` quantile of the distance between ``min(n_batch, half)`` reference
    labels drawn without replacement and the rest, never below ``min_label_threshold``."""
    counts = labels.value_counts().to_numpy(dtype=np.int64)
    m = min(n_batch, int(counts.sum()) // 2)
    if m < 2 or len(counts) < 2:
        return spec.min_label_threshold, m
    part = np.random.default_rng(seed).multivariate_hypergeometric(counts, m, size=LABEL_NULL_DRAWS)
    distances = jensen_shannon_rows(part.astype(np.float64), (counts - part).astype(np.float64))
    return max(spec.min_label_threshold, float(np.quantile(distances, 1 - spec.label_false_block_rate))), m


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.iloc[sample_positions(len(frame), n, seed)]


def _prepared(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for c in numeric:
        out[c] = pd.to_numeric(frame[c], errors="coerce").replace([np.inf, -np.inf], np.nan)
    for c in categorical:
        out[c] = label_strings(frame[c])
    return out.reset_index(drop=True)


def column_scores(cur: pd.DataFrame, ref: pd.DataFrame, columns: list[str], numeric: list[str]) -> dict[str, float]:
    """Each column's drift score as Evidently's ``ValueDrift`` metric computes it (its stat test
    on the column without missing values, reference first; see :func:`_distance`). The frames
    come from :func:`_prepared`, which already turned infinite values into missing ones."""
    return {c: _distance(ref[c].dropna(), cur[c].dropna(), c in numeric) for c in columns}


def save_html(path: Any, cur: pd.DataFrame, ref: pd.DataFrame, columns: list[str], numeric: list[str],
              categorical: list[str], thresholds: dict[str, float]) -> None:
    """Evidently's own per-column drift report (``ValueDrift`` per column, our thresholds)."""
    evidently = quiet_import("evidently")
    DataDefinition, Dataset, Report = evidently.DataDefinition, evidently.Dataset, evidently.Report
    ValueDrift = quiet_import("evidently.metrics").ValueDrift
    report = Report([ValueDrift(column=c, method=NUMERIC_METHOD if c in numeric else CATEGORICAL_METHOD,
                                threshold=thresholds[c]) for c in columns])
    definition = DataDefinition(numerical_columns=[c for c in numeric if c in columns],
                                categorical_columns=[c for c in categorical if c in columns])
    with _evidently_quiet():
        snapshot = report.run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                              reference_data=Dataset.from_pandas(ref, data_definition=definition))
    snapshot.save_html(str(path))


def run(frame: pd.DataFrame | Batch, spec: Spec, *, ctx: GateContext) -> CheckResult:
    batch = as_batch(frame)
    features = ctx.feature_columns
    # Only the sampled rows are read (a seeded sample of at most max_rows).
    sample = batch.take(batch.sample_positions(spec.max_rows, ctx.seed))
    numeric = [c for c in features if is_numeric(ctx.reference[c]) and is_numeric(sample[c])]
    categorical = [c for c in features if c not in numeric] + [ctx.label]
    cur = _prepared(sample, numeric, categorical)
    ref = _prepared(_sample(ctx.reference, spec.max_rows, ctx.seed + 1), numeric, categorical)
    # A column that is all missing on either side has no distribution to compare; the schema
    # check reports it.
    columns = [c for c in numeric + categorical if cur[c].notna().any() and ref[c].notna().any()]

    def noise() -> Fitted:  # trusted data only (at the batch's size): kept in the fitted state
        rng = np.random.default_rng(ctx.seed)
        features = [c for c in columns if c != ctx.label]
        thresholds = {c: noise_threshold(ref[c], len(cur), c in numeric, spec.min_column_threshold, spec, rng)
                      for c in features}
        label_null: dict[str, Any] = {}
        if ctx.label in columns:
            thresholds[ctx.label], size = label_null_threshold(ref[ctx.label], len(cur), spec, ctx.seed)
            label_null = {"size": LABEL_NULL_DRAWS, "rows": size, "max_p_value": spec.label_false_block_rate}
        return Fitted({"thresholds": thresholds, "label_null": label_null})

    fitted = ctx.persisted("drift.noise", (spec.fit_parameters(), len(cur), columns, numeric), noise)
    thresholds = fitted.meta["thresholds"]
    scores = column_scores(cur, ref, columns, numeric)

    findings = []
    per_column: dict[str, dict[str, Any]] = {}
    for c in columns:
        drifted = scores[c] >= thresholds[c]
        method = NUMERIC_METHOD if c in numeric else CATEGORICAL_METHOD
        per_column[c] = {"method": method, "score": scores[c], "threshold": thresholds[c], "drifted": drifted}
        if drifted and c != ctx.label:
            findings.append(Finding.at_rows(NAME, "column_drift",
                f"column '{c}' drifted: {method} {scores[c]:.3f} >= {thresholds[c]:.3f}", [],
                value=scores[c], threshold=thresholds[c]))
    feature_cols = [c for c in columns if c != ctx.label]
    drifted_fraction = sum(per_column[c]["drifted"] for c in feature_cols) / max(len(feature_cols), 1)
    if drifted_fraction > spec.max_drifted_column_fraction:
        findings.append(Finding.at_rows(NAME, "drifted_column_fraction_exceeded",
            f"{drifted_fraction:.0%} of feature columns drifted from the reference; at most "
            f"{spec.max_drifted_column_fraction:.0%} may", [], value=drifted_fraction,
            threshold=spec.max_drifted_column_fraction))
    label = per_column.get(ctx.label)
    if label and label["drifted"]:
        batch_share = cur[ctx.label].value_counts(normalize=True).round(3).to_dict()
        findings.append(Finding.at_rows(NAME, "label_drift",
            f"the label distribution moved: {CATEGORICAL_METHOD} {label['score']:.3f} >= {label['threshold']:.3f} "
            f"(batch shares {batch_share})", [], value=label["score"], threshold=label["threshold"],
            null=dict(fitted.meta["label_null"], test="Jensen-Shannon distance between pseudo-batches of reference "
                      "labels and the rest; the threshold is its upper false_block_rate quantile")))
    note = uncalibrated(NAME, "the drift test", min(len(cur), len(ref) // 2), len(cur), len(ctx.reference),
                        "they come from smaller pseudo-batches, whose distances are larger: the test may miss drift "
                        "but does not block more often")
    findings += [note] if note else []
    artifacts: tuple[str, ...] = ()
    wanted = spec.html_report == "always" or (spec.html_report == "on_drift" and any(
        v["drifted"] for v in per_column.values()))
    if ctx.out_dir is not None and wanted and columns:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        save_html(ctx.out_dir / "drift.html", cur, ref, columns, numeric, categorical, thresholds)
        artifacts = ("drift.html",)
    metrics = {"columns": per_column, "drifted_column_fraction": drifted_fraction,
               "label_null": fitted.meta["label_null"],
               "rows_compared": {"incoming": len(cur), "reference": len(ref)},
               "sampled": len(batch) > spec.max_rows or len(ctx.reference) > spec.max_rows}
    return CheckResult(NAME, tuple(findings), metrics, None, artifacts=artifacts)
