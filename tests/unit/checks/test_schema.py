"""The compiled schema suite against Great Expectations' own validation of the same suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poisonguard.checks import REGISTRY, schema
from poisonguard.kernel.context import GateContext


def _reference(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "count": rng.integers(0, 50, n),
        "plan": rng.choice(["basic", "plus", "premium"], n),
        "code": rng.choice([1, 2, 3], n).astype(float),  # categorical policy column held as numbers
        "gappy": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),  # 20% missing in trusted data
        "y": rng.choice(["yes", "no"], n),
    })


def _rules(reference: pd.DataFrame) -> list[schema.Rule]:
    spec = schema.Spec(columns={"code": schema.ColumnRule(kind="categorical")})
    return schema.infer_rules(reference, "y", spec)


def _batches(reference: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A clean batch and one for every way a row can break the suite, plus edge values."""
    clean = reference.sample(120, random_state=1).reset_index(drop=True)
    def edit(**changes) -> pd.DataFrame:
        out = clean.copy()
        for column, (rows, value) in changes.items():
            out[column] = out[column].astype(object if isinstance(value, str) or value is None else float)
            out.loc[rows, column] = value
        return out
    return {
        "clean": clean,
        "out_of_range": edit(x=([3, 7], 1e6), count=([5], -1e9)),
        "infinite": edit(x=([0], np.inf), count=([1], -np.inf)),
        "exactly_on_the_bounds": edit(x=([2], float(schema.infer_rules(reference, "y", schema.Spec())[0].max))),
        "unexpected_category": edit(plan=([4, 9], "gold")),
        "numeric_category": edit(code=([6], 7.0)),
        "unknown_label": edit(y=([10, 11], "maybe")),
        "missing_label": edit(y=([12], None)),
        "unexpected_null": edit(x=([13, 14], np.nan), plan=([15], None)),
        "many_missing": edit(gappy=(list(range(0, 120, 2)), np.nan)),
        "everything": edit(x=([20], -1e6), plan=([20, 21], "gold"), y=([22], "maybe"), count=([23], np.nan)),
    }


@pytest.mark.parametrize("case", list(_batches(_reference())))
def test_the_compiled_suite_finds_exactly_the_rows_great_expectations_finds(case):
    reference = _reference()
    rules = _rules(reference)
    batch = _batches(reference)[case]
    view, checked = schema.prepared(batch, rules, {}, {})
    compiled = schema.compiled_outcomes(view, checked)
    gx = schema.gx_outcomes(pd.DataFrame(view, index=pd.RangeIndex(len(batch))), checked)
    assert [(code, column) for code, column, _ in compiled] == [(code, column) for code, column, _ in gx]
    for (code, column, rows), (_, _, gx_rows) in zip(compiled, gx, strict=True):
        assert rows.tolist() == gx_rows.tolist(), (code, column)
    if case not in ("clean", "exactly_on_the_bounds"):
        assert any(len(rows) for _, _, rows in compiled), case  # the case breaks something


def test_an_empty_part_breaks_nothing_without_asking_gx():
    reference = _reference()
    view, checked = schema.prepared(reference.iloc[:0], _rules(reference), {}, {})
    outcomes = schema.compiled_outcomes(view, checked)
    assert outcomes and all(len(rows) == 0 for _, _, rows in outcomes)


def test_a_failing_part_is_confirmed_by_gx_and_its_rows_quarantined(tmp_path):
    reference = _reference()
    batch = _batches(reference)["everything"]
    ctx = GateContext(reference=reference, holdout=reference.iloc[:0], label="y", seed=0, out_dir=tmp_path)
    result = REGISTRY["schema"].run(batch, schema.Spec(), ctx=ctx)
    flagged = {f.code: sorted(f.rows) for f in result.findings if f.rows}
    assert flagged == {"out_of_range": [20], "unexpected_category": [20, 21], "unknown_label": [22],
                       "unexpected_null": [23]}
    # The suite file is GX's own serialisation, also when it comes from the fitted state.
    suite = (tmp_path / schema.SUITE_FILE).read_text()
    assert suite == schema.suite_json(schema.infer_rules(reference, "y", schema.Spec()))
    assert '"expect_column_values_to_be_in_set"' in suite


def _edge_rules() -> list[schema.Rule]:
    """Every shape a rule can take: one bound or both, int bounds, every null budget, labels."""
    return [schema.Rule("a", "numeric", min=-1.5), schema.Rule("b", "numeric", max=3, max_null_fraction=0.25),
            schema.Rule("c", "numeric", max_null_fraction=1.0),
            schema.Rule("d", "categorical", allowed=("x", "y", "1"), max_null_fraction=0.1),
            schema.Rule("lab", "categorical", allowed=("0", "1"), is_label=True),
            schema.Rule("e", "numeric", min=0.1 + 0.2, max=1e300, max_null_fraction=1 / 3),
            schema.Rule("f", "categorical", max_null_fraction=0.0)]


@pytest.mark.parametrize("rules", ["edges", "inferred", "credit"])
def test_the_suite_written_without_gx_is_what_gx_serialises(rules):
    """schema_suite.json is built without importing GX (once per reference, ~2 s); GX's own
    serialisation of the same suite is the oracle, byte for byte."""
    credit = Path(__file__).resolve().parents[3] / "datasets" / "credit" / "reference.parquet"
    built = {"edges": _edge_rules, "inferred": lambda: _rules(_reference()),
             "credit": lambda: schema.infer_rules(pd.read_parquet(credit), "status", schema.Spec())}[rules]()
    assert schema.suite_json(built) == schema.gx_suite_json(built)
