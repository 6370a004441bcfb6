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

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"


def dvc(project: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent  # `poisonguard` and `python` of this environment, for the stages
    # The stages' `poisonguard` runs this checkout's code, whichever checkout the environment was installed from.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(project), "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(SRC)}
    proc = subprocess.run([str(bin_dir / "dvc"), *args], cwd=project, capture_output=True, text=True, check=False,
                          env=env)
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


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _ignored(project: Path, path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=project, check=False).returncode == 0


def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "poisonguard tests")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "tests@poisonguard.invalid")


def _declared(project: Path) -> set[str]:
    """Every path dvc.yaml lists as an output or a metrics file."""
    import yaml

    paths = set()
    for stage in yaml.safe_load((project / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            paths.update([entry] if isinstance(entry, str) else entry)
    return paths


def _unlisted(project: Path, out: str) -> list[str]:
    """Files the stage wrote under ``out`` that are neither in dvc.yaml nor git-ignored: what
    ``git add -A`` would commit without anyone having asked for it."""
    written = sorted(str(p.relative_to(project)) for p in (project / out).rglob("*") if p.is_file())
    return [f for f in written if f not in _declared(project) and not _ignored(project, f)]


def _status(project: Path) -> list[str]:
    lines = _git(project, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    return sorted(line[3:] for line in lines)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_example_as_the_readme_runs_it_blocks_and_git_sees_only_the_metrics(tmp_path, monkeypatch, capsys):
    """``poisonguard dvc example DIR`` with no more flags (the checkout's credit data, every
    check): the gate writes its heavy reports too, and git sees none of them."""
    _git_identity(monkeypatch)
    project = tmp_path / "example"
    assert main(["dvc", "example", str(project)]) == 0
    assert capsys.readouterr().out.startswith(f"example DVC project in {project}")
    dvc(project, "repro", ok=False)  # flips_20 with the default policy: blocked
    written = {p.name for p in (project / "gate").iterdir()}
    assert {"schema_suite.json", "report.html", "verdict.json", "metrics.json"} <= written
    assert ("drift.html" in written) == _drift_found(project)
    assert _unlisted(project, "gate") == []
    assert _status(project) == ["gate/metrics.json"]
    metrics = json.loads((project / "gate" / "metrics.json").read_text())
    assert metrics["promoted"] == 0 and metrics["checks.label_flips.status"] == 2, metrics
    assert len(metrics) <= 20 and "checks.label_flips.mean_surprise" not in metrics


def _drift_found(project: Path) -> bool:
    """Whether the gate's drift check saw a column or the label drift (then it writes drift.html)."""
    columns = json.loads((project / "gate" / "verdict.json").read_text())["checks"]["drift"]["metrics"]["columns"]
    return any(c["drifted"] for c in columns.values())


def _fenced_after(text: str, marker: str) -> str:
    """The first fenced block after ``marker`` in ``text``."""
    after = text[text.index(marker):]
    start = after.index("```")
    body = after[after.index("\n", start) + 1:]
    return body[:body.index("```")]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_readme_gate_stage_as_written_leaves_only_its_metrics_to_git(tmp_path, monkeypatch):
    """The README's dvc.yaml and .gitignore lines, verbatim, in a fresh project: after a passing
    ``dvc repro gate`` with every check, git would add dvc.lock and the metrics, nothing else."""
    _git_identity(monkeypatch)
    readme, docs = (ROOT / "README.md").read_text(), (ROOT / "docs" / "dvc.md").read_text()
    stage_yaml = _fenced_after(readme, "### `poisonguard dvc`")
    ignore = _fenced_after(readme, "add to the project's `.gitignore`")
    assert stage_yaml.replace("      # was", "   # was") in docs and f"```\n{ignore}```" in docs  # docs/dvc.md agrees
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copyfile(CREDIT / "reference.parquet", project / "data" / "reference.parquet")
    shutil.copyfile(CREDIT / "incoming" / "clean_1.parquet", project / "data" / "incoming.parquet")
    (project / "dvc.yaml").write_text(stage_yaml)
    (project / ".gitignore").write_text(ignore)
    _git(project, "init", "-q")
    dvc(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "data and pipeline")
    dvc(project, "repro", "gate")
    assert (project / "gate" / "clean.parquet").exists()
    assert (project / "gate" / "drift.html").exists() == _drift_found(project)
    assert _unlisted(project, "gate") == []
    assert _status(project) == ["dvc.lock", "gate/metrics.json"]


@pytest.mark.slow
def test_metrics_json_with_every_check_holds_at_most_20_documented_numbers(tmp_path, capsys):
    """All eight built-in checks run (``--golden`` for cumulative): 19 numbers, each documented."""
    out = tmp_path / "gate"
    code = main(["dvc", "stage", "check", "-q", "--reference", str(CREDIT / "reference.parquet"), "--incoming",
                 str(CREDIT / "incoming" / "clean_1.parquet"), "--label", "status", "--golden",
                 str(CREDIT / "reference.parquet"), "--out", str(out)])
    assert code == 0 and capsys.readouterr().err == ""  # -q reaches the stage's check
    verdict = json.loads((out / "verdict.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(verdict["checks"]) == {"provenance", "schema", "outliers", "label_flips", "backdoor", "baseline",
                                      "drift", "cumulative"}
    assert len(metrics) == 19 and all(isinstance(v, int | float) for v in metrics.values())
    docs = (ROOT / "docs" / "dvc.md").read_text()
    undocumented = [k for k in metrics if f"`{k}`" not in docs and f"`checks.<id>.{k.rsplit('.', 1)[1]}`" not in docs]
    assert undocumented == []
    for name, check in verdict["checks"].items():  # each figure is the verdict's own number
        headline = next(k for k in metrics if k.startswith(f"checks.{name}.") and not k.endswith(".status"))
        assert metrics[headline] == round(check["metrics"][headline.rsplit(".", 1)[1]], 6)
