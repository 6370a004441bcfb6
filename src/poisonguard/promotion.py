"""Verified promotion of a gate run into a dataset store (see :meth:`DatasetStore.promote`).

Nothing the gate wrote is trusted on its word: the verdict must be signed (when a key is set),
the incoming data is read again and must hash to what the verdict recorded (file SHA-256s and
the rows root), and the clean rows are derived again from it and the verdict's quarantined rows.
So a verdict cannot be replayed onto other data, and data swapped between check and promote is
caught. The caller holds the dataset's lock.
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
from poisonguard.errors import InputError
from poisonguard.store import (
    Actor,
    Promotion,
    PromotionRefused,
    _stable,
    document_sha256,
    replace_dir,
    sha256_file,
    verify_document,
)

if TYPE_CHECKING:
    from poisonguard.store import DatasetStore


def promote(store: DatasetStore, out: Path, batch: str, actor: Actor, key: str) -> Promotion:
    verdict_path = out / "verdict.json"
    if not verdict_path.exists():
        raise PromotionRefused(f"{verdict_path} does not exist: there is no gate run to promote. Run the gate first.")
    raw = verdict_path.read_bytes()
    document = json.loads(raw)
    verify_document(document, store.key, verdict_path)
    digest = document_sha256(_stable(document))
    final = store.path / "batches" / batch

    done = store.ledger.find("promote", batch=batch)
    if done is not None:
        if done.body["verdict_sha256"] != digest:
            raise PromotionRefused(f"batch '{batch}' of '{store.dataset}' was already promoted from another verdict "
                                   f"(record {done.seq}). A promoted batch is immutable; gate new data as a new batch.")
        if sha256_file(final / "clean.parquet") != done.body["clean_sha256"]:
            raise InputError(f"promoted batch {final} no longer matches its ledger record {done.seq}: it was "
                             "changed. Restore it from a backup.")
        return Promotion(batch, True, True, done.body["clean_rows"], done.body["quarantined_rows"], done.to_dict())

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
    if not quarantine_file.exists() or (expected is not None and sha256_file(quarantine_file) != expected):
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
        "clean_rows": len(clean), "clean_sha256": sha256_file(final / "clean.parquet"),
        "quarantined_rows": len(quarantined), "incoming_sha256": prov["incoming_sha256"],
        "rows_root": prov["rows_root"], "policy_sha256": document["policy_sha256"],
        "approval": None if approval is None else {"seq": approval.seq, "hash": approval.hash,
                                                   "reviewer": approval.body["reviewer"]},
        "actor": actor.to_dict(), "code_version": __version__,
    }
    record = store.ledger.append("promote", body)
    return Promotion(batch, True, False, len(clean), len(quarantined), record.to_dict())


def _reasons(document: dict[str, Any]) -> str:
    return "; ".join(f"{r['check']}/{r['code']}" for r in document["reasons"]) or "no reason given"


def _reverified_incoming(document: dict[str, Any], store: DatasetStore) -> pd.DataFrame:
    """The incoming data the verdict describes, read again; refused unless it hashes the same."""
    from poisonguard.checks.provenance import hash_files, hash_rows, rows_root
    from poisonguard.reading import read_table

    prov = document["provenance"]
    files = [Path(p) for p in prov["incoming_files"]]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise PromotionRefused(f"incoming file(s) {missing} are gone since the gate checked them. Promotion "
                               "re-reads the data it promotes; restore the files or re-run the gate.")
    if hash_files(files) != prov["incoming_sha256"]:
        raise PromotionRefused("the incoming data changed since the gate checked it (sha256 differs): the verdict "
                               "does not describe it. Re-run the gate on the data you want to promote.")
    frames = [read_table(f, role="incoming").frame for f in files]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    columns = list(store.info["columns"])
    if sorted(map(str, frame.columns)) != sorted(columns):
        raise PromotionRefused(f"the incoming columns {list(frame.columns)} are not the store's {columns}.")
    frame = frame[columns]
    if rows_root(hash_rows(frame, columns)) != prov["rows_root"]:
        raise PromotionRefused("the incoming rows do not hash to the verdict's rows root: the verdict was made for "
                               "other data. Re-run the gate.")
    return frame
