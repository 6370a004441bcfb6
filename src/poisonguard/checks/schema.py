"""Schema: a Great Expectations 1.x suite of column types, ranges, categories, nulls and the label's domain.

The suite comes from the policy where it says so, otherwise it is inferred from the reference.
Rows that break a row-level expectation are reported with their positions.

Score per row: the number of row-level expectations the row breaks (0 = none; higher = more
suspicious).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from poisonguard.errors import PolicyError
from poisonguard.kernel.context import GateContext, is_numeric
from poisonguard.kernel.imports import quiet_import
from poisonguard.kernel.parts import Fitted, PartScores
from poisonguard.kernel.results import CheckResult, Finding, Severity, null_of
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import p_text, rate_exceeds, rate_excess_p_value

NAME = "schema"
PHASE = "rows"
HEADLINE = "failed_row_fraction"  # share of rows that break the schema
CODES: dict[str, Severity] = {
    "out_of_range": Severity.QUARANTINE,
    "unexpected_category": Severity.QUARANTINE,
    "unexpected_null": Severity.QUARANTINE,
    "unknown_label": Severity.QUARANTINE,
    "missing_label": Severity.QUARANTINE,
    "wrong_type": Severity.BLOCK,
    "null_fraction_exceeded": Severity.BLOCK,
    "failed_row_fraction_exceeded": Severity.BLOCK,
}
SUITE_FILE = "schema_suite.json"


class ColumnRule(BaseModel):
    """An explicit rule for one column; fields left out are inferred from the reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["numeric", "categorical"] | None = Field(
        None, description="Type family of the column; inferred from the reference when left out "
        "(or 'categorical' when `allowed` is given).")
    min: float | None = Field(None, description="Smallest allowed value (numeric columns).")
    max: float | None = Field(None, description="Largest allowed value (numeric columns).")
    allowed: list[str | int | float | bool] | None = Field(
        None, description="Allowed values (categorical columns), compared as text.")
    max_null_fraction: float | None = Field(
        None, ge=0, le=1, description="Largest allowed share of missing values (0 = none may be missing).")

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.kind == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min/max apply to numeric columns. Got kind: categorical. "
                             "Drop min/max or set kind: numeric.")
        if self.allowed is not None and (self.kind == "numeric" or self.min is not None or self.max is not None):
            raise ValueError("allowed applies to categorical columns; it cannot be combined with "
                             "kind: numeric or min/max. Keep one of the two.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min must not exceed max. Got min={self.min:g}, max={self.max:g}.")
        return self


class Spec(CheckSpec):
    columns: dict[str, ColumnRule] = Field(
        default_factory=dict,
        description="Explicit rules per column (kind, min, max, allowed, max_null_fraction); "
        "anything not given is inferred from the reference.")
    range_margin_fraction: float = Field(
        0.5, ge=0, le=10,
        description="Inferred numeric ranges are widened by this share of the reference range on each side "
        "(schema catches impossible values; the outlier check judges unusual ones).")
    null_tolerance_fraction: float = Field(
        0.05, ge=0, le=1,
        description="A column with missing values in the reference may have this much more in the batch.")
    max_categories: int = Field(
        200, ge=1, description="Columns with more distinct reference values are free text: no allowed-values rule.")
    natural_failed_row_fraction: float = Field(
        0.001, ge=0, le=1,
        description="Share of trusted rows expected to break the inferred schema (values past the margins).")
    max_failed_row_fraction: float = Field(
        0.01, ge=0, le=1,
        description="Block when the share of rows breaking a row-level expectation exceeds the natural share "
        "by this much...")
    max_p_value: float = Field(
        1e-3, gt=0, lt=1,
        description="...and a one-sided test puts it below this p-value (also for a column missing more than the "
        "reference: a batch of its size drawn from trusted data would rarely show as many).")


@dataclass(frozen=True)
class Rule:
    """The effective rule for one column, after merging the policy with the inference."""

    column: str
    kind: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    max_null_fraction: float = 0.0
    reference_null_fraction: float = 0.0
    is_label: bool = False
    # A categorical column whose reference values are all text (none reads as a number): a batch
    # holding numbers there has the wrong type. Codes such as "1", "2" may arrive as numbers.
    text_only: bool = False


