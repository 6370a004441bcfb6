"""What an attacker does to the files: append a correctly chained record (signed with their own
key, or not at all), edit a line, and what the tests read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poisonguard.kernel.signing import SigningKey, canonical
from poisonguard.store.ledger import Record, _hash, now


def append_forged(path: Path, kind: str, body: dict[str, Any], key: SigningKey | None = None) -> None:
    """Append a well-formed record that links to the last one, as a forger who knows the format
    would; signed with ``key`` (not the store's) when given."""
    last = json.loads(path.read_bytes().split(b"\n")[-2])
    content = {"seq": last["seq"] + 1, "prev": last["hash"], "kind": kind, "time": now(),
               "body": json.loads(canonical(body))}
    digest = _hash(content)
    record = Record(**content, hash=digest, signature=key.sign(digest.encode()) if key else None,
                    key_id=key.key_id if key else None)
    with open(path, "ab") as f:
        f.write(canonical(record.to_dict()) + b"\n")


def ledger_lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def promoted_batches(world, name: str) -> list[str]:
    """The batches the ledger says were promoted, read without any key (raw, as a check)."""
    from poisonguard.store.ledger import Ledger

    return [r.body["batch"] for r in Ledger(world.root / name / "ledger.jsonl", signed=False).raw_records()
            if r.kind == "promote"]
