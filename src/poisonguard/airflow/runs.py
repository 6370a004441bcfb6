"""What each gate task does, without Airflow: the operators call these and map the outcome to a
task state. Every function takes and returns small JSON-safe dicts (the ``plan`` prepare makes,
the verdict summary finish makes), fit for XCom; data stays in files in the store.

The plan is what every later task needs to find the batch again, in any worker process: the
dataset, the batch name and its ordering key, the store root, the work and output directories
and the checks the policy enables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poisonguard.airflow import locations


class NothingLanded(Exception):
    """No batch has landed for the key: nothing to gate (the task is skipped, not failed)."""


def open_store(store_root: str | Path | None, dataset: str, signing_key: Any = None) -> Any:
    """The dataset's store under ``store_root`` (see :func:`locations.store_root`); verdicts and
    ledger records are signed and checked with ``signing_key`` (a ``SigningKey``) when given."""
    from poisonguard.store.dataset import DatasetStore

    return DatasetStore(locations.store_root(store_root), dataset, key=signing_key)


def effective_policy(policy: str | Path | None, overrides: Mapping[str, Any] | None) -> Any:
    """The policy file (or the default policy) with ``overrides`` merged over it, validated."""
    from poisonguard.engine.policy import load_policy, policy_from_dict

    base = load_policy(policy)
    if not overrides:
        return base
    return policy_from_dict(_merged(base.to_dict(), dict(overrides)),
                            source=f"policy overrides over {policy or 'the default policy'}")


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def prepare_batch(*, dataset: str, batch: str, key: str | None = None, store_root: str | None = None,
                  landing_root: str | None = None, incoming: str | None = None, policy: str | None = None,
                  policy_dir: str | None = None, policy_overrides: Mapping[str, Any] | None = None,
                  id_column: str | None = None,
                  signing_key: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Find the batch and the trusted data, and stage the run (:func:`poisonguard.engine.stages.prepare`).

    ``incoming`` defaults to the landing layout, ``policy`` to the dataset's policy file in
    ``policy_dir`` (see :mod:`poisonguard.airflow.locations`), ``policy_overrides`` are merged
    over it. The
    reference is the store's trusted data as of ``key`` (default: ``batch``): the golden
    reference plus every batch promoted with a smaller key, so dates are independent and a
    re-run sees the same reference. Returns the plan and one ``{"work_dir", "part"}`` per file
    of the batch (what the scoring tasks are mapped over). Raises :class:`NothingLanded` when no
    batch has landed, and the core's ``InputError``/``UsageError``/``PolicyError`` for unusable
    input."""
    from poisonguard.engine import stages
    from poisonguard.store.records import check_name
    from poisonguard.workflows import store_inputs

    store = open_store(store_root, dataset, signing_key)
    _ = store.label  # refuses a dataset without a store before anything else
    check_name(batch, "batch")
    key = key or batch
    if incoming is None:
        landing = locations.landing_root(landing_root)
        found = locations.landed_batch(landing, dataset, batch)
        if found is None:
            raise NothingLanded(f"no batch of {dataset} has landed for {batch}: expected "
                                f"{landing / dataset / batch}/*.parquet (or {batch}.parquet / {batch}.csv).")
        incoming = str(found)
    policy_file = policy or locations.default_policy(dataset, policy_dir)
    inputs = store_inputs(store, incoming, key=key, policy=effective_policy(policy_file, policy_overrides),
                          id_column=id_column)
    staged = stages.prepare(inputs, work_dir=store.work_dir(batch))
    reference = inputs.reference
    plan = {"dataset": dataset, "batch": batch, "key": key, "store_root": str(store.path.parent),
            "incoming": str(incoming), "reference": str(reference), "policy": str(policy_file) if policy_file else None,
            "work_dir": staged["work_dir"],
            "out_dir": str(store.run_dir(batch)), "rows": staged["rows"], "parts": len(staged["parts"]),
            "checks": staged["checks"], "row_checks": staged["row_checks"],
            "reference_rows": staged["reference_rows"], "holdout_rows": staged["holdout_rows"]}
    return plan, [{"work_dir": staged["work_dir"], "part": i} for i in staged["parts"]]


