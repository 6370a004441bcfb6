"""The operators, one ``execute(context)`` at a time, over the real core and a real store (no
Airflow database): each maps a core outcome to a task state — success with a small JSON
summary, skip, or a failure that names the reason."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from support.data import batch_file

# Airflow's unit-test mode lets a test call execute() outside the task runner without a warning.
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

import contextlib

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from poisonguard.airflow import runs
from poisonguard.airflow.operators import (
    PROMOTED_ALIAS,
    CheckOperator,
    FitCheckOperator,
    PrepareBatchOperator,
    PromoteOperator,
    ReportLink,
    ScorePartOperator,
    promoted_asset,
)
from poisonguard.airflow.review import (
    APPROVE,
    REJECT,
    PromoteReviewedOperator,
    RequestReviewOperator,
    ReviewBatchOperator,
    review_body,
)
from poisonguard.store.records import Actor


@dataclass(frozen=True)
class _TaskInstance:
    """The fields of the context's task instance the operators read (who ran what)."""

    dag_id: str = "poisonguard_ingest"
    run_id: str = "manual__test"
    task_id: str = "gate.finish"


def _context(**more):
    return {"ti": _TaskInstance(), "dag_run": None, "outlet_events": OutletEventAccessors(), **more}


def _land(tmp_path, batch: str, *, flip_fraction: float = 0.0, files: int = 1, seed: int = 11):
    """Land a fresh batch of the 'toy' dataset (distinct rows per seed) under the landing layout."""
    import pandas as pd

    folder = tmp_path / "landing" / "toy" / batch
    folder.mkdir(parents=True)
    frame = pd.read_parquet(batch_file(tmp_path, f"src-{batch}", seed, n=300, flip_fraction=flip_fraction))
    for i in range(files):
        frame.iloc[i::files].to_parquet(folder / f"part-{i}.parquet", index=False)
    return tmp_path / "landing"


def _gate(store, landing, batch, policy):
    """Every stage of the gate through the operators, as the task group wires them; returns
    the plan and each check task's outcome ('success', 'failed: <message>', 'skipped')."""
    plan, parts = runs.prepare_batch(dataset="toy", batch=batch, store_root=str(store.path.parent),
                                     landing_root=str(landing), policy=str(policy), signing_key=store.key)
    for name in plan["row_checks"]:
        FitCheckOperator(task_id=f"fit.{name}", check=name, plan=plan).execute({})
    for part in parts:
        assert ScorePartOperator(task_id="score_parts", **part).execute({})["errors"] == {}
    outcomes = {}
    for name in ("provenance", "schema", "outliers", "label_flips", "backdoor", "baseline", "drift", "cumulative"):
        try:
            summary = CheckOperator(task_id=f"checks.{name}", check=name, plan=plan).execute({})
            assert json.loads(json.dumps(summary)) == summary
            outcomes[name] = "success"
        except AirflowFailException as e:
            outcomes[name] = f"failed: {e}"
        except AirflowSkipException:
            outcomes[name] = "skipped"
    return plan, parts, outcomes


def test_a_poisoned_batch_fails_the_task_of_the_check_that_fired_and_promote_names_the_reasons(
        tmp_path, store, fast_policy):
    landing = _land(tmp_path, "2025-01-02", flip_fraction=0.2, files=3)
    plan, parts, outcomes = _gate(store, landing, "2025-01-02", fast_policy)

    assert len(parts) == 3 and plan["parts"] == 3 and plan["key"] == "2025-01-02"
    assert len(json.dumps(plan)) < 2000  # XCom carries paths and counts, never data
    assert outcomes["label_flips"].startswith("failed: label_flips blocks the batch: flip_fraction_exceeded")
    assert outcomes["baseline"] == outcomes["drift"] == outcomes["cumulative"] == "skipped"  # off in fast_policy
    assert outcomes["outliers"] == "success"

    verdict = runs.finish_batch(plan, Actor("airflow", task_id="gate.finish"))
    assert verdict["decision"] == "block"
    with pytest.raises(AirflowFailException) as refused:
        PromoteOperator(task_id="promote", plan=plan, verdict=verdict, outlet=promoted_asset("toy")).execute(
            _context())
    first, *rest = str(refused.value).splitlines()
    assert first.startswith("toy batch 2025-01-02 blocked by poisonguard: label_flips/flip_fraction_exceeded: ")
    assert "Report: " in rest[0] and "/poisonguard/reports/toy/2025-01-02" in rest[0]
    link = ReportLink().get_link(PromoteOperator(task_id="promote", plan=plan, verdict=verdict,
                                                 outlet=promoted_asset("toy")), ti_key=None)
    assert link.endswith("/poisonguard/reports/toy/2025-01-02")
    assert store.promoted() == []
    assert "**Why**" in review_body(verdict) and "flip_fraction_exceeded" in review_body(verdict)


