"""Attacks on the ledger and the store's own files: every action that rests on a record refuses
(exit 6, one line naming the record) once the chain, a signature or store.json does not verify."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from adversarial.conftest import KEY, SECRET, cli, one_line
from adversarial.helpers import append_forged, ledger_lines, promoted_batches, write_lines
from poisonguard.kernel.signing import canonical
from poisonguard.store.ledger import Ledger, verify

# Every command that acts on ledger records, as (args, what it would do).
ACTIONS = {
    "promote": ["promote", "--dataset", "{d}", "--batch", "held"],
    "review": ["review", "approve", "--dataset", "{d}", "--batch", "bad", "--reviewer", "x", "--reason", "y"],
    "release": ["quarantine", "release", "--dataset", "{d}", "--batch", "bad", "--rows", "{row}", "--reviewer", "x",
                "--reason", "y"],
    "reject": ["quarantine", "reject", "--dataset", "{d}", "--batch", "bad", "--rows", "{row}", "--reviewer", "x",
               "--reason", "y"],
    "gate (reference as of a key)": ["gate", "-q", "--dataset", "{d}", "--incoming", "{incoming}", "--batch", "new"],
    "status": ["store", "status", "--dataset", "{d}"],
}


def _held_row(world, name: str) -> int:
    return int(pd.read_parquet(world.run_dir(name, "bad") / "quarantine.parquet")["_pg_position"].iloc[0])


def _args(world, action: str, name: str) -> list[str]:
    fill = {"d": name, "row": str(_held_row(world, name)), "incoming": str(world.batch("held"))}
    return [a.format(**fill) for a in ACTIONS[action]]


def _edit(lines, i):
    doc = json.loads(lines[i])
    doc["body"]["decision"] = "promote"
    lines[i] = canonical(doc)


def _remove(lines, i):
    del lines[i]


def _reorder(lines, i):
    lines[i], lines[i + 1] = lines[i + 1], lines[i]


def _insert(lines, i):
    # A record with a valid hash, linked to record i-1 and claiming seq i: record i then repeats it.
    from poisonguard.store.ledger import Record, _hash

    prev = json.loads(lines[i - 1])
    content = {"seq": i, "prev": prev["hash"], "kind": "review", "time": prev["time"],
               "body": {"batch": "bad", "approved": True, "reviewer": "mallory", "reason": "x"}}
    lines.insert(i, canonical(Record(**content, hash=_hash(content)).to_dict()))


TAMPERING = {"edited": (_edit, "edited"), "removed": (_remove, "missing"), "reordered": (_reorder, "reordered"),
             "inserted": (_insert, "inserted")}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_no_action_rests_on_a_tampered_ledger(world, capsys, action, tampering):
    path = world.root / "plain" / "ledger.jsonl"
    args = _args(world, action, "plain")  # before tampering: finding the row reads the ledger
    lines = ledger_lines(path)
    change, word = TAMPERING[tampering]
    change(lines, 3)  # record 3: the blocked batch's gate record
    write_lines(path, lines)
    before = path.read_bytes()
    code, out, err = cli(capsys, *args)
    assert code == 6, (out, err)
    one_line(err, "ledger", word)
    assert path.read_bytes() == before  # nothing appended to a tampered ledger
    assert promoted_batches(world, "plain") in (["good"], [])


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_signed_store_refuses_every_action_without_its_key_or_with_another(world, capsys, monkeypatch, action):
    args = _args(world, action, "signed")
    code, _, err = cli(capsys, *args)
    assert code == 6
    one_line(err, "cannot verify signatures without the key")
    monkeypatch.setenv("POISONGUARD_SIGNING_KEY", "some-other-key-0123456789abcdef")
    code, _, err = cli(capsys, *args)
    assert code == 6
    one_line(err, f"signed with key '{KEY.key_id}', but the configured key is")


def test_an_unsigned_store_refuses_a_configured_key(world, capsys, signed_env):
    code, _, err = cli(capsys, "promote", "--dataset", "plain", "--batch", "held")
    assert code == 6
    one_line(err, "is unsigned", "signing key is configured")
    assert promoted_batches(world, "plain") == ["good"]


def test_a_store_json_downgraded_to_unsigned_is_caught_by_the_signed_create_record(world, capsys):
    path = world.root / "signed" / "store.json"
    info = json.loads(path.read_text())
    info["signed_by"] = None
    path.write_text(json.dumps(info))
    code, _, err = cli(capsys, "promote", "--dataset", "signed", "--batch", "held")
    assert code == 6
    one_line(err, "no longer matches the ledger's create record", "signed_by")


def test_a_swapped_golden_reference_with_a_matching_store_json_is_caught(world, capsys, signed_env):
    store_dir = world.root / "signed"
    golden = store_dir / "golden.parquet"
    golden.chmod(0o644)
    pd.read_parquet(golden).iloc[:-50].to_parquet(golden, index=False)
    from poisonguard.kernel.hashing import hash_file

    info = json.loads((store_dir / "store.json").read_text())
    info["golden_sha256"] = hash_file(golden)
    (store_dir / "store.json").write_text(json.dumps(info))
    code, _, err = cli(capsys, "gate", "-q", "--dataset", "signed", "--incoming", str(world.batch("held")),
                       "--batch", "new")
    assert code == 6
    one_line(err, "store.json no longer matches the ledger's create record", "golden_sha256")


def test_a_poisoned_reference_cache_is_never_used(world, capsys, signed_env, caplog):
    from poisonguard.store.dataset import DatasetStore

    store = DatasetStore(world.root, "signed", key=KEY)
    path = store.reference_path()
    poisoned = pd.read_parquet(path)
    poisoned["y"] = "c0"  # every label replaced: a detector fitted on it would bless anything
    poisoned.to_parquet(path, index=False)
    with caplog.at_level("WARNING", logger="poisonguard"):
        rebuilt = pd.read_parquet(DatasetStore(world.root, "signed", key=KEY).reference_path())
    assert set(rebuilt["y"]) == {"c0", "c1"}
    assert any("failed its check" in r.message for r in caplog.records)


def test_ledger_verify_on_a_signed_ledger_without_the_key_is_not_intact(world, capsys):
    code, out, err = cli(capsys, "ledger", "verify", "--ledger", str(world.root / "signed" / "ledger.jsonl"))
    assert code == 6 and "intact" not in out
    one_line(err, "cannot verify signatures without the key")


def test_a_mixed_ledger_is_tampered_with_or_without_the_key(world, capsys, monkeypatch):
    path = world.root / "signed" / "ledger.jsonl"
    append_forged(path, "review", {"batch": "bad", "approved": True, "reviewer": "mallory", "reason": "x"})
    for key in (None, SECRET):
        if key:
            monkeypatch.setenv("POISONGUARD_SIGNING_KEY", key)
        code, out, err = cli(capsys, "ledger", "verify", "--ledger", str(path))
        assert code == 6 and "intact" not in out
        assert "TAMPERED line 6 (record 5): it is not signed" in out
        one_line(err)
    assert [p.seq for p in verify(Ledger(path, KEY)) if p.tampering] == [5]


def test_an_intact_signed_ledger_verifies_with_its_key(world, capsys, signed_env):
    code, out, err = cli(capsys, "ledger", "verify", "--dataset", "signed")
    assert code == 0 and "chain intact, every signature valid" in out and err == ""