def infer_rules(reference: pd.DataFrame, label: str, spec: Spec, id_column: str | None = None) -> list[Rule]:
    """The rule for every column (the id column aside): the policy's where given, otherwise
    inferred from ``reference``. Raises :class:`PolicyError` for a policy rule naming a column
    the reference lacks or letting the label be missing."""
    id_rule = {id_column} & set(spec.columns) if id_column is not None else set()
    unknown = sorted((set(spec.columns) - set(reference.columns)) | id_rule)
    if unknown:
        raise PolicyError(f"checks.schema.columns names {unknown}, which the reference does not have as "
                          f"feature or label columns (it has {list(reference.columns)}). Fix the policy.")
    given_label = spec.columns.get(label)
    if given_label is not None and given_label.max_null_fraction:
        raise PolicyError(f"checks.schema.columns.{label}.max_null_fraction must be 0: the label may never be "
                          f"missing. Got {given_label.max_null_fraction}. Remove it from the policy.")
    return [_rule(reference[col], col, col == label, spec.columns.get(col, ColumnRule()), spec)
            for col in reference.columns if col != id_column]


def _rule(ref: pd.Series, col: str, is_label: bool, given: ColumnRule, spec: Spec) -> Rule:
    if is_label:
        kind: Literal["numeric", "categorical"] = "categorical"
    else:
        kind = given.kind or ("categorical" if given.allowed is not None or not is_numeric(ref) else "numeric")
    null_fraction = float(ref.isna().mean()) if len(ref) else 0.0
    if is_label:
        max_null = 0.0
    elif given.max_null_fraction is not None:
        max_null = given.max_null_fraction
    else:
        max_null = 0.0 if null_fraction == 0 else min(1.0, null_fraction + spec.null_tolerance_fraction)
    if kind == "numeric":
        values = pd.to_numeric(ref, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        values = values[np.isfinite(values)]
        lo = hi = None
        if len(values):
            span = float(values.max() - values.min())
            margin = spec.range_margin_fraction * (span if span > 0 else max(abs(float(values.max())), 1.0))
            lo, hi = float(values.min()) - margin, float(values.max()) + margin
        lo = given.min if given.min is not None else lo
        hi = given.max if given.max is not None else hi
        return Rule(col, kind, lo, hi, None, max_null, null_fraction)
    texts = as_text(ref).dropna()
    uniques = sorted(texts.unique().tolist())
    if given.allowed is not None:
        allowed: tuple[str, ...] | None = tuple(sorted({str(v) for v in as_text(pd.Series(given.allowed))}))
    else:
        allowed = tuple(uniques) if is_label or len(uniques) <= spec.max_categories else None
    text_only = (not is_numeric(ref) and len(uniques) > 0
                 and not pd.to_numeric(pd.Series(uniques), errors="coerce").notna().any())
    return Rule(col, kind, None, None, allowed, max_null, null_fraction, is_label, text_only)


def as_text(series: pd.Series) -> pd.Series:
    """Values as strings, missing as ``None``, so 1 from CSV, 1.0 from Parquet and "1" compare equal."""
    out = series.astype("object")
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(np.float64, na_value=np.nan)
        whole = np.isfinite(values) & (np.mod(values, 1) == 0) & (np.abs(values) < 2**53)
        if whole.any():
            out = out.copy()
            out[whole] = values[whole].astype(np.int64)
    missing = series.isna().to_numpy()
    return pd.Series(np.where(missing, None, out.astype(str).to_numpy(dtype=object)),
                     index=series.index, dtype="object")


def type_family(series: pd.Series) -> Literal["numeric", "categorical"] | None:
    """``numeric`` for numbers and booleans (also held as Python objects), ``categorical`` for
    anything else, ``None`` when every value is missing."""
    if not series.notna().any():
        return None
    if is_numeric(series):
        return "numeric"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    return "numeric" if inferred in ("integer", "floating", "mixed-integer-float", "decimal", "boolean") \
        else "categorical"


def gx_context():
    """An ephemeral, in-memory, quiet GX context (no progress bars, no analytics, no files)."""
    gx = quiet_import("great_expectations")
    base = quiet_import("great_expectations.data_context.types.base")
    config = base.DataContextConfig(store_backend_defaults=base.InMemoryStoreBackendDefaults(),
                                    analytics_enabled=False,
                                    progress_bars=base.ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


Expectation = tuple[str, str, dict[str, Any]]  # (GX expectation type, finding code, kwargs incl. column)

NOT_NULL, BETWEEN, IN_SET = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
                             "expect_column_values_to_be_in_set")


def expectations(rules: list[Rule]) -> list[Expectation]:
    """The suite of ``rules``, in suite order: the one place a rule becomes expectations, for
    GX's suite (:func:`build_suite`), its JSON (:func:`suite_json`) and its compiled evaluation
    (:func:`compiled_outcomes`). Bounds are floats (as GX stores them); unset ones are left out."""
    out: list[Expectation] = []
    for r in rules:
        if r.max_null_fraction == 0:
            out.append((NOT_NULL, "missing_label" if r.is_label else "unexpected_null", {"column": r.column}))
        elif r.max_null_fraction < 1:
            out.append((NOT_NULL, "null_fraction_exceeded", {"column": r.column, "mostly": 1 - r.max_null_fraction}))
        if r.kind == "numeric" and (r.min is not None or r.max is not None):
            bounds = {"min_value": r.min, "max_value": r.max}
            out.append((BETWEEN, "out_of_range",
                        {"column": r.column} | {k: float(v) for k, v in bounds.items() if v is not None}))
        if r.allowed is not None:
            out.append((IN_SET, "unknown_label" if r.is_label else "unexpected_category",
                        {"column": r.column, "value_set": list(r.allowed)}))
    return out


def build_suite(rules: list[Rule], name: str = "poisonguard"):
    """The Great Expectations suite for ``rules``. Each expectation's ``meta["code"]`` is the
    poisonguard finding code it maps to. Needs an active context (:func:`gx_context`)."""
    gx = quiet_import("great_expectations")
    gxe = quiet_import("great_expectations.expectations")
    classes = {NOT_NULL: gxe.ExpectColumnValuesToNotBeNull, BETWEEN: gxe.ExpectColumnValuesToBeBetween,
               IN_SET: gxe.ExpectColumnValuesToBeInSet}
    suite = gx.ExpectationSuite(name=name)
    for kind, code, kwargs in expectations(rules):
        suite.add_expectation(classes[kind](**kwargs, meta={"code": code}))
    return suite


def infer_suite(reference: pd.DataFrame, label: str, spec: Spec | None = None,
                id_column: str | None = None):
    """The GX ``ExpectationSuite`` the check would validate a batch against, for this reference
    and policy section (for export into a policy or a GX project)."""
    gx_context()
    return build_suite(infer_rules(reference, label, spec or Spec(), id_column))


# The cheapest result format that still lists every failing row: BASIC and SUMMARY stop at
# ``partial_unexpected_count`` indices; COMPLETE lists them all. Without the two switches COMPLETE
# also renders every index into a query string and carries every unexpected value (~30% slower).
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False,
                 "exclude_unexpected_values": True}


