"""Reversible quarantine: list, show, release (re-gated, then promoted) and reject, each recorded;
held and rejected rows never enter a reference."""

from __future__ import annotations

import pandas as pd
import pytest

from poisonguard.cli import main
from poisonguard.errors import UsageError
from poisonguard.io.outputs import POSITION, REASONS
from poisonguard.kernel.hashing import canonical_block, row_keys
from poisonguard.store import quarantine
from poisonguard.store.ledger import verify
from poisonguard.store.records import Actor
from poisonguard.workflows import gate_batch, release
from support.data import batch_file

ACTOR = Actor("test", user="tester")


def _keys(frame, columns):
    return set(row_keys(canonical_block(frame, columns)).tolist())


@pytest.fixture
def gated(store, tmp_path, fast_policy):
    """A promoted batch with a few planted flips (quarantined rows)."""
    incoming = batch_file(tmp_path, "b1", seed=71, flip_fraction=0.007)  # 2 rows: below every batch test
    run, promotion = gate_batch(store, incoming, "b1", actor=ACTOR, policy=fast_policy, key="2026-01-01")
    assert promotion is not None and len(run.verdict.quarantined_rows) >= 2, run.verdict.reasons
    return run


def test_held_rows_are_listed_with_reasons_and_scores(store, gated, capsys):
    held = quarantine.held(store, "b1")
    assert held[POSITION].tolist() == list(gated.verdict.quarantined_rows)
    assert held[REASONS].str.contains("label_flip").any()
    assert any(c.startswith("_pg_score_") for c in held.columns)
    assert main(["quarantine", "list", "--store", str(store.path.parent), "--dataset", "toy"]) == 0
    assert "b1: promote" in capsys.readouterr().out


def test_held_and_rejected_rows_never_enter_the_reference(store, gated):
    columns = list(store.info["columns"])
    reference = pd.read_parquet(store.reference_path())
    held = quarantine.held(store, "b1")
    assert not (_keys(held, columns) & _keys(reference, columns))
    rows = held[POSITION].tolist()[:2]
    record = quarantine.reject(store, "b1", rows, reviewer="ann", reason="confirmed flips", actor=ACTOR)
    assert record.body["reviewer"] == "ann" and record.body["rows"] == sorted(rows)
    assert set(rows).isdisjoint(quarantine.held(store, "b1")[POSITION])
    reference = pd.read_parquet(store.reference_path())
    assert not (_keys(quarantine.quarantine_file(store, "b1"), columns) & _keys(reference, columns))
    with pytest.raises(UsageError, match="not held"):
        quarantine.reject(store, "b1", rows, reviewer="ann", reason="again", actor=ACTOR)


def test_released_rows_are_regated_and_promoted_only_if_they_pass(store, gated, fast_policy):
    held = quarantine.held(store, "b1")
    rows = held[POSITION].tolist()
    out = release(store, "b1", rows, reviewer="bob", reason="spot-checked", actor=ACTOR,
                             policy=fast_policy)
    assert out["release_batch"] == "b1~release-1" and out["reviewer"] == "bob"
    assert sorted(out["promoted_rows"] + out["still_held"]) == sorted(rows)
    # Flipped labels still disagree with trusted data: the re-gate holds them again.
    assert set(out["still_held"]) == set(quarantine.held(store, "b1")[POSITION])
    kinds = [r.kind for r in store.records()]
    assert kinds[-1] == "quarantine_release" and kinds.count("gate") == 2
    assert verify(store.ledger) == []
    promoted = {p["batch"]: p["clean_rows"] for p in store.promoted()}
    if out["promoted_rows"]:
        assert promoted["b1~release-1"] == len(out["promoted_rows"])


def test_every_action_needs_who_and_why(store, gated):
    with pytest.raises(UsageError, match="reviewer"):
        quarantine.reject(store, "b1", [int(gated.verdict.quarantined_rows[0])], reviewer=" ", reason="x",
                          actor=ACTOR)