def verdict_summary(document: Mapping[str, Any], dataset: str, batch: str, out: Path) -> dict[str, Any]:
    """A verdict in a few fields: the decision, why, how many rows, and where the outputs are."""
    return {"dataset": dataset, "batch": batch, "decision": document["decision"], "reasons": document["reasons"],
            "warnings": document.get("warnings", []), "rows": document["rows"]["incoming"],
            "quarantined_rows": document["rows"]["quarantined"], "out_dir": str(out),
            "report": str(out / "report.html"), "verdict": str(out / "verdict.json"),
            "quarantine": str(out / "quarantine.parquet")}


def finish_batch(plan: Mapping[str, Any], actor: Any, signing_key: Any = None) -> dict[str, Any]:
    """Decide, write verdict.json, quarantine.parquet and report.html (and clean.parquet on
    promote) to the batch's run directory, and record the run in the ledger (once per verdict:
    a re-run with the same outcome adds no record). Returns the verdict in a few fields."""
    from poisonguard.engine import stages

    store = open_store(plan["store_root"], plan["dataset"], signing_key)
    run = stages.finish(plan["work_dir"], plan["out_dir"], signing_key=store.key)
    record = store.record_gate(plan["out_dir"], plan["batch"], actor, key=plan["key"])
    return verdict_summary(run.document, plan["dataset"], plan["batch"], Path(plan["out_dir"])) | {
        "ledger_seq": record.seq}


def block_message(verdict: Mapping[str, Any]) -> str:
    """Says the batch is blocked and why on its first line (the line a task log or an alert
    shows), then how many rows look poisoned and where the report and the quarantine are."""
    reasons = "; ".join(f"{r['check']}/{r['code']}: {r['message']}" for r in verdict["reasons"]) or "(no reason given)"
    return (f"{verdict['dataset']} batch {verdict['batch']} blocked by poisonguard: {reasons}\n"
            f"{verdict['quarantined_rows']} of {verdict['rows']} rows look poisoned. "
            f"Report: {verdict['report']} (in the Airflow UI: "
            f"{locations.report_url(verdict['dataset'], verdict['batch'])}); quarantine: {verdict['quarantine']}.")


def promote_batch(plan: Mapping[str, Any], actor: Any, signing_key: Any = None) -> dict[str, Any]:
    """Promote the batch's clean rows into the store (verified, atomic, idempotent)."""
    store = open_store(plan["store_root"], plan["dataset"], signing_key)
    promotion = store.promote(plan["out_dir"], plan["batch"], actor, key=plan["key"])
    return dict(promotion.to_dict())


# --------------------------------------------------------------------------- review of a blocked batch

def _gate_record(store: Any, batch: str) -> Any:
    from poisonguard.errors import InputError

    record = store.ledger.find("gate", batch=batch)
    if record is None:
        raise InputError(f"no gate run is recorded for batch '{batch}' of '{store.dataset}' in {store.path}. "
                         "Gate the batch first; only a gated batch can be reviewed.")
    return record


def _review_of(record: Any) -> dict[str, Any]:
    body = record.body
    return {"approved": bool(body["approved"]), "reviewer": body["reviewer"], "reason": body["reason"],
            "ledger_seq": record.seq}


def review_state(store_root: str | None, dataset: str, batch: str, signing_key: Any = None) -> dict[str, Any]:
    """What a reviewer needs: the batch's latest verdict in a few fields, and the review already
    recorded for that very verdict (``None`` if none)."""
    store = open_store(store_root, dataset, signing_key)
    gate = _gate_record(store, batch)
    out = store.run_dir(batch)
    verdict = verdict_summary(json.loads((out / "verdict.json").read_text()), dataset, batch, out)
    done = store.ledger.find("review", batch=batch, verdict_sha256=gate.body["verdict_sha256"])
    return {"verdict": verdict, "review": None if done is None else _review_of(done)}


def record_review(store_root: str | None, dataset: str, batch: str, *, approved: bool, reviewer: str, reason: str,
                  actor: Any, signing_key: Any = None) -> dict[str, Any]:
    """Record a person's decision on the batch's latest verdict in the ledger."""
    store = open_store(store_root, dataset, signing_key)
    return _review_of(store.record_review(batch, approved=approved, reviewer=reviewer, reason=reason, actor=actor))


def promote_reviewed(store_root: str | None, dataset: str, batch: str, actor: Any,
                     signing_key: Any = None) -> dict[str, Any]:
    """Promote a batch a reviewer approved (the store refuses one without a recorded approval),
    at the place in the order of promotions its gate run was recorded with."""
    store = open_store(store_root, dataset, signing_key)
    gate = _gate_record(store, batch)
    return dict(store.promote(store.run_dir(batch), batch, actor, key=gate.body["key"]).to_dict())
