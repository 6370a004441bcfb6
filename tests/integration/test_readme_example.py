"""The README's worked example is a real run: the same command gives the decision, reason and
counts the README shows (timings aside), so the README cannot go stale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from poisonguard.cli import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "datasets" / "synthetic"


def test_the_worked_example_prints_what_the_readme_shows(tmp_path, capsys):
    readme = (ROOT / "README.md").read_text()
    out = tmp_path / "flips_10"
    code = main(["check", "--reference", str(SYNTHETIC / "reference.parquet"), "--holdout",
                 str(SYNTHETIC / "holdout.parquet"), "--incoming", str(SYNTHETIC / "incoming" / "flips_10.parquet"),
                 "--label", "label", "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 1 and "$ echo $?\n1\n" in readme
    for line in stdout.splitlines():  # the BLOCK line (its path aside) and every reason, verbatim
        assert line.replace(str(out), "out/flips_10") in readme, line
    for line in stderr.splitlines():  # every progress line, with the README's own timings
        assert re.sub(r"\(\d+\.\d s\)$", "", line) in readme, line
    verdict = json.loads((out / "verdict.json").read_text())
    truth = set(json.loads((SYNTHETIC / "incoming" / "flips_10.truth.json").read_text())["poisoned_rows"])
    held = set(verdict["quarantined_rows"])
    assert f"{len(held & truth)} of the {len(truth)} flipped rows, and {len(held - truth)} clean ones" in readme
    clean = main(["check", "-q", "--reference", str(SYNTHETIC / "reference.parquet"), "--holdout",
                  str(SYNTHETIC / "holdout.parquet"), "--incoming", str(SYNTHETIC / "incoming" / "clean_2.parquet"),
                  "--label", "label", "--out", str(tmp_path / "clean_2")])
    line = capsys.readouterr().out.strip().replace(str(tmp_path / "clean_2"), "out/clean_2")
    assert clean == 0 and line in readme, line