def validate(frame: pd.DataFrame, suite, context) -> list[Any]:
    """Run ``suite`` on ``frame`` in ``context``; the per-expectation results, in suite order."""
    batch = (context.data_sources.add_pandas("poisonguard").add_dataframe_asset("incoming")
             .add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame}))
    results = list(batch.validate(suite, result_format=RESULT_FORMAT).results)
    # GX does not keep the suite's order (failed metrics come first); every (type, column) is unique.
    order = {(e.expectation_type, e.column): i for i, e in enumerate(suite.expectations)}
    return sorted(results, key=lambda r: order[(r.expectation_config.type, r.expectation_config.kwargs["column"])])


def _raised(result) -> str | None:
    """GX's error message for an expectation that could not be evaluated, else ``None``.
    ``exception_info`` is flat when nothing failed and keyed by metric id when a metric did."""
    info = result.exception_info or {}
    for entry in [info, *(v for v in info.values() if isinstance(v, dict))]:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _rule_to_dict(rule: Rule) -> dict[str, Any]:
    d = dict(rule.__dict__)
    d["allowed"] = None if rule.allowed is None else list(rule.allowed)
    return d


def _rule_from_dict(d: dict[str, Any]) -> Rule:
    return Rule(**(d | {"allowed": None if d["allowed"] is None else tuple(d["allowed"])}))


