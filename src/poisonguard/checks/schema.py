"""Schema: a Great Expectations 1.x suite over the batch — column types, ranges, categories,
nulls and the label's domain — from the policy where it says so, otherwise inferred from the
reference. Rows that break a row-level expectation are reported with their positions.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from poisonguard.context import GateContext, is_numeric
from poisonguard.imports import quiet_import
from poisonguard.results import CheckResult, Finding, Severity
from poisonguard.spec import CheckSpec

NAME = "schema"
PHASE = "rows"
CODES: dict[str, Severity] = {
    "out_of_range": Severity.QUARANTINE,
    "unexpected_category": Severity.QUARANTINE,
    "unexpected_null": Severity.QUARANTINE,
    "unknown_label": Severity.QUARANTINE,
    "wrong_type": Severity.BLOCK,
    "null_fraction_exceeded": Severity.BLOCK,
    "failed_row_fraction_exceeded": Severity.BLOCK,
}


class ColumnRule(BaseModel):
    """An explicit rule for one column; fields left out are inferred from the reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["numeric", "categorical"] | None = Field(None, description="Type family of the column.")
    min: float | None = Field(None, description="Smallest allowed value (numeric).")
    max: float | None = Field(None, description="Largest allowed value (numeric).")
    allowed: list[str | int | float] | None = Field(None, description="Allowed values (categorical).")
    max_null_fraction: float | None = Field(None, ge=0, le=1, description="Largest allowed share of missing values.")


class Spec(CheckSpec):
    columns: dict[str, ColumnRule] = Field(
        default_factory=dict,
        description="Explicit rules per column (kind, min, max, allowed, max_null_fraction); "
        "anything not given is inferred from the reference.")
    range_margin_fraction: float = Field(
        0.1, ge=0, le=10, description="Inferred numeric ranges are widened by this share of the reference range on each side.")
    null_tolerance_fraction: float = Field(
        0.05, ge=0, le=1,
        description="A column with missing values in the reference may have this much more in the batch.")
    max_categories: int = Field(
        200, ge=1, description="Columns with more distinct reference values are free text: no allowed-values rule.")
    max_failed_row_fraction: float = Field(
        0.02, ge=0, le=1, description="Block when more than this share of rows break a row-level expectation.")


@dataclass(frozen=True)
class Rule:
    """The effective rule for one column, after merging the policy with the inference."""

    column: str
    kind: str
    min: float | None
    max: float | None
    allowed: tuple[Any, ...] | None
    max_null_fraction: float
    is_label: bool = False


def infer_rules(reference: pd.DataFrame, label: str, spec: Spec, id_column: str | None = None) -> list[Rule]:
    """Rules for every column: the policy's where given, otherwise inferred from the reference."""
    rules = []
    for col in reference.columns:
        if col == id_column:
            continue
        ref = reference[col]
        given = spec.columns.get(col, ColumnRule())
        kind = given.kind or ("categorical" if col == label or not is_numeric(ref) else "numeric")
        lo = hi = None
        allowed = None
        if kind == "numeric" and col != label:
            values = pd.to_numeric(ref, errors="coerce")
            span = float(values.max() - values.min())
            margin = spec.range_margin_fraction * (span if span > 0 else max(abs(float(values.max())), 1.0))
            lo = given.min if given.min is not None else float(values.min()) - margin
            hi = given.max if given.max is not None else float(values.max()) + margin
        else:
            uniques = _as_strings(ref).dropna().unique().tolist()
            if given.allowed is not None:
                allowed = tuple(sorted(str(v) for v in given.allowed))
            elif col == label or len(uniques) <= spec.max_categories:
                allowed = tuple(sorted(uniques))
        null_fraction = float(ref.isna().mean())
        if given.max_null_fraction is not None:
            max_null = given.max_null_fraction
        else:
            max_null = 0.0 if null_fraction == 0 else min(1.0, null_fraction + spec.null_tolerance_fraction)
        rules.append(Rule(col, kind, lo, hi, allowed, 0.0 if col == label else max_null, col == label))
    return rules


def _as_strings(series: pd.Series) -> pd.Series:
    """Categorical values as strings (so 1 from CSV and "1" from Parquet compare equal)."""
    out = series.astype("object")
    if pd.api.types.is_float_dtype(series) and np.all(np.mod(series.dropna(), 1) == 0):
        out = series.astype("Int64").astype("object")
    return out.where(series.notna(), None).map(lambda v: None if v is None else str(v))


def gx_context():  # type: ignore[no-untyped-def]
    """An ephemeral, in-memory, quiet GX context (no progress bars, no analytics, no files)."""
    gx = quiet_import("great_expectations")
    base = quiet_import("great_expectations.data_context.types.base")
    DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig = (
        base.DataContextConfig, base.InMemoryStoreBackendDefaults, base.ProgressBarsConfig)
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def build_suite(rules: list[Rule], name: str = "poisonguard"):  # type: ignore[no-untyped-def]
    """The Great Expectations suite for ``rules``. Each expectation's ``meta`` carries the
    poisonguard finding code it maps to. Needs an active context (:func:`gx_context`)."""
    gx = quiet_import("great_expectations")
    gxe = quiet_import("great_expectations.expectations")
    suite = gx.ExpectationSuite(name=name)
    for r in rules:
        null_code = "unknown_label" if r.is_label else "unexpected_null"
        if r.max_null_fraction == 0:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=r.column, meta={"code": null_code}))
        elif r.max_null_fraction < 1:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(
                column=r.column, mostly=1 - r.max_null_fraction, meta={"code": "null_fraction_exceeded"}))
        if r.kind == "numeric" and r.min is not None and r.max is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(
                column=r.column, min_value=r.min, max_value=r.max, meta={"code": "out_of_range"}))
        if r.allowed is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(
                column=r.column, value_set=list(r.allowed),
                meta={"code": "unknown_label" if r.is_label else "unexpected_category"}))
    return suite


