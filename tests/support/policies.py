"""The one fast policy of the test suite: real checks with cheaper models. Tests of the store,
the ledger and promotion switch the slow batch checks off; tests of the whole gate (Airflow, DVC)
keep every check on, lighter."""

from __future__ import annotations

import yaml

# Real checks, cheaper settings.
LIGHT = {"label_flips": {"model": "logistic", "n_folds": 3}, "baseline": {"model": "logistic"},
         "drift": {"noise_draws": 2, "html_report": False}}


def fast_policy(*, every_check: bool = False, **sections: dict) -> str:
    """The fast policy as YAML: ``every_check`` keeps baseline, drift and cumulative on (lighter);
    otherwise they are off (tests of the store, not of detection). ``sections`` override checks."""
    checks = {name: dict(section) for name, section in LIGHT.items()}
    if not every_check:
        for name in ("baseline", "drift", "cumulative"):
            checks[name] = {"enabled": False}
    for name, section in sections.items():
        checks[name] = checks.get(name, {}) | section
    return yaml.safe_dump({"checks": checks}, sort_keys=True)


FAST_POLICY = fast_policy()
