"""Human review of a blocked batch, with Airflow 3's human-in-the-loop operators.

A blocked ingest run asks for a review by triggering one run of the review DAG for the batch
(:class:`RequestReviewOperator`; run id ``review__<dataset>__<batch>``, so re-running a date
never asks twice). In that run :class:`ReviewBatchOperator` shows the reasons and the report
in the Airflow UI ("Required actions") and waits for a person to approve or reject, with a
reason. The decision, the reviewer (the Airflow user who answered) and the reason are recorded
in the dataset's ledger next to the batch's gate record; :class:`PromoteReviewedOperator`
then promotes the batch only if it was approved (and emits the dataset's Asset event).

Review is opt-in: ``poisoning_gate(review_dag_id=REVIEW_DAG_ID)`` asks for it, and the review
DAG ships with the package (:func:`review_dag`), so a dags folder needs one two-line file for it.
When the review DAG does not exist, the request logs one warning saying how to add it and is
skipped; the gate's ``promote`` has already failed with the reason either way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetAlias, BaseOperator, BaseOperatorLink, Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowRuntimeError, AirflowSkipException

from poisonguard.airflow import runs
from poisonguard.airflow.locations import NAME_PATTERN, report_url
from poisonguard.airflow.operators import (
    PROMOTED_ALIAS,
    actor_of,
    emit_promotion,
    fail,
    failing_without_retry,
    signing_key,
    skip_if_already,
    ui_url,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG, Context
    from airflow.sdk.types import TaskInstanceKey

REVIEW_DAG_ID = "poisonguard_review"
APPROVE, REJECT = "Approve", "Reject"


def review_run_id(dataset: str, batch: str) -> str:
    return f"review__{dataset}__{batch}"


class ReviewRunLink(BaseOperatorLink):
    """"poisonguard review" on ``request_review``: the review run it asked for (empty when none was)."""

    name = "poisonguard review"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run_id = getattr(operator, "requested_run_id", None)
        return ui_url(f"dags/{operator.trigger_dag_id}/runs/{run_id}") if run_id else ""  # type: ignore[attr-defined]


def _missing_review_dag(dag_id: str) -> str:
    return (f"no review requested: the review DAG {dag_id!r} does not exist in this Airflow. Add it with a file "
            f"in your dags folder holding `from poisonguard.airflow import review_dag` and "
            f"`dag = review_dag(dag_id={dag_id!r})`, or pass review_dag_id=None to poisoning_gate.")


class RequestReviewOperator(TriggerDagRunOperator):
    """On a blocked verdict, trigger the review DAG for the batch; on promote, succeed doing
    nothing (not skipped: a task after the gate's group, which has this task as a leaf too,
    must still run on a promoted batch).

    The review run's id is fixed per batch, so a re-run of a blocked date finds the request
    already made and is skipped instead of asking twice. When the review DAG does not exist,
    the task logs one warning (what is missing and how to add it) and is skipped: the batch
    stays blocked (``promote`` fails on its own), nobody is asked."""

    template_fields: Sequence[str] = (*TriggerDagRunOperator.template_fields, "plan", "verdict")
    # Not TriggerDagRunOperator's link: it reads XCom "trigger_run_id" after every run, and the
    # API logs an error for each run that triggered nothing (every promoted batch).
    operator_extra_links = [ReviewRunLink()]  # noqa: RUF012 (the base class's type)

    def __init__(self, *, plan: Mapping[str, Any] | Any, verdict: Mapping[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(logical_date=None, skip_when_already_exists=True, retries=0, **kwargs)
        self.plan, self.verdict = plan, verdict
        self.requested_run_id: str | None = None

    def execute(self, context: Context) -> None:
        if self.verdict["decision"] == "promote":
            self.log.info("the batch was promoted; nothing to review.")
            return
        if not self._review_dag_exists(context):
            self.log.warning(_missing_review_dag(self.trigger_dag_id))
            raise AirflowSkipException(f"no review DAG {self.trigger_dag_id!r}")
        self.conf = {"dataset": self.plan["dataset"], "batch": self.plan["batch"],
                     "store_root": self.plan["store_root"]}
        self.trigger_run_id = self.requested_run_id = review_run_id(self.plan["dataset"], self.plan["batch"])
        self.log.info("asking for a review of %s batch %s in DAG %s", self.plan["dataset"], self.plan["batch"],
                      self.trigger_dag_id)
        super().execute(context)

    def _review_dag_exists(self, context: Context) -> bool:
        from airflow.sdk.api.client import ServerResponseError

        try:
            context["ti"].get_dag(self.trigger_dag_id)
        except AirflowRuntimeError as e:  # a worker: the supervisor relays the API's answer
            if (e.error.detail or {}).get("status_code") == 404:
                return False
            raise
        except ServerResponseError as e:  # dag.test(): the task calls the API in process
            if e.response.status_code == 404:
                return False
            raise
        return True


def review_body(verdict: Mapping[str, Any]) -> str:
    """The Markdown a reviewer reads before approving or rejecting a blocked batch."""
    lines = [f"poisonguard **blocked** batch `{verdict['batch']}` of **{verdict['dataset']}**: "
             f"{verdict['quarantined_rows']} of {verdict['rows']} rows look poisoned.", "", "**Why**", ""]
    lines += [f"- `{r['check']}` / `{r['code']}`: {r['message']}" for r in verdict["reasons"]]
    lines += ["", f"- report: [open it in Airflow]({report_url(verdict['dataset'], verdict['batch'])}) "
              f"(file `{verdict['report']}`)", f"- quarantined rows: `{verdict['quarantine']}`",
              f"- verdict: `{verdict['verdict']}`", "",
              "**Approve** promotes the batch's rows (minus the quarantined ones) despite the block; "
              "**Reject** keeps it out. Either way your decision, your user name and your reason are "
              "recorded in the dataset's ledger."]
    return "\n".join(lines)


class ReviewBatchOperator(HITLOperator):
    """Ask a person to approve or reject a blocked batch, then record the decision in the ledger.

    Skipped when the batch was promoted (nothing to review); returns the recorded review at once
    when the batch was already reviewed (a re-run does not ask twice). Fails when no gate run is
    recorded for the batch."""

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "dataset", "batch", "store_root")

    def __init__(self, *, dataset: str, batch: str, store_root: str | None = None, **kwargs: Any) -> None:
        # The reviewer's form: one field, the reason (the HITL form leaves out DAG-level params).
        params = copy.copy(kwargs.get("params")) or ParamsDict()
        # (Airflow validates task params when the task starts, before anyone answers: hence the "" default.)
        params["reason"] = Param("", type="string", title="Reason", source="task",
                                 description="Why you approve or reject this batch (required; kept in the ledger).")
        kwargs["params"] = params
        super().__init__(subject=f"poisonguard: review blocked batch {batch} of {dataset}",
                         options=[APPROVE, REJECT], retries=0, **kwargs)
        self.dataset, self.batch, self.store_root = dataset, batch, store_root

    def execute(self, context: Context) -> Any:
        with failing_without_retry(self.log):
            state = runs.review_state(self.store_root or None, self.dataset, self.batch, signing_key())
        if state["review"] is not None:
            self.log.info("already reviewed: %s", state["review"])
            return state["review"]
        if state["verdict"]["decision"] == "promote":
            raise AirflowSkipException(f"{self.dataset} batch {self.batch} was promoted; nothing to review.")
        self.subject = f"poisonguard blocked {self.dataset} batch {self.batch}: approve or reject"
        self.body = review_body(state["verdict"])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        answer = super().execute_complete(context, event)
        user = answer["responded_by_user"] or {}
        reason = str(answer["params_input"].get("reason") or "").strip()
        if not reason:
            raise fail(self.log, "the answer gave no reason, so it was not recorded; a review needs one. "
                                 "Clear this task to be asked again.")
        with failing_without_retry(self.log):
            return runs.record_review(self.store_root or None, self.dataset, self.batch,
                                      approved=answer["chosen_options"] == [APPROVE],
                                      reviewer=str(user.get("name") or user.get("id") or "unknown"),
                                      reason=reason, actor=actor_of(context), signing_key=signing_key())


class PromoteReviewedOperator(BaseOperator):
    """Promote a reviewed batch if, and only if, the review approved it (skipped otherwise), and
    emit the dataset's Asset event."""

    template_fields: Sequence[str] = ("dataset", "batch", "store_root", "review")
    ui_color = "#ceead6"

    def __init__(self, *, dataset: str, batch: str, review: Mapping[str, Any] | Any, outlet: Asset | AssetAlias,
                 store_root: str | None = None, **kwargs: Any) -> None:
        super().__init__(outlets=[outlet], retries=0, **kwargs)
        self.dataset, self.batch, self.review, self.outlet, self.store_root = dataset, batch, review, outlet, store_root

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.review["approved"]:
            raise AirflowSkipException(f"{self.dataset} batch {self.batch} was rejected by "
                                       f"{self.review['reviewer']}: {self.review['reason']}")
        with failing_without_retry(self.log):
            promotion = runs.promote_reviewed(self.store_root or None, self.dataset, self.batch, actor_of(context),
                                              signing_key())
        skip_if_already(promotion)
        emit_promotion(context, self.outlet, self.dataset, {"batch": self.batch, "reviewed_by": self.review["reviewer"]})
        return promotion


