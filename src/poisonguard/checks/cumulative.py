"""Cumulative drift: everything promoted since the frozen golden reference, plus this batch, against the golden reference.

A slow attack spreads its poison over many batches, each under every per-batch threshold, while
the rolling reference moves with it. This check keeps a budget of its own against the golden
reference that never moves: the label distribution (total variation distance, with a chi-square
test so small histories do not trip it) and the share of drifted feature columns (Evidently's
tests, thresholds relative to the golden reference's own sampling noise). History is the
reference's rows that are not golden rows; the batch counts without its suspect rows. Without a
golden reference (``--golden``, or a dataset store) the check reports itself skipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.checks.drift import CATEGORICAL_METHOD, NUMERIC_METHOD, _distance, _prepared, _sample, noise_threshold
from poisonguard.kernel.batch import Batch, as_batch, sample_positions
from poisonguard.kernel.context import GateContext, is_numeric, label_strings
from poisonguard.kernel.hashing import canonical_block, row_keys
from poisonguard.kernel.results import CheckResult, Finding, Severity, null_of
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import p_text

NAME = "cumulative"
PHASE = "batch"
READS = "batch"
HEADLINE = "label_shift"  # label distribution's distance from the golden reference (total variation)
CODES: dict[str, Severity] = {
    "cumulative_label_shift": Severity.BLOCK,
    "cumulative_column_drift": Severity.WARN,
    "cumulative_drift_exceeded": Severity.BLOCK,
}


class Spec(CheckSpec):
    max_label_shift: float = Field(
        0.03, gt=0, le=1,
        description="Block when the label distribution since the golden reference has moved by more than this "
        "total variation distance...")
    max_p_value: float = Field(1e-3, gt=0, lt=1, description="...and a chi-square test puts it below this p-value.")
    min_column_threshold: float = Field(0.1, gt=0, description="Floor of every column's cumulative drift threshold.")
    noise_margin: float = Field(1.5, ge=1, description="Thresholds are this many times the golden reference's own noise.")
    noise_draws: int = Field(4, ge=1, le=100, description="Golden splits drawn to measure sampling noise.")
    max_drifted_column_fraction: float = Field(
        0.5, ge=0, le=1,
        description="Block when more than this share of feature columns drifted cumulatively (looser than the "
        "per-batch drift budget: with more rows, smaller moves count as drift).")
    max_rows: int = Field(100_000, ge=1000, description="Rows per side compared (seeded sample above this).")


def history_since(reference: pd.DataFrame, golden: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The reference's rows that are not golden rows (a golden row repeated twice leaves one copy)."""
    ref_keys = pd.Series(row_keys(canonical_block(reference, columns)))
    golden_counts = pd.Series(row_keys(canonical_block(golden, columns))).value_counts()
    occurrence = ref_keys.groupby(ref_keys).cumcount()
    allowed = ref_keys.map(golden_counts).fillna(0).to_numpy()
    return reference[(occurrence.to_numpy() >= allowed)].reset_index(drop=True)


