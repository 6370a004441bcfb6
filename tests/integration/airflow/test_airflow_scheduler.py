"""Airflow for real: a scheduler (LocalExecutor) and an api-server on loopback, over SQLite. A
backfill of three dates, one poisoned, goes through Airflow's own CLI; every run's final state,
the tasks of the blocked date, the promoted data and the Asset events are read back through
the REST API and the store. Then a reviewer approves the blocked batch through the REST API
(what the UI's "Required Actions" page calls), and only then is it promoted.

Processes are started by the test and always stopped (see ``airflow_harness.running_services``);
every wait is bounded."""

from __future__ import annotations

import pandas as pd
import pytest

from support.airflow import SIGNING_CONNECTION, SYNTHETIC, migrated_home, running_services

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATES = {"2025-01-01": "clean_2", "2025-01-02": "flips_10", "2025-01-03": "clean_3"}
BLOCKED = "2025-01-02"


def test_a_backfill_promotes_the_clean_dates_blocks_the_poisoned_one_and_a_reviewer_can_approve_it(
        tmp_path, gate_data):
    # The store and landing roots come from the environment (as on a real deployment), the fast
    # policy from the backfill's conf.
    home = migrated_home(tmp_path / "airflow", AIRFLOW__CORE__PARALLELISM="4", **SIGNING_CONNECTION,
                         POISONGUARD_STORE=str(gate_data.store_root), POISONGUARD_LANDING=str(gate_data.landing_root))
    for i, (date, scenario) in enumerate(DATES.items()):
        gate_data.land(date, scenario, files=3 if i == 0 else 1)
    home.airflow("dags", "reserialize")
    home.airflow("dags", "unpause", "poisonguard_ingest")  # a paused DAG's backfill runs wait
    # Created before the scheduler starts: SQLite takes one writer at a time.
    home.airflow("backfill", "create", "--dag-id", "poisonguard_ingest", "--from-date", "2025-01-01",
                 "--to-date", "2025-01-03", "--max-active-runs", "1",
                 "--dag-run-conf", _json({"policy": str(gate_data.policy)}))
    with running_services(home, "scheduler", "api-server") as af:

        def finished():
            runs = af.request("GET", "/api/v2/dags/poisonguard_ingest/dagRuns")["dag_runs"]
            done = {r["logical_date"][:10]: r for r in runs
                    if r["run_type"] == "backfill" and r["state"] in ("success", "failed")}
            return done if len(done) == len(DATES) else None

        runs = af.wait_until("the three backfill runs", finished, timeout=1500, every=5)
        assert {d: r["state"] for d, r in runs.items()} == {
            "2025-01-01": "success", "2025-01-02": "failed", "2025-01-03": "success"}
        tasks = _task_states(af, "poisonguard_ingest", runs[BLOCKED]["dag_run_id"])
        assert {t for t, s in tasks.items() if s == "failed"} == {"gate.checks.label_flips", "gate.promote"}
        assert tasks["gate.finish"] == tasks["gate.request_review"] == "success"
        first = _task_states(af, "poisonguard_ingest", runs["2025-01-01"]["dag_run_id"])
        assert sorted(t for t in first if t.startswith("gate.score_parts")) == [
            "gate.score_parts[0]", "gate.score_parts[1]", "gate.score_parts[2]"]

        store = _store(gate_data)
        assert [p["batch"] for p in store.promoted()] == ["2025-01-01", "2025-01-03"]
        # The reference of the third date is golden + the first date's clean rows: the blocked date
        # did not poison it.
        gate3 = store.ledger.find("gate", batch="2025-01-03")
        golden = len(pd.read_parquet(SYNTHETIC / "reference.parquet"))
        assert _plan(af, runs["2025-01-03"])["reference_rows"] == golden + store.promoted()[0]["clean_rows"]
        assert gate3.body["decision"] == "promote"
        assert _asset_batches(af) == ["2025-01-01", "2025-01-03"]

        # The report, in the Airflow UI's host (the plugin), for signed-in users only.
        report = af.get_text(f"/poisonguard/reports/synthetic/{BLOCKED}")
        assert report.lstrip().lower().startswith("<!doctype html") and "label_flips" in report
        assert af.status_without_login(f"/poisonguard/reports/synthetic/{BLOCKED}") in (401, 403)
        index = af.get_text("/poisonguard/")  # the plugin's page in the UI's navigation
        assert f'href="/poisonguard/reports/synthetic/{BLOCKED}"' in index and '<td class="block">' in index
        links = af.request("GET", f"/api/v2/dags/poisonguard_ingest/dagRuns/{runs[BLOCKED]['dag_run_id']}/"
                                  "taskInstances/gate.promote/links")["extra_links"]
        assert links["poisonguard report"].endswith(f"/poisonguard/reports/synthetic/{BLOCKED}")

        # The blocked batch waits for a person in its review run; approve it with a reason.
        review_run = f"review__synthetic__{BLOCKED}"
        af.wait_until("the review task to ask for input", lambda: _task_states(
            af, "poisonguard_review", review_run).get("review") == "awaiting_input", timeout=300)
        detail = af.request("GET", f"/api/v2/dags/poisonguard_review/dagRuns/{review_run}/taskInstances/review/-1")
        assert detail["state"] == "awaiting_input"
        af.request("PATCH", f"/api/v2/dags/poisonguard_review/dagRuns/{review_run}/taskInstances/review/-1/hitlDetails",
                   {"chosen_options": ["Approve"], "params_input": {"reason": "flips confirmed benign by the vendor"}})
        state = af.wait_until("the review run to finish", lambda: _finished(af, "poisonguard_review", review_run),
                              timeout=300)
        assert state == "success"

    review = store.ledger.find("review", batch=BLOCKED)
    assert review.body["approved"] and review.body["reviewer"] == "admin"
    assert review.body["reason"] == "flips confirmed benign by the vendor"
    promoted = {p["batch"]: p for p in store.promoted()}
    assert set(promoted) == set(DATES)
    assert promoted[BLOCKED]["approval"]["reviewer"] == "admin"


def _json(value) -> str:
    import json

    return json.dumps(value)


def _store(gate_data):
    from support.airflow import open_store

    return open_store(gate_data.store_root)


def _plan(af, run) -> dict:
    """The plan the prepare task pushed to XCom (a small summary: paths and counts)."""
    return af.request("GET", f"/api/v2/dags/poisonguard_ingest/dagRuns/{run['dag_run_id']}/taskInstances/"
                             "gate.prepare/xcomEntries/plan")["value"]


def _task_states(af, dag_id: str, run_id: str) -> dict[str, str]:
    tis = af.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
    return {t["task_id"] if t["map_index"] < 0 else f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis}


def _finished(af, dag_id: str, run_id: str) -> str | None:
    state = af.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None


def _asset_batches(af) -> list[str]:
    assets = af.request("GET", "/api/v2/assets?name_pattern=poisonguard/synthetic")["assets"]
    [asset] = [a for a in assets if a["name"] == "poisonguard/synthetic"]
    events = af.request("GET", f"/api/v2/assets/events?asset_id={asset['id']}&order_by=timestamp")["asset_events"]
    return [e["extra"]["batch"] for e in events]
