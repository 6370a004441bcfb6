"""What runs across the engine and the store: gating a batch *into* a store (the trusted side
comes from the store, the run is recorded in its ledger, a passing batch is promoted into it) and
releasing quarantined rows (gated again, then promoted). The CLI's ``poisonguard gate`` and
``quarantine release`` and the tests run these; Airflow runs the same steps as separate tasks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from poisonguard.engine.gate import run_gate
from poisonguard.engine.inputs import GateInputs
from poisonguard.engine.policy import Policy
from poisonguard.io.outputs import POSITION, REASONS, SCORE_PREFIX
from poisonguard.io.reading import DETECT, CsvFormat
from poisonguard.kernel.results import GateRun
from poisonguard.store.dataset import DatasetStore, quarantine
from poisonguard.store.records import Actor, Promotion, check_name


def default_key() -> str:
    """A batch's place in the order of promotions when none is given: now, as ISO 8601 UTC (so
    Airflow's ISO logical dates and manual runs sort together)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def store_inputs(store: DatasetStore, incoming: str | Path, *, key: str, policy: Policy | str | Path | None = None,
                 id_column: str | None = None, csv_format: CsvFormat = DETECT) -> GateInputs:
    """What a batch of ``store`` is gated against as of ``key``: the golden reference plus every
    batch promoted with a smaller key (so dates are independent and a re-run sees the same
    reference), the store's holdout, label and golden reference, and the store's fitted state."""
    return GateInputs(store.reference_path(before=key), incoming, store.label, holdout=store.holdout_path,
                      golden=store.golden_path, policy=policy, id_column=id_column, state=store.state_dir,
                      csv_format=csv_format)


def gate_batch(store: DatasetStore, incoming: str | Path, batch: str, *, actor: Actor,
               policy: Policy | str | Path | None = None, promote: bool = True, key: str | None = None,
               id_column: str | None = None, progress: Callable[[str], None] | None = None,
               lock_timeout: float = 600.0, csv_format: CsvFormat = DETECT) -> tuple[GateRun, Promotion | None]:
    """Gate ``incoming`` as ``batch`` against the store's reference as of ``key`` (golden +
    batches promoted before it), record the run, and promote it when it passes and ``promote``.

    The dataset's lock is held throughout, so runs on one dataset are serialised."""
    check_name(batch, "batch")
    key = key or default_key()
    with store.lock(lock_timeout):
        inputs = store_inputs(store, incoming, key=key, policy=policy, id_column=id_column, csv_format=csv_format)
        run = run_gate(inputs, out_dir=store.run_dir(batch), progress=progress, signing_key=store.key)
        store.record_gate(store.run_dir(batch), batch, actor, key=key)
        promotion = None
        if promote and run.verdict.promoted:
            promotion = store.promote(store.run_dir(batch), batch, actor, key=key)
    return run, promotion


def release(store: DatasetStore, batch: str, rows: list[int], *, reviewer: str, reason: str, actor: Actor,
            policy: Any = None) -> dict[str, Any]:
    """Release held rows: they are gated again against the current reference as batch
    ``<batch>~release-<n>``; the ones that pass are promoted, the ones the gate holds again stay
    held. Recorded with who and why, and what came of it."""
    quarantine.need_review(reviewer, reason)
    with store.lock():
        chosen = quarantine.check_rows(store, batch, rows)
        n = 1 + sum(1 for r in store.records() if r.kind == "quarantine_release" and r.body["batch"] == batch)
        release_batch = f"{batch}~release-{n}"
        data = chosen.drop(columns=[c for c in chosen.columns if c in (POSITION, REASONS)
                                    or str(c).startswith(SCORE_PREFIX)])
        incoming = store.work_dir(release_batch) / "released.parquet"
        incoming.parent.mkdir(parents=True, exist_ok=True)
        data.to_parquet(incoming, index=False)
        run, promotion = gate_batch(store, incoming, release_batch, actor=actor, policy=policy)
        positions = chosen[POSITION].to_numpy()
        again = np.asarray(run.verdict.quarantined_rows, dtype=np.int64)
        promoted = sorted(int(p) for i, p in enumerate(positions) if promotion is not None and i not in set(again))
        record = store.ledger.append("quarantine_release", {
            "batch": batch, "rows": sorted(rows), "reviewer": reviewer, "reason": reason, "actor": actor.to_dict(),
            "release_batch": release_batch, "decision": str(run.verdict.decision), "promoted_rows": promoted,
            "still_held": sorted(int(p) for p in positions if int(p) not in promoted),
            "reasons": [r.to_dict() for r in run.verdict.reasons]})
    return dict(record.body) | {"seq": record.seq}
