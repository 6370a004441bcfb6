"""Pushing a promotion: the promoted data to the DVC remote first, then the tags to the git remote,
so a tag never reaches others before the data it names. Both pushes are idempotent, so
re-running after a failed push finishes the job."""

from __future__ import annotations

from pathlib import Path

from poisonguard.dvc.gitcmd import git, remotes
from poisonguard.dvc.versions import PromotedVersion, promoted_tag
from poisonguard.errors import PoisonguardError


class PublishError(PoisonguardError):
    """The promotion is recorded locally but could not be pushed (exit code 1). Re-run to retry."""


def dvc_remote_name(root: Path, name: str | None) -> str | None:
    """``name``, else the project's default DVC remote, else ``None`` (nothing is pushed)."""
    if name is not None:
        return name
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        default = repo.config["core"].get("remote")
    return str(default) if default else None


def git_remote_name(root: Path, name: str | None) -> str | None:
    """``name``, else ``origin``, else the only remote, else ``None`` (nothing is pushed)."""
    if name is not None:
        return name
    names = remotes(root)
    if "origin" in names:
        return "origin"
    return names[0] if len(names) == 1 else None


def publish(root: Path, dvc_file: str, promotion: PromotedVersion, *, dvc_remote: str | None = None,
            git_remote: str | None = None) -> tuple[str, ...]:
    """Push what ``promotion``'s commit records for ``dvc_file``, then its version tag and the moved
    ``promoted`` tag. Returns what was pushed to, e.g. ``("dvc:storage", "git:origin")``."""
    assert promotion.commit is not None
    pushed: list[str] = []
    dvc_name = dvc_remote_name(root, dvc_remote)
    if dvc_name is not None:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        try:
            with Repo(str(root)) as repo:
                repo.push(targets=[dvc_file], remote=dvc_name, revs=[promotion.commit], workspace=False)
        except DvcException as e:
            raise PublishError(f"{promotion.tag} is promoted locally, but 'dvc push' to remote '{dvc_name}' failed "
                               f"({' '.join(str(e).split())}). Fix the remote and re-run the same command to push."
                               ) from None
        pushed.append(f"dvc:{dvc_name}")
    git_name = git_remote_name(root, git_remote)
    if git_name is not None:
        version_ref = f"refs/tags/{promotion.tag}"
        moving_ref = f"refs/tags/{promoted_tag(promotion.dataset)}"
        proc = git(root, "push", "--quiet", git_name, f"{version_ref}:{version_ref}", f"+{moving_ref}:{moving_ref}",
                   check=False)
        if proc.returncode != 0:
            raise PublishError(f"{promotion.tag} is promoted locally (and its data pushed), but 'git push {git_name}' "
                               f"failed ({' '.join(proc.stderr.split())}). Re-run the same command to push the tags.")
        pushed.append(f"git:{git_name}")
    return tuple(pushed)
