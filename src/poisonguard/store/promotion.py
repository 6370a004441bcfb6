"""Verified promotion of a gate run into a dataset store (see :meth:`DatasetStore.promote`).

Nothing the gate wrote is trusted on its word: the verdict must be signed (in a signed store)
and be the very verdict the ledger's gate record for the batch holds (an edited verdict, or one
made outside the store, has no such record); the incoming data is read again and must hash to
what the verdict recorded (file SHA-256s and the rows root), and the clean rows are derived
again from it and the verdict's quarantined rows. So a verdict cannot be replayed onto other
data, data swapped between check and promote is caught, and one run — or one set of rows — goes
into the store at most once. The caller holds the dataset's lock.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poisonguard import __version__
from poisonguard.errors import InputError, PromotionRefused
from poisonguard.kernel.fsio import replace_dir
from poisonguard.kernel.hashing import hash_file
from poisonguard.kernel.signing import document_sha256, stable_part, verify_document
from poisonguard.store.ledger import Record
from poisonguard.store.records import Actor, Promotion

if TYPE_CHECKING:
    from poisonguard.store.dataset import DatasetStore


def promote(store: DatasetStore, out: Path, batch: str, actor: Actor, key: str | None) -> Promotion:
    records = store.records()  # the store's key, store.json, the chain and every signature verified (then cached)
    verdict_path = out / "verdict.json"
    if not verdict_path.exists():
        raise PromotionRefused(f"{verdict_path} does not exist: there is no gate run to promote. Run the gate first.")
    raw = verdict_path.read_bytes()
    try:
        document = json.loads(raw)
    except ValueError:
        raise PromotionRefused(f"{verdict_path} is not JSON: it is not a verdict the gate wrote. Re-run the gate.") \
            from None
    verify_document(document, store.key, verdict_path)
    digest = document_sha256(stable_part(document))
    final = store.path / "batches" / batch
    gate = _gate_record(store, batch, digest, document, verdict_path)

    done = store.ledger.find("promote", batch=batch)
    if done is not None:
        if done.body["verdict_sha256"] != digest:
            raise PromotionRefused(f"batch '{batch}' of '{store.dataset}' was already promoted from another verdict "
                                   f"(record {done.seq}). A promoted batch is immutable; gate new data as a new batch.")
        if hash_file(final / "clean.parquet") != done.body["clean_sha256"]:
            raise InputError(f"promoted batch {final} no longer matches its ledger record {done.seq}: it was "
                             "changed. Restore it from a backup.")
        return Promotion(batch, True, True, done.body["clean_rows"], done.body["quarantined_rows"], done.to_dict())
    rows_root = document["provenance"]["rows_root"]
    twin = next((r for r in reversed(records) if r.kind == "promote"
                 and (r.body["verdict_sha256"] == digest or r.body["rows_root"] == rows_root)), None)
    if twin is not None:
        raise PromotionRefused(f"these rows were already promoted into '{store.dataset}' as batch "
                               f"'{twin.body['batch']}' (ledger record {twin.seq}): a run, and a set of rows, is "
                               "promoted at most once per store.")
    key = key or str(gate.body["key"])

    approval = None
    if document["decision"] != "promote":
        approval = store.ledger.find("review", batch=batch, verdict_sha256=digest)
        if approval is None or not approval.body["approved"]:
            raise PromotionRefused(f"the gate blocked batch '{batch}' ({_reasons(document)}); only a reviewer's "
                                   "recorded approval of this very verdict can promote it.")
    if document["label"] != store.label:
        raise PromotionRefused(f"the verdict is for label '{document['label']}', the store's label is "
                               f"'{store.label}'. Gate the batch against this store.")
    frame = _reverified_incoming(document, store)
    quarantined = np.asarray(document["quarantined_rows"], dtype=np.int64)
    clean = frame.drop(index=quarantined).reset_index(drop=True)
    quarantine_file = out / "quarantine.parquet"
    expected = document.get("outputs", {}).get("quarantine.parquet")
    if not quarantine_file.exists() or (expected is not None and hash_file(quarantine_file) != expected):
        raise PromotionRefused(f"{quarantine_file} is missing or not the one the gate wrote (sha256 differs). "
                               "Re-run the gate.")

    tmp = final.with_name(f".{batch}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    clean.to_parquet(tmp / "clean.parquet", index=False)
    shutil.copyfile(quarantine_file, tmp / "quarantine.parquet")
    (tmp / "verdict.json").write_bytes(raw)
    replace_dir(tmp, final)  # files in place; nothing counts until the record below
    prov = document["provenance"]
    body: dict[str, Any] = {
        "batch": batch, "key": key, "verdict_sha256": digest, "decision": document["decision"],
        "clean_rows": len(clean), "clean_sha256": hash_file(final / "clean.parquet"),
        "quarantined_rows": len(quarantined), "incoming_sha256": prov["incoming_sha256"],
        "rows_root": prov["rows_root"], "policy_sha256": document["policy_sha256"],
        "approval": None if approval is None else {"seq": approval.seq, "hash": approval.hash,
                                                   "reviewer": approval.body["reviewer"]},
        "actor": actor.to_dict(), "code_version": __version__,
    }
    record = store.ledger.append("promote", body)  # the commit point
    return Promotion(batch, True, False, len(clean), len(quarantined), record.to_dict())


def _gate_record(store: DatasetStore, batch: str, digest: str, document: dict[str, Any], where: Path) -> Record:
    """The ledger's gate record of this very verdict for ``batch``, cross-checked field by field."""
    gate = store.ledger.find("gate", verdict_sha256=digest)
    if gate is None:
        raise PromotionRefused(f"{where} is not a verdict the gate recorded in the ledger of '{store.dataset}' (no "
                               f"gate record has its hash {digest[:16]}): it was edited, or made outside this store. "
                               f"Gate the batch into the store ('poisonguard gate --dataset {store.dataset} ...').")
    body = gate.body
    if body["batch"] != batch:
        raise PromotionRefused(f"the gate recorded {where} for batch '{body['batch']}' (ledger record {gate.seq}), "
                               f"not '{batch}'. Promote it as --batch {body['batch']}.")
    prov = document["provenance"]
    recorded = (body["decision"], body["rows_root"], body["incoming_sha256"], body.get("outputs", {}))
    if recorded != (document["decision"], prov["rows_root"], prov["incoming_sha256"], document.get("outputs", {})):
        raise PromotionRefused(f"{where} does not say what its gate record {gate.seq} says (decision, rows root, "
                               "incoming hash or outputs): it was edited. Re-run the gate.")
    return gate