def fit(spec: Spec, ctx: GateContext) -> Fitted:
    """The effective rule of every column (the policy's where given, inferred from the reference)
    and their Great Expectations suite as ``schema_suite.json`` holds it."""
    rules = infer_rules(ctx.reference, ctx.label, spec, ctx.id_column)
    return Fitted({"rules": [_rule_to_dict(r) for r in rules], "suite": suite_json(rules)})


def suite_json(rules: list[Rule]) -> str:
    """The text of ``schema_suite.json``: the full suite of ``rules``, ready to reuse in GX.

    Written without importing Great Expectations (~2 s, once per reference): it is what
    ``build_suite(rules).to_json_dict()`` serialises to, and ``tests/unit/checks/test_schema.py``
    holds the two equal."""
    from importlib.metadata import version

    return _suite_text({"expectations": [{"kwargs": kwargs, "meta": {"code": code}, "severity": "critical",
                                          "type": kind} for kind, code, kwargs in expectations(rules)],
                        "id": None, "meta": {"great_expectations_version": version("great_expectations")},
                        "name": "poisonguard", "notes": None})


def gx_suite_json(rules: list[Rule]) -> str:
    """:func:`suite_json` as Great Expectations itself serialises :func:`build_suite` (the oracle)."""
    gx_context()  # GX builds suites inside an active context
    return _suite_text(build_suite(rules).to_json_dict())


def _suite_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def score(frame: pd.DataFrame, fitted: Fitted, spec: Spec, ctx: GateContext) -> PartScores:
    """Validate one part of the batch against the Great Expectations suite (compiled; GX itself
    confirms every part where a row fails).

    Per row: ``failures``, the number of row-level expectations it breaks (the higher, the more
    suspicious). Positions: the rows breaking each ``<code>:<column>`` expectation. Counts: the
    missing values per column (``nulls:<column>``) and values of the wrong type
    (``wrong_type:<column>``)."""
    n = len(frame)
    counts: dict[str, float] = {}
    positions: dict[str, np.ndarray] = {}
    view, checked = prepared(frame, [_rule_from_dict(d) for d in fitted.meta["rules"]], counts, positions)
    outcomes = compiled_outcomes(view, checked)
    if any(len(rows) for code, _, rows in outcomes if code != "null_fraction_exceeded"):
        # Great Expectations is the authority on every row the schema quarantines: a part with a
        # failing row is validated by GX itself, which must agree with the compiled suite.
        confirmed = gx_outcomes(pd.DataFrame(view, index=pd.RangeIndex(n)), checked)
        if _differ(confirmed, outcomes):
            raise RuntimeError("the compiled schema suite and Great Expectations disagree on this batch; please "
                               "report it with the batch's schema_suite.json")
    failures = np.zeros(n)
    for code, column, rows in outcomes:
        if code == "null_fraction_exceeded":
            counts[f"nulls:{column}"] = float(len(rows))
        elif len(rows):
            failures[rows] += 1
            positions[f"{code}:{column}"] = rows
    return PartScores(n, {"failures": failures}, positions, counts)


def prepared(frame: pd.DataFrame, rules: list[Rule], counts: dict[str, float],
             positions: dict[str, np.ndarray]) -> tuple[dict[str, Any], list[Rule]]:
    """The columns of ``frame`` as the suite is evaluated on them, and the rules checked there:
    numbers as float64 (GX's vectorised range check only takes int64/float64), categories as
    text; a column of the wrong type family is counted in ``counts``/``positions`` and only
    checked for missing values."""
    checked: list[Rule] = []
    view: dict[str, Any] = {}
    for r in rules:
        column = frame[r.column]
        bad = _wrong_type_rows(r, column)
        if bad is not None:
            counts[f"wrong_type:{r.column}"] = float(len(bad))
            positions[f"wrong_type:{r.column}"] = bad[:1]
            checked.append(Rule(r.column, r.kind, max_null_fraction=r.max_null_fraction,
                                reference_null_fraction=r.reference_null_fraction))
            view[r.column] = column.to_numpy()
            continue
        if r.kind == "numeric":
            values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            # GX cannot compare +-inf with its bounds; the largest finite float keeps them out of range.
            view[r.column] = np.nan_to_num(values, nan=np.nan, posinf=_BEYOND, neginf=-_BEYOND)
        else:
            view[r.column] = as_text(column).to_numpy()
        checked.append(r)
    return view, checked


