"""The ``dvc repro`` gate: the example project's ``gate`` stage fails on block so ``train`` never
runs, and the verdict's numbers are DVC metrics that ``dvc metrics show/diff`` compare."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from poisonguard.cli import main
from support.dvc import CREDIT, FAST_POLICY


def dvc(project: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent  # `poisonguard` and `python` of this environment, for the stages
    proc = subprocess.run([str(bin_dir / "dvc"), *args], cwd=project, capture_output=True, text=True, check=False,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(project), "DVC_NO_ANALYTICS": "1"})
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


def new_batch(project: Path, batch: str) -> None:
    shutil.copyfile(CREDIT / "incoming" / f"{batch}.parquet", project / "data" / "incoming.parquet")
    dvc(project, "add", "-q", "data/incoming.parquet")


@pytest.mark.e2e
@pytest.mark.slow
def test_dvc_repro_stops_before_train_on_block_and_metrics_compare_versions(tmp_path, monkeypatch, capsys):
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "poisonguard tests")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "tests@poisonguard.invalid")
    policy = tmp_path / "fast.yml"
    policy.write_text(FAST_POLICY)
    project = tmp_path / "example"
    assert main(["dvc", "example", str(project), "--reference", str(CREDIT / "reference.parquet"), "--incoming",
                 str(CREDIT / "incoming" / "flips_20.parquet"), "--label", "status", "--policy", str(policy)]) == 0
    assert capsys.readouterr().out.startswith(f"example DVC project in {project}")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True,
                          text=True).stdout == ""

    blocked = dvc(project, "repro", ok=False)
    assert "failed to reproduce 'gate'" in blocked.stderr and "Running stage 'train'" not in blocked.stdout
    assert not (project / "model").exists() and not (project / "dvc.lock").exists()
    assert not (project / "gate" / "clean.parquet").exists()
    metrics = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    assert metrics[""]["data"]["gate/metrics.json"]["data"]["promoted"] == 0

    state = sorted(p.name for p in (project / ".poisonguard" / "state").iterdir())
    assert state  # the gate stage kept what it fitted on the reference
    new_batch(project, "clean_1")
    passed = dvc(project, "repro")
    assert "label_flips: taken from the fitted state" in passed.stdout + passed.stderr  # same reference: no refit
    assert set(state) <= {p.name for p in (project / ".poisonguard" / "state").iterdir()}
    lock = (project / "dvc.lock").read_text()
    assert "train:" in lock and (project / "model" / "metrics.json").exists()
    subprocess.run(["git", "add", "--all"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "batch 1 passed"], cwd=project, check=True)

    new_batch(project, "clean_2")
    dvc(project, "repro")
    diff = json.loads(dvc(project, "metrics", "diff", "--json").stdout)
    assert diff["gate/metrics.json"]["rows"] == {"old": 445, "new": 446, "diff": 1}
    assert "promoted" not in diff["gate/metrics.json"]  # both passed
    assert diff["model/metrics.json"]["rows"]["diff"] != 0  # train re-ran on the new clean rows
