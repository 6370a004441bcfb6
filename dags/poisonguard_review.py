"""poisonguard_review: a person approves or rejects one blocked batch; only an approved batch is promoted.

A blocked run of ``poisonguard_ingest`` or ``poisonguard_manual`` triggers one run of this DAG
per batch (run id ``review__<dataset>__<batch>``); you can also trigger it by hand with the
``dataset`` and ``batch`` Params. The ``review`` task waits in the Airflow UI (Browse →
Required Actions, or the task's "Required Actions" tab) showing the reasons, the report and
the quarantine file; answer **Approve** or **Reject** with a reason. The decision, your Airflow
user name and the reason are recorded in the dataset's ledger next to the batch's gate record.
On approve, ``promote`` promotes the batch (minus its quarantined rows) and emits an event on
the dataset's Asset (through the alias ``poisonguard-promoted``); on reject it is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, Param

from poisonguard.airflow import PROMOTED_ALIAS, REVIEW_DAG_ID, PromoteReviewedOperator, ReviewBatchOperator
from poisonguard.airflow.locations import NAME_PATTERN

_NAME = {"type": "string", "pattern": NAME_PATTERN}

with DAG(
    dag_id=REVIEW_DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,  # review requests must reach a person without anyone unpausing
    tags=["poisonguard", "review"],
    doc_md=__doc__,
    params={
        "dataset": Param(description="The dataset of the blocked batch.", **_NAME),
        "batch": Param(description="The batch name (the ingest DAG uses the logical date, YYYY-MM-DD).", **_NAME),
        "store_root": Param(None, type=["null", "string"], minLength=1,
                            description="Store root (default: $POISONGUARD_STORE, else $AIRFLOW_HOME/poisonguard/store)."),
    },
) as dag:
    review = ReviewBatchOperator(task_id="review", dataset="{{ params.dataset }}", batch="{{ params.batch }}",
                                 store_root="{{ params.store_root or '' }}")
    PromoteReviewedOperator(task_id="promote", dataset="{{ params.dataset }}", batch="{{ params.batch }}",
                            store_root="{{ params.store_root or '' }}", review=review.output, outlet=PROMOTED_ALIAS)