def _reasons(document: dict[str, Any]) -> str:
    return "; ".join(f"{r['check']}/{r['code']}" for r in document["reasons"]) or "no reason given"


def _reverified_incoming(document: dict[str, Any], store: DatasetStore) -> pd.DataFrame:
    """The incoming data the verdict describes, read again; refused unless it hashes the same."""
    from poisonguard.io.reading import CsvFormat, read_table
    from poisonguard.kernel.hashing import hash_files, hash_rows, rows_root

    prov = document["provenance"]
    files = [Path(p) for p in prov["incoming_files"]]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise PromotionRefused(f"incoming file(s) {missing} are gone since the gate checked them. Promotion "
                               "re-reads the data it promotes; restore the files or re-run the gate.")
    if hash_files(files) != prov["incoming_sha256"]:
        raise PromotionRefused("the incoming data changed since the gate checked it (sha256 differs): the verdict "
                               "does not describe it. Re-run the gate on the data you want to promote.")
    csv_format = CsvFormat.from_dict(prov.get("csv"))  # split as the gate split it
    frames = [read_table(f, role="incoming", csv_format=csv_format).frame for f in files]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    columns = list(store.info["columns"])
    if sorted(map(str, frame.columns)) != sorted(columns):
        raise PromotionRefused(f"the incoming columns {list(frame.columns)} are not the store's {columns}.")
    frame = frame[columns]
    if rows_root(hash_rows(frame, columns)) != prov["rows_root"]:
        raise PromotionRefused("the incoming rows do not hash to the verdict's rows root: the verdict was made for "
                               "other data. Re-run the gate.")
    return frame