def test_a_clean_batch_is_promoted_with_an_asset_event_and_needs_no_review(tmp_path, store, fast_policy):
    landing = _land(tmp_path, "2025-01-01")
    plan, _, outcomes = _gate(store, landing, "2025-01-01", fast_policy)
    assert {o for o in outcomes.values() if o != "skipped"} == {"success"}
    verdict = runs.finish_batch(plan, Actor("airflow", task_id="gate.finish"))
    assert verdict["decision"] == "promote"

    # Nothing to ask, and no skip: a task after the gate (which has request_review as a leaf) still runs.
    assert RequestReviewOperator(task_id="request_review", plan=plan, verdict=verdict,
                                 trigger_dag_id="poisonguard_review").execute(_context()) is None
    context = _context()
    promotion = PromoteOperator(task_id="promote", plan=plan, verdict=verdict,
                                outlet=promoted_asset("toy")).execute(context)
    assert promotion["promoted"] and not promotion["already"]
    assert context["outlet_events"][promoted_asset("toy")].extra == {"batch": "2025-01-01",
                                                                      "rows": promotion["clean_rows"]}
    with pytest.raises(AirflowSkipException, match="already promoted"):  # a re-run: no second Asset event
        PromoteOperator(task_id="promote", plan=plan, verdict=verdict, outlet=promoted_asset("toy")).execute(
            _context())
    assert len(store.promoted()) == 1


def test_data_swapped_after_the_gate_fails_promote_without_retry(tmp_path, store, fast_policy):
    import pandas as pd

    landing = _land(tmp_path, "2025-01-05")
    plan, _, _ = _gate(store, landing, "2025-01-05", fast_policy)
    verdict = runs.finish_batch(plan, Actor("airflow", task_id="gate.finish"))
    assert verdict["decision"] == "promote"
    landed = landing / "toy" / "2025-01-05" / "part-0.parquet"
    pd.read_parquet(batch_file(tmp_path, "other", 99, n=300, flip_fraction=0.3)).to_parquet(landed, index=False)
    with pytest.raises(AirflowFailException, match="PromotionRefused: the incoming data changed"):
        PromoteOperator(task_id="promote", plan=plan, verdict=verdict, outlet=promoted_asset("toy")).execute(
            _context())
    assert store.promoted() == []


def test_verdicts_are_signed_with_the_configured_key_and_another_key_is_refused(tmp_path, files, fast_policy,
                                                                               monkeypatch):
    from poisonguard.airflow.operators import FinishOperator
    from poisonguard.kernel.signing import SigningKey
    from poisonguard.store.dataset import DatasetStore

    monkeypatch.setenv("POISONGUARD_SIGNING_KEY", "the-gate-key-of-this-test")  # no Airflow connection here: the fallback
    store = DatasetStore.create(tmp_path / "signed", "toy", golden=files["reference"], label="y",
                                holdout=files["holdout"], key=SigningKey.from_text("the-gate-key-of-this-test"))
    landing = _land(tmp_path, "2025-01-06")
    plan, _, _ = _gate(store, landing, "2025-01-06", fast_policy)
    verdict = FinishOperator(task_id="finish", plan=plan).execute(_context())
    assert "signature" in json.loads((store.run_dir("2025-01-06") / "verdict.json").read_text())
    monkeypatch.setenv("POISONGUARD_SIGNING_KEY", "another-key-entirely-0123")
    with pytest.raises(AirflowFailException, match=r"LedgerTampered: .*signed with key '[0-9a-f]+', but the "
                       r"configured key is"):
        PromoteOperator(task_id="promote", plan=plan, verdict=verdict, outlet=promoted_asset("toy")).execute(
            _context())
    assert store.promoted() == []


def test_prepare_skips_a_date_with_nothing_landed_and_fails_without_retry_on_a_bad_policy(tmp_path, store):
    common = {"task_id": "prepare", "dataset": "toy", "store_root": str(store.path.parent),
              "landing_root": str(tmp_path / "landing")}
    with pytest.raises(AirflowSkipException, match="no batch of toy has landed for 2025-03-01"):
        PrepareBatchOperator(batch="2025-03-01", **common).execute({})
    _land(tmp_path, "2025-03-02")
    with pytest.raises(AirflowFailException, match=r"PolicyError: .*checks\.baseline\.model"):
        PrepareBatchOperator(batch="2025-03-02", policy_overrides='{"checks": {"baseline": {"model": "forest"}}}',
                             **common).execute({})
    with pytest.raises(AirflowFailException, match=r"UsageError: batch .\.\./x."):
        PrepareBatchOperator(batch="../x", **common).execute({})
    with pytest.raises(AirflowFailException, match="InputError: no store for dataset 'nope'"):
        PrepareBatchOperator(**(common | {"dataset": "nope"}), batch="2025-03-02").execute({})


