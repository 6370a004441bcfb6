"""The checks as the Airflow layer lays them out as tasks, known without importing the core.

A DAG file builds one task per check at parse time, and importing the check registry would
pull pandas, pyarrow and pydantic into every parse. This table names the same checks in the
same flow order; ``tests/airflow/test_operators.py`` asserts it matches
:data:`poisonguard.checks.REGISTRY`, so it cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CheckTask:
    """One check: ``phase`` ``"rows"`` runs before ``"batch"`` (batch checks read the row checks'
    results); a ``partitioned`` check is fitted once and scores each part of the batch."""

    name: str
    phase: Literal["rows", "batch"]
    partitioned: bool


CHECKS: tuple[CheckTask, ...] = (
    CheckTask("provenance", "rows", True),
    CheckTask("schema", "rows", True),
    CheckTask("outliers", "rows", True),
    CheckTask("label_flips", "rows", True),
    CheckTask("backdoor", "rows", False),
    CheckTask("baseline", "batch", False),
    CheckTask("drift", "batch", False),
    CheckTask("cumulative", "batch", False),
)
