"""poisonguard_dvc_gate: gate a new version of a DVC-tracked file; promote it only on pass.

Trigger it with the Params ``repo`` (the git + DVC project, as the worker sees it), ``path``
(the tracked file, relative to ``repo``) and ``label`` (the label column). It gates the work
tree's version, or the one ``rev`` records, against the version tagged
``poisonguard/<dataset>/promoted``. On pass the clean version is committed to DVC and git,
tagged ``poisonguard/<dataset>/v<N>``, ``promoted`` is moved, and both are pushed if remotes
are configured; the task's XCom is the result's summary. On block, or on input the gate
cannot use (a tampered or untracked file, no promoted version yet), the task fails without
retries and nothing in git or DVC changes. Run ``poisonguard dvc init PATH --label COLUMN``
once in the repo first. Same mechanism as ``poisonguard dvc gate``; see docs/dvc.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, task

_TEXT = {"type": "string", "minLength": 1}
_OPTIONAL_TEXT = {"type": ["null", "string"], "minLength": 1}


@dag(
    dag_id="poisonguard_dvc_gate",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # promotions of one repo are sequential: each gates against the last
    tags=["poisonguard", "dvc"],
    doc_md=__doc__,
    params={
        "repo": Param(description="Path of the git + DVC project on the worker.", **_TEXT),
        "path": Param(description="The DVC-tracked file, relative to repo.", pattern=r"^[^/]", **_TEXT),
        "label": Param(description="The label column.", **_TEXT),
        "rev": Param(None, description="Gate the version this git revision records (default: work tree).",
                     **_OPTIONAL_TEXT),
        "policy": Param(None, description="Policy YAML (default: checks/<dataset>.yml in repo, if any).",
                        **_OPTIONAL_TEXT),
        "out_dir": Param(None, description="Where verdict.json and the report go (default: under "
                         "$AIRFLOW_HOME/poisonguard/dvc/<run id>).", **_OPTIONAL_TEXT),
        "push": Param(True, type="boolean", description="Push data and tags if remotes are configured."),
    },
)
def poisonguard_dvc_gate() -> None:
    @task(retries=0)
    def gate_and_promote() -> dict[str, Any]:
        """Run :func:`poisonguard.dvc.gating.gate_dvc_path`; fail the task on block or unusable input."""
        import os
        import re
        import tempfile
        from pathlib import Path

        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from poisonguard.dvc.gating import Outcome, gate_dvc_path
        from poisonguard.errors import InputError, UsageError
        from poisonguard.kernel.telemetry import disable_telemetry

        disable_telemetry()
        context = get_current_context()
        params = context["params"]
        out_dir = params["out_dir"] or Path(os.environ.get("AIRFLOW_HOME", tempfile.gettempdir()),
                                            "poisonguard", "dvc", re.sub(r"[^\w.-]", "_", context["run_id"]))
        try:
            result = gate_dvc_path(params["repo"], params["path"], label=params["label"], rev=params["rev"],
                                   policy=params["policy"], out_dir=out_dir, push=params["push"])
        except (InputError, UsageError) as e:  # retrying cannot fix the input
            raise AirflowFailException(str(e)) from None
        summary = result.to_dict()
        if result.outcome is Outcome.BLOCKED:
            context["ti"].xcom_push(key="blocked", value=summary)
            raise AirflowFailException(result.summary())
        return summary

    gate_and_promote()


dag_object = poisonguard_dvc_gate()
