"""A kill -9 at any moment of a promotion leaves the old state or the new one, never a mix; runs
on one dataset are serialised, runs on different datasets are not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from poisonguard.kernel.hashing import canonical_block, hash_file, row_keys
from poisonguard.store.dataset import DatasetStore
from poisonguard.store.ledger import verify
from poisonguard.store.records import Actor
from poisonguard.workflows import gate_batch
from support.data import batch_file

ACTOR = Actor("test")

# Imports everything first, says "ready", waits for a line, then promotes: so a kill lands in
# the promotion itself, not in Python's start-up.
DRIVER = """
import sys
from poisonguard.store import Actor, DatasetStore
store = DatasetStore(sys.argv[1], "toy")
print("ready", flush=True)
sys.stdin.readline()
store.promote(store.run_dir("b1"), "b1", Actor("crash-test"), key="2026-01-01")
print("done", flush=True)
"""


def _state(root) -> str:
    """'old' or 'new' after checking the store is consistent; fails on any mix."""
    store = DatasetStore(root, "toy")
    assert not [p for p in verify(store.ledger) if p.tampering], verify(store.ledger)
    kinds = [r.kind for r in store.records()]
    golden = len(pd.read_parquet(store.golden_path))
    reference = pd.read_parquet(store.reference_path())
    if kinds == ["create", "gate"]:
        assert len(reference) == golden
        return "old"
    assert kinds == ["create", "gate", "promote"], kinds
    record = store.promoted()[0]
    clean = store.path / "batches" / "b1" / "clean.parquet"
    assert hash_file(clean) == record["clean_sha256"]
    assert len(reference) == golden + record["clean_rows"]
    return "new"


@pytest.mark.slow
def test_kill_9_at_random_points_of_a_promotion_leaves_old_or_new_state(tmp_path, files, fast_policy):
    import shutil

    template = tmp_path / "template"
    store = DatasetStore.create(template, "toy", golden=files["reference"], label="y", holdout=files["holdout"],
                                unsigned=True)
    gate_batch(store, batch_file(tmp_path, "b1", seed=81), "b1", actor=ACTOR, policy=fast_policy, promote=False)

    def promote_in_driver(root, kill_after: float | None) -> float:
        """Run the driver's promotion; kill -9 it ``kill_after`` seconds after 'go'. Returns the time
        from 'go' to the end (or the kill)."""
        with subprocess.Popen([sys.executable, "-c", DRIVER, str(root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout.readline().strip() == "ready"
            t0 = time.perf_counter()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            if kill_after is None:
                assert proc.stdout.readline().strip() == "done"
            else:
                time.sleep(kill_after)
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            return time.perf_counter() - t0

    # How long one promotion takes, unkilled (the slowest of three: the machine may be busy).
    durations = []
    for i in range(3):
        shutil.copytree(template, tmp_path / f"timing{i}")
        durations.append(promote_in_driver(tmp_path / f"timing{i}", None))
        assert _state(tmp_path / f"timing{i}") == "new"
    window = 1.5 * max(durations)

    rng = np.random.default_rng(2026)
    seen = {"old": 0, "new": 0}
    for i in range(60):
        root = tmp_path / f"run{i}"
        shutil.copytree(template, root)
        promote_in_driver(root, rng.uniform(0, window))
        seen[_state(root)] += 1
        # Whatever the crash left, promoting again completes it exactly once.
        DatasetStore(root, "toy").promote(DatasetStore(root, "toy").run_dir("b1"), "b1", ACTOR, key="2026-01-01")
        assert _state(root) == "new"
        shutil.rmtree(root)
    assert seen["old"] >= 1 and seen["new"] >= 1, seen  # both sides of the commit point were hit


@pytest.mark.slow
def test_four_concurrent_runs_on_one_dataset_leave_one_consistent_ledger(tmp_path, store, fast_policy):
    batches = {f"b{i}": batch_file(tmp_path, f"b{i}", seed=90 + i) for i in range(4)}
    procs = [subprocess.Popen([sys.executable, "-m", "poisonguard.cli", "gate", "-q", "--store", str(store.path.parent),
                               "--dataset", "toy", "--incoming", str(path), "--batch", name, "--policy",
                               str(fast_policy)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, path in batches.items()]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [r[1][-500:] for r in results]
    assert verify(store.ledger) == []
    records = store.records()
    assert sorted(r.body["batch"] for r in records if r.kind == "promote") == sorted(batches)
    # Serialised: each run's gate and promote records are adjacent (no run interleaved with another).
    kinds = [(r.kind, r.body.get("batch")) for r in records[1:]]
    assert all(kinds[i][1] == kinds[i + 1][1] for i in range(0, 8, 2))
    columns = list(store.info["columns"])
    reference = pd.read_parquet(store.reference_path())
    golden = pd.read_parquet(store.golden_path)
    promoted_rows = sum(p["clean_rows"] for p in store.promoted())
    assert len(reference) == len(golden) + promoted_rows
    clean = pd.concat([pd.read_parquet(store.path / "batches" / b / "clean.parquet") for b in batches])
    assert len(set(row_keys(canonical_block(clean, columns)).tolist())) == len(clean)  # none lost or doubled
    for name, path in batches.items():
        held = set(map(int, pd.read_parquet(store.run_dir(name) / "quarantine.parquet")["_pg_position"]))
        assert len(pd.read_parquet(store.path / "batches" / name / "clean.parquet")) + len(held) == \
            len(pd.read_parquet(path))


def test_a_locked_dataset_times_out_clearly_and_other_datasets_proceed(tmp_path, store, files, fast_policy, capsys):
    from poisonguard.cli import main

    other = DatasetStore.create(store.path.parent, "other", golden=files["reference"], label="y",
                                holdout=files["holdout"], unsigned=True)
    incoming = batch_file(tmp_path, "b", seed=99)
    holder = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid %d' % os.getpid()); print('locked', flush=True); "
              "time.sleep(120)")
    with subprocess.Popen([sys.executable, "-c", holder, str(store.path / ".lock")], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout.readline().strip() == "locked"
        code = main(["gate", "-q", "--store", str(store.path.parent), "--dataset", "toy", "--incoming", str(incoming),
                     "--batch", "b", "--policy", str(fast_policy), "--lock-timeout", "0.5"])
        err = capsys.readouterr().err
        assert code == 4 and "dataset 'toy' is locked by pid" in err and "Traceback" not in err
        assert main(["gate", "-q", "--store", str(store.path.parent), "--dataset", "other", "--incoming",
                     str(incoming), "--batch", "b", "--policy", str(fast_policy)]) == 0
        proc.kill()
    assert store.promoted() == [] and [p["batch"] for p in other.promoted()] == ["b"]
