"""Gating a DVC-tracked file and promoting the clean version: the mechanism behind
``poisonguard dvc init|gate`` and the Airflow DAG ``poisonguard_dvc_gate``.

A new version (the work tree's, or the one a git revision records) is gated against the last
promoted version of the same path, read through DVC at the commit its ``promoted`` tag points
to. On pass, :func:`promote` writes the clean rows, commits them to DVC and git, tags and pushes.
On block nothing in git or DVC changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from poisonguard import __version__
from poisonguard.dvc import versions
from poisonguard.dvc.gitcmd import git, git_out, is_modified, resolve_commit
from poisonguard.dvc.metrics import write_metrics
from poisonguard.dvc.publish import publish
from poisonguard.dvc.tracked import (
    Digests,
    TrackedPath,
    committed_out,
    copy_committed,
    copy_workspace,
    hash_file,
    locate,
    workspace_out,
)
from poisonguard.dvc.versions import PromotedVersion
from poisonguard.engine.inputs import GateInputs
from poisonguard.errors import InputError, UsageError
from poisonguard.kernel.fsio import atomic_write_bytes
from poisonguard.kernel.telemetry import disable_telemetry
from poisonguard.settings import signing_key
from poisonguard.store.ledger import append_locked

log = logging.getLogger("poisonguard")


class NotPromotedError(InputError):
    """The dataset has no promoted version to gate against yet (exit code 3)."""


class Outcome(StrEnum):
    PROMOTED = "promoted"
    BLOCKED = "blocked"
    ALREADY_PROMOTED = "already_promoted"


@dataclass(frozen=True)
class DvcGateResult:
    """What one DVC gate run did. ``promotion`` is the promoted version after the run (the new
    one on ``promoted``); ``incoming`` the hashes of the version gated; ``out_dir`` holds
    verdict.json, metrics.json and the other outputs (``None`` when nothing was gated)."""

    outcome: Outcome
    dataset: str
    path: str
    source: str
    promotion: PromotedVersion
    incoming: Digests
    rows: int | None = None
    quarantined_rows: int | None = None
    reasons: tuple[str, ...] = ()
    out_dir: str | None = None
    pushed: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome is Outcome.BLOCKED else 0

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": str(self.outcome), "dataset": self.dataset, "path": self.path, "source": self.source,
                "promotion": self.promotion.to_dict(), "incoming": dataclasses.asdict(self.incoming),
                "rows": self.rows, "quarantined_rows": self.quarantined_rows, "reasons": list(self.reasons),
                "out_dir": self.out_dir, "pushed": list(self.pushed)}

    def summary(self) -> str:
        """One line for people: what happened and where the promoted version is."""
        tag = versions.promoted_tag(self.dataset)
        source = self.source if self.source in ("workspace", "HEAD") else f"revision {self.source[:12]}"
        pushed = f"; pushed to {', '.join(self.pushed)}" if self.pushed else ""
        if self.outcome is Outcome.ALREADY_PROMOTED:
            synced = f"; remotes up to date: {', '.join(self.pushed)}" if self.pushed else ""
            return f"ALREADY PROMOTED: {self.path} ({source}) is {self.promotion.tag}; nothing to do{synced}"
        counts = f"{self.quarantined_rows} of {self.rows} rows quarantined"
        if self.outcome is Outcome.BLOCKED:
            return (f"BLOCK: {self.path} ({source}): {counts}; nothing promoted, {tag} stays at "
                    f"{self.promotion.tag}; outputs in {self.out_dir}")
        if self.promotion.kind == "bootstrap":
            return (f"TRUSTED: {self.path} as committed at HEAD is {self.promotion.tag} "
                    f"(commit {str(self.promotion.commit)[:12]}), {tag} set{pushed}")
        return (f"PROMOTE: {self.path} ({source}): {counts}; promoted as {self.promotion.tag} "
                f"(commit {str(self.promotion.commit)[:12]}), {tag} moved{pushed}; outputs in {self.out_dir}")


def init_dvc_path(repo: str | Path, path: str | Path, *, label: str, dataset: str | None = None,
                  push: bool = True, git_remote: str | None = None, dvc_remote: str | None = None) -> DvcGateResult:
    """Mark the version of ``path`` committed at HEAD as trusted: tag it ``v1`` and ``promoted``.

    The ``.dvc`` file must be committed unchanged and the work tree's file must match it.
    Re-running on the same version is a no-op; on another version it is a :class:`UsageError`.
    """
    disable_telemetry()
    tracked = locate(repo, path)
    name = versions.dataset_name(tracked.path, dataset)
    if is_modified(tracked.root, tracked.dvc_file):
        raise InputError(f"{tracked.dvc_file} has changes not committed to git. 'init' trusts the committed "
                         "version: commit the .dvc file (or restore it) first.")
    head = resolve_commit(tracked.root, "HEAD")
    out = workspace_out(tracked)
    previous = versions.current(tracked.root, name)
    with tempfile.TemporaryDirectory(prefix="poisonguard-dvc-") as tmp:
        copy = Path(tmp) / Path(tracked.path).name
        copy_workspace(tracked, out, copy)
        digests = copy_committed(tracked, head, out, copy, what="the committed version")
        _require_column(copy, label)
        if previous is not None:
            _same_path(previous, tracked)
            if previous.dvc_md5 != digests.dvc_md5:
                raise UsageError(f"dataset '{name}' already has a promoted version ({previous.tag}, md5 "
                                 f"{previous.dvc_md5}). Gate new versions with 'poisonguard dvc gate "
                                 f"{tracked.path}'.")
            pushed = _publish(tracked, previous, push, git_remote, dvc_remote)
            return DvcGateResult(Outcome.ALREADY_PROMOTED, name, tracked.path, "HEAD", previous, digests,
                                 pushed=pushed)
        bootstrap = PromotedVersion(name, 1, tracked.path, label, digests.dvc_md5, digests.sha256, digests.size,
                              "bootstrap", {"trusted_commit": head, "poisonguard_version": __version__})
        promotion, pushed = promote(tracked, bootstrap, copy, push=push, git_remote=git_remote,
                                    dvc_remote=dvc_remote)
    return DvcGateResult(Outcome.PROMOTED, name, tracked.path, "HEAD", promotion, digests, pushed=pushed)


def gate_dvc_path(repo: str | Path, path: str | Path, *, out_dir: str | Path, label: str | None = None,
                  rev: str | None = None, policy: str | Path | None = None, holdout: str | Path | None = None,
                  id_column: str | None = None, dataset: str | None = None, push: bool = True,
                  git_remote: str | None = None, dvc_remote: str | None = None,
                  progress: Callable[[str], None] | None = None) -> DvcGateResult:
    """Gate a version of the DVC-tracked file ``path`` (in ``repo``) against its promoted version.

    ``rev=None`` gates the work tree's file, which must match its ``.dvc`` file; a git ``rev``
    gates the version its ``.dvc`` file records there. ``label`` defaults to the one recorded at
    ``init``; ``policy`` to ``checks/<dataset>.yml`` in the repo when that exists. Writes the
    gate's outputs and ``metrics.json`` to ``out_dir``. Raises :class:`InputError` (exit 3) for
    a path that is untracked, tampered, dirty or has no promoted version yet.
    """
    disable_telemetry()
    tracked = locate(repo, path)
    name = versions.dataset_name(tracked.path, dataset)
    previous = versions.current(tracked.root, name)
    if previous is None:
        raise NotPromotedError(f"dataset '{name}' ({tracked.path}) has no promoted version to gate against. Mark "
                               f"the committed version as trusted once with 'poisonguard dvc init {tracked.path} "
                               "--label COLUMN'.")
    _same_path(previous, tracked)
    if policy is None and (tracked.root / "checks" / f"{name}.yml").is_file():
        policy = tracked.root / "checks" / f"{name}.yml"
    with tempfile.TemporaryDirectory(prefix="poisonguard-dvc-") as tmp:
        incoming = Path(tmp) / "incoming" / Path(tracked.path).name
        reference = Path(tmp) / "reference" / Path(tracked.path).name
        incoming.parent.mkdir()
        reference.parent.mkdir()
        source, digests = _copy_incoming(tracked, rev, incoming)
        if digests.dvc_md5 in (previous.dvc_md5, previous.provenance.get("incoming_dvc_md5")):
            pushed = _publish(tracked, previous, push, git_remote, dvc_remote)
            return DvcGateResult(Outcome.ALREADY_PROMOTED, name, tracked.path, source, previous, digests,
                                 pushed=pushed)
        assert previous.commit is not None
        ref_out = committed_out(tracked, previous.commit)
        if ref_out is None or ref_out.md5 != previous.dvc_md5:
            raise InputError(f"{previous.tag} points to commit {previous.commit[:12]}, whose {tracked.dvc_file} does "
                             f"not record the promoted md5 {previous.dvc_md5}. The tag was moved by hand; restore it.")
        ref_digests = copy_committed(tracked, previous.commit, ref_out, reference,
                                     what=f"the promoted version {previous.tag}")
        inputs = GateInputs(reference, incoming, label or previous.label, holdout=holdout, policy=policy,
                            id_column=id_column)
        verdict = _run_gate(inputs, out_dir, progress=progress,
                            dvc={"path": tracked.path, "source": source, "incoming_dvc_md5": digests.dvc_md5,
                                 "reference_dvc_md5": ref_digests.dvc_md5, "reference_tag": previous.tag,
                                 "reference_commit": previous.commit})
        quarantined = len(verdict["quarantined_rows"])
        rows = int(verdict["provenance"].get("rows") or 0) or None
        result = DvcGateResult(Outcome.BLOCKED, name, tracked.path, source, previous, digests, rows, quarantined,
                               tuple(f"{r['check']}/{r['code']}: {r['message']}" for r in verdict["reasons"]),
                               str(out_dir))
        if verdict["decision"] != "promote":
            return result
        candidate = _clean_version(tracked, incoming, Path(out_dir), has_quarantine=quarantined > 0)
        clean = hash_file(candidate, workspace_out(tracked).hash_name)
        gated = PromotedVersion(name, previous.version + 1, tracked.path, label or previous.label, clean.dvc_md5,
                          clean.sha256, clean.size, "gate", _provenance(verdict, digests, source, previous, out_dir))
        promotion, pushed = promote(tracked, gated, candidate, push=push, git_remote=git_remote,
                                    dvc_remote=dvc_remote)
        return dataclasses.replace(result, outcome=Outcome.PROMOTED, promotion=promotion, pushed=pushed)


def promote(tracked: TrackedPath, promotion: PromotedVersion, candidate: Path, *, push: bool = True,
            git_remote: str | None = None, dvc_remote: str | None = None) -> tuple[PromotedVersion, tuple[str, ...]]:
    """The one place where a version becomes the promoted one (the ``init`` bootstrap included),
    in this order: ``candidate`` replaces the work tree's file (atomically; skipped when they are
    the same bytes), DVC commits it to the cache and the ``.dvc`` file, git commits the ``.dvc``
    file alone (skipped when HEAD already records it), the version tag is created and
    ``promoted`` moved, then data and tags are pushed. Each step checks the md5 it produced."""
    root = tracked.root
    if hash_file(tracked.file).sha256 != promotion.sha256:
        tmp = tracked.file.with_name(f".{tracked.file.name}.tmp-{os.getpid()}")
        shutil.copyfile(candidate, tmp)
        os.replace(tmp, tracked.file)
    _dvc_commit(tracked)
    if workspace_out(tracked).md5 != promotion.dvc_md5:
        raise InputError(f"{tracked.path} changed while it was being promoted; nothing was committed to git. "
                         f"Restore it with 'git checkout {tracked.dvc_file} && dvc checkout {tracked.path}'.")
    if is_modified(root, tracked.dvc_file):
        git(root, "commit", "--quiet", "--no-edit", "--file=-", "--", tracked.dvc_file,
            stdin=f"poisonguard: promote {promotion.dataset} v{promotion.version}\n\n"
                  f"{tracked.path} passed the gate; the .dvc file now records its clean version "
                  f"(md5 {promotion.dvc_md5}).\n")
    commit = git_out(root, "rev-parse", "HEAD")
    committed = committed_out(tracked, commit)
    if committed is None or committed.md5 != promotion.dvc_md5:
        raise InputError(f"HEAD ({commit[:12]}) does not record the promoted md5 of {tracked.path}; "
                         "nothing was tagged. Commit the .dvc file and re-run.")
    recorded = versions.record(root, promotion, commit)
    # Once per promotion, after the tags exist and before anything is pushed.
    append_locked(ledger_path(root, promotion.dataset), "promote",
                  recorded.to_dict() | {"actor": {"kind": "dvc"}}, signing_key())
    return recorded, _publish(tracked, recorded, push, git_remote, dvc_remote)


def ledger_path(root: Path, dataset: str) -> Path:
    """The dataset's tamper-evident ledger beside the DVC project's files (verify with
    ``poisonguard ledger verify --ledger PATH``). Git ignores the folder: the annotated tags are
    git's record of each promotion; the ledger is the gate's own."""
    folder = root / ".poisonguard"
    folder.mkdir(exist_ok=True)
    if not (folder / ".gitignore").exists():
        (folder / ".gitignore").write_text("# poisonguard's ledger and lock files: not versioned by git\n*\n")
    return folder / f"{dataset}.ledger.jsonl"


def _publish(tracked: TrackedPath, promotion: PromotedVersion, push: bool, git_remote: str | None,
             dvc_remote: str | None) -> tuple[str, ...]:
    if not push:
        return ()
    return publish(tracked.root, tracked.dvc_file, promotion, dvc_remote=dvc_remote, git_remote=git_remote)


def _dvc_commit(tracked: TrackedPath) -> None:
    from dvc.repo import Repo

    with Repo(str(tracked.root)) as repo:
        repo.scm_context.quiet = True  # we commit the .dvc file ourselves; no "run git add" hint
        repo.add(str(tracked.file))


def _copy_incoming(tracked: TrackedPath, rev: str | None, dst: Path) -> tuple[str, Digests]:
    """Copy the version to gate to ``dst``; returns its source ("workspace" or a commit id) and hashes."""
    if rev is None:
        return "workspace", copy_workspace(tracked, workspace_out(tracked), dst)
    commit = resolve_commit(tracked.root, rev)
    out = committed_out(tracked, commit)
    if out is None:
        raise InputError(f"revision '{rev}' ({commit[:12]}) has no {tracked.dvc_file}: {tracked.path} is not "
                         "tracked there. Pass a revision that tracks it.")
    if is_modified(tracked.root, tracked.dvc_file):
        raise InputError(f"{tracked.dvc_file} has uncommitted changes, and promoting '{rev}' would overwrite them. "
                         "Commit or restore the .dvc file first.")
    copy_workspace(tracked, workspace_out(tracked), dst)  # the work tree must not be tampered with either
    return commit, copy_committed(tracked, commit, out, dst, what=f"the version at '{rev}'")


def _run_gate(inputs: GateInputs, out_dir: str | Path, *, progress: Callable[[str], None] | None,
              dvc: Mapping[str, Any]) -> dict[str, Any]:
    """Run the gate, add DVC's md5s beside our SHA-256s in verdict.json's provenance, write metrics.json."""
    from poisonguard.engine.gate import run_gate

    run_gate(inputs, out_dir=out_dir, progress=progress)
    verdict_file = Path(out_dir) / "verdict.json"
    verdict: dict[str, Any] = json.loads(verdict_file.read_text(encoding="utf-8"))
    verdict["provenance"] |= dict(dvc)
    atomic_write_bytes(verdict_file, (json.dumps(verdict, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
    write_metrics(verdict_file)
    return verdict


def _clean_version(tracked: TrackedPath, incoming: Path, out_dir: Path, *, has_quarantine: bool) -> Path:
    """The file to promote: the gated copy itself when no row was quarantined, else the gate's
    clean rows in the tracked file's format."""
    if not has_quarantine:
        return incoming
    clean = out_dir / "clean.parquet"
    if tracked.suffix in (".parquet", ".pq"):
        return clean
    import pandas as pd

    converted = incoming.with_name(f"clean{tracked.suffix}")
    pd.read_parquet(clean).to_csv(converted, index=False, sep="\t" if tracked.suffix == ".tsv" else ",")
    return converted


