"""Operators over the gate's stages. Each ``execute`` is a few lines: call the core (through
:mod:`poisonguard.airflow.runs` or :mod:`poisonguard.engine.stages`) and map its outcome to a task state.

Task states, by design:

- a check that blocks the batch (a finding of severity ``block``, or a check that crashed)
  ends its task **failed**, with the reasons as the error, so the grid shows which check fired;
  a check that passes or only warns succeeds; a check the policy disables is **skipped**;
- input, policy or store state the core refuses (``InputError``, ``PolicyError``, a refused
  promotion...) fails the task without retries (:func:`failing_without_retry`);
- nothing landed for the batch: prepare is **skipped**, and so is everything after it;
- :class:`PromoteOperator` fails on a blocked verdict (no retries), naming the reasons, and
  promotes (emitting the dataset's Asset event) only on promote; a batch promoted before is
  skipped (no second event).

A task that fails on purpose logs its reason as one ``ERROR`` line of its own (before Airflow's
traceback) and raises with that line as the first line of its error.

``FinishOperator`` and ``PromoteOperator`` carry the extra link "poisonguard report": the
batch's report.html as the api-server plugin serves it (:mod:`poisonguard.airflow.plugin`).

Heavy imports (the core, pandas, scikit-learn) happen inside ``execute``, never at import.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator, BaseOperatorLink
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from poisonguard.airflow import runs
from poisonguard.airflow.locations import report_url

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

PLAN_KEY = "plan"
# DAGs whose dataset is a Param emit their promotions through this alias (the Asset is only
# known when the task runs); DAGs scheduled on the dataset's Asset are triggered either way.
PROMOTED_ALIAS = AssetAlias(name="poisonguard-promoted", group="poisonguard")


def promoted_asset(dataset: str) -> Asset:
    """The Asset that gets an event each time a batch of ``dataset`` is promoted: schedule a
    training DAG on it (``schedule=[promoted_asset("credit")]``)."""
    return Asset(name=f"poisonguard/{dataset}", group="poisonguard")


def promotion_outlet(dataset: str) -> Asset | AssetAlias:
    """The dataset's Asset when ``dataset`` is known at parse time, else :data:`PROMOTED_ALIAS`."""
    return PROMOTED_ALIAS if "{{" in dataset or "{%" in dataset else promoted_asset(dataset)


def emit_promotion(context: Context, outlet: Asset | AssetAlias, dataset: str, extra: dict[str, Any]) -> None:
    """Attach ``extra`` (batch key, rows) to the promotion's Asset event."""
    if isinstance(outlet, AssetAlias):
        context["outlet_events"][outlet].add(promoted_asset(dataset), extra=extra)
    else:
        context["outlet_events"][outlet].extra = extra


def actor_of(context: Context) -> Any:
    """Who is running this task, for the ledger: the DAG, run and task, and the user who
    triggered the run (``None`` for scheduled runs)."""
    from poisonguard.store.records import Actor

    ti, dag_run = context["ti"], context.get("dag_run")
    return Actor(kind="airflow", dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                 user=getattr(dag_run, "triggering_user_name", None))


SIGNING_CONNECTION = "poisonguard_signing"


def signing_key() -> Any:
    """The key that signs verdicts and ledger records: the password of the Airflow connection
    ``poisonguard_signing`` (its login, if set, names the key), else ``$POISONGUARD_SIGNING_KEY``,
    else none. Read when a task runs, through Airflow's secrets backends."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from poisonguard import settings
    from poisonguard.kernel.signing import SigningKey

    try:
        connection = Connection.get(SIGNING_CONNECTION)
    except AirflowNotFoundException:
        return settings.signing_key()
    if not connection.password:
        return settings.signing_key()
    return SigningKey.from_text(connection.password, connection.login or None)


def skip_if_already(promotion: Mapping[str, Any]) -> None:
    """A re-run of a promoted batch changes nothing: skip the task, so no second Asset event
    triggers the training DAGs again."""
    if promotion["already"]:
        raise AirflowSkipException(f"batch {promotion['batch']} was already promoted (ledger record "
                                   f"{promotion['record']['seq']}); nothing new, no Asset event.")


def fail(log: Any, message: str) -> AirflowFailException:
    """Log the first line of ``message`` as an error of its own, so the reason stands above
    Airflow's traceback in the task log, and return the failure to raise (no retries)."""
    log.error("%s", message.splitlines()[0] if message else message)
    return AirflowFailException(message)