def infer_suite(reference: pd.DataFrame, label: str, spec: Spec | None = None):  # type: ignore[no-untyped-def]
    """The suite the check would use for this reference (for export into a policy)."""
    gx_context()
    return build_suite(infer_rules(reference, label, spec or Spec()))


def validate(frame: pd.DataFrame, suite, context) -> list[Any]:  # type: ignore[no-untyped-def]
    """Run ``suite`` on ``frame`` in ``context``; the per-expectation results."""
    batch = (context.data_sources.add_pandas("poisonguard").add_dataframe_asset("incoming")
             .add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame}))
    with warnings.catch_warnings():
        # GX computes some metrics through pandas paths that emit FutureWarnings we cannot change.
        warnings.simplefilter("ignore", FutureWarning)
        result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                      "return_unexpected_index_query": False})
    return list(result.results)


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    """Score per row: how many row-level expectations the row breaks (0 = none)."""
    rules = infer_rules(ctx.reference, ctx.label, spec, ctx.id_column)
    findings: list[Finding] = []
    checked = []
    view = frame.copy(deep=False)
    for r in rules:
        numeric_now = is_numeric(frame[r.column]) or frame[r.column].isna().all()
        if r.kind == "numeric" and not r.is_label and not numeric_now:
            bad = pd.to_numeric(frame[r.column], errors="coerce").isna() & frame[r.column].notna()
            findings.append(Finding.at_rows(NAME, "wrong_type",
                f"column '{r.column}' should be numeric but holds text, e.g. {frame[r.column][bad].iloc[0]!r}",
                [], value=float(bad.mean())))
            checked.append(Rule(r.column, r.kind, None, None, None, r.max_null_fraction))
            continue
        if r.kind == "categorical":
            view[r.column] = _as_strings(frame[r.column])
        elif r.kind == "numeric" and not r.is_label:
            view[r.column] = pd.to_numeric(frame[r.column], errors="coerce").replace([np.inf, -np.inf], _BEYOND)
        checked.append(r)
    context = gx_context()
    suite = build_suite(checked)
    results = validate(view, suite, context) if suite.expectations else []

    n = len(frame)
    failures = np.zeros(n)
    summary = []
    for res in results:
        cfg = res.expectation_config
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(f"{cfg.type} on '{cfg.kwargs.get('column')}' failed to evaluate: "
                               f"{res.exception_info.get('exception_message')}")
        code, column = cfg.meta["code"], cfg.kwargs.get("column")
        rows = np.asarray(res.result.get("unexpected_index_list") or [], dtype=np.int64)
        count = int(res.result.get("unexpected_count") or 0)
        summary.append({"expectation": cfg.type, "column": column, "success": bool(res.success),
                        "unexpected_count": count})
        if code == "null_fraction_exceeded":
            if not res.success:
                findings.append(Finding.at_rows(NAME, code,
                    f"column '{column}' is {count / max(n, 1):.1%} missing; at most "
                    f"{1 - cfg.kwargs['mostly']:.1%} is allowed", [], value=count / max(n, 1),
                    threshold=1 - cfg.kwargs["mostly"]))
            continue
        if len(rows):
            failures[rows] += 1
            findings.append(Finding.at_rows(NAME, code, _message(code, column, cfg.kwargs, len(rows)), rows))
    failed_fraction = float(np.mean(failures > 0)) if n else 0.0
    if failed_fraction > spec.max_failed_row_fraction:
        worst = sorted((s for s in summary if s["unexpected_count"]), key=lambda s: -s["unexpected_count"])[:3]
        where = ", ".join(f"'{s['column']}' {s['unexpected_count']} rows" for s in worst)
        findings.append(Finding.at_rows(NAME, "failed_row_fraction_exceeded",
            f"{failed_fraction:.1%} of rows break the schema (most: {where}); at most "
            f"{spec.max_failed_row_fraction:.1%} may",
            [], value=failed_fraction, threshold=spec.max_failed_row_fraction))
    artifacts: tuple[str, ...] = ()
    if ctx.out_dir is not None:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        (ctx.out_dir / "schema_suite.json").write_text(
            json.dumps(suite.to_json_dict(), indent=2, sort_keys=True, default=str) + "\n")
        artifacts = ("schema_suite.json",)
    metrics = {
        "suite_source": "policy+inferred" if spec.columns else "inferred",
        "expectations": len(summary),
        "failed_expectations": sum(not s["success"] for s in summary),
        "failed_row_fraction": failed_fraction,
        "results": summary,
    }
    return CheckResult(NAME, tuple(findings), metrics, failures, artifacts=artifacts)


# +-inf cannot be compared by GX's range metric; a finite stand-in far outside any range keeps
# the row counted as out of range.
_BEYOND = np.finfo(np.float64).max


def _message(code: str, column: str, kwargs: dict[str, Any], count: int) -> str:
    if code == "out_of_range":
        return f"{count} row(s) of '{column}' outside [{kwargs['min_value']:.6g}, {kwargs['max_value']:.6g}]"
    if code in ("unexpected_category", "unknown_label"):
        what = "label" if code == "unknown_label" else "value"
        allowed = list(kwargs.get("value_set") or [])
        shown = ", ".join(map(str, allowed[:10])) + (" …" if len(allowed) > 10 else "")
        return f"{count} row(s) with a {what} of '{column}' the reference never had (allowed: {shown})"
    return f"{count} row(s) with '{column}' missing, where the reference has no missing values"
