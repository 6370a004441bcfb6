"""Dataset stores: verified, idempotent promotion; reviews; the reference as of a batch; the ledger."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from poisonguard.errors import PromotionRefused
from poisonguard.kernel.signing import SigningKey
from poisonguard.store.dataset import DatasetStore
from poisonguard.store.ledger import verify
from poisonguard.store.records import Actor
from poisonguard.workflows import gate_batch
from support.data import batch_file

ACTOR = Actor("test", user="tester")
KEY = SigningKey.from_text("store-test-key-0123456789abcdef")


def test_a_clean_batch_is_promoted_once_and_recorded(store, tmp_path, fast_policy):
    incoming = batch_file(tmp_path, "b1", seed=11)
    run, promotion = gate_batch(store, incoming, "b1", actor=ACTOR, policy=fast_policy, key="2026-01-01")
    assert run.verdict.promoted and promotion is not None and not promotion.already
    assert promotion.clean_rows == 300 - len(run.verdict.quarantined_rows)
    kinds = [r.kind for r in store.records()]
    assert kinds == ["create", "gate", "promote"]
    # Same inputs again: same outcome, nothing duplicated (rows or records).
    _run2, promotion2 = gate_batch(store, incoming, "b1", actor=ACTOR, policy=fast_policy, key="2026-01-01")
    assert promotion2.already and [r.kind for r in store.records()] == kinds
    reference = pd.read_parquet(store.reference_path())
    golden = pd.read_parquet(store.golden_path)
    assert len(reference) == len(golden) + promotion.clean_rows
    assert verify(store.ledger) == []


def test_the_reference_of_a_batch_holds_only_batches_promoted_before_it(store, tmp_path, fast_policy):
    for day, seed in (("2026-01-01", 21), ("2026-01-03", 23)):
        gate_batch(store, batch_file(tmp_path, day, seed), day, actor=ACTOR, policy=fast_policy, key=day)
    golden = len(pd.read_parquet(store.golden_path))
    sizes = {p["batch"]: p["clean_rows"] for p in store.promoted()}
    assert len(pd.read_parquet(store.reference_path(before="2026-01-01"))) == golden
    assert len(pd.read_parquet(store.reference_path(before="2026-01-02"))) == golden + sizes["2026-01-01"]
    assert len(pd.read_parquet(store.reference_path())) == golden + sum(sizes.values())


def test_a_blocked_batch_is_not_promoted_until_a_reviewer_approves_it(store, tmp_path, fast_policy):
    incoming = batch_file(tmp_path, "bad", seed=31, flip_fraction=0.2)
    run, promotion = gate_batch(store, incoming, "bad", actor=ACTOR, policy=fast_policy)
    assert not run.verdict.promoted and promotion is None
    with pytest.raises(PromotionRefused, match="only a reviewer's recorded approval"):
        store.promote(store.run_dir("bad"), "bad", ACTOR)
    store.record_review("bad", approved=False, reviewer="ann", reason="flips confirmed", actor=ACTOR)
    with pytest.raises(PromotionRefused):
        store.promote(store.run_dir("bad"), "bad", ACTOR)
    review = store.record_review("bad", approved=True, reviewer="bob", reason="labels checked by hand", actor=ACTOR)
    promotion = store.promote(store.run_dir("bad"), "bad", ACTOR)
    assert promotion.promoted and promotion.record["body"]["approval"]["seq"] == review.seq
    assert review.body["provenance"]["rows_root"] == run.document["provenance"]["rows_root"]
    assert promotion.clean_rows == 300 - len(run.verdict.quarantined_rows)  # quarantined rows stay out


def test_a_verdict_cannot_be_replayed_onto_other_data(store, tmp_path, fast_policy):
    incoming = batch_file(tmp_path, "b1", seed=41)
    gate_batch(store, incoming, "b1", actor=ACTOR, policy=fast_policy, promote=False)
    # Swap the data after the check: same path, other rows.
    batch_file(tmp_path, "b1", seed=42)
    with pytest.raises(PromotionRefused, match="changed since the gate checked it"):
        store.promote(store.run_dir("b1"), "b1", ACTOR)
    assert store.promoted() == []


def test_a_verdict_edited_to_promote_is_refused_by_its_signature(tmp_path, files, fast_policy):
    store = DatasetStore.create(tmp_path / "s", "toy", golden=files["reference"], label="y", key=KEY)
    incoming = batch_file(tmp_path, "bad", seed=51, flip_fraction=0.2)
    run, _ = gate_batch(store, incoming, "bad", actor=ACTOR, policy=fast_policy)
    assert not run.verdict.promoted
    path = store.run_dir("bad") / "verdict.json"
    doc = json.loads(path.read_text())
    doc["decision"], doc["reasons"] = "promote", []
    path.write_text(json.dumps(doc))
    with pytest.raises(PromotionRefused, match="invalid signature"):
        store.promote(store.run_dir("bad"), "bad", ACTOR)
    del doc["signature"]
    path.write_text(json.dumps(doc))
    with pytest.raises(PromotionRefused, match="not signed"):
        store.promote(store.run_dir("bad"), "bad", ACTOR)
    assert store.promoted() == [] and verify(store.ledger) == []
    assert all(r.signature for r in store.records())


def test_a_verdict_for_one_batch_cannot_promote_another_batchs_files(store, tmp_path, fast_policy):
    a = batch_file(tmp_path, "a", seed=61)
    gate_batch(store, a, "a", actor=ACTOR, policy=fast_policy, promote=False)
    other = tmp_path / "other"
    shutil.copytree(store.run_dir("a"), other)
    shutil.copy(batch_file(tmp_path, "x", seed=62), a)  # the verdict's incoming file now holds other rows
    with pytest.raises(PromotionRefused):
        store.promote(other, "a", ACTOR)


def test_a_changed_golden_reference_is_refused(store):
    from poisonguard.errors import InputError

    path = store.path / "golden.parquet"
    path.chmod(0o644)
    pd.read_parquet(path).iloc[:-1].to_parquet(path, index=False)
    with pytest.raises(InputError, match="no longer matches"):
        store.reference_path()
