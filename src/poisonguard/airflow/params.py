"""JSON schemas of DAG Params that Airflow checks when a run is triggered, before any task runs."""

from __future__ import annotations

from typing import Any

from poisonguard.airflow.catalog import CHECKS

# The shape of policy overrides: top-level policy fields and one section per known check. Each
# value is then checked against the policy model by the first task, before any check runs.
POLICY_OVERRIDES: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer", "minimum": 0},
        "holdout_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
        "dataset": {"type": ["null", "string"]},
        "checks": {"type": "object", "additionalProperties": False,
                   "properties": {c.name: {"type": "object"} for c in CHECKS}},
    },
}
