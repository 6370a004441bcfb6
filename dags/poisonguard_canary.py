"""poisonguard_canary: each week, check the gate still tells poison from clean data on each dataset.

For every dataset in ``DATASETS``, the canary cuts pseudo-batches out of the dataset's trusted
data (its store's reference as of now), plants each attack of ``poisonguard.testing.attacks``
in them (random and targeted label flips, backdoors, outliers, replays, drift), gates every one
with the dataset's policy, and logs per attack how often the gate blocked and how many planted
rows it quarantined. The task fails when clean pseudo-batches were blocked more often than the
policy's ``max_false_block_rate`` (default 1%): the gate would page people for nothing, so tune
the policy before the next real batch. Every run is kept as ``<store>/<dataset>/canary/<date>.json``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from poisonguard.airflow.canary import CanaryOperator

DATASETS = ["synthetic"]
POLICIES = str(Path(__file__).parent.parent / "checks")  # checks/<dataset>.yml, read when a task runs

with DAG(
    dag_id="poisonguard_canary",
    schedule="@weekly",
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    tags=["poisonguard", "canary"],
    doc_md=__doc__,
    params={"store_root": Param(None, type=["null", "string"], minLength=1,
                                description="Store root (default: $POISONGUARD_STORE, else "
                                "$AIRFLOW_HOME/poisonguard/store).")},
) as dag:
    for dataset in DATASETS:
        CanaryOperator(task_id=f"canary_{dataset}", dataset=dataset, store_root="{{ params.store_root or '' }}",
                       policy_dir=POLICIES)