@contextlib.contextmanager
def failing_without_retry(log: Any = None) -> Iterator[None]:
    """Input, policy or store state the core refuses (any ``PoisonguardError``: a missing store,
    a corrupt or changed file, a bad policy, a refused promotion) fails the task without
    retries: retrying cannot fix it. Other errors (a lost worker, a full disk) fail the task
    too, and retry only if the task has retries (the gate's tasks have none unless
    ``poisoning_gate(retries=...)`` gives the infrastructure tasks some)."""
    from poisonguard.errors import PoisonguardError

    try:
        yield
    except PoisonguardError as e:
        message = f"{type(e).__name__}: {e}"
        raise (fail(log, message) if log is not None else AirflowFailException(message)) from None


def ui_url(path: str) -> str:
    """``path`` (relative to the Airflow UI's root) as a URL on the api-server: ``[api] base_url``
    when set, else a path on the host the UI is served from."""
    from urllib.parse import urljoin

    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback=None) or "/"
    return urljoin(base.rstrip("/") + "/", path.lstrip("/"))


class ReportLink(BaseOperatorLink):
    """"poisonguard report": the batch's report.html in the Airflow UI (the plugin's route).

    Computed by the worker when the task ends (Airflow stores it as an XCom; the api-server
    shows it as a button on the task), from the task's rendered plan; empty when the task
    never got a plan."""

    name = "poisonguard report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        plan = getattr(operator, "plan", None)
        if not isinstance(plan, Mapping) or not plan.get("dataset") or not plan.get("batch"):
            return ""
        return ui_url(report_url(plan["dataset"], plan["batch"]))


