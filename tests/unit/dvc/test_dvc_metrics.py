"""metrics.json: per batch the few numbers a person compares (decision, rows, quarantined share,
each check's status and headline figure), not every number of the verdict."""

from __future__ import annotations

import json

import pytest

from poisonguard.checks import BUILTIN, REGISTRY
from poisonguard.dvc.metrics import STATUS_CODES, verdict_metrics, write_metrics


def _verdict(checks: dict) -> dict:
    return {"decision": "block", "reasons": [{"check": "label_flips", "code": "c", "message": "m"}],
            "quarantined_rows": [1, 5, 7], "rows": {"incoming": 40}, "checks": checks}


def test_each_check_gives_its_status_and_its_declared_headline_only():
    verdict = _verdict({
        "label_flips": {"status": "fail", "flagged_rows": 3,
                        "metrics": {"changed_label_estimate": 0.1650509013, "p_value": 0.01, "mean_surprise": 2.9,
                                    "thresholds": {"bad": 0.99}, "model": "logistic"}},
        "provenance": {"status": "warn", "flagged_rows": 1,
                       "metrics": {"repeated_fraction": 0.025, "duplicate_rows": 0, "repeats_are_natural": False}},
        "baseline": {"status": "pass", "flagged_rows": 0, "metrics": {"accuracy_drop": -0.0022421525,
                                                                        "accuracy": {"clean": 0.81}}},
    })
    assert verdict_metrics(verdict) == {
        "promoted": 0, "rows": 40, "quarantined_fraction": 0.075,
        "checks.baseline.status": 0, "checks.baseline.accuracy_drop": -0.002242,
        "checks.label_flips.status": 2, "checks.label_flips.changed_label_estimate": 0.165051,
        "checks.provenance.status": 1, "checks.provenance.repeated_fraction": 0.025}


def test_a_check_without_a_headline_shows_its_flagged_share_and_a_missing_headline_is_left_out(monkeypatch):
    """A plug-in that declares no headline falls back to flagged rows / rows; a check that was
    skipped or errored has no figure to show, only its status."""
    import dataclasses

    monkeypatch.setitem(REGISTRY, "sentinel", dataclasses.replace(REGISTRY["outliers"], name="sentinel",
                                                                  headline=None))
    verdict = _verdict({
        "sentinel": {"status": "warn", "flagged_rows": 2, "metrics": {"max_fraction": 0.5}},
        "cumulative": {"status": "pass", "flagged_rows": 0, "metrics": {"skipped": "no golden reference given"}},
        "drift": {"status": "error", "flagged_rows": 0, "metrics": {}, "error": "timeout"},
    })
    assert verdict_metrics(verdict) == {
        "promoted": 0, "rows": 40, "quarantined_fraction": 0.075, "checks.cumulative.status": 0,
        "checks.drift.status": 3, "checks.sentinel.status": 1, "checks.sentinel.flagged_fraction": 0.05}


def test_a_plugin_declares_its_headline_in_its_module(tmp_path, monkeypatch):
    import importlib

    from poisonguard.checks import CheckDef

    (tmp_path / "pg_headline.py").write_text(
        '"""A plug-in with a headline."""\n'
        "from poisonguard.kernel.results import CheckResult, Severity\n"
        "from poisonguard.kernel.spec import CheckSpec\n"
        "NAME, PHASE, HEADLINE = 'constant', 'batch', 'constant_columns'\n"
        "CODES = {'constant': Severity.WARN}\n"
        "class Spec(CheckSpec):\n    pass\n"
        "def run(frame, spec, *, ctx):\n    return CheckResult(NAME, (), {'constant_columns': 2})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check = CheckDef.of(importlib.import_module("pg_headline"))
    assert check.headline == "constant_columns"
    monkeypatch.setitem(REGISTRY, check.name, check)
    metrics = verdict_metrics(_verdict({"constant": {"status": "pass", "flagged_rows": 0,
                                                     "metrics": {"constant_columns": 2}}}))
    assert metrics["checks.constant.constant_columns"] == 2 and "checks.constant.flagged_fraction" not in metrics


def test_every_builtin_check_declares_a_headline():
    assert {name: REGISTRY[name].headline is not None for name in BUILTIN} == dict.fromkeys(BUILTIN, True)


def test_every_status_has_a_number_and_a_block_is_above_a_pass():
    assert STATUS_CODES["pass"] < STATUS_CODES["warn"] < STATUS_CODES["fail"] <= STATUS_CODES["error"]


@pytest.mark.parametrize("bad", ["", 3])
def test_a_headline_that_is_not_a_name_is_refused(bad):
    import dataclasses

    with pytest.raises(TypeError, match="headline"):
        dataclasses.replace(REGISTRY["outliers"], headline=bad)


def test_write_metrics_writes_beside_the_verdict(tmp_path):
    verdict = tmp_path / "out" / "verdict.json"
    verdict.parent.mkdir()
    verdict.write_text(json.dumps(_verdict({})))
    assert write_metrics(verdict) == tmp_path / "out" / "metrics.json"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {
        "promoted": 0, "rows": 40, "quarantined_fraction": 0.075}
