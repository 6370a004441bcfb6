"""Attacks on the promotion path: every one must stay refused, and nothing blocked, edited or
duplicated may ever reach the store."""

from __future__ import annotations

import json
import shutil

import pytest

from adversarial.conftest import KEY, cli, one_line
from adversarial.helpers import append_forged, promoted_batches
from poisonguard.store.ledger import Ledger


def _edit_to_promote(path):
    doc = json.loads(path.read_text())
    doc["decision"], doc["reasons"], doc["quarantined_rows"] = "promote", [], []
    doc["rows"]["quarantined"], doc["rows"]["clean"] = 0, doc["rows"]["incoming"]
    doc.pop("signature", None)
    path.write_text(json.dumps(doc))
    return doc


def test_a_forged_unsigned_approval_in_a_signed_store_is_refused(world, signed_env, capsys):
    store = world.store("signed", KEY)
    gate = store.ledger.find("gate", batch="bad")
    # Someone without the key appends a correctly chained review approving the blocked verdict.
    append_forged(store.path / "ledger.jsonl", "review", {
        "batch": "bad", "verdict_sha256": gate.body["verdict_sha256"], "approved": True, "reviewer": "mallory",
        "reason": "trust me", "decision": "block"})
    code, out, err = cli(capsys, "promote", "--dataset", "signed", "--out", str(world.run_dir("signed", "bad")),
                         "--batch", "bad")
    assert code == 6 and "PROMOTED" not in out
    one_line(err, "record 5", "not signed")
    assert promoted_batches(world, "signed") == ["good"]


def test_a_forged_signed_with_another_key_approval_is_refused(world, signed_env, capsys):
    from poisonguard.kernel.signing import SigningKey

    store = world.store("signed", KEY)
    gate = store.ledger.find("gate", batch="bad")
    forger = SigningKey.from_text("mallorys-own-key-0123456789abcdef", KEY.key_id)  # claims the real key's id
    append_forged(store.path / "ledger.jsonl", "review", {
        "batch": "bad", "verdict_sha256": gate.body["verdict_sha256"], "approved": True, "reviewer": "mallory",
        "reason": "trust me", "decision": "block"}, key=forger)
    code, _, err = cli(capsys, "promote", "--dataset", "signed", "--batch", "bad")
    assert code == 6
    one_line(err, "record 5", "signature is invalid")
    assert promoted_batches(world, "signed") == ["good"]


@pytest.mark.parametrize("store_name", ["plain", "signed"])
def test_an_edited_copy_of_a_blocked_run_is_refused_as_a_new_batch(world, store_name, monkeypatch, capsys):
    if store_name == "signed":
        monkeypatch.setenv("POISONGUARD_SIGNING_KEY", "adversarial-test-key-0123456789abcdef")
    copy = world.root.parent / f"forged-run-{store_name}"
    shutil.copytree(world.run_dir(store_name, "bad"), copy)
    _edit_to_promote(copy / "verdict.json")
    code, out, err = cli(capsys, "promote", "--dataset", store_name, "--out", str(copy), "--batch", "n2forged")
    assert code == 5 and "PROMOTED" not in out
    one_line(err, "not signed" if store_name == "signed" else "is not a verdict the gate recorded")
    assert promoted_batches(world, store_name) == ["good"]


def test_a_blocked_verdict_edited_in_place_is_refused(world, capsys):
    _edit_to_promote(world.run_dir("plain", "bad") / "verdict.json")
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--batch", "bad")
    assert code == 5
    one_line(err, "is not a verdict the gate recorded")
    assert promoted_batches(world, "plain") == ["good"]


def test_one_run_is_promoted_once_and_a_second_batch_id_is_refused(world, capsys):
    run = str(world.run_dir("plain", "held"))
    code, out, _ = cli(capsys, "promote", "--dataset", "plain", "--out", run, "--batch", "held")
    assert code == 0 and "PROMOTED" in out
    code, out, _ = cli(capsys, "promote", "--dataset", "plain", "--out", run, "--batch", "held")
    assert code == 0 and "already promoted" in out  # the same batch again: a no-op
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--out", run, "--batch", "held2")
    assert code == 5
    one_line(err, "'held'")
    assert promoted_batches(world, "plain") == ["good", "held"]


