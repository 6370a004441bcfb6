"""The README's Airflow snippet, as written, in a dags folder of its own — no review DAG, no
file of this repo's ``dags/`` — run for real with ``dag.test()``: a new user's first DAG.

A blocked batch fails ``gate.promote`` with the block message as the first line of its error,
``train`` does not run, and nothing else fails; a clean batch is promoted and trains, with no
error in its log. The "poisonguard report" link of ``gate.finish`` and ``gate.promote`` is what
the api-server shows for the finished run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from support.airflow import FAST_POLICY, ROOT, SIGNING_CONNECTION, SYNTHETIC, migrated_home, signing_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BLOCKED, CLEAN = "2025-01-02", "2025-01-03"


def readme_snippet() -> str:
    """The first Python block of the README's "### Airflow" section."""
    section = (ROOT / "README.md").read_text().split("\n### Airflow\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's Airflow section has no Python block"
    return blocks[0]


# dag.test() of one DAG of the folder; every failed task's error, as Airflow's listeners get
# it; the extra links of each task as the api-server computes them (from the serialized DAG).
_RUN = """
import json, sys
from datetime import UTC, datetime
from airflow.dag_processing.dagbag import DagBag
from airflow.listeners import hookimpl
from airflow.sdk.listener import get_listener_manager

errors = {}

class Failures:
    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        errors[task_instance.task_id] = f"{type(error).__name__}: {error}"

get_listener_manager().add_listener(Failures())
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[3]]
run = dag.test(logical_date=datetime.fromisoformat(sys.argv[2]).replace(tzinfo=UTC))

from airflow.models.serialized_dag import SerializedDagModel
served = SerializedDagModel.get_dag(dag.dag_id)
tis = run.get_task_instances()
links = {ti.task_id: {name: served.get_task(ti.task_id).get_extra_links(ti, name)
                      for name in served.get_task(ti.task_id).extra_links} for ti in tis if ti.map_index < 0}
print("RESULT " + json.dumps({
    "state": str(run.state), "errors": errors, "links": links,
    "tasks": {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in tis},
    "tries": {ti.task_id: ti.try_number for ti in tis if ti.map_index < 0},
    "retries": {t.task_id: t.retries for t in dag.tasks}}))
"""


def _credit_store(root: Path) -> None:
    from poisonguard.store.dataset import DatasetStore
    from poisonguard.store.records import Actor

    DatasetStore.create(root, "credit", golden=SYNTHETIC / "reference.parquet", label="label",
                        holdout=SYNTHETIC / "holdout.parquet", key=signing_key(), actor=Actor(kind="test", user="pytest"))


def _land(landing: Path, batch: str, scenario: str) -> None:
    folder = landing / "credit" / batch
    folder.mkdir(parents=True)
    pd.read_parquet(SYNTHETIC / "incoming" / f"{scenario}.parquet").to_parquet(folder / "part-000.parquet", index=False)


def _run(home, dags: Path, date: str, dag_id: str = "credit_ingest") -> dict:
    proc = home.python(_RUN, str(dags), date, dag_id)
    (home.path / f"dag-test-{dag_id}-{date}.log").write_text(proc.stdout + proc.stderr)  # to read after a failure
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"dag.test() of the README's DAG did not finish:\n{(proc.stdout + proc.stderr)[-6000:]}"
    return json.loads(lines[-1].removeprefix("RESULT ")) | {"output": proc.stdout + proc.stderr}


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    """A dags folder holding only the README's snippet, a store with the dataset ``credit``, its
    policy found by name (the fast test policy), and Airflow pointed at them by the environment."""
    root = tmp_path_factory.mktemp("readme")
    snippet = readme_snippet()
    assert "poisoning_gate(dataset=\"credit\")" in snippet  # the README's one-liner, no review DAG named
    dags = root / "dags"
    dags.mkdir()
    (dags / "credit_ingest.py").write_text(snippet)
    (root / "policies").mkdir()
    (root / "policies" / "credit.yml").write_text(FAST_POLICY)
    _credit_store(root / "store")
    home = migrated_home(root / "airflow", AIRFLOW__CORE__DAGS_FOLDER=str(dags), **SIGNING_CONNECTION,
                         POISONGUARD_STORE=str(root / "store"), POISONGUARD_LANDING=str(root / "landing"),
                         POISONGUARD_POLICIES=str(root / "policies"))
    return home, dags, root


def test_the_readme_snippet_blocks_a_poisoned_batch_with_the_reason_and_promotes_a_clean_one(credit):
    home, dags, tmp_path = credit
    _land(tmp_path / "landing", BLOCKED, "flips_10")
    _land(tmp_path / "landing", CLEAN, "clean_2")

    blocked = _run(home, dags, BLOCKED)
    assert blocked["state"] == "failed", blocked["output"][-5000:]
    tasks = blocked["tasks"]
    assert {t for t, s in tasks.items() if s == "failed"} == {"gate.checks.label_flips", "gate.promote"}
    assert tasks["train"] == "upstream_failed" and tasks["land"] == "success"
    assert not any("request_review" in t for t in tasks)  # review is opt-in
    first_line = blocked["errors"]["gate.promote"].splitlines()[0]
    assert first_line.startswith(f"AirflowFailException: credit batch {BLOCKED} blocked by poisonguard: "
                                 "label_flips/flip_fraction_exceeded: "), first_line
    assert "Report: " in blocked["errors"]["gate.promote"]
    assert blocked["errors"]["gate.checks.label_flips"].splitlines()[0].startswith(
        "AirflowFailException: label_flips blocks the batch: flip_fraction_exceeded")
    # The reason also stands as its own ERROR line of the task log, above the traceback.
    assert re.search(rf"(?m)^.*\berror\b.*credit batch {BLOCKED} blocked by poisonguard", blocked["output"], re.I)
    assert set(blocked["retries"].values()) == {0} and max(blocked["tries"].values()) == 1  # at most one try each
    # The UI's "poisonguard report" link of promote and finish: the plugin's route for this batch.
    report = f"/poisonguard/reports/credit/{BLOCKED}"
    assert blocked["links"]["gate.promote"]["poisonguard report"].endswith(report)
    assert blocked["links"]["gate.finish"]["poisonguard report"].endswith(report)
    assert (tmp_path / "store" / "credit" / "runs" / BLOCKED / "report.html").is_file()

    clean = _run(home, dags, CLEAN)
    assert clean["state"] == "success", clean["output"][-5000:]
    assert clean["tasks"]["gate.promote"] == "success" and clean["tasks"]["train"] == "success"
    assert clean["errors"] == {}
    assert clean["links"]["gate.promote"]["poisonguard report"].endswith(f"/poisonguard/reports/credit/{CLEAN}")
    noise = [line for line in clean["output"].splitlines() if not line.startswith("RESULT ")
             and re.search(r"\[error|\berror\b|Traceback|XCom not found", line, re.I)]
    assert noise == []


_REVIEWED = """
from datetime import UTC, datetime

from airflow.sdk import DAG

from poisonguard.airflow import REVIEW_DAG_ID, poisoning_gate

with DAG("credit_reviewed", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC)):
    poisoning_gate(dataset="credit", review_dag_id=REVIEW_DAG_ID)
"""


def test_a_review_asked_of_a_dag_that_does_not_exist_warns_once_and_the_batch_stays_blocked(credit):
    home, dags, tmp_path = credit
    (dags / "credit_reviewed.py").write_text(_REVIEWED)  # asks for poisonguard_review; the folder has none
    _land(tmp_path / "landing", "2025-01-04", "flips_10")
    run = _run(home, dags, "2025-01-04", "credit_reviewed")
    assert run["state"] == "failed", run["output"][-5000:]
    assert {t for t, s in run["tasks"].items() if s == "failed"} == {"gate.checks.label_flips", "gate.promote"}
    assert run["tasks"]["gate.request_review"] == "skipped"
    assert run["errors"]["gate.promote"].startswith("AirflowFailException: credit batch 2025-01-04 blocked by poisonguard: ")
    warnings = [line for line in run["output"].splitlines() if "no review requested" in line]
    assert len(warnings) == 1 and "warning" in warnings[0].lower()
    assert "'poisonguard_review' does not exist" in warnings[0] and "review_dag(" in warnings[0]
    request = run["output"].split("running task <TaskInstance: credit_reviewed.gate.request_review")[1].split(
        "end task task_id=gate.request_review")[0]
    assert [line for line in request.splitlines() if re.search(r"\[error|Traceback|ServerResponseError", line)] == []