def run(frame: pd.DataFrame | Batch, spec: Spec, *, ctx: GateContext) -> CheckResult:
    """Summary metrics only (no per-row scores): label shift, drifted columns, rows compared."""
    if ctx.golden is None:
        return CheckResult(NAME, (), {"skipped": "no golden reference given"})
    from scipy.stats import chisquare

    batch = as_batch(frame)
    golden = ctx.golden[list(ctx.reference.columns)]
    since = history_since(ctx.reference, golden, list(ctx.reference.columns))
    keep = np.ones(len(batch), dtype=bool)
    if ctx.suspect_rows is not None:
        keep[np.asarray(ctx.suspect_rows, dtype=np.int64)] = False
    # "Cumulative" is the history since the golden reference, then the batch's kept rows: its
    # label counts come from the label column alone, its columns from a seeded sample of it.
    kept = np.flatnonzero(keep)

    classes = ctx.classes
    golden_share = label_strings(golden[ctx.label]).value_counts(normalize=True).reindex(classes, fill_value=0.0)
    counts = (label_strings(since[ctx.label]).value_counts().reindex(classes, fill_value=0)
              + label_strings(batch.column(ctx.label)[keep]).value_counts().reindex(classes, fill_value=0))
    n = int(counts.sum())
    shift = float(0.5 * np.abs(counts / max(n, 1) - golden_share).sum())
    # Smoothed expected counts, so a class the golden set barely has does not dominate the test.
    expected = (golden_share.to_numpy() * len(golden) + 0.5) / (len(golden) + 0.5 * len(classes)) * n
    p_value = float(chisquare(counts.to_numpy(), expected).pvalue) if n and len(classes) > 1 else 1.0

    findings = []
    if shift > spec.max_label_shift and p_value < spec.max_p_value:
        findings.append(Finding.at_rows(NAME, "cumulative_label_shift",
            f"since the golden reference, the label distribution has moved by {shift:.3f} (total variation over "
            f"{n} rows; golden shares {golden_share.round(3).to_dict()}, now "
            f"{(counts / max(n, 1)).round(3).to_dict()}; {p_text(p_value)}): a slow shift no single batch showed",
            [], value=shift, threshold=spec.max_label_shift,
            null=null_of("chi-square of the label counts since the golden reference against its shares", len(golden),
                         p_value, spec.max_p_value)))
    per_column, drifted_fraction = _column_drift(golden, _cumulative_sample(since, batch, kept, spec.max_rows, ctx.seed),
                                                 spec, ctx)
    for c, info in per_column.items():
        if info["drifted"]:
            findings.append(Finding.at_rows(NAME, "cumulative_column_drift",
                f"column '{c}' drifted since the golden reference: {info['method']} {info['score']:.3f} >= "
                f"{info['threshold']:.3f}", [], value=info["score"], threshold=info["threshold"]))
    if drifted_fraction > spec.max_drifted_column_fraction:
        findings.append(Finding.at_rows(NAME, "cumulative_drift_exceeded",
            f"{drifted_fraction:.0%} of feature columns drifted since the golden reference; at most "
            f"{spec.max_drifted_column_fraction:.0%} may", [], value=drifted_fraction,
            threshold=spec.max_drifted_column_fraction))
    metrics = {"history_rows": len(since), "compared_rows": n, "golden_rows": len(golden),
               "label_shift": shift, "label_p_value": p_value, "drifted_column_fraction": drifted_fraction,
               "columns": per_column}
    return CheckResult(NAME, tuple(findings), metrics)


def _cumulative_sample(since: pd.DataFrame, batch: Batch, kept: np.ndarray, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of at most ``n`` rows of the history followed by the batch's ``kept`` rows:
    the rows ``drift._sample`` draws from their concatenation, reading only the batch rows drawn."""
    pos = sample_positions(len(since) + len(kept), n, seed)
    old, new = pos[pos < len(since)], kept[pos[pos >= len(since)] - len(since)]
    return pd.concat([since.iloc[old], batch.take(new)], ignore_index=True)


def _column_drift(golden: pd.DataFrame, cur_sample: pd.DataFrame, spec: Spec,
                  ctx: GateContext) -> tuple[dict[str, dict], float]:
    features = ctx.feature_columns
    numeric = [c for c in features if is_numeric(golden[c]) and is_numeric(cur_sample[c])]
    categorical = [c for c in features if c not in numeric]
    cur = _prepared(cur_sample, numeric, categorical)
    ref = _prepared(_sample(golden, spec.max_rows, ctx.seed + 1), numeric, categorical)
    rng = np.random.default_rng(ctx.seed)
    out: dict[str, dict] = {}
    for c in numeric + categorical:
        if not (cur[c].notna().any() and ref[c].notna().any()):
            continue
        is_num = c in numeric
        threshold = noise_threshold(ref[c], len(cur), is_num, spec.min_column_threshold, spec, rng)  # type: ignore[arg-type]
        score = _distance(ref[c].dropna(), cur[c].dropna(), is_num)
        out[c] = {"method": NUMERIC_METHOD if is_num else CATEGORICAL_METHOD, "score": score,
                  "threshold": threshold, "drifted": score >= threshold}
    return out, sum(v["drifted"] for v in out.values()) / max(len(out), 1)