Outcome = tuple[str, str, np.ndarray]  # (code, column, positions of the rows breaking the expectation)


def _differ(a: list[Outcome], b: list[Outcome]) -> bool:
    return len(a) != len(b) or any(x[:2] != y[:2] or not np.array_equal(x[2], y[2]) for x, y in zip(a, b, strict=True))


def compiled_outcomes(view: dict[str, Any], rules: list[Rule]) -> list[Outcome]:
    """The suite of ``rules`` (:func:`expectations`), evaluated vectorised on ``view`` (numeric
    columns as float64 with NaN for missing, categorical ones as text with None), in suite order:
    what GX's not-null, between (inclusive, missing values not counted) and in-set expectations
    report as unexpected. Held equal to :func:`gx_outcomes` by tests; it skips GX's ~2 s import
    and its per-row Python work on the batches where nothing fails."""
    out: list[Outcome] = []
    for kind, code, kwargs in expectations(rules):
        values = view[kwargs["column"]]
        missing = pd.isna(values)
        if kind == NOT_NULL:
            broken = missing
        elif kind == BETWEEN:
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            with np.errstate(invalid="ignore"):
                outside = ((values < low) if low is not None else False) | ((values > high) if high is not None else False)
            broken = outside & ~missing
        else:
            broken = ~pd.Series(values, dtype="object").isin(kwargs["value_set"]).to_numpy() & ~missing
        out.append((code, kwargs["column"], np.flatnonzero(broken)))
    return out


def gx_outcomes(frame: pd.DataFrame, rules: list[Rule]) -> list[Outcome]:
    """Great Expectations' own validation of :func:`build_suite` (``rules``) on ``frame``, in the
    shape of :func:`compiled_outcomes`."""
    context = gx_context()  # before the suite: GX builds suites inside an active context
    out: list[Outcome] = []
    for res in validate(frame, build_suite(rules), context):
        cfg = res.expectation_config
        code, column = cfg.meta["code"], cfg.kwargs["column"]
        error = _raised(res)
        if error is not None:
            raise RuntimeError(f"GX could not evaluate {cfg.type} on column '{column}': {error}")
        out.append((code, column, np.asarray(res.result.get("unexpected_index_list") or [], dtype=np.int64)))
    return out


def _wrong_type_rows(rule: Rule, column: pd.Series) -> np.ndarray | None:
    """Positions of the values of the wrong type family, or None when the column's type is right."""
    family = type_family(column)
    if rule.is_label:
        return None
    if family == "categorical" and rule.kind == "numeric":
        present = column.notna().to_numpy()
        return np.flatnonzero(present & pd.to_numeric(column, errors="coerce").isna().to_numpy())
    if family == "numeric" and rule.kind == "categorical" and rule.text_only:
        return np.flatnonzero(column.notna().to_numpy())
    return None