@pytest.fixture
def blocked(tmp_path, store, fast_policy):
    """A batch the gate blocked, recorded in the store's ledger."""
    landing = _land(tmp_path, "2025-01-02", flip_fraction=0.2)
    plan, _, _ = _gate(store, landing, "2025-01-02", fast_policy)
    runs.finish_batch(plan, Actor("airflow", task_id="gate.finish"))
    return plan


def _answer(option: str, reason: str, user: str = "ann") -> dict:
    return {"chosen_options": [option], "params_input": {"reason": reason},
            "responded_at": datetime(2026, 1, 1, tzinfo=UTC), "responded_by_user": {"id": user, "name": user}}


def _review_task(plan) -> ReviewBatchOperator:
    return ReviewBatchOperator(task_id="review", dataset="toy", batch=plan["batch"], store_root=plan["store_root"])


def _promote_task(plan, review) -> PromoteReviewedOperator:
    return PromoteReviewedOperator(task_id="promote", dataset="toy", batch=plan["batch"], review=review,
                                   outlet=PROMOTED_ALIAS, store_root=plan["store_root"])


def test_an_approved_review_is_recorded_with_the_reviewer_and_only_then_promotes(store, blocked):
    review = _review_task(blocked).execute_complete(_context(), _answer(APPROVE, "labels checked by hand"))
    assert review == {"approved": True, "reviewer": "ann", "reason": "labels checked by hand",
                      "ledger_seq": store.ledger.find("review", batch="2025-01-02").seq}
    record = store.ledger.find("review", batch="2025-01-02").body
    assert record["decision"] == "block" and record["provenance"]["rows_root"]  # tied to the batch's provenance
    assert record["actor"] == {"kind": "airflow", "dag_id": "poisonguard_ingest", "run_id": "manual__test",
                               "task_id": "gate.finish"}

    # Asked again (a re-run of the review), the recorded decision is returned without asking anyone.
    assert _review_task(blocked).execute(_context()) == review
    context = _context()
    promotion = _promote_task(blocked, review).execute(context)
    assert promotion["promoted"] and [p["batch"] for p in store.promoted()] == ["2025-01-02"]
    assert store.promoted()[0]["approval"]["reviewer"] == "ann"
    [event] = context["outlet_events"][PROMOTED_ALIAS].asset_alias_events
    assert event.dest_asset_key.name == "poisonguard/toy" and event.extra["reviewed_by"] == "ann"


def test_a_rejected_batch_is_never_promoted(store, blocked):
    review = _review_task(blocked).execute_complete(_context(), _answer(REJECT, "looks like a real attack"))
    assert review["approved"] is False
    with pytest.raises(AirflowSkipException, match="rejected by ann: looks like a real attack"):
        _promote_task(blocked, review).execute(_context())
    assert store.promoted() == []


def test_an_answer_without_a_reason_is_not_recorded(store, blocked):
    with pytest.raises(AirflowFailException, match="gave no reason"):
        _review_task(blocked).execute_complete(_context(), _answer(APPROVE, "  "))
    assert store.ledger.find("review", batch="2025-01-02") is None


def test_review_refuses_a_batch_that_was_never_gated(store):
    with pytest.raises(AirflowFailException, match="no gate run is recorded for batch '2025-09-09'"):
        ReviewBatchOperator(task_id="review", dataset="toy", batch="2025-09-09",
                            store_root=str(store.path.parent)).execute(_context())


def test_the_fit_tasks_reuse_the_stores_fitted_state_and_the_verdict_is_the_same(tmp_path, store, fast_policy):
    landing = _land(tmp_path, "2025-04-01")
    first, _, _ = _gate(store, landing, "2025-04-01", fast_policy)
    cold = runs.finish_batch(first, Actor("airflow", task_id="gate.finish"))
    cold_doc = json.loads((store.run_dir("2025-04-01") / "verdict.json").read_text())
    # The same date again (a re-run): every fit task finds the state warm and fits nothing.
    plan, _ = runs.prepare_batch(dataset="toy", batch="2025-04-01", store_root=str(store.path.parent),
                                 landing_root=str(landing), policy=str(fast_policy))
    infos = [FitCheckOperator(task_id=f"fit.{n}", check=n, plan=plan).execute({}) for n in plan["row_checks"]]
    assert {i["state"] for i in infos} == {"reused"}
    for part in range(plan["parts"]):
        ScorePartOperator(task_id="score_parts", work_dir=plan["work_dir"], part=part).execute({})
    for name in plan["checks"]:
        with contextlib.suppress(AirflowFailException, AirflowSkipException):
            CheckOperator(task_id=f"checks.{name}", check=name, plan=plan).execute({})
    warm = runs.finish_batch(plan, Actor("airflow", task_id="gate.finish"))
    warm_doc = json.loads((store.run_dir("2025-04-01") / "verdict.json").read_text())
    assert warm == cold
    assert {k: v for k, v in warm_doc.items() if k != "run"} == {k: v for k, v in cold_doc.items() if k != "run"}
