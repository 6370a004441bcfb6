"""Promotions as git records: the tag names per dataset and the JSON each tag carries.

For a dataset ``NAME`` (letters, digits, ``.``, ``_``, ``-``; by default the tracked file's
name without its suffix):

- ``poisonguard/NAME/v<N>``: annotated tag, never moved: version N as it was promoted
  (v1 is the bootstrap made by ``poisonguard dvc init``);
- ``poisonguard/NAME/promoted``: annotated tag moved to the newest ``v<N>`` on each promotion.
  Training reads ``dvc.api.open(PATH, rev="poisonguard/NAME/promoted")``.

A tag's message is a subject line, a blank line and the :class:`PromotedVersion` as JSON; the
commit it points to has the ``.dvc`` file that records the promoted version's md5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from poisonguard.dvc.gitcmd import git, git_out
from poisonguard.errors import InputError, UsageError

TAG_PREFIX = "poisonguard"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RECORD_SCHEMA = "poisonguard.dvc.promotion/1"


def dataset_name(path: str, name: str | None = None) -> str:
    """``name``, or the tracked file's name without its suffix; checked to make valid tag names."""
    chosen = name if name is not None else Path(path).name.split(".")[0]
    if not _NAME.fullmatch(chosen) or ".." in chosen or chosen.endswith(".lock"):
        raise UsageError(f"dataset name '{chosen}' cannot be used in a git tag. Got it from "
                         f"{'--dataset' if name is not None else path}. Pass --dataset NAME using letters, "
                         "digits, '.', '_' and '-'.")
    return chosen


def promoted_tag(dataset: str) -> str:
    return f"{TAG_PREFIX}/{dataset}/promoted"


def version_tag(dataset: str, version: int) -> str:
    return f"{TAG_PREFIX}/{dataset}/v{version}"


@dataclass(frozen=True)
class PromotedVersion:
    """One promoted version of a dataset. ``dvc_md5``/``sha256``/``size`` are of the promoted
    file; ``provenance`` says what it came from (empty keys for the bootstrap); ``commit`` is
    the commit the tag points to (known once the tag exists)."""

    dataset: str
    version: int
    path: str
    label: str
    dvc_md5: str
    sha256: str
    size: int
    kind: Literal["bootstrap", "gate"]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": RECORD_SCHEMA, "dataset": self.dataset, "version": self.version, "path": self.path,
                "label": self.label, "dvc_md5": self.dvc_md5, "sha256": self.sha256, "size": self.size,
                "kind": self.kind, "provenance": dict(self.provenance), "commit": self.commit}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, commit: str | None = None) -> PromotedVersion:
        return cls(d["dataset"], int(d["version"]), d["path"], d["label"], d["dvc_md5"], d["sha256"],
                   int(d["size"]), d["kind"], dict(d.get("provenance", {})), commit or d.get("commit"))

    @property
    def tag(self) -> str:
        return version_tag(self.dataset, self.version)

    def message(self) -> str:
        record = {k: v for k, v in self.to_dict().items() if k != "commit"}
        return (f"poisonguard: {self.dataset} v{self.version} promoted ({self.kind}) from {self.path}\n\n"
                + json.dumps(record, indent=2, sort_keys=True) + "\n")


def current(root: Path, dataset: str) -> PromotedVersion | None:
    """The promotion ``poisonguard/<dataset>/promoted`` points to, or ``None`` before the first."""
    ref = f"refs/tags/{promoted_tag(dataset)}"
    line = git_out(root, "for-each-ref", "--format=%(objecttype) %(*objectname)", ref)
    if not line:
        return None
    kind, _, commit = line.partition(" ")
    body = git_out(root, "for-each-ref", "--format=%(contents)", ref)
    try:
        record, _ = json.JSONDecoder().raw_decode(body[body.index("{"):])
        if record.get("schema") != RECORD_SCHEMA or kind != "tag":
            raise ValueError(record.get("schema"))
        return PromotedVersion.from_dict(record, commit=commit)
    except (ValueError, KeyError, TypeError):
        raise InputError(f"tag {promoted_tag(dataset)} in {root} is not a poisonguard promotion record. "
                         "Someone else made a tag of that name; rename it or pass another --dataset.") from None


def record(root: Path, promotion: PromotedVersion, commit: str) -> PromotedVersion:
    """Tag ``commit`` as ``v<N>`` (fails if that tag exists: nothing is overwritten), then move
    ``promoted`` to it. Returns the promotion with its commit."""
    git(root, "tag", "--annotate", "--file=-", version_tag(promotion.dataset, promotion.version), commit,
        stdin=promotion.message())
    git(root, "tag", "--force", "--annotate", "--file=-", promoted_tag(promotion.dataset), commit,
        stdin=promotion.message())
    return PromotedVersion.from_dict(promotion.to_dict(), commit=commit)
