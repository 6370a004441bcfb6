"""The drift scores against Evidently's own stat tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poisonguard.checks import drift
from poisonguard.kernel.context import label_strings
from poisonguard.kernel.imports import quiet_import

ROOT = Path(__file__).resolve().parents[3]


def _columns() -> dict[str, tuple[pd.Series, pd.Series, bool]]:
    rng = np.random.default_rng(0)
    credit = pd.read_parquet(ROOT / "datasets" / "credit" / "reference.parquet")
    half = len(credit) // 2
    out = {
        "normal": (pd.Series(rng.normal(size=500)), pd.Series(rng.normal(0.3, 1.2, 80)), True),
        "constant": (pd.Series(np.full(300, 2.0)), pd.Series(rng.normal(2, 0.1, 50)), True),
        "integers": (pd.Series(rng.integers(0, 5, 400).astype(float)), pd.Series(rng.integers(0, 7, 60).astype(float)),
                     True),
        "categories": (pd.Series(rng.choice(["a", "b", "c"], 400)), pd.Series(rng.choice(["a", "c", "d"], 70)), False),
        "one_category": (pd.Series(["x"] * 50), pd.Series(["x"] * 9 + ["y"]), False),
    }
    for c in credit.columns:
        ref, cur = credit[c].iloc[:half], credit[c].iloc[half:half + 200]
        numeric = pd.api.types.is_numeric_dtype(credit[c]) and c != "label"
        if not numeric:
            ref, cur = label_strings(ref), label_strings(cur)
        out[f"credit.{c}"] = (ref.dropna().reset_index(drop=True), cur.dropna().reset_index(drop=True), numeric)
    return out


@pytest.mark.parametrize("name", list(_columns()))
def test_each_column_scores_as_evidentlys_stat_test_scores_it(name):
    stattests = quiet_import("evidently.legacy.calculations.stattests")
    ColumnType = quiet_import("evidently.legacy.core").ColumnType
    reference, current, numeric = _columns()[name]
    test = stattests.wasserstein_stat_test if numeric else stattests.jensenshannon_stat_test
    expected = test(reference, current, ColumnType.Numerical if numeric else ColumnType.Categorical, 0.1).drift_score
    assert drift._distance(reference, current, numeric) == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("html_report", "shift", "written"), [
    ("on_drift", 0.0, False), ("on_drift", 3.0, True), (True, 0.0, True), ("never", 3.0, False)])
def test_evidentlys_report_is_written_when_drift_is_found_unless_the_policy_says_otherwise(
        tmp_path, html_report, shift, written):
    from poisonguard.checks import REGISTRY
    from poisonguard.kernel.context import GateContext

    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600), "y": rng.choice(["p", "q"], 600)})
    batch = reference.sample(150, random_state=2).reset_index(drop=True).assign(a=lambda f: f.a + shift)
    ctx = GateContext(reference=reference, holdout=reference.iloc[:0], label="y", seed=0, out_dir=tmp_path)
    result = REGISTRY["drift"].run(batch, drift.Spec(html_report=html_report), ctx=ctx)
    assert result.metrics["columns"]["a"]["drifted"] == (shift > 0)
    assert (tmp_path / "drift.html").exists() == written
    assert ("drift.html" in result.artifacts) == written
