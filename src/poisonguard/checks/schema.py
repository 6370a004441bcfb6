"""schema (not written yet)."""

from __future__ import annotations

import pandas as pd

from poisonguard.context import GateContext
from poisonguard.results import CheckResult, Severity
from poisonguard.spec import CheckSpec

NAME = "schema"
PHASE = "rows"
CODES: dict[str, Severity] = {}


class Spec(CheckSpec):
    pass


def run(frame: pd.DataFrame, spec: Spec, *, ctx: GateContext) -> CheckResult:
    raise NotImplementedError("schema")
