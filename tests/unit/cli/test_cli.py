"""The CLI contract of DESIGN.md: outputs, exit codes, determinism."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pandas as pd
import pytest

from poisonguard.cli import main
from poisonguard.errors import EXIT_BLOCK, EXIT_PROMOTE


def _check(files, out, incoming=None, *extra):
    return main(["check", "-q", "--reference", str(files["reference"]), "--incoming",
                 str(incoming or files["incoming"]), "--label", "y", "--out", str(out),
                 "--holdout", str(files["holdout"]), *extra])


def _stable(path):
    doc = json.loads(path.read_text())
    doc.pop("run")
    return doc


def test_clean_batch_promotes_with_every_output(tmp_path, files, frames, capsys):
    out = tmp_path / "out"
    assert _check(files, out) == EXIT_PROMOTE
    assert capsys.readouterr().out.startswith("PROMOTE")
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["decision"] == "promote" and verdict["reasons"] == []
    assert set(verdict["checks"]) == {"provenance", "schema", "outliers", "label_flips", "backdoor", "baseline",
                                      "drift", "cumulative"}
    assert all(c["status"] in ("pass", "warn") for c in verdict["checks"].values())
    assert len(verdict["policy_sha256"]) == 64 and len(verdict["provenance"]["rows_root"]) == 64
    clean = pd.read_parquet(out / "clean.parquet")
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert len(clean) + len(quarantine) == len(frames["incoming"])
    assert quarantine["_pg_position"].tolist() == verdict["quarantined_rows"]
    assert len(quarantine) <= 0.01 * len(frames["incoming"])
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_poisoned_batch_blocks_and_still_names_its_rows(tmp_path, files, frames, capsys):
    inc = frames["incoming"].copy()
    flipped = list(range(0, 600, 8))  # 75 rows, 12.5 %
    inc.loc[flipped, "y"] = inc.loc[flipped, "y"].map({"c0": "c1", "c1": "c0"})
    path = tmp_path / "poisoned.csv"
    inc.to_csv(path, index=False)
    out = tmp_path / "out"
    assert _check(files, out, path) == EXIT_BLOCK
    stdout = capsys.readouterr().out
    assert stdout.startswith("BLOCK") and "flip_fraction_exceeded" in stdout
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["decision"] == "block"
    assert any(r["code"] == "flip_fraction_exceeded" for r in verdict["reasons"])
    assert set(flipped) <= set(verdict["quarantined_rows"]) or \
        len(set(flipped) & set(verdict["quarantined_rows"])) >= 0.9 * len(flipped)
    assert not (out / "clean.parquet").exists()
    assert (out / "quarantine.parquet").exists() and (out / "report.html").exists()


def test_same_inputs_same_verdict_byte_for_byte(tmp_path, files):
    _check(files, tmp_path / "a")
    _check(files, tmp_path / "b")
    assert _stable(tmp_path / "a" / "verdict.json") == _stable(tmp_path / "b" / "verdict.json")
    assert (tmp_path / "a" / "quarantine.parquet").read_bytes() == (tmp_path / "b" / "quarantine.parquet").read_bytes()


@pytest.mark.parametrize(("check", "step"), [("outliers", "fit"), ("outliers", "score"), ("outliers", "summarize"),
                                             ("drift", "run")])
def test_a_crashing_check_blocks_whatever_step_crashes(tmp_path, files, monkeypatch, check, step):
    from poisonguard.checks import REGISTRY

    def boom(*args, **kwargs):
        raise RuntimeError("detector exploded")

    monkeypatch.setitem(REGISTRY, check, dataclasses.replace(REGISTRY[check], **{step: boom}))
    out = tmp_path / "out"
    assert _check(files, out) == EXIT_BLOCK
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["checks"][check]["status"] == "error"
    assert verdict["reasons"] == [{"check": check, "code": "check_error",
                                   "message": f"the {check} check could not run: RuntimeError: detector exploded"}]
    assert not (out / "clean.parquet").exists()


def test_disabled_checks_are_listed_as_skipped(tmp_path, files):
    policy = tmp_path / "p.yml"
    policy.write_text("checks:\n  drift:\n    enabled: false\n")
    out = tmp_path / "out"
    _check(files, out, None, "--policy", str(policy))
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["skipped_checks"] == ["drift"] and "drift" not in verdict["checks"]


@pytest.mark.e2e
def test_console_script_runs_as_a_process(tmp_path, files):
    out = tmp_path / "out"
    exe = [sys.executable, "-m", "poisonguard.cli"]
    proc = subprocess.run([*exe, "check", "--reference", str(files["reference"]), "--incoming",
                           str(files["incoming"]), "--label", "y", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_PROMOTE, proc.stderr
    assert "[poisonguard] label_flips:" in proc.stderr  # progress on stderr
    proc = subprocess.run([*exe, "check", "--reference", str(files["reference"]), "--incoming",
                           str(tmp_path / "missing.csv"), "--label", "y", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
