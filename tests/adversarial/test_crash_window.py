"""kill -9 in the window between the promoted files moving into place and the ledger record that
commits them: the store is as before (the files are ignored), and promoting again completes it once."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from adversarial.conftest import SECRET
from adversarial.helpers import promoted_batches
from poisonguard.store.ledger import Ledger, verify

# Promote 'held', dying by SIGKILL at the last instant before the ledger record is written.
DRIVER = """
import os, signal, sys
from poisonguard.store.ledger import Ledger
from poisonguard.settings import signing_key
from poisonguard.store import Actor, DatasetStore

real_append = Ledger.append
def append(self, kind, body):
    if kind == "promote":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_append(self, kind, body)
Ledger.append = append
store = DatasetStore(sys.argv[1], sys.argv[2], key=signing_key())
store.promote(store.run_dir("held"), "held", Actor("crash-test"))
"""


def test_kill_9_between_files_in_place_and_the_ledger_record(world, capsys):
    for name, key in (("plain", None), ("signed", SECRET)):
        env = dict(os.environ) | ({"POISONGUARD_SIGNING_KEY": key} if key else {})
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(world.root), name], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == -9, proc.stderr
        store_dir = world.root / name
        assert (store_dir / "batches" / "held" / "clean.parquet").exists()  # the files were in place...
        assert promoted_batches(world, name) == ["good"]  # ...but nothing committed them
        from poisonguard.kernel.signing import SigningKey
        from poisonguard.store.dataset import DatasetStore
        from poisonguard.store.records import Actor

        skey = SigningKey.from_text(key) if key else None
        assert not [p for p in verify(Ledger(store_dir / "ledger.jsonl", skey)) if p.tampering]
        store = DatasetStore(world.root, name, key=skey)
        golden = len(pd.read_parquet(store.golden_path))
        good = store.promoted()[0]["clean_rows"]
        assert len(pd.read_parquet(store.reference_path())) == golden + good  # the leftover is not in it
        promotion = store.promote(store.run_dir("held"), "held", Actor("test"))
        assert promotion.promoted and not promotion.already
        assert promoted_batches(world, name) == ["good", "held"]
        assert len(pd.read_parquet(store.reference_path())) == golden + good + promotion.clean_rows
