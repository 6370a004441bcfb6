"""What the ledger's records say about who did what: the actor of a step, a batch's name, the
body of a gate record, and the outcome of a promotion."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from poisonguard.errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")


@dataclass(frozen=True)
class Actor:
    """Who or what ran a step: the CLI, an Airflow task, a DVC stage; and the person, if any."""

    kind: str = "cli"
    user: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def cli(cls) -> Actor:
        return cls("cli", user=os.environ.get("USER") or os.environ.get("LOGNAME"))


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise UsageError(f"{what} '{value}' must be 1-128 letters, digits, '.', '_', '~' or '-', starting with a "
                         "letter or digit.")
    return value


@dataclass(frozen=True)
class Promotion:
    """The outcome of :meth:`DatasetStore.promote`."""

    batch: str
    promoted: bool
    already: bool
    clean_rows: int
    quarantined_rows: int
    record: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_body(document: Mapping[str, Any], batch: str, digest: str, actor: Actor, key: str,
               out: Path) -> dict[str, Any]:
    prov = document["provenance"]
    return {"batch": batch, "key": key, "verdict_sha256": digest, "decision": document["decision"],
            "reasons": document["reasons"], "quarantined_rows": len(document["quarantined_rows"]),
            "rows": document["rows"]["incoming"], "incoming_sha256": prov["incoming_sha256"],
            "reference_sha256": prov["reference_sha256"], "holdout_sha256": prov.get("holdout_sha256"),
            "rows_root": prov["rows_root"], "policy_sha256": document["policy_sha256"],
            "code_version": document["poisonguard_version"], "actor": actor.to_dict(), "run_dir": str(out.resolve()),
            "outputs": document.get("outputs", {})}
