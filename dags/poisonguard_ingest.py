"""poisonguard_ingest: gate the batch of ``synthetic`` landed for each day; promote it or block it.

Every day, once day ``D`` is over, the run for logical date ``D`` gates the files landed in
``<landing>/synthetic/<D>/*.parquet`` (``<landing>``: the ``landing_root`` Param, else
``$POISONGUARD_LANDING``, else ``$AIRFLOW_HOME/poisonguard/landing``) against the dataset's
trusted data as of ``D``: the golden reference plus every batch promoted for an earlier date.
So re-running a date gives the same outcome, promotion and ledger records are never
duplicated, a backfill gives each date its own verdict, and a blocked date does not change
the reference of the next. Runs go one at a time, oldest first (``max_active_runs=1``), so a
backfill promotes in date order.

- **promote**: ``gate.promote`` succeeds and emits an event on the Asset ``poisonguard/synthetic``
  (schedule training on ``promoted_asset("synthetic")``).
- **block**: the tasks of the checks that fired fail, ``gate.promote`` fails naming the reasons
  (no gate task retries), the run fails; verdict.json, quarantine.parquet and report.html are in the
  store's run folder for the date, and a ``poisonguard_review`` run asks a person to approve
  or reject the batch.
- **nothing landed** for the date: the run is skipped (every task skipped).

The policy is ``checks/synthetic.yml`` unless the ``policy`` Param names another file;
``policy_overrides`` are merged over it (Airflow checks their shape when the run is triggered,
the first task checks every value). One DAG per dataset: copy this file and change
``DATASET``. See docs/airflow.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from poisonguard.airflow import REVIEW_DAG_ID, poisoning_gate
from poisonguard.airflow.params import POLICY_OVERRIDES

DATASET = "synthetic"
POLICIES = str(Path(__file__).parent.parent / "checks")  # checks/<dataset>.yml, read when a task runs
_OPTIONAL_PATH = {"type": ["null", "string"], "minLength": 1}

with DAG(
    dag_id="poisonguard_ingest",
    # The run for day D starts once D is over (data-interval semantics), when D's batch has landed.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=["poisonguard", "ingest", DATASET],
    doc_md=__doc__,
    params={
        "policy": Param(None, description="Policy YAML on the workers (default: checks/synthetic.yml).",
                        **_OPTIONAL_PATH),
        "policy_overrides": Param({}, description="Policy fields merged over the policy, e.g. "
                                  '{"checks": {"baseline": {"model": "logistic"}}}.', **POLICY_OVERRIDES),
        "store_root": Param(None, description="Store root (default: $POISONGUARD_STORE, else "
                            "$AIRFLOW_HOME/poisonguard/store).", **_OPTIONAL_PATH),
        "landing_root": Param(None, description="Landing root (default: $POISONGUARD_LANDING, else "
                              "$AIRFLOW_HOME/poisonguard/landing).", **_OPTIONAL_PATH),
    },
) as dag:
    poisoning_gate(dataset=DATASET, batch="{{ ds }}", policy="{{ params.policy or '' }}", policy_dir=POLICIES,
                   policy_overrides="{{ params.policy_overrides | tojson }}",
                   store_root="{{ params.store_root or '' }}", landing_root="{{ params.landing_root or '' }}",
                   review_dag_id=REVIEW_DAG_ID)
