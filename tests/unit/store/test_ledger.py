"""The ledger finds any edited, removed, reordered or inserted record and says which."""

from __future__ import annotations

import itertools
import json

import pytest

from poisonguard.kernel.signing import SigningKey, canonical
from poisonguard.store.ledger import GENESIS, Ledger, Record, _hash, verify

KEY = SigningKey.from_text("a-test-key-of-32-characters-0123", "test")


def _ledger(tmp_path, key=KEY, n=6) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl", key)
    for i in range(n):
        ledger.append("gate", {"batch": f"b{i}", "decision": "promote" if i % 2 else "block"})
    return ledger


def _lines(ledger):
    return ledger.path.read_bytes().split(b"\n")[:-1]


def _write(ledger, lines):
    ledger.path.write_bytes(b"".join(line + b"\n" for line in lines))


def _what(problems):
    return [(p.line, p.seq, p.what.split(":")[-1].strip()) for p in problems]


@pytest.mark.parametrize("key", [KEY, None])
def test_an_intact_ledger_verifies(tmp_path, key):
    ledger = _ledger(tmp_path, key)
    assert verify(ledger) == []
    records = ledger.records()
    assert [r.seq for r in records] == list(range(6)) and records[0].prev == GENESIS
    assert all(b.prev == a.hash for a, b in itertools.pairwise(records))
    assert ledger.head() == (6, records[-1].hash)


@pytest.mark.parametrize("key", [KEY, None])
def test_an_edited_record_is_named(tmp_path, key):
    ledger = _ledger(tmp_path, key)
    lines = _lines(ledger)
    doc = json.loads(lines[2])
    doc["body"]["decision"] = "promote"
    lines[2] = canonical(doc)
    _write(ledger, lines)
    problems = verify(ledger)
    assert [(p.line, p.seq) for p in problems] == [(3, 2)]
    assert "edited" in problems[0].what


def test_a_removed_record_is_named(tmp_path):
    ledger = _ledger(tmp_path)
    lines = _lines(ledger)
    del lines[3]
    _write(ledger, lines)
    assert _what(verify(ledger)) == [(4, 4, "removed from the ledger")]
    assert "record(s) 3 are missing" in verify(ledger)[0].what


def test_reordered_records_are_named(tmp_path):
    ledger = _ledger(tmp_path)
    lines = _lines(ledger)
    lines[2], lines[3] = lines[3], lines[2]
    _write(ledger, lines)
    assert [(p.line, p.seq) for p in verify(ledger)] == [(4, 2)]
    assert "reordered" in verify(ledger)[0].what


def test_an_inserted_record_is_found_even_with_a_correct_hash(tmp_path):
    ledger = _ledger(tmp_path, key=None)
    lines = _lines(ledger)
    # A forger who knows the format: a well-formed record with a valid hash, linked to record 2,
    # claiming seq 3; the real record 3 then repeats its seq.
    prev = json.loads(lines[2])
    content = {"seq": 3, "prev": prev["hash"], "kind": "promote", "time": prev["time"], "body": {"batch": "evil"}}
    forged = canonical(Record(**content, hash=_hash(content)).to_dict())
    lines.insert(3, forged)
    _write(ledger, lines)
    problems = verify(ledger)
    assert any(p.line == 5 and "inserted" in p.what for p in problems)


def test_a_rewrite_without_the_key_is_caught(tmp_path):
    ledger = _ledger(tmp_path)
    # Rebuild the whole chain unsigned, with one decision changed: every hash and link is valid.
    rewritten = Ledger(tmp_path / "other.jsonl", None)
    for r in ledger.records():
        body = dict(r.body) | ({"decision": "promote"} if r.seq == 2 else {})
        rewritten.append(r.kind, body)
    ledger.path.write_bytes(rewritten.path.read_bytes())
    assert verify(Ledger(ledger.path, None)) == []  # without the key nothing can tell
    problems = verify(ledger)
    assert [p.seq for p in problems] == list(range(6)) and all("not signed" in p.what for p in problems)
    forged_key = SigningKey.from_text("someone-elses-key-0123456789abcd", "test")  # same id, other secret
    again = Ledger(tmp_path / "again.jsonl", forged_key)
    for r in ledger.raw_records():
        again.append(r.kind, r.body)
    ledger.path.write_bytes(again.path.read_bytes())
    assert all("signature is invalid" in p.what for p in verify(ledger)) and len(verify(ledger)) == 6


def test_a_torn_last_line_is_reported_as_a_crash_and_cut_on_the_next_append(tmp_path):
    ledger = _ledger(tmp_path)
    with open(ledger.path, "ab") as f:
        f.write(b'{"seq": 6, "prev": "abc')
    problems = verify(ledger)
    assert len(problems) == 1 and not problems[0].tampering and "interrupted" in problems[0].what
    assert len(ledger.records()) == 6
    ledger.append("gate", {"batch": "b6"})
    assert verify(ledger) == [] and [r.seq for r in ledger.records()] == list(range(7))


def test_a_garbage_line_is_named(tmp_path):
    ledger = _ledger(tmp_path)
    lines = _lines(ledger)
    lines[1] = b"not json"
    _write(ledger, lines)
    problems = verify(ledger)
    assert problems[0].line == 2 and "not a ledger record" in problems[0].what
