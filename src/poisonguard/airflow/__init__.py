"""The Airflow 3 layer of poisonguard: operators over the gate's stages, the ``poisoning_gate``
task-group factory, human review of blocked batches (the ``review_dag`` factory), and the
provider/plugin registration.

It stays thin: every task calls the Airflow-free core and maps the outcome to a task state.
Names are resolved lazily, so ``poisonguard.airflow.provider`` (read by Airflow's providers
manager) imports nothing of Airflow or of the core.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "poisoning_gate": "poisonguard.airflow.group",
    "promoted_asset": "poisonguard.airflow.operators",
    "PROMOTED_ALIAS": "poisonguard.airflow.operators",
    "PrepareBatchOperator": "poisonguard.airflow.operators",
    "FitCheckOperator": "poisonguard.airflow.operators",
    "ScorePartOperator": "poisonguard.airflow.operators",
    "CheckOperator": "poisonguard.airflow.operators",
    "FinishOperator": "poisonguard.airflow.operators",
    "PromoteOperator": "poisonguard.airflow.operators",
    "ReportLink": "poisonguard.airflow.operators",
    "RequestReviewOperator": "poisonguard.airflow.review",
    "ReviewBatchOperator": "poisonguard.airflow.review",
    "PromoteReviewedOperator": "poisonguard.airflow.review",
    "REVIEW_DAG_ID": "poisonguard.airflow.review",
    "review_dag": "poisonguard.airflow.review",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'poisonguard.airflow' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