class PrepareBatchOperator(BaseOperator):
    """Find the landed batch and the dataset's trusted data, and stage the gate run.

    Returns one ``{"work_dir", "part"}`` per file of the batch (the scoring tasks are mapped
    over it) and pushes the run's plan as XCom ``plan``. See :func:`poisonguard.airflow.runs.prepare_batch`.
    """

    template_fields: Sequence[str] = ("dataset", "batch", "key", "store_root", "landing_root", "incoming", "policy",
                                      "policy_dir", "policy_overrides", "id_column")
    ui_color = "#e8f0fe"

    def __init__(self, *, dataset: str, batch: str, key: str | None = None, store_root: str | None = None,
                 landing_root: str | None = None, incoming: str | None = None, policy: str | None = None,
                 policy_dir: str | None = None, policy_overrides: Mapping[str, Any] | str | None = None,
                 id_column: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset, self.batch, self.key = dataset, batch, key
        self.store_root, self.landing_root, self.incoming = store_root, landing_root, incoming
        self.policy, self.policy_dir, self.policy_overrides = policy, policy_dir, policy_overrides
        self.id_column = id_column

    def execute(self, context: Context) -> list[dict[str, Any]]:
        overrides = self.policy_overrides
        if isinstance(overrides, str):  # a template renders to text: '{{ params.policy_overrides | tojson }}'
            overrides = json.loads(overrides) if overrides.strip() else None
        try:
            with failing_without_retry(self.log):
                plan, parts = runs.prepare_batch(
                    dataset=self.dataset, batch=self.batch, key=self.key or None, store_root=self.store_root or None,
                    landing_root=self.landing_root or None, incoming=self.incoming or None,
                    policy=self.policy or None, policy_dir=self.policy_dir or None,
                    policy_overrides=overrides or None, id_column=self.id_column or None,
                    signing_key=signing_key())
        except runs.NothingLanded as e:
            raise AirflowSkipException(str(e)) from None
        self.log.info("%s rows in %s part(s); checks: %s", plan["rows"], plan["parts"], ", ".join(plan["checks"]))
        context["ti"].xcom_push(key=PLAN_KEY, value=plan)
        return parts


class _PlanOperator(BaseOperator):
    """An operator that works on a prepared run, given its plan (the ``plan`` XCom of prepare)."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Mapping[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan


class _OneCheckOperator(_PlanOperator):
    """An operator for one check of a prepared run; skipped when the policy does not enable it."""

    enabled_key = "checks"

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def skip_unless_enabled(self) -> None:
        if self.check not in self.plan[self.enabled_key]:
            raise AirflowSkipException(f"{self.check} is disabled by the policy.")


class FitCheckOperator(_OneCheckOperator):
    """Fit one row check on the trusted data (once per run). A fit that crashes is recorded in
    the work dir and reported (and blocks) in the check's own task."""

    ui_color = "#f1f3f4"
    enabled_key = "row_checks"

    def execute(self, context: Context) -> dict[str, Any]:
        from poisonguard.engine import stages

        self.skip_unless_enabled()
        with failing_without_retry(self.log):
            info = stages.fit(self.plan["work_dir"], self.check, signing_key=signing_key())
        if info["error"]:
            self.log.warning("fitting %s failed: %s (the check will block the batch)", self.check, info["error"])
        return info


class ScorePartOperator(BaseOperator):
    """Score one file of the batch with every row check, and hash its rows (mapped: one task
    instance per file, so any executor spreads a large batch over its workers)."""

    template_fields: Sequence[str] = ("work_dir", "part")
    ui_color = "#f1f3f4"

    def __init__(self, *, work_dir: str, part: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.work_dir, self.part = work_dir, part

    def execute(self, context: Context) -> dict[str, Any]:
        from poisonguard.engine import stages

        with failing_without_retry(self.log):
            info = stages.score_part(self.work_dir, int(self.part))
        for check, error in info["errors"].items():
            self.log.warning("%s failed on part %s: %s (the check will block the batch)", check, self.part, error)
        return info


class CheckOperator(_OneCheckOperator):
    """One check's result over the whole batch. Fails (no retries) when the check blocks the
    batch, so the grid shows which check fired; succeeds when it passes or only warns; is
    skipped when the policy disables it. The result stays in the work dir for finish."""

    ui_color = "#fff4e5"

    def execute(self, context: Context) -> dict[str, Any]:
        from poisonguard.engine import stages

        self.skip_unless_enabled()
        with failing_without_retry(self.log):
            summary = stages.summarize(self.plan["work_dir"], self.check, out_dir=self.plan["out_dir"],
                                       signing_key=signing_key())
        self.log.info("%s: %s, %s row(s) flagged, findings %s", self.check, summary["status"],
                      summary["flagged_rows"], summary["findings"])
        if summary["blocks"]:
            why = summary["error"] and f"the check could not run ({summary['error']})"
            why = why or "; ".join(f"{r['code']}: {r['message']}" for r in summary["reasons"])
            raise fail(self.log, f"{self.check} blocks the batch: {why}")
        return summary


class FinishOperator(_PlanOperator):
    """Decide, write the outputs (verdict.json, quarantine.parquet, report.html, and
    clean.parquet on promote) and record the run in the dataset's ledger. Succeeds on either
    decision; its XCom is the verdict in a few fields."""

    ui_color = "#e6f4ea"
    operator_extra_links = (ReportLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_without_retry(self.log):
            verdict = runs.finish_batch(self.plan, actor_of(context), signing_key())
        self.log.info("decision: %s; report: %s", verdict["decision"], verdict["report"])
        return verdict


class PromoteOperator(_PlanOperator):
    """Promote the batch's clean rows into the store, and emit the dataset's Asset event.

    On a blocked verdict, fail without retries naming the reasons: nothing is promoted and no
    Asset event is emitted (the run fails; quarantine and report were written by finish)."""

    template_fields: Sequence[str] = ("plan", "verdict")
    ui_color = "#ceead6"
    operator_extra_links = (ReportLink(),)

    def __init__(self, *, verdict: Mapping[str, Any] | Any, outlet: Asset | AssetAlias, **kwargs: Any) -> None:
        super().__init__(outlets=[outlet], **kwargs)
        self.verdict, self.outlet = verdict, outlet

    def execute(self, context: Context) -> dict[str, Any]:
        if self.verdict["decision"] != "promote":
            raise fail(self.log, runs.block_message(self.verdict))
        with failing_without_retry(self.log):
            promotion = runs.promote_batch(self.plan, actor_of(context), signing_key())
        skip_if_already(promotion)
        emit_promotion(context, self.outlet, self.plan["dataset"],
                       {"batch": self.plan["batch"], "rows": self.verdict["rows"] - self.verdict["quarantined_rows"]})
        return promotion
