"""Provider metadata Airflow 3 reads through the ``apache_airflow_provider`` entry point
(``airflow providers list`` shows poisonguard once the package is installed). Imports nothing."""

from __future__ import annotations

from typing import Any

from poisonguard import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "poisonguard",
        "name": "poisonguard",
        "description": "A training-data poisoning gate: operators, a task-group factory and human review of "
                       "blocked batches.",
        "versions": [__version__],
        "integrations": [{"integration-name": "poisonguard", "tags": ["software"],
                          "external-doc-url": "docs/airflow.md"}],
        "operators": [{"integration-name": "poisonguard",
                       "python-modules": ["poisonguard.airflow.operators", "poisonguard.airflow.review"]}],
    }