def review_dag(dag_id: str = REVIEW_DAG_ID, *, tags: Sequence[str] = ("poisonguard", "review")) -> DAG:
    """The review DAG that ``poisoning_gate(review_dag_id=dag_id)`` asks: one run per blocked batch
    (run id ``review__<dataset>__<batch>``; or trigger it by hand with the ``dataset`` and ``batch``
    Params). ``review`` waits in the UI (Browse → Required Actions) for a person to approve or
    reject with a reason; ``promote`` then promotes an approved batch and emits the dataset's
    Asset event (through :data:`PROMOTED_ALIAS`). Created unpaused, so requests reach people
    without anyone unpausing it. Put it in a dags folder with::

        from poisonguard.airflow import review_dag

        dag = review_dag()
    """
    import inspect
    from datetime import UTC, datetime

    from airflow.sdk import DAG

    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
        catchup=False,
        is_paused_upon_creation=False,  # review requests must reach a person without anyone unpausing
        tags=list(tags),
        doc_md=inspect.cleandoc(review_dag.__doc__ or ""),
        params={
            "dataset": Param(description="The dataset of the blocked batch.", type="string", pattern=NAME_PATTERN),
            "batch": Param(description="The batch name (the ingest DAG uses the logical date, YYYY-MM-DD).",
                           type="string", pattern=NAME_PATTERN),
            "store_root": Param(None, type=["null", "string"], minLength=1,
                                description="Store root (default: $POISONGUARD_STORE, else "
                                            "$AIRFLOW_HOME/poisonguard/store)."),
        },
    ) as dag:
        review = ReviewBatchOperator(task_id="review", dataset="{{ params.dataset }}", batch="{{ params.batch }}",
                                     store_root="{{ params.store_root or '' }}")
        PromoteReviewedOperator(task_id="promote", dataset="{{ params.dataset }}", batch="{{ params.batch }}",
                                store_root="{{ params.store_root or '' }}", review=review.output,
                                outlet=PROMOTED_ALIAS)
    return dag