def test_the_same_rows_gated_again_as_another_batch_are_not_promoted_twice(world, capsys):
    code, _, err = cli(capsys, "gate", "-q", "--dataset", "plain", "--incoming", str(world.batch("good")),
                       "--batch", "good-again", "--key", "2026-01-01", "--policy", str(world.policy))
    assert code == 5
    one_line(err, "already promoted", "as batch 'good'")
    assert promoted_batches(world, "plain") == ["good"]


def test_a_verdict_made_outside_the_store_is_refused(world, capsys):
    out_dir = world.root.parent / "outside"
    code, _, _ = cli(capsys, "check", "-q", "--reference", str(world.data / "golden.parquet"), "--incoming",
                     str(world.batch("held")), "--label", "y", "--out", str(out_dir), "--policy", str(world.policy))
    assert code == 0
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--out", str(out_dir), "--batch", "outside")
    assert code == 5
    one_line(err, "is not a verdict the gate recorded")


def test_a_verdict_of_one_batch_cannot_be_promoted_as_another(world, capsys):
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--out", str(world.run_dir("plain", "held")),
                       "--batch", "other")
    assert code == 5
    one_line(err, "for batch 'held'", "--batch held")


def test_data_swapped_between_check_and_promote_is_refused(world, capsys):
    shutil.copy(world.batch("bad"), world.batch("held"))
    try:
        code, _, err = cli(capsys, "promote", "--dataset", "plain", "--batch", "held")
    finally:
        from support.data import batch_file

        batch_file(world.data, "held", seed=13)  # restore the shared input
    assert code == 5
    one_line(err, "changed since the gate checked it")
    assert promoted_batches(world, "plain") == ["good"]


def test_a_swapped_quarantine_file_is_refused(world, capsys):
    run = world.run_dir("plain", "held")
    (run / "quarantine.parquet").write_bytes((world.run_dir("plain", "bad") / "quarantine.parquet").read_bytes())
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--batch", "held")
    assert code == 5
    one_line(err)
    assert promoted_batches(world, "plain") == ["good"]


def test_a_review_of_an_edited_verdict_is_refused(world, capsys):
    _edit_to_promote(world.run_dir("plain", "bad") / "verdict.json")
    code, _, err = cli(capsys, "review", "approve", "--dataset", "plain", "--batch", "bad", "--reviewer", "ann",
                       "--reason", "looked fine")
    assert code == 5
    one_line(err, "not the verdict the gate recorded")
    assert Ledger(world.root / "plain" / "ledger.jsonl").find("review") is None


def test_a_reviewed_and_approved_batch_is_promoted_with_the_signed_approval(world, signed_env, capsys):
    code, out, _ = cli(capsys, "review", "approve", "--dataset", "signed", "--batch", "bad", "--reviewer", "ann",
                       "--reason", "flips confirmed benign")
    assert code == 0 and "poisonguard promote --dataset signed --batch bad" in out
    review = world.store("signed", KEY).ledger.find("review", batch="bad")
    assert review.signature and review.body["approved"] and review.body["reviewer"] == "ann"
    code, out, _ = cli(capsys, "promote", "--dataset", "signed", "--batch", "bad")
    assert code == 0 and "PROMOTED" in out
    assert promoted_batches(world, "signed") == ["good", "bad"]
    approval = world.store("signed", KEY).ledger.find("promote", batch="bad").body["approval"]
    assert approval["seq"] == review.seq and approval["reviewer"] == "ann"


def test_a_rejection_keeps_a_blocked_batch_out(world, capsys):
    code, _, _ = cli(capsys, "review", "reject", "--dataset", "plain", "--batch", "bad", "--reviewer", "ann",
                     "--reason", "real attack")
    assert code == 0
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--batch", "bad")
    assert code == 5
    one_line(err, "only a reviewer's recorded approval")
