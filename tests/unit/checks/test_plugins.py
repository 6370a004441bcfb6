"""A third-party check, installed the way a plug-in is (a dist-info with an entry point in the
group ``poisonguard.checks``), is a first-class check: its section is in the policy (validated,
with defaults), it runs, its findings reach the verdict, it passes the public contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from poisonguard.errors import EXIT_BLOCK, EXIT_PROMOTE, EXIT_USAGE

PLUGIN = '''
"""Sentinel values: rows holding a value the supplier uses for "unknown" (e.g. -999)."""
import numpy as np
from pydantic import Field

from poisonguard.kernel.results import CheckResult, Finding, Severity
from poisonguard.kernel.spec import CheckSpec

NAME = "sentinel"
PHASE = "rows"
CODES = {"sentinel_value": Severity.QUARANTINE, "sentinel_fraction_exceeded": Severity.BLOCK}


class Spec(CheckSpec):
    value: float = Field(-999.0, description="The sentinel value.")
    max_fraction: float = Field(0.05, ge=0, le=1, description="Block above this share of rows.")


def run(frame, spec, *, ctx):
    numeric = frame[ctx.features.numeric_columns].to_numpy(dtype=float)
    hit = (numeric == spec.value).any(axis=1)
    rows = np.flatnonzero(hit)
    findings = []
    if len(rows):
        findings.append(Finding.at_rows(NAME, "sentinel_value", f"{len(rows)} row(s) hold {spec.value:g}", rows))
    if hit.mean() > spec.max_fraction:
        findings.append(Finding.at_rows(NAME, "sentinel_fraction_exceeded", f"{hit.mean():.1%} of rows", []))
    return CheckResult(NAME, tuple(findings), {"sentinel_fraction": float(hit.mean())}, hit.astype(float))
'''


def _install(root: Path) -> Path:
    """A plug-in distribution on a path of its own, as pip would leave it."""
    root.mkdir(parents=True)
    (root / "pg_sentinel.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "pg_sentinel-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pg-sentinel\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[poisonguard.checks]\nsentinel = pg_sentinel\n")
    return root


def _cli(plugin_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "poisonguard.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return _install(tmp_path / "site")


def test_a_plugin_check_gates_a_batch(plugin, files, frames, tmp_path, fast_policy):
    batch = frames["incoming"].copy()
    batch.loc[[3, 7], "f1"] = -999.0
    incoming = tmp_path / "sentinel.parquet"
    batch.to_parquet(incoming, index=False)
    policy = tmp_path / "policy.yml"
    policy.write_text(fast_policy.read_text() + "  sentinel: {max_fraction: 0.1}\n")
    common = ["--reference", str(files["reference"]), "--holdout", str(files["holdout"]), "--label", "y",
              "--policy", str(policy), "-q"]
    proc = _cli(plugin, "check", *common, "--incoming", str(incoming), "--out", str(tmp_path / "out"))
    assert proc.returncode == EXIT_PROMOTE, proc.stderr
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["checks"]["sentinel"]["metrics"]["sentinel_fraction"] == pytest.approx(2 / len(batch))
    assert {3, 7} <= set(verdict["quarantined_rows"])
    assert verdict["policy"]["checks"]["sentinel"]["max_fraction"] == 0.1
    # Its block code blocks, like a built-in's.
    batch.loc[:99, "f2"] = -999.0
    batch.to_parquet(incoming, index=False)
    proc = _cli(plugin, "check", *common, "--incoming", str(incoming), "--out", str(tmp_path / "out2"))
    assert proc.returncode == EXIT_BLOCK and "sentinel/sentinel_fraction_exceeded" in proc.stdout
    # Its section is validated like a built-in's.
    policy.write_text("checks:\n  sentinel: {bogus: 1}\n")
    proc = _cli(plugin, "check", *common, "--incoming", str(incoming), "--out", str(tmp_path / "out3"))
    assert proc.returncode == EXIT_USAGE and "checks.sentinel.bogus" in proc.stderr


def test_a_plugin_appears_in_the_policy_reference(plugin):
    env = dict(os.environ, PYTHONPATH=str(plugin))
    out = subprocess.run([sys.executable, "-m", "poisonguard.engine.policy"], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert "| **`checks.sentinel`** |" in out and "`checks.sentinel.max_fraction`" in out


def test_a_broken_plugin_is_a_clear_usage_error(tmp_path, files):
    site = _install(tmp_path / "site")
    (site / "pg_sentinel.py").write_text("raise RuntimeError('half-installed')\n")
    proc = _cli(site, "check", "--reference", str(files["reference"]), "--incoming", str(files["incoming"]),
                "--label", "y", "--out", str(tmp_path / "out"))
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.count("\n") == 1 and "plug-in 'sentinel'" in proc.stderr and "half-installed" in proc.stderr


def test_a_plugin_passes_the_public_contract(plugin, frames, monkeypatch):
    import importlib

    from poisonguard.checks import REGISTRY, CheckDef
    from poisonguard.testing import check_contract

    monkeypatch.syspath_prepend(str(plugin))
    check = CheckDef.of(importlib.import_module("pg_sentinel"))
    monkeypatch.setitem(REGISTRY, check.name, check)
    batch = frames["incoming"].copy()
    batch.loc[[1, 2], "f0"] = -999.0
    result = check_contract(check, reference=frames["reference"], holdout=frames["holdout"], batch=batch, label="y")
    assert result.flagged_rows == (1, 2)
    from poisonguard.engine.policy import Policy

    assert Policy.model_validate({"checks": {"sentinel": {"value": -1}}}).spec("sentinel").value == -1