def summarize(scores: PartScores, fitted: Fitted, spec: Spec, ctx: GateContext) -> CheckResult:
    rules = {d["column"]: _rule_from_dict(d) for d in fitted.meta["rules"]}
    n = scores.n
    findings: list[Finding] = []
    wrong_type = sorted(k.split(":", 1)[1] for k in scores.counts if k.startswith("wrong_type:"))
    for column in wrong_type:
        findings.append(_wrong_type(rules[column], int(scores.counts[f"wrong_type:{column}"]),
                                    int(scores.positions[f"wrong_type:{column}"][0])))
    unexpected: dict[str, int] = {}
    for key in sorted(k for k in scores.positions if not k.startswith("wrong_type:")):
        code, column = key.split(":", 1)
        rows = scores.positions[key]
        unexpected[key] = len(rows)
        findings.append(Finding.at_rows(NAME, code, _message(code, rules[column], len(rows)), rows))
    for key in sorted(k for k in scores.counts if k.startswith("nulls:")):
        column = key.split(":", 1)[1]
        rule, missing = rules[column], scores.counts[key]
        # Beyond the tolerance, and (when trusted data has missing values too) more than a batch of
        # this size drawn from it would show: its rate was measured on the reference's rows.
        p_value = rate_excess_p_value(int(missing), n, rule.reference_null_fraction, len(ctx.reference)) \
            if rule.reference_null_fraction > 0 else 0.0
        if n and missing / n > rule.max_null_fraction and p_value < spec.max_p_value:
            findings.append(Finding.at_rows(NAME, "null_fraction_exceeded",
                f"column '{column}' is {missing / n:.1%} missing; expected at most {rule.max_null_fraction:.1%} "
                f"(the reference has {rule.reference_null_fraction:.1%}; {p_text(p_value)})",
                [], value=missing / n, threshold=rule.max_null_fraction,
                null=null_of("the reference's missing share (beta-binomial)", len(ctx.reference), p_value,
                             spec.max_p_value)))

    failures = scores.rows["failures"]
    failed_rows = int(np.count_nonzero(failures))
    failed_fraction = failed_rows / n if n else 0.0
    exceeded, p_value = rate_exceeds(failed_rows, n, spec.natural_failed_row_fraction,
                                     min_excess_fraction=spec.max_failed_row_fraction, max_p_value=spec.max_p_value)
    if exceeded:
        worst = sorted(unexpected.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        where = ", ".join(f"'{k.split(':', 1)[1]}' {k.split(':', 1)[0]} in {v} rows" for k, v in worst)
        findings.append(Finding.at_rows(NAME, "failed_row_fraction_exceeded",
            f"{failed_fraction:.1%} of rows ({failed_rows} of {n}) break the schema; trusted data breaks it on "
            f"about {spec.natural_failed_row_fraction:.1%} ({p_text(p_value)}; most: {where})",
            [], value=failed_fraction, threshold=spec.natural_failed_row_fraction + spec.max_failed_row_fraction,
            null=null_of("binomial at the natural failed-row share", n, p_value, spec.max_p_value)))

    artifacts: tuple[str, ...] = ()
    if ctx.out_dir is not None:
        # The full schema (also for columns of the wrong type), ready to reuse as a GX suite.
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        (ctx.out_dir / SUITE_FILE).write_text(fitted.meta.get("suite") or suite_json(list(rules.values())))
        artifacts = (SUITE_FILE,)
    metrics = {
        "suite_source": "policy+inferred" if spec.columns else "inferred",
        "policy_columns": sorted(spec.columns),
        "rules": len(rules),
        "failed_rows": failed_rows,
        "failed_row_fraction": failed_fraction,
        "p_value": p_value,
        "wrong_type_columns": wrong_type,
        "unexpected": unexpected,
        "missing": {k.split(":", 1)[1]: int(v) for k, v in scores.counts.items() if k.startswith("nulls:")},
    }
    return CheckResult(NAME, tuple(findings), metrics, failures, artifacts=artifacts)


_BEYOND = float(np.finfo(np.float64).max)


def _wrong_type(rule: Rule, count: int, first: int) -> Finding:
    if rule.kind == "numeric":
        message = (f"column '{rule.column}' should be numeric like the reference; found text in {count} row(s) "
                   f"(first at row {first})")
    else:
        shown = ", ".join(rule.allowed[:5]) if rule.allowed else "text"
        message = (f"column '{rule.column}' should be categorical text like the reference ({shown}); "
                   f"found numbers in {count} row(s) (first at row {first})")
    return Finding.at_rows(NAME, "wrong_type", message, [], value=count)


def _message(code: str, rule: Rule, count: int) -> str:
    """What was expected, for a row-level finding."""
    column = rule.column
    if code == "out_of_range":
        lo, hi = rule.min, rule.max
        bounds = f"[{'-inf' if lo is None else f'{lo:.6g}'}, {'inf' if hi is None else f'{hi:.6g}'}]"
        return f"{count} row(s) of '{column}' outside the expected range {bounds}"
    if code in ("unexpected_category", "unknown_label"):
        what = "label" if code == "unknown_label" else "value"
        allowed = list(rule.allowed or [])
        expected = ", ".join(map(str, allowed[:10])) + (" …" if len(allowed) > 10 else "")
        return f"{count} row(s) with a {what} of '{column}' the reference never had; expected one of {expected}"
    if code == "missing_label":
        return f"{count} row(s) with the label '{column}' missing; every row needs a label"
    return f"{count} row(s) with '{column}' missing; expected no missing values"
