"""poisonguard_manual: gate one batch by hand — any dataset, any path, policy overrides as Params.

Trigger it with ``dataset`` (a dataset initialised in the store) and ``incoming`` (a CSV or
Parquet file, or a directory of Parquet files, as the workers see it). Airflow validates the
Params before any task runs, ``policy_overrides`` included (its shape: top-level policy fields
and ``checks.<check>`` sections; every value is then checked by the policy schema in the first
task, before any check runs). ``batch`` names the batch in the dataset's store (default: the
run's start, ``YYYY-MM-DDTHHMMSS``). The batch is gated against the golden reference plus every
batch promoted before the run's start (its key, ``YYYY-MM-DDTHH:MM:SSZ``, sorts after the daily
batch of the same day), so a re-run of the same run gives the same outcome.

Outcomes are those of ``poisonguard_ingest``: promote emits an event on the dataset's Asset
(through the alias ``poisonguard-promoted``); block fails the run naming the reasons and asks
for a review in ``poisonguard_review``. See docs/airflow.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from poisonguard.airflow import REVIEW_DAG_ID, poisoning_gate
from poisonguard.airflow.locations import NAME_PATTERN
from poisonguard.airflow.params import POLICY_OVERRIDES

POLICIES = str(Path(__file__).parent.parent / "checks")  # checks/<dataset>.yml, read when a task runs
_NAME = {"type": "string", "pattern": NAME_PATTERN}
_OPTIONAL = {"type": ["null", "string"], "minLength": 1}

with DAG(
    dag_id="poisonguard_manual",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    dagrun_timeout=timedelta(hours=6),
    tags=["poisonguard", "manual"],
    doc_md=__doc__,
    params={
        "dataset": Param(description="Dataset name (initialised in the store).", **_NAME),
        "incoming": Param(description="The batch: a CSV or Parquet file, or a directory of Parquet files.",
                          type="string", minLength=1),
        "batch": Param(None, description="Batch name in the store (default: the run's start, YYYY-MM-DDTHHMMSS).",
                       type=["null", "string"], pattern=NAME_PATTERN),
        "policy": Param(None, description="Policy YAML on the workers (default: checks/<dataset>.yml if it exists, "
                        "else the default policy).", **_OPTIONAL),
        "policy_overrides": Param({}, description="Policy fields merged over the policy, e.g. "
                                  '{"checks": {"baseline": {"model": "logistic"}}}.', **POLICY_OVERRIDES),
        "store_root": Param(None, description="Store root (default: $POISONGUARD_STORE, else "
                            "$AIRFLOW_HOME/poisonguard/store).", **_OPTIONAL),
    },
) as dag:
    poisoning_gate(
        dataset="{{ params.dataset }}",
        batch="{{ params.batch or dag_run.run_after.strftime('%Y-%m-%dT%H%M%S') }}",
        key="{{ dag_run.run_after.strftime('%Y-%m-%dT%H:%M:%SZ') }}",
        incoming="{{ params.incoming }}",
        policy="{{ params.policy or '' }}",
        policy_dir=POLICIES,
        policy_overrides="{{ params.policy_overrides | tojson }}",
        store_root="{{ params.store_root or '' }}",
        review_dag_id=REVIEW_DAG_ID,
    )
