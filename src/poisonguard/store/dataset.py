"""A dataset store: one dataset's trusted data, promoted batches, quarantine and ledger.

Layout of ``ROOT/<dataset>/``::

    store.json            what the store is: dataset, label, golden and holdout hashes, the id of the
                          key it is signed with (or null: unsigned) — written once, and checked on
                          every use against the ledger's first (create) record
    golden.parquet        the frozen, hashed golden reference (read-only)
    holdout.parquet       trusted rows no model trains on (optional)
    ledger.jsonl          the hash-chained ledger: the one source of truth of what happened
    batches/<batch>/      a promoted batch: clean.parquet, quarantine.parquet, verdict.json (immutable)
    runs/<batch>/         a gate run's outputs (verdict, report, quarantine), promoted or not
    work/<batch>/         a gate run's work files
    cache/                materialised references, each with a (signed) manifest of its SHA-256;
                          one that fails its check is rebuilt, never used
    .lock                 serialises every change to this dataset

Every change is committed by appending one ledger record, after the files it refers to are in
place (written to a temporary name, fsynced, renamed). A crash at any moment leaves either the old
state (the record is missing: files without a record are ignored, then reused or replaced) or the
new one (the record and its files). The promoted state is read from the ledger, never from a
directory listing.

A store is signed or unsigned for good, from its creation: a signed store refuses to work without
its key (or with another), and never accepts an unsigned record; an unsigned store is an explicit
choice (``store init --unsigned``). Every read of the ledger verifies the whole chain (and every
signature) first, so no action — promotion, review, quarantine release or reject, building a
reference — ever rests on a record that does not verify.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard import __version__
from poisonguard.errors import InputError, LedgerTampered, PromotionRefused, UsageError
from poisonguard.io.reading import DETECT, CsvFormat, check_trusted, read_table
from poisonguard.kernel.fsio import atomic_write_bytes, atomic_write_parquet
from poisonguard.kernel.hashing import canonical_block, hash_file, hash_rows, row_keys, rows_root
from poisonguard.kernel.locks import file_lock
from poisonguard.kernel.signing import (
    SigningKey,
    canonical,
    document_sha256,
    sign_document,
    stable_part,
    verify_document,
)
from poisonguard.store import promotion, quarantine
from poisonguard.store.ledger import Ledger, Record
from poisonguard.store.records import Actor, Promotion, check_name, gate_body

log = logging.getLogger("poisonguard")
# store.json fields that describe what the store trusts; each must equal the create record's.
_TRUSTED_INFO = ("dataset", "label", "golden_rows", "golden_rows_root", "golden_sha256", "holdout_rows",
                 "holdout_sha256", "columns", "max_reference_rows", "signed_by")


class DatasetStore:
    """One dataset's store under ``root/<dataset>``. See the module docstring for the layout."""

    def __init__(self, root: str | Path, dataset: str, *, key: SigningKey | None = None) -> None:
        self.dataset = check_name(dataset, "dataset")
        self.path = Path(root) / dataset
        self.key = key
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        """The store's ledger, after checking the configured key is the one the store is signed
        with (raises :class:`LedgerTampered` otherwise: exit 6)."""
        if self._ledger is None:
            signed_by = self.signed_by
            if signed_by is None and self.key is not None:
                raise LedgerTampered(
                    f"store '{self.dataset}' at {self.path} is unsigned (created with 'store init --unsigned'), but a "
                    "signing key is configured: its records cannot be checked with it. Unset POISONGUARD_SIGNING_KEY "
                    "for this store if it is unsigned on purpose; if it was created signed, store.json and the "
                    "ledger were rewritten: restore them from a backup.")
            if signed_by is not None and self.key is None:
                raise LedgerTampered(
                    f"store '{self.dataset}' at {self.path} is signed (key '{signed_by}'), but no signing key is set: "
                    "cannot verify signatures without the key. Set POISONGUARD_SIGNING_KEY (Airflow: the connection "
                    "poisonguard_signing) to that key.")
            if signed_by is not None and self.key is not None and self.key.key_id != signed_by:
                raise LedgerTampered(
                    f"store '{self.dataset}' at {self.path} is signed with key '{signed_by}', but the configured key "
                    f"is '{self.key.key_id}'. Configure the store's key.")
            self._ledger = Ledger(self.path / "ledger.jsonl", self.key, signed=signed_by is not None)
        return self._ledger

    @property
    def signed_by(self) -> str | None:
        """The id of the key the store is signed with; ``None`` for an unsigned store."""
        info = self.info
        if "signed_by" in info:
            return None if info["signed_by"] is None else str(info["signed_by"])
        # A store made before the field existed: signed when its create record is.
        first = Ledger(self.path / "ledger.jsonl", signed=False).raw_records()[:1]
        return first[0].key_id if first and first[0].signature is not None else None

    # ------------------------------------------------------------------ creation and description

    @classmethod
    def create(cls, root: str | Path, dataset: str, *, golden: str | Path, label: str,
               holdout: str | Path | None = None, key: SigningKey | None = None, unsigned: bool = False,
               actor: Actor | None = None, max_reference_rows: int = 200_000,
               csv_format: CsvFormat = DETECT) -> DatasetStore:
        """Freeze ``golden`` (and ``holdout``) as the dataset's trusted start. Idempotent for the
        same inputs; refuses to re-create a store with other ones.

        The store is signed with ``key``; without one, ``unsigned=True`` must say that an
        unsigned store is wanted (anyone who can write its files can then forge its records).
        ``csv_format`` splits CSV inputs (default: detected); the store keeps Parquet copies."""
        if key is None and not unsigned:
            raise UsageError("no signing key is set, and a store's ledger and verdicts are signed with one. Set "
                             "POISONGUARD_SIGNING_KEY (Airflow: the connection poisonguard_signing), or pass "
                             "--unsigned to create a store whose records anyone who can write its files can forge.")
        if key is not None and unsigned:
            raise UsageError("--unsigned asks for an unsigned store, but a signing key is set. Unset "
                             "POISONGUARD_SIGNING_KEY, or drop --unsigned to create a signed store.")
        store = cls(root, dataset, key=key)
        table = read_table(golden, role="golden", csv_format=csv_format)
        check_trusted(table.frame, label, None)
        frame = table.frame
        info = {"dataset": dataset, "label": label, "golden_rows": len(frame),
                "golden_rows_root": rows_root(hash_rows(frame, list(frame.columns))),
                "columns": [str(c) for c in frame.columns], "max_reference_rows": max_reference_rows,
                "holdout_rows": None, "signed_by": None if key is None else key.key_id}
        hold = None
        if holdout is not None:
            hold = read_table(holdout, role="holdout", csv_format=csv_format).frame
            info["holdout_rows"] = len(hold)
        with store.lock():
            if (store.path / "store.json").exists():
                existing = store.info
                same = {k: existing.get(k) for k in info} == info
                if not same:
                    raise UsageError(f"a store for '{dataset}' already exists at {store.path} with other golden "
                                     "data or settings. Use another dataset name or remove the store.")
                return store
            store.path.mkdir(parents=True, exist_ok=True)
            atomic_write_parquet(store.path / "golden.parquet", frame)
            os.chmod(store.path / "golden.parquet", 0o444)
            if hold is not None:
                atomic_write_parquet(store.path / "holdout.parquet", hold)
            info["golden_sha256"] = hash_file(store.path / "golden.parquet")
            info["holdout_sha256"] = hash_file(store.path / "holdout.parquet") if hold is not None else None
            atomic_write_bytes(store.path / "store.json", json.dumps(info, indent=2, sort_keys=True).encode())
            store.ledger.append("create", info | {"actor": (actor or Actor.cli()).to_dict(),
                                                  "code_version": __version__})
        return store

    @property
    def info(self) -> dict[str, Any]:
        path = self.path / "store.json"
        if not path.exists():
            raise InputError(f"no store for dataset '{self.dataset}' at {self.path}. Create it with "
                             f"'poisonguard store init --dataset {self.dataset} --golden PATH --label COLUMN'.")
        return json.loads(path.read_text())

    @property
    def label(self) -> str:
        return str(self.info["label"])

    @property
    def golden_path(self) -> Path:
        """The golden reference, after checking it is still the file the store was created with."""
        path = self.path / "golden.parquet"
        if hash_file(path) != self.info["golden_sha256"]:
            raise InputError(f"the golden reference {path} no longer matches the hash recorded when the store was "
                             "created: it was changed. Restore it; nothing can be gated against it.")
        return path

    @property
    def holdout_path(self) -> Path | None:
        if self.info.get("holdout_sha256") is None:
            return None
        path = self.path / "holdout.parquet"
        if hash_file(path) != self.info["holdout_sha256"]:
            raise InputError(f"the holdout {path} no longer matches its recorded hash: it was changed. Restore it.")
        return path

    @property
    def state_dir(self) -> Path:
        """The store's fitted state: what is learned from each reference, reused by every batch gated
        against it (content-addressed, so a promotion that changes the reference starts a new one)."""
        return self.path / "state"

    def run_dir(self, batch: str) -> Path:
        return self.path / "runs" / check_name(batch, "batch")

    def work_dir(self, batch: str) -> Path:
        return self.path / "work" / check_name(batch, "batch")

    # ------------------------------------------------------------------ locking

    def lock(self, timeout: float = 600.0) -> contextlib.AbstractContextManager[None]:
        """Hold the dataset's lock; runs on other datasets are not blocked. Raises
        :class:`LockTimeout` after ``timeout`` seconds. Re-entrant within a process."""
        self.path.mkdir(parents=True, exist_ok=True)
        return file_lock(self.path / ".lock", timeout, f"dataset '{self.dataset}'")

    # ------------------------------------------------------------------ promoted state (from the ledger)

    def records(self) -> list[Record]:
        """Every ledger record, after verifying the chain and every signature, and that
        store.json still says what the ledger's create record says (raises
        :class:`LedgerTampered`, exit 6, otherwise)."""
        records = self.ledger.records()
        if records and records[0].kind == "create":
            info, body = self.info, records[0].body
            changed = [k for k in _TRUSTED_INFO if k in body and body[k] != info.get(k)]
            if changed:
                raise LedgerTampered(f"{self.path / 'store.json'} no longer matches the ledger's create record "
                                     f"(record 0) in {changed}: it was edited. Restore it from a backup.")
        return records

    def promoted(self) -> list[dict[str, Any]]:
        """Every promotion record's body, in ledger order."""
        return [dict(r.body) for r in self.records() if r.kind == "promote"]

    def reference_path(self, *, before: str | None = None) -> Path:
        """A Parquet file of the golden reference plus the clean rows of promoted batches (those
        whose ``key`` sorts before ``before``, when given), most recent first up to
        ``max_reference_rows``, minus any row held in quarantine or rejected."""
        info = self.info
        batches = [p for p in self.promoted() if before is None or p["key"] < before]
        batches.sort(key=lambda p: (p["key"], p["batch"]))
        chosen: list[dict[str, Any]] = []
        rows = int(info["golden_rows"])
        for p in reversed(batches):
            if rows + p["clean_rows"] > info["max_reference_rows"] and chosen:
                break
            chosen.append(p)
            rows += p["clean_rows"]
        chosen.reverse()
        denied = self.denied_row_keys()
        ident = canonical({"golden": info["golden_sha256"], "batches": [(p["batch"], p["clean_sha256"]) for p in chosen],
                           "denied": hashlib.sha256(denied.tobytes()).hexdigest()})
        path = self.path / "cache" / f"reference-{hashlib.sha256(ident).hexdigest()[:24]}.parquet"
        if self._cache_intact(path):
            return path
        frames = [pd.read_parquet(self.golden_path)]
        for p in chosen:
            clean = self.path / "batches" / p["batch"] / "clean.parquet"
            if hash_file(clean) != p["clean_sha256"]:
                raise InputError(f"promoted batch {clean} no longer matches its ledger record: it was changed. "
                                 "Restore it from a backup; the reference cannot be built.")
            frames.append(pd.read_parquet(clean))
        reference = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(denied):
            reference = reference[~np.isin(self._row_keys(reference), denied)].reset_index(drop=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(path, reference)
        manifest = sign_document({"file": path.name, "sha256": hash_file(path)}, self.key)
        atomic_write_bytes(_manifest_path(path), json.dumps(manifest, sort_keys=True).encode())
        return path

    def _cache_intact(self, path: Path) -> bool:
        """Whether a cached reference is the file this store wrote (its manifest's SHA-256, and
        the manifest's signature in a signed store). A cache that fails is said and rebuilt."""
        manifest = _manifest_path(path)
        if not path.exists() and not manifest.exists():
            return False
        try:
            doc = json.loads(manifest.read_text())
            verify_document(doc, self.key, manifest)
            if doc.get("file") == path.name and doc.get("sha256") == hash_file(path):
                return True
        except (OSError, ValueError, PromotionRefused):
            pass
        log.warning("cached reference %s failed its check (edited, or half-written): rebuilding it", path)
        return False

    def _row_keys(self, frame: pd.DataFrame) -> np.ndarray:
        return row_keys(canonical_block(frame, list(self.info["columns"])))

    def denied_row_keys(self) -> np.ndarray:
        """Keys of every row held in quarantine or rejected: they never enter a reference."""
        return quarantine.denied_keys(self)

    # ------------------------------------------------------------------ recording and promoting

    def record_gate(self, out_dir: str | Path, batch: str, actor: Actor, *, key: str | None = None) -> Record:
        """Append the gate run's record (once per verdict: a re-run with the same outcome adds nothing)."""
        out = Path(out_dir)
        document = json.loads((out / "verdict.json").read_text())
        verify_document(document, self.key, out / "verdict.json")
        digest = document_sha256(stable_part(document))
        with self.lock():
            latest = self.ledger.find("gate", batch=batch)
            if latest is not None and latest.body["verdict_sha256"] == digest:
                return latest
            return self.ledger.append("gate", gate_body(document, batch, digest, actor, key or batch, out))

    def latest_gate(self, batch: str) -> Record:
        """The batch's latest gate record (verified); :class:`UsageError` when there is none."""
        gate = self.ledger.find("gate", batch=check_name(batch, "batch"))
        if gate is None:
            raise UsageError(f"no gate run is recorded for batch '{batch}' of '{self.dataset}'. Gate it first "
                             f"('poisonguard gate --dataset {self.dataset} --batch {batch} --incoming PATH').")
        return gate

    def recorded_verdict(self, gate: Record) -> tuple[dict[str, Any], Path]:
        """The verdict a gate record describes, read from its run directory, after checking it is
        that very verdict (hash, and signature in a signed store): :class:`PromotionRefused` otherwise."""
        path = Path(gate.body["run_dir"]) / "verdict.json"
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError):
            raise PromotionRefused(f"{path}, the verdict of ledger record {gate.seq}, is missing or not JSON. "
                                   "Re-run the gate.") from None
        verify_document(document, self.key, path)
        if document_sha256(stable_part(document)) != gate.body["verdict_sha256"]:
            raise PromotionRefused(f"{path} is not the verdict the gate recorded for batch '{gate.body['batch']}' "
                                   f"(ledger record {gate.seq}): it was edited or replaced. Re-run the gate.")
        return document, path

    def record_review(self, batch: str, *, approved: bool, reviewer: str, reason: str, actor: Actor) -> Record:
        """Record a person's decision on the batch's latest gate run, tied to that very verdict
        (its hash, as the ledger's gate record has it)."""
        if not reviewer.strip() or not reason.strip():
            raise UsageError("a review needs the reviewer's name (--reviewer) and a reason (--reason); both are "
                             "recorded.")
        with self.lock():
            gate = self.latest_gate(batch)
            document, _ = self.recorded_verdict(gate)
            return self.ledger.append("review", {"batch": batch, "verdict_sha256": gate.body["verdict_sha256"],
                                                 "gate_seq": gate.seq, "approved": approved,
                                                 "reviewer": reviewer, "reason": reason, "actor": actor.to_dict(),
                                                 "provenance": document["provenance"],
                                                 "decision": document["decision"]})

    def promote(self, out_dir: str | Path, batch: str, actor: Actor, *, key: str | None = None,
                lock_timeout: float = 600.0) -> Promotion:
        """Promote the gate run in ``out_dir`` as ``batch`` — verified, atomic and at most once.

        Verified: the verdict's signature (in a signed store); the verdict must be the one the
        ledger's gate record for ``batch`` holds (its hash, decision, rows root and outputs); its
        decision ``promote``, or ``block`` with a recorded approval of this very verdict; and the
        incoming data, re-read and re-hashed, must match the verdict's file hashes and rows root;
        the clean rows are re-derived from it. Atomic: the batch's files go in place first, the
        ledger record commits. At most once: promoting the same verdict as the same batch again
        changes nothing; the same run or the same rows as another batch is refused.
        ``key`` defaults to the one the gate run was recorded with."""
        out = Path(out_dir)
        check_name(batch, "batch")
        with self.lock(lock_timeout):
            return promotion.promote(self, out, batch, actor, key)


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def record_check(ledger_path: Path, out: Path, key: SigningKey | None) -> Record:
    """Append a ``poisonguard check`` run (outputs in ``out``) to a standalone ledger file, once
    per verdict; the batch is named after the output directory."""
    document = json.loads((out / "verdict.json").read_text())
    digest = document_sha256(stable_part(document))
    ledger = Ledger(ledger_path, key)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(ledger_path.with_name(ledger_path.name + ".lock"), 600.0, f"ledger {ledger_path}"):
        existing = ledger.find("gate", batch=out.name, verdict_sha256=digest)
        if existing is not None:
            return existing
        return ledger.append("gate", gate_body(document, out.name, digest, Actor.cli(), out.name, out))
