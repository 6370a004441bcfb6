"""The registry of checks. Adding a check = one module here + one entry in :data:`REGISTRY`
+ its ``Spec`` as a field of :class:`poisonguard.policy.ChecksPolicy`.

Every check module exposes the same shape:

- ``NAME``: its id in the policy and the verdict;
- ``Spec``: a :class:`poisonguard.spec.CheckSpec` subclass with its parameters and thresholds;
- ``CODES``: each finding code it can emit, with its default severity;
- ``PHASE``: ``"rows"`` (scores rows) or ``"batch"`` (judges the batch; runs after the row
  checks, with ``ctx.suspect_rows`` set);
- ``run(frame, spec, *, ctx) -> CheckResult``: reports everything it found, never decides.

A row check that can score a batch in parts (mapped tasks, chunks of a large file) defines
``fit``, ``score`` and ``summarize`` instead of ``run`` (see :mod:`poisonguard.parts`); its
``run`` is then their composition, so both paths give the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import pandas as pd

from poisonguard.checks import (
    backdoor,
    baseline,
    cumulative,
    drift,
    label_flips,
    outliers,
    provenance,
    schema,
)
from poisonguard.context import GateContext
from poisonguard.parts import Fitted, PartScores, merge
from poisonguard.results import CheckResult, Severity
from poisonguard.spec import CheckSpec

# Rows scored at once by a partitioned check: bounds the memory of per-row intermediates
# (encoded features, neighbour lists) whatever the batch size.
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class CheckDef:
    name: str
    spec: type[CheckSpec]
    codes: Mapping[str, Severity]
    phase: Literal["rows", "batch"]
    run: Callable[..., object]
    doc: str
    fit: Callable[[Any, GateContext], Fitted] | None = None
    score: Callable[[pd.DataFrame, Fitted, Any, GateContext], PartScores] | None = None
    summarize: Callable[[PartScores, Fitted, Any, GateContext], CheckResult] | None = None

    @property
    def partitioned(self) -> bool:
        """Whether the check scores rows in parts (``fit`` / ``score`` / ``summarize``)."""
        return self.fit is not None

    @classmethod
    def of(cls, module: ModuleType) -> CheckDef:
        doc = (module.__doc__ or "").strip().splitlines()[0]
        if hasattr(module, "fit"):
            return cls(module.NAME, module.Spec, module.CODES, module.PHASE, _composed(module), doc,
                       module.fit, module.score, module.summarize)
        return cls(module.NAME, module.Spec, module.CODES, module.PHASE, module.run, doc)


def score_in_chunks(score: Callable[[pd.DataFrame, Fitted, Any, GateContext], PartScores], frame: pd.DataFrame,
                    fitted: Fitted, spec: Any, ctx: GateContext, chunk_rows: int = CHUNK_ROWS) -> PartScores:
    """``score`` over ``frame`` in chunks of ``chunk_rows``, merged (a row's scores do not
    depend on the chunk it is in)."""
    if len(frame) <= chunk_rows:
        return score(frame, fitted, spec, ctx)
    return merge([score(frame.iloc[i:i + chunk_rows], fitted, spec, ctx) for i in range(0, len(frame), chunk_rows)])


def _composed(module: ModuleType) -> Callable[..., CheckResult]:
    def run(frame: pd.DataFrame, spec: Any, *, ctx: GateContext) -> CheckResult:
        fitted = module.fit(spec, ctx)
        return module.summarize(score_in_chunks(module.score, frame, fitted, spec, ctx), fitted, spec, ctx)

    run.__doc__ = f"{module.NAME}: fit on trusted data, score the batch in chunks, summarize."
    return run


# Order is the order of the flow in DESIGN.md.
REGISTRY: dict[str, CheckDef] = {
    d.name: d
    for d in map(CheckDef.of, (provenance, schema, outliers, label_flips, backdoor, baseline, drift, cumulative))
}
