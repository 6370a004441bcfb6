"""The DAGs end to end with ``dag.test()``: every task runs for real against a real store, and
each task's final state is what the grid will show."""

from __future__ import annotations

import json
import re

import pytest

from support.airflow import dag_test

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLEAN, BLOCKED = "2025-01-01", "2025-01-02"


def _store(gate_data):
    from support.airflow import open_store

    return open_store(gate_data.store_root)


def _ledger_kinds(store) -> list[tuple[str, str]]:
    return [(r.kind, r.body.get("batch")) for r in store.records()]


def test_a_clean_batch_is_promoted_a_poisoned_one_blocked_and_rerunning_changes_nothing(airflow_home, gate_data):
    gate_data.land(CLEAN, "clean_2", files=3)  # three files: three mapped scoring tasks
    gate_data.land(BLOCKED, "flips_10")
    store = _store(gate_data)

    clean = dag_test(airflow_home, "poisonguard_ingest.py", gate_data.conf(), CLEAN)
    assert clean.state == "success", clean.output[-5000:]
    assert set(clean.tasks.values()) == {"success"}  # request_review too: it has nothing to ask
    # A clean run logs no error: not even the XCom lookups of TriggerDagRunOperator's own link.
    assert [line for line in clean.output.splitlines() if not line.startswith("RESULT ")
            and re.search(r"\[error|Traceback|XCom not found", line, re.I)] == []
    assert [t for t in clean.tasks if t.startswith("gate.score_parts[")] == [f"gate.score_parts[{i}]" for i in range(3)]
    [promoted] = store.promoted()
    assert promoted["batch"] == CLEAN and promoted["clean_rows"] + promoted["quarantined_rows"] == 600

    blocked = dag_test(airflow_home, "poisonguard_ingest.py", gate_data.conf(), BLOCKED)
    assert blocked.state == "failed"
    failed = {t for t, s in blocked.tasks.items() if s == "failed"}
    assert failed == {"gate.checks.label_flips", "gate.promote"}  # the check that fired, and the refusal
    assert {t for t, s in blocked.tasks.items() if s not in ("success", "failed")} == set()
    assert "blocked by poisonguard: label_flips/flip_fraction_exceeded" in blocked.output
    run_dir = gate_data.store_root / "synthetic" / "runs" / BLOCKED
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["decision"] == "block"
    assert verdict["signature"]["key_id"] == "pytest"  # signed with the Airflow connection's key
    assert (run_dir / "quarantine.parquet").exists() and (run_dir / "report.html").exists()
    assert [p["batch"] for p in store.promoted()] == [CLEAN]  # nothing of the blocked batch
    review_runs = _runs(airflow_home, "poisonguard_review")
    assert review_runs == {f"review__synthetic__{BLOCKED}": {"dataset": "synthetic", "batch": BLOCKED,
                                                             "store_root": str(gate_data.store_root)}}

    # Idempotent: re-running either date gives the same outcome and adds no ledger record, no
    # promotion and no second review request.
    ledger = _ledger_kinds(store)
    assert ledger.count(("promote", CLEAN)) == 1 and ledger.count(("gate", BLOCKED)) == 1
    again = dag_test(airflow_home, "poisonguard_ingest.py", gate_data.conf(), CLEAN)
    assert again.state == "success"
    assert again.tasks["gate.promote"] == "skipped"  # already promoted: no second Asset event
    blocked_again = dag_test(airflow_home, "poisonguard_ingest.py", gate_data.conf(), BLOCKED)
    assert blocked_again.state == "failed"
    assert blocked_again.tasks["gate.request_review"] == "skipped"  # the review was already asked for
    assert _ledger_kinds(store) == ledger
    assert len(_runs(airflow_home, "poisonguard_review")) == 1


def test_a_date_with_nothing_landed_is_skipped(airflow_home, gate_data):
    run = dag_test(airflow_home, "poisonguard_ingest.py", gate_data.conf(), "2025-02-01")
    assert run.state == "success"
    assert set(run.tasks.values()) == {"skipped"} | ({"success"} & set(run.tasks.values()))
    assert run.tasks["gate.prepare"] == "skipped" and run.tasks["gate.promote"] == "skipped"
    assert "no batch of synthetic has landed for 2025-02-01" in run.output


def test_an_unusable_policy_override_fails_the_manual_run_before_any_check(airflow_home, gate_data):
    incoming = gate_data.land("x", "clean_3")
    conf = {"dataset": "synthetic", "incoming": str(incoming), "store_root": str(gate_data.store_root),
            "policy_overrides": {"checks": {"baseline": {"model": "random_forest"}}}}
    run = dag_test(airflow_home, "poisonguard_manual.py", conf)
    assert run.state == "failed"
    assert run.tasks["gate.prepare"] == "failed"
    ran = {t for t, s in run.tasks.items() if s in ("success", "failed") and not t.endswith("done")}
    assert ran == {"gate.prepare"}
    assert "checks.baseline.model" in run.output
    assert _store(gate_data).records()[-1].kind == "create"  # nothing recorded


_RUNS = """
import json, sys
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
with create_session() as s:
    print("RESULT " + json.dumps({r.run_id: r.conf for r in s.query(DagRun).filter(DagRun.dag_id == sys.argv[1])}))
"""


def _runs(home, dag_id: str) -> dict:
    proc = home.python(_RUNS, dag_id)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))
