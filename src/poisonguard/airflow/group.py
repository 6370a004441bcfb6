"""``poisoning_gate(...)``: the whole gate as one task group that any DAG can drop in.

::

    prepare ─► fit.<row check> ─► score_parts (mapped, one per file) ─► checks.<row check> ─┐
       └────────────────────────► checks.backdoor ─────────────────────────────────────────┤
                                                 checks.rows_done ◄────────────────────────┘
                                                     └─► checks.baseline, checks.drift ─► checks.done
                                                                                            └─► finish ─┬─► promote
                                                                              (review_dag_id given) └─► request_review

One task per check, named by the check, so the grid shows which one fired (a blocking check's
task fails). ``rows_done`` and ``done`` are joins that wait for every check whatever its state,
so the batch checks, finish (quarantine, report, verdict, ledger) still run after a check blocked;
they sit behind ``prepare`` with the default trigger rule, so nothing runs on a batch that could
not be prepared. ``promote`` succeeds (and emits the dataset's Asset event) on promote and
fails, naming the reasons, on block — so ``gate >> train`` runs training only on promoted data,
and a blocked batch fails the run. ``request_review`` (only with a ``review_dag_id``) is
promote's sibling, not its upstream: whatever happens to the review request, promote decides
and says why. It is then the group's other leaf, and succeeds on a promoted batch (it has
nothing to ask), so ``train`` still runs.

Retries: none by default, whatever the DAG's ``default_args`` say (each task is given its
retries explicitly). ``retries`` gives the infrastructure tasks (prepare, fit, score_parts,
finish: idempotent, no verdict of their own) that many retries for transient failures such as a
lost worker or a timeout at start; check tasks, promote and request_review never retry (a
verdict does not change on retry), and a refusal by the core (bad input, policy or store state)
never retries either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TaskGroup, TriggerRule, XComArg

from poisonguard.airflow.catalog import CHECKS
from poisonguard.airflow.operators import (
    PLAN_KEY,
    CheckOperator,
    FinishOperator,
    FitCheckOperator,
    PrepareBatchOperator,
    PromoteOperator,
    ScorePartOperator,
    promotion_outlet,
)
from poisonguard.airflow.review import RequestReviewOperator

# A check's verdict does not change on retry: the tasks that decide never retry.
_NO_RETRY = 0


def poisoning_gate(*, dataset: str, batch: str = "{{ ds }}", key: str | None = None, incoming: str | None = None,
                   policy: str | None = None, policy_dir: str | None = None,
                   policy_overrides: Mapping[str, Any] | str | None = None,
                   store_root: str | None = None, landing_root: str | None = None, id_column: str | None = None,
                   review_dag_id: str | None = None, retries: int = 0, group_id: str = "gate") -> TaskGroup:
    """Gate one batch of ``dataset`` and promote it or block it, as a task group.

    Every argument but ``review_dag_id``, ``retries`` and ``group_id`` is templated (e.g. ``"{{ params.policy }}"``).
    ``batch`` names the batch in the dataset's store (default: the logical date, ``YYYY-MM-DD``);
    ``key`` places it in the order of promotions (default: ``batch``): the batch is gated against
    the golden reference plus every batch promoted with a smaller key. ``incoming`` defaults to the
    landing layout (:mod:`poisonguard.airflow.locations`), ``policy`` to ``<policy_dir>/<dataset>.yml``
    if it exists (else the default policy); ``store_root`` and ``landing_root`` to
    ``$POISONGUARD_STORE`` / ``$POISONGUARD_LANDING`` (read when the task runs). With a
    ``review_dag_id`` (e.g. :data:`~poisonguard.airflow.review.REVIEW_DAG_ID`, the DAG
    :func:`~poisonguard.airflow.review.review_dag` builds), a blocked batch asks for a run of it
    so a person can approve or reject the batch; default ``None``: no review. ``retries``: see
    the module's docstring (default 0; DAG ``default_args`` do not change it). A ``dataset`` known at parse time gets its own Asset as the promote task's outlet;
    a templated one goes through :data:`~poisonguard.airflow.operators.PROMOTED_ALIAS`.
    Returns the group; its leaves are ``promote`` and, with a ``review_dag_id``, ``request_review``.
    """
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, not {retries!r}")
    with TaskGroup(group_id=group_id, tooltip=f"poisonguard gate for {dataset}") as group:
        prepare = PrepareBatchOperator(
            task_id="prepare", dataset=dataset, batch=batch, key=key, incoming=incoming, policy=policy,
            policy_dir=policy_dir, policy_overrides=policy_overrides, store_root=store_root,
            landing_root=landing_root, id_column=id_column, retries=retries)
        plan = XComArg(prepare, key=PLAN_KEY)
        with TaskGroup(group_id="fit", tooltip="row checks learn from trusted data"):
            fits = [FitCheckOperator(task_id=c.name, check=c.name, plan=plan, retries=retries)
                    for c in CHECKS if c.partitioned]
        score = ScorePartOperator.partial(task_id="score_parts", map_index_template="part {{ task.part }}",
                                          retries=retries).expand_kwargs(prepare.output)
        fits >> score
        with TaskGroup(group_id="checks", tooltip="one task per check; a failed task blocked the batch"):
            rows = [CheckOperator(task_id=c.name, check=c.name, plan=plan, retries=_NO_RETRY)
                    for c in CHECKS if c.phase == "rows"]
            rows_done = EmptyOperator(task_id="rows_done", trigger_rule=TriggerRule.ALL_DONE, retries=_NO_RETRY)
            batch_checks = [CheckOperator(task_id=c.name, check=c.name, plan=plan, retries=_NO_RETRY)
                            for c in CHECKS if c.phase == "batch"]
            done = EmptyOperator(task_id="done", trigger_rule=TriggerRule.ALL_DONE, retries=_NO_RETRY)
        for task, check in zip(rows, (c for c in CHECKS if c.phase == "rows"), strict=True):
            if check.partitioned:
                score >> task
        rows >> rows_done >> batch_checks >> done
        finish = FinishOperator(task_id="finish", plan=plan, retries=retries)
        done >> finish
        promote = PromoteOperator(task_id="promote", plan=plan, verdict=finish.output,
                                  outlet=promotion_outlet(dataset), retries=_NO_RETRY)
        finish >> promote
        if review_dag_id is not None:
            finish >> RequestReviewOperator(task_id="request_review", plan=plan, verdict=finish.output,
                                            trigger_dag_id=review_dag_id)
    return group
