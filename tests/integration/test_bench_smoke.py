"""The benchmark's quick path on tiny data, so it cannot rot. It asserts that every defence ran
on every scenario and that the report was written, never a quality or wall-clock number (those
are the benchmark's to report, not the test suite's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.e2e
def test_bench_smoke_runs_every_defence_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--work", str(tmp_path / "w")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    meta = json.loads((out / "meta.json").read_text())
    defences = set(meta["defences"])
    assert {"poisonguard", "owasp", "knn"} <= defences
    matrix = [r for r in rows if r["section"] == "matrix"]
    assert {(r["scenario"], r["defence"]) for r in matrix} == {(s, d) for s in ("clean_1", "flips_10") for d in defences}
    assert all(r["decision"] in ("promote", "block") for r in matrix), [r["note"] for r in matrix]
    flips = [r for r in matrix if r["scenario"] == "flips_10"]
    assert all(r["poisoned"] > 0 and r["recall"] is not None for r in flips)
    speed = [r for r in rows if r["section"] == "speed"]
    assert {r["defence"] for r in speed} == defences | {"read+sha256"}
    assert all(r["wall_seconds"] > 0 and r.get("peak_rss_bytes", 1) > 0 for r in speed)
    text = (out / "RESULTS.md").read_text()
    for heading in ("## Targets (issue 6)", "## Quality: the scenario matrix", "## Speed and memory"):
        assert heading in text
