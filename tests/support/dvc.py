"""Temporary git + DVC projects for the DVC tests: data/credit.parquet tracked by DVC, a local
directory DVC remote, a bare git remote, and a policy that gates in seconds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from poisonguard.cli import main
from poisonguard.errors import EXIT_PROMOTE
from support.policies import fast_policy

ROOT = Path(__file__).resolve().parents[2]
CREDIT = ROOT / "datasets" / "credit"
BIN = Path(sys.executable).parent
# Enough checks to block flips_20 and pass clean_1 in seconds: no GX suite, no Evidently report.
# Schema and drift off, the default label model: the DVC tests are about promotion, on real credit data.
FAST_POLICY = fast_policy(every_check=True, label_flips={"model": "auto", "n_folds": 5}, schema={"enabled": False},
                          drift={"enabled": False})


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(cwd)})
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


@dataclass(frozen=True)
class Project:
    """A git + DVC project tracking data/credit.parquet, with its two remotes and a policy file."""

    repo: Path
    dvc_remote: Path
    git_remote: Path
    policy: Path

    @property
    def data(self) -> Path:
        return self.repo / "data" / "credit.parquet"

    def new_version(self, batch: str, *, add: bool = True) -> None:
        shutil.copyfile(CREDIT / "incoming" / f"{batch}.parquet", self.data)
        if add:
            run(self.repo, "dvc", "add", "-q", "data/credit.parquet")

    def state(self) -> dict[str, object]:
        """Everything a block must leave untouched: refs, HEAD, the .dvc file, cache and remotes."""
        def files(d: Path) -> list[str]:
            return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())

        return {"refs": run(self.repo, "git", "for-each-ref"), "head": run(self.repo, "git", "rev-parse", "HEAD"),
                "dvc_file": (self.repo / "data" / "credit.parquet.dvc").read_text(),
                "cache": files(self.repo / ".dvc" / "cache"), "dvc_remote": files(self.dvc_remote),
                "git_remote": run(self.git_remote, "git", "for-each-ref")}

    def gate(self, out: Path, *extra: str) -> int:
        return main(["dvc", "gate", "data/credit.parquet", "--repo", str(self.repo), "--out", str(out),
                     "--policy", str(self.policy), "-q", *extra])


def build_template(repo: Path) -> Path:
    """A project (git init, dvc init, dvc add) to copy for each test: building it is the slow part."""
    (repo / "data").mkdir(parents=True)
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "git", "config", "user.name", "poisonguard tests")
    run(repo, "git", "config", "user.email", "tests@poisonguard.invalid")
    run(repo, "dvc", "init", "-q")
    run(repo, "dvc", "config", "core.analytics", "false")
    shutil.copyfile(CREDIT / "reference.parquet", repo / "data" / "credit.parquet")
    run(repo, "dvc", "add", "-q", "data/credit.parquet")
    run(repo, "git", "add", "--all")
    run(repo, "git", "commit", "-q", "-m", "credit: first version")
    return repo


def make_project(template: Path, tmp_path: Path, *, trusted: bool = True) -> Project:
    repo = tmp_path / "repo"
    shutil.copytree(template, repo, symlinks=True)
    project = Project(repo, tmp_path / "dvc-remote", tmp_path / "origin.git", tmp_path / "policy.yml")
    project.dvc_remote.mkdir()
    project.policy.write_text(FAST_POLICY)
    run(tmp_path, "git", "init", "-q", "--bare", str(project.git_remote))
    run(repo, "git", "remote", "add", "origin", str(project.git_remote))
    run(repo, "dvc", "remote", "add", "-q", "--default", "storage", str(project.dvc_remote))
    run(repo, "git", "commit", "-q", "-am", "remotes")
    if trusted:
        assert main(["dvc", "init", "data/credit.parquet", "--repo", str(repo), "--label", "status"]) == EXIT_PROMOTE
    return project
