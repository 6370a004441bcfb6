"""Running ``git`` for the DVC gate: one helper that turns failures into one-line errors.

The git CLI is used rather than a library because it is what the user's hooks, config and
credentials are set up for, and its ref and tag semantics are the ones documented.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from poisonguard.errors import InputError, PoisonguardError


class GitError(PoisonguardError):
    """A git command the gate needed failed (exit code 1: nothing new was promoted)."""


def git(repo: Path, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``git -C repo ARGS``; with ``check``, a failure raises :class:`GitError` with git's message."""
    # Never wait on a credential prompt: the gate runs unattended (CI, Airflow, dvc repro).
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, input=stdin, env=env)
    if check and proc.returncode != 0:
        message = " ".join((proc.stderr or proc.stdout).split()) or f"exit code {proc.returncode}"
        raise GitError(f"'git {' '.join(args)}' failed in {repo}: {message}")
    return proc


def git_out(repo: Path, *args: str) -> str:
    return git(repo, *args).stdout.strip()


def repo_root(path: Path) -> Path:
    """The top of the git work tree holding ``path``, which must also be a DVC project."""
    if not path.is_dir():
        raise InputError(f"repository {path} does not exist or is not a directory. Pass the DVC project's folder.")
    proc = git(path, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        raise InputError(f"{path} is not inside a git repository. The DVC gate records promotions in git; "
                         "run it in a DVC project that is a git repository (git init; dvc init).")
    root = Path(proc.stdout.strip())
    if not (root / ".dvc").is_dir():
        raise InputError(f"{root} is a git repository but not a DVC project (no .dvc folder). Run 'dvc init' there.")
    return root


def resolve_commit(repo: Path, rev: str) -> str:
    """The full commit id ``rev`` names, or an :class:`InputError` if it names none."""
    proc = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0:
        raise InputError(f"revision '{rev}' does not name a commit in {repo}. Pass a branch, tag or commit id.")
    return proc.stdout.strip()


def show_file(repo: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit``, or ``None`` when the commit has no such file."""
    proc = git(repo, "show", f"{commit}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def is_modified(repo: Path, path: str) -> bool:
    """Whether ``path`` differs from HEAD in the index or the work tree (or is not in HEAD at all)."""
    if git(repo, "cat-file", "-e", f"HEAD:{path}", check=False).returncode != 0:
        return True
    return git(repo, "diff", "--quiet", "HEAD", "--", path, check=False).returncode != 0


def remotes(repo: Path) -> list[str]:
    return git_out(repo, "remote").split()