def _provenance(verdict: Mapping[str, Any], incoming: Digests, source: str, previous: PromotedVersion,
                out_dir: str | Path) -> dict[str, Any]:
    prov = verdict["provenance"]
    verdict_bytes = (Path(out_dir) / "verdict.json").read_bytes()
    return {"source": source, "incoming_dvc_md5": incoming.dvc_md5, "incoming_sha256": prov["incoming_sha256"],
            "rows_root": prov["rows_root"], "rows": prov.get("rows"), "quarantined_rows": len(verdict["quarantined_rows"]),
            "policy_sha256": verdict["policy_sha256"], "reference_version": previous.version,
            "reference_commit": previous.commit, "reference_dvc_md5": previous.dvc_md5,
            "verdict_sha256": hashlib.sha256(verdict_bytes).hexdigest(), "poisonguard_version": __version__}


def _same_path(previous: PromotedVersion, tracked: TrackedPath) -> None:
    if previous.path != tracked.path:
        raise UsageError(f"dataset '{previous.dataset}' is promoted from {previous.path}, not {tracked.path}. "
                         "Pass --dataset NAME to gate this path as a dataset of its own.")


def _require_column(path: Path, label: str) -> None:
    """Refuse to trust a version that has no ``label`` column (it could never be a reference)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            columns = pq.read_schema(path).names
        else:
            columns = list(pd.read_csv(path, nrows=0, sep="\t" if path.suffix.lower() == ".tsv" else ",").columns)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(f"the committed version of {path.name} cannot be read as a table ({type(e).__name__}: "
                         f"{e}). Only Parquet and CSV files can be gated.") from None
    if label not in columns:
        raise InputError(f"label column '{label}' is not in {path.name} (columns: {', '.join(columns[:8])}). "
                         "Pass the right --label.")
