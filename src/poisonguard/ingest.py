"""Gating a batch against a dataset store: the trusted side comes from the store, the run is
recorded in its ledger, and a passing batch is promoted into it. The CLI's ``poisonguard gate``,
the quarantine release and the tests run this; Airflow runs the same steps as separate tasks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from poisonguard.gate import GateRun, run_gate
from poisonguard.policy import Policy
from poisonguard.store import Actor, DatasetStore, Promotion, check_name


def default_key() -> str:
    """A batch's place in the order of promotions when none is given: now, as ISO 8601 UTC (so
    Airflow's ISO logical dates and manual runs sort together)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def gate_batch(store: DatasetStore, incoming: str | Path, batch: str, *, actor: Actor,
               policy: Policy | str | Path | None = None, promote: bool = True, key: str | None = None,
               id_column: str | None = None, progress: Callable[[str], None] | None = None,
               lock_timeout: float = 600.0) -> tuple[GateRun, Promotion | None]:
    """Gate ``incoming`` as ``batch`` against the store's reference as of ``key`` (golden +
    batches promoted before it), record the run, and promote it when it passes and ``promote``.

    The dataset's lock is held throughout, so runs on one dataset are serialised."""
    check_name(batch, "batch")
    key = key or default_key()
    with store.lock(lock_timeout):
        reference = store.reference_path(before=key)
        run = run_gate(reference, incoming, label=store.label, out_dir=store.run_dir(batch),
                       holdout=store.holdout_path, policy=policy, id_column=id_column, progress=progress,
                       signing_key=store.key, golden=store.golden_path)
        store.record_gate(store.run_dir(batch), batch, actor, key=key)
        promotion = None
        if promote and run.verdict.promoted:
            promotion = store.promote(store.run_dir(batch), batch, actor, key=key)
    return run, promotion
