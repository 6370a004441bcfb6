"""Reversible quarantine: every held row stays listed with its reasons and scores until a reviewer
releases it (the rows are gated again, then promoted: :func:`poisonguard.workflows.release`) or
rejects it. Each action is a ledger record naming who and why. Rows held or rejected never enter
a reference.

A batch's held rows are the rows of its latest gate run's ``quarantine.parquet``, minus rows
rejected, minus rows a release promoted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poisonguard.errors import InputError, UsageError
from poisonguard.io.outputs import POSITION, REASONS, SCORE_PREFIX
from poisonguard.kernel.hashing import canonical_block, hash_file, row_keys
from poisonguard.store.ledger import Record
from poisonguard.store.records import Actor

if TYPE_CHECKING:
    from poisonguard.store.dataset import DatasetStore


def _latest_gates(store: DatasetStore) -> dict[str, Record]:
    latest: dict[str, Record] = {}
    for record in store.records():
        if record.kind == "gate":
            latest[str(record.body["batch"])] = record
    return latest


def quarantine_file(store: DatasetStore, batch: str) -> pd.DataFrame:
    """The quarantined rows of ``batch``'s latest gate run, after checking the file is the one the
    gate wrote (its SHA-256 is in the verdict)."""
    gate = _latest_gates(store).get(batch)
    if gate is None:
        raise UsageError(f"batch '{batch}' of '{store.dataset}' has no gate run in the ledger. "
                         "'poisonguard quarantine list' shows the batches with held rows.")
    run = Path(gate.body["run_dir"])
    expected = gate.body.get("outputs", {}).get("quarantine.parquet")
    path = run / "quarantine.parquet"
    if not path.exists() or (expected is not None and hash_file(path) != expected):
        raise InputError(f"{path} is missing or is not the file the gate wrote (sha256 differs). Restore it.")
    return pd.read_parquet(path)


def _decided(store: DatasetStore, batch: str) -> tuple[set[int], set[int]]:
    """Positions of ``batch`` rejected, and positions a release promoted."""
    rejected: set[int] = set()
    released: set[int] = set()
    for record in store.records():
        if record.body.get("batch") != batch:
            continue
        if record.kind == "quarantine_reject":
            rejected.update(record.body["rows"])
        elif record.kind == "quarantine_release":
            released.update(record.body["promoted_rows"])
    return rejected, released


def held(store: DatasetStore, batch: str) -> pd.DataFrame:
    """``batch``'s rows still held: data, position, reason codes and scores."""
    q = quarantine_file(store, batch)
    rejected, released = _decided(store, batch)
    return q[~q[POSITION].isin(rejected | released)].reset_index(drop=True)


def summary(store: DatasetStore) -> list[dict[str, Any]]:
    """Per gated batch: its decision and how many rows are held, rejected and released."""
    out = []
    for batch, gate in sorted(_latest_gates(store).items()):
        q = quarantine_file(store, batch)
        rejected, released = _decided(store, batch)
        reasons = pd.Series(",".join(q[REASONS]).split(",")).value_counts() if len(q) else pd.Series(dtype=int)
        out.append({"batch": batch, "decision": gate.body["decision"], "quarantined": len(q),
                    "held": int((~q[POSITION].isin(rejected | released)).sum()), "rejected": len(rejected),
                    "released": len(released), "reasons": {str(k): int(v) for k, v in reasons.items() if k}})
    return out


def check_rows(store: DatasetStore, batch: str, rows: list[int]) -> pd.DataFrame:
    if not rows:
        raise UsageError("name the rows to act on (their positions, as 'poisonguard quarantine show' lists them).")
    h = held(store, batch)
    unknown = sorted(set(rows) - set(h[POSITION].tolist()))
    if unknown:
        raise UsageError(f"row(s) {unknown} of batch '{batch}' are not held in quarantine (never quarantined, "
                         "or already released or rejected). 'poisonguard quarantine show' lists the held rows.")
    return h[h[POSITION].isin(rows)].sort_values(POSITION).reset_index(drop=True)


def reject(store: DatasetStore, batch: str, rows: list[int], *, reviewer: str, reason: str, actor: Actor) -> Record:
    """Reject held rows for good: recorded with who and why; they never enter a reference."""
    need_review(reviewer, reason)
    with store.lock():
        check_rows(store, batch, rows)
        return store.ledger.append("quarantine_reject", {"batch": batch, "rows": sorted(rows), "reviewer": reviewer,
                                                         "reason": reason, "actor": actor.to_dict()})


def need_review(reviewer: str, reason: str) -> None:
    if not reviewer.strip() or not reason.strip():
        raise UsageError("every quarantine action needs --reviewer (who) and --reason (why); both are recorded.")


def denied_keys(store: DatasetStore) -> np.ndarray:
    """Sorted keys of every row ever quarantined in a gate run of the store and not promoted by a
    release: held and rejected rows. :meth:`DatasetStore.reference_path` leaves them out."""
    columns = list(store.info["columns"])
    keys = []
    for batch in _latest_gates(store):
        q = quarantine_file(store, batch)
        _, released = _decided(store, batch)
        q = q[~q[POSITION].isin(released)]
        if len(q):
            keys.append(row_keys(canonical_block(q, columns)))
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)


def describe_rows(frame: pd.DataFrame, limit: int = 50) -> str:
    """Held rows as text for the CLI: position, reasons, scores, then the data."""
    if frame.empty:
        return "no rows held"
    scores = [c for c in frame.columns if str(c).startswith(SCORE_PREFIX)]
    data = [c for c in frame.columns if c not in (POSITION, REASONS) and c not in scores]
    shown = frame.head(limit)
    lines = []
    for _, row in shown.iterrows():
        s = ", ".join(f"{str(c)[len(SCORE_PREFIX):]}={row[c]:.3g}" for c in scores if pd.notna(row[c]) and row[c])
        values = json.dumps({str(c): (None if pd.isna(row[c]) else row[c].item() if hasattr(row[c], "item")
                                      else row[c]) for c in data}, default=str)
        lines.append(f"row {int(row[POSITION])}: {row[REASONS]}  [{s}]\n    {values}")
    if len(frame) > limit:
        lines.append(f"... and {len(frame) - limit} more (use --json for all)")
    return "\n".join(lines)
