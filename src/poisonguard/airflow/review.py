"""Human review of a blocked batch, with Airflow 3's human-in-the-loop operators.

A blocked ingest run asks for a review by triggering one run of the review DAG for the batch
(:class:`RequestReviewOperator`; run id ``review__<dataset>__<batch>``, so re-running a date
never asks twice). In that run :class:`ReviewBatchOperator` shows the reasons and the report
in the Airflow UI ("Required actions") and waits for a person to approve or reject, with a
reason. The decision, the reviewer (the Airflow user who answered) and the reason are recorded
in the dataset's ledger next to the batch's gate record; :class:`PromoteReviewedOperator`
then promotes the batch only if it was approved (and emits the dataset's Asset event).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetAlias, BaseOperator, Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from poisonguard.airflow import runs
from poisonguard.airflow.locations import report_url
from poisonguard.airflow.operators import (
    actor_of,
    emit_promotion,
    failing_without_retry,
    signing_key,
    skip_if_already,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

REVIEW_DAG_ID = "poisonguard_review"
APPROVE, REJECT = "Approve", "Reject"


def review_run_id(dataset: str, batch: str) -> str:
    return f"review__{dataset}__{batch}"


class RequestReviewOperator(TriggerDagRunOperator):
    """On a blocked verdict, trigger the review DAG for the batch; skipped on promote.

    The review run's id is fixed per batch, so a re-run of a blocked date finds the request
    already made and is skipped instead of asking twice."""

    template_fields: Sequence[str] = (*TriggerDagRunOperator.template_fields, "plan", "verdict")

    def __init__(self, *, plan: Mapping[str, Any] | Any, verdict: Mapping[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(logical_date=None, skip_when_already_exists=True, retries=0, **kwargs)
        self.plan, self.verdict = plan, verdict

    def execute(self, context: Context) -> None:
        if self.verdict["decision"] == "promote":
            raise AirflowSkipException("the batch was promoted; nothing to review.")
        self.conf = {"dataset": self.plan["dataset"], "batch": self.plan["batch"],
                     "store_root": self.plan["store_root"]}
        self.trigger_run_id = review_run_id(self.plan["dataset"], self.plan["batch"])
        self.log.info("asking for a review of %s batch %s in DAG %s", self.plan["dataset"], self.plan["batch"],
                      self.trigger_dag_id)
        super().execute(context)


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
        with failing_without_retry():
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
            raise AirflowFailException("the answer gave no reason, so it was not recorded; a review needs one. "
                                       "Clear this task to be asked again.")
        with failing_without_retry():
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
        with failing_without_retry():
            promotion = runs.promote_reviewed(self.store_root or None, self.dataset, self.batch, actor_of(context),
                                              signing_key())
        skip_if_already(promotion)
        emit_promotion(context, self.outlet, self.dataset, {"batch": self.batch, "reviewed_by": self.review["reviewer"]})
        return promotion
