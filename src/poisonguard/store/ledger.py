"""A tamper-evident ledger: one JSON line per record, hash-chained, HMAC-signed when a key is set.

Each record holds ``seq`` (0, 1, 2, ...), ``prev`` (the previous record's hash), ``kind``, ``time``,
``body`` and ``hash`` = SHA-256 of the canonical JSON of those five fields. With a signing key,
``signature`` = HMAC-SHA256(key, hash) and ``key_id`` name the key. :func:`verify` recomputes
every hash, link and signature and says which record was edited, removed, reordered or inserted.

Appending is the commit point of every change to a dataset store: a record is one ``write`` of
one line, flushed and fsynced. A crash can leave at most a torn last line (no newline); it never
counted, :func:`verify` reports it as such and the next append (under the lock) cuts it off.

What the chain does not do on its own: someone who can rewrite the whole file can recompute every
hash. A signing key stops that (they cannot sign); cutting records off the end is caught by
comparing with a head hash kept elsewhere (every verdict and promotion carries the head it saw).

A ledger is *signed* or not as a whole: a dataset store says which when it is created, a
standalone ledger file is signed when a key is configured or its first record is signed. In a
signed ledger every record must carry a valid signature, whatever the environment: an unsigned
record there is tampering, and without the key the signatures cannot be verified, which is
refused too. :meth:`Ledger.records` verifies the whole chain before it returns anything, so
nothing acts on a record that does not verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonguard.errors import InputError, LedgerTampered
from poisonguard.kernel.locks import file_lock
from poisonguard.kernel.signing import SigningKey, canonical

GENESIS = "0" * 64


@dataclass(frozen=True)
class Record:
    seq: int
    prev: str
    kind: str
    time: str
    body: Mapping[str, Any]
    hash: str
    signature: str | None = None
    key_id: str | None = None

    def content(self) -> dict[str, Any]:
        return {"seq": self.seq, "prev": self.prev, "kind": self.kind, "time": self.time, "body": self.body}

    def to_dict(self) -> dict[str, Any]:
        d = self.content() | {"hash": self.hash}
        if self.signature is not None:
            d |= {"signature": self.signature, "key_id": self.key_id}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Record:
        return cls(int(d["seq"]), str(d["prev"]), str(d["kind"]), str(d["time"]), d["body"], str(d["hash"]),
                   d.get("signature"), d.get("key_id"))


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify` found; ``line`` is 1-based in the file."""

    line: int
    seq: int | None
    what: str
    tampering: bool = True

    def __str__(self) -> str:
        if self.line == 0:  # the ledger as a whole
            return self.what
        where = f"line {self.line}" + (f" (record {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.what}"


def _hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Ledger:
    """The ledger file at ``path``. Callers serialise appends (a dataset store holds its lock).

    ``signed``: whether every record must be signed; ``None`` infers it (a key is configured, or
    the first record is signed). A dataset store passes what it recorded when it was created."""

    def __init__(self, path: Path, key: SigningKey | None = None, *, signed: bool | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self._signed = signed
        self._verified: tuple[tuple[int, int, int], list[Record]] | None = None

    @property
    def signed(self) -> bool:
        if self._signed is not None:
            return self._signed
        if self.key is not None:
            return True
        lines = self._lines()[0]
        try:
            return bool(lines) and json.loads(lines[0]).get("signature") is not None
        except (ValueError, AttributeError):
            return False

    def _lines(self) -> tuple[list[bytes], bool]:
        """Complete lines, and whether a torn (unterminated) last line follows them."""
        if not self.path.exists():
            return [], False
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        torn = lines[-1] != b""
        return lines[:-1], torn

    def raw_records(self) -> list[Record]:
        """Every complete record, in file order, *unverified* (to show a damaged ledger)."""
        out = []
        for i, line in enumerate(self._lines()[0], start=1):
            try:
                out.append(Record.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"ledger {self.path} line {i} is not a ledger record ({e}). "
                                 "Run 'poisonguard ledger verify' to see what happened to it.") from None
        return out

    def records(self) -> list[Record]:
        """Every complete record, in file order, after verifying the whole chain (and, in a
        signed ledger, every signature). Raises :class:`LedgerTampered` naming the first problem."""
        if not self.path.exists():
            return []
        st = self.path.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._verified is not None and self._verified[0] == stamp:
            return list(self._verified[1])
        tampered = [p for p in verify(self) if p.tampering]
        if tampered:
            more = f" (and {len(tampered) - 1} more problem(s))" if len(tampered) > 1 else ""
            raise LedgerTampered(f"ledger {self.path}: {tampered[0]}{more}. Nothing was changed; run 'poisonguard "
                                 "ledger verify' for every problem and restore the ledger from a backup.")
        records = self.raw_records()
        self._verified = (stamp, records)
        return list(records)

    def head(self) -> tuple[int, str]:
        """``(records, hash of the last one)``; ``(0, GENESIS)`` for an empty ledger."""
        records = self.records()
        return (len(records), records[-1].hash) if records else (0, GENESIS)

    def find(self, kind: str, **match: Any) -> Record | None:
        """The last record of ``kind`` whose body has every ``match`` item."""
        for record in reversed(self.records()):
            if record.kind == kind and all(record.body.get(k) == v for k, v in match.items()):
                return record
        return None

    def append(self, kind: str, body: Mapping[str, Any]) -> Record:
        """Add one record at the end (cutting off a torn last line first) and fsync it. The chain
        is verified first; a signed ledger takes only records signed with its key."""
        if self.signed and self.key is None:
            raise LedgerTampered(f"ledger {self.path} is signed, but no signing key is set: a record cannot be "
                                 "added without it. Set POISONGUARD_SIGNING_KEY to the key the ledger is signed with.")
        records = self.records()
        lines, torn = self._lines()
        if torn:
            with open(self.path, "r+b") as f:
                f.truncate(sum(len(line) + 1 for line in lines))
        last = records[-1] if records else None
        content = {"seq": 0 if last is None else last.seq + 1, "prev": GENESIS if last is None else last.hash,
                   "kind": kind, "time": now(), "body": json.loads(canonical(body))}
        digest = _hash(content)
        record = Record(content["seq"], content["prev"], kind, content["time"], content["body"], digest,
                        self.key.sign(digest.encode()) if self.key else None, self.key.key_id if self.key else None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, canonical(record.to_dict()) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return record


def verify(ledger: Ledger) -> list[Problem]:
    """Every problem with the ledger; empty when it is intact.

    Finds: a record whose content no longer matches its hash (edited), records out of ``seq``
    order (reordered), a ``seq`` that appears twice (inserted), gaps in ``seq`` (removed), a
    record that does not link to the one before it (inserted or replaced), in a signed ledger
    an unsigned record (always) and a wrong signature or key, a signed ledger whose signatures
    cannot be checked for want of the key, and a torn last line (an interrupted write:
    reported, but not as tampering)."""
    lines, torn = ledger._lines()
    require_signatures = ledger.signed
    problems: list[Problem] = []
    if require_signatures and ledger.key is None and lines:
        problems.append(Problem(0, None, f"ledger {ledger.path} is signed, but no signing key is set: cannot verify "
                                "signatures without the key. Set POISONGUARD_SIGNING_KEY to the key it is signed "
                                "with"))
    parsed: list[tuple[int, Record]] = []
    for i, line in enumerate(lines, start=1):
        try:
            parsed.append((i, Record.from_dict(json.loads(line))))
        except (ValueError, KeyError, TypeError):
            problems.append(Problem(i, None, "not a ledger record (the line was edited or corrupted)"))
    for i, r in parsed:
        if _hash(r.content()) != r.hash:
            problems.append(Problem(i, r.seq, "its content does not match its hash: the record was edited"))
        problems.extend(_signature_problems(ledger.key, require_signatures, i, r))
    first_line: dict[int, int] = {}
    for i, r in parsed:
        if r.seq in first_line:
            problems.append(Problem(i, r.seq, f"its seq repeats line {first_line[r.seq]}: a record was inserted"))
        else:
            first_line[r.seq] = i
    seqs = [r.seq for _, r in parsed]
    if seqs != sorted(seqs):
        moved = [(i, r.seq) for k, (i, r) in enumerate(parsed) if k and r.seq < parsed[k - 1][1].seq]
        for i, seq in moved:
            problems.append(Problem(i, seq, "it stands after a later record: records were reordered"))
    by_seq = {r.seq: r for _, r in sorted(parsed, key=lambda x: -x[0])}  # first occurrence wins
    expected = 0
    for seq in sorted(by_seq):
        if seq > expected:
            gone = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
            problems.append(Problem(first_line[seq], seq, f"record(s) {gone} are missing: removed from the ledger"))
        else:
            before = GENESIS if seq == 0 else by_seq[seq - 1].hash
            if by_seq[seq].prev != before:
                problems.append(Problem(first_line[seq], seq, "it does not link to the record before it: a record "
                                        "was inserted, replaced or re-hashed"))
        expected = seq + 1
    if torn:
        problems.append(Problem(len(lines) + 1, None, "an incomplete last line (a write interrupted by a crash); "
                                "it never counted and the next append removes it", tampering=False))
    return sorted(problems, key=lambda p: p.line)


def _signature_problems(key: SigningKey | None, required: bool, line: int, r: Record) -> list[Problem]:
    if r.signature is None:
        return [Problem(line, r.seq, "it is not signed, but the ledger is signed: the record was "
                        "inserted or re-written without the key")] if required else []
    if key is None:
        return []  # a signed record where no key is set: verify() reports the ledger as unverifiable
    if r.key_id != key.key_id:
        return [Problem(line, r.seq, f"signed with key '{r.key_id}', not the configured key '{key.key_id}'")]
    if not key.verify(r.hash.encode(), r.signature):
        return [Problem(line, r.seq, "its signature is invalid: the record was forged, or edited and re-hashed")]
    return []


def append_locked(path: Path, kind: str, body: Mapping[str, Any], key: SigningKey | None) -> Record:
    """Append to a standalone ledger file (not a dataset store's) under its own lock file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(path.name + ".lock"), 600.0, f"ledger {path}"):
        return Ledger(path, key).append(kind, body)
