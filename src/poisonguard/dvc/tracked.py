"""A DVC-tracked file: where its ``.dvc`` file is, what hash DVC records for it, and copies of
its versions (the work tree's or a commit's) taken with both DVC's md5 and our SHA-256.

Copies are hashed as they are written, and gated and promoted from the copy, so the bytes
that were checked are the bytes that get committed, even if the file changes meanwhile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import yaml

from poisonguard.dvc.gitcmd import repo_root, show_file
from poisonguard.errors import InputError

_CHUNK = 1 << 20


class NotTrackedError(InputError):
    """The path is not a file tracked by its own ``.dvc`` file (exit code 3)."""


class TamperedPathError(InputError):
    """A version's bytes do not match the md5 DVC recorded for them (exit code 3)."""


@dataclass(frozen=True)
class DvcOut:
    """What a ``.dvc`` file records about its one output. ``hash_name`` is ``md5`` for DVC 3
    files and ``md5-dos2unix`` for DVC 2 files (no ``hash`` field)."""

    md5: str
    size: int | None
    hash_name: str


@dataclass(frozen=True)
class Digests:
    """Hashes of one copy of a version: DVC's md5 (by the out's ``hash_name``) and SHA-256."""

    dvc_md5: str
    sha256: str
    size: int


@dataclass(frozen=True)
class TrackedPath:
    """A file tracked by DVC in the git work tree ``root``; paths are POSIX, relative to ``root``."""

    root: Path
    path: str
    dvc_file: str

    @property
    def file(self) -> Path:
        return self.root / self.path

    @property
    def suffix(self) -> str:
        return Path(self.path).suffix.lower()


def locate(repo: str | Path, path: str | Path) -> TrackedPath:
    """Find the git + DVC project holding ``path`` (relative to ``repo`` or absolute) and its ``.dvc`` file."""
    root = repo_root(Path(repo).resolve())
    target = (Path(repo) / path).resolve()
    try:
        rel = target.relative_to(root).as_posix()
    except ValueError:
        raise InputError(f"{path} is outside the repository {root}. Pass a path inside it.") from None
    tracked = TrackedPath(root, rel, rel + ".dvc")
    if not (root / tracked.dvc_file).is_file():
        raise NotTrackedError(f"{rel} is not tracked by DVC in {root} (there is no {tracked.dvc_file}). "
                              f"Track it with 'dvc add {rel}' and commit the .dvc file.")
    workspace_out(tracked)  # refuse directories and multi-output files early
    return tracked


def parse_out(text: str, tracked: TrackedPath, where: str) -> DvcOut:
    """The output ``tracked.path`` of a ``.dvc`` file's text; ``where`` names it in errors."""
    try:
        doc = yaml.safe_load(text)
        outs = doc["outs"]
        (out,) = [o for o in outs if (Path(tracked.dvc_file).parent / o["path"]).as_posix() == tracked.path]
        md5 = str(out["md5"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        raise NotTrackedError(f"{where} does not record {tracked.path} as one output with an md5. Re-track the "
                              f"file with 'dvc add {tracked.path}'.") from None
    if md5.endswith(".dir"):
        raise NotTrackedError(f"{tracked.path} is a directory tracked by DVC; the DVC gate promotes single files "
                              "(Parquet or CSV). Track the dataset as one file.")
    size = out.get("size")
    return DvcOut(md5, int(size) if size is not None else None, "md5" if out.get("hash") == "md5" else "md5-dos2unix")


def workspace_out(tracked: TrackedPath) -> DvcOut:
    """What the work tree's ``.dvc`` file records."""
    text = (tracked.root / tracked.dvc_file).read_text(encoding="utf-8")
    return parse_out(text, tracked, tracked.dvc_file)


def committed_out(tracked: TrackedPath, commit: str) -> DvcOut | None:
    """What the ``.dvc`` file records at ``commit``, or ``None`` if the commit does not track the path."""
    text = show_file(tracked.root, commit, tracked.dvc_file)
    return None if text is None else parse_out(text, tracked, f"{tracked.dvc_file} at {commit[:12]}")


def _stream(src: BinaryIO, sink: BinaryIO | None) -> tuple[str, str, int]:
    """Plain md5, SHA-256 and size of ``src``, written on to ``sink`` when there is one."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        md5.update(chunk)
        sha.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return md5.hexdigest(), sha.hexdigest(), size


def _dvc_md5(path: Path, hash_name: str, plain_md5: str) -> str:
    if hash_name == "md5":
        return plain_md5
    from dvc_data.hashfile.hash import file_md5  # DVC 2 hashed text files with CRLF turned into LF

    return str(file_md5(str(path), name=hash_name))


def copy_hashed(src: BinaryIO, dst: Path, hash_name: str) -> Digests:
    """Copy ``src`` to ``dst``, hashing on the way."""
    with open(dst, "wb") as f:
        md5, sha, size = _stream(src, f)
    return Digests(_dvc_md5(dst, hash_name, md5), sha, size)


def hash_file(path: Path, hash_name: str = "md5") -> Digests:
    """DVC's md5 and our SHA-256 of a file."""
    with open(path, "rb") as f:
        md5, sha, size = _stream(f, None)
    return Digests(_dvc_md5(path, hash_name, md5), sha, size)


def copy_workspace(tracked: TrackedPath, out: DvcOut, dst: Path) -> Digests:
    """Copy the work tree's file; refuse it if it is not the version its ``.dvc`` file records."""
    if not tracked.file.is_file():
        raise InputError(f"{tracked.path} is tracked by DVC but missing from the work tree. "
                         f"Run 'dvc checkout {tracked.path}' (or 'dvc pull') first.")
    with open(tracked.file, "rb") as f:
        got = copy_hashed(f, dst, out.hash_name)
    if got.dvc_md5 != out.md5:
        raise TamperedPathError(
            f"{tracked.path} does not match {tracked.dvc_file}: DVC recorded md5 {out.md5}, the file on disk has "
            f"{got.dvc_md5}. The file was changed behind DVC's back. If it is a new version, run "
            f"'dvc add {tracked.path}' and gate again; otherwise restore it with 'dvc checkout {tracked.path}'.")
    return got


def copy_committed(tracked: TrackedPath, commit: str, out: DvcOut, dst: Path, *, what: str) -> Digests:
    """Copy the version the ``.dvc`` file records at ``commit``, read through DVC's API (cache first,
    then the remote); refuse it if its bytes do not hash to the recorded md5."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        with dvc.api.open(tracked.path, repo=str(tracked.root), rev=commit, mode="rb") as f:
            got = copy_hashed(f, dst, out.hash_name)
    except (DvcException, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{what} of {tracked.path} (commit {commit[:12]}, md5 {out.md5}) cannot be read through "
                         f"DVC ({first}). Run 'dvc fetch' or configure the remote that holds it.") from None
    if got.dvc_md5 != out.md5:
        raise TamperedPathError(f"{what} of {tracked.path} read through DVC (commit {commit[:12]}) hashes to md5 "
                                f"{got.dvc_md5}, not the recorded {out.md5}: the DVC cache or remote is corrupt. "
                                "Check it with 'dvc status -c' and re-fetch the data.")
    return got
