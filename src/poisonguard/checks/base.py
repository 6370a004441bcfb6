"""What a check is: the :class:`Check` protocol every check satisfies, and :class:`CheckDef`, the
frozen value built-in and third-party checks are registered as.

A check has a ``name`` (its id in the policy and the verdict), a ``spec`` (a
:class:`~poisonguard.kernel.spec.CheckSpec` subclass: its policy section, every field with a
default), ``codes`` (each finding code it can emit, with its default severity), a ``phase``
(``"rows"``: scores rows; ``"batch"``: judges the batch after the row checks, with
``ctx.suspect_rows`` set), a one-line ``doc``, and
``run(frame, spec, *, ctx) -> CheckResult``, which reports everything it found and never decides.
Optionally a ``headline``: the key of the one top-level number in its result's ``metrics`` that
a person compares across batches (DVC's ``metrics.json`` shows it); without one, the share of
the batch's rows the check flagged stands in.

What ``run`` receives as ``frame`` is the whole batch as one DataFrame, unless the check says
``reads="batch"`` (module attribute ``READS = "batch"``): then it is a
:class:`~poisonguard.kernel.batch.Batch`, read column by column or as the rows at given positions,
so a 10M-row batch never has to fit in memory (every built-in whole-batch check reads it so).

A row check that can score a batch in parts (mapped tasks, chunks of a large file) also has
``fit(spec, ctx) -> Fitted`` (trusted data only), ``score(frame, fitted, spec, ctx) -> PartScores``
(a row's output depends only on that row) and ``summarize(scores, fitted, spec, ctx) ->
CheckResult``; its ``run`` is their composition, so both paths give the same result.

The simplest way to write one is a module with ``NAME``, ``Spec``, ``CODES``, ``PHASE`` and
``run`` (or ``fit``/``score``/``summarize``), and optionally ``HEADLINE``: :meth:`CheckDef.of`
turns it into a check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol, runtime_checkable

import pandas as pd

from poisonguard.kernel.context import GateContext
from poisonguard.kernel.models import side_by_side
from poisonguard.kernel.parts import Fitted, PartScores, merge
from poisonguard.kernel.results import CheckResult, Severity
from poisonguard.kernel.spec import CheckSpec

Phase = Literal["rows", "batch"]
Reads = Literal["frame", "batch"]
# Rows scored at once by a partitioned check: bounds the memory of per-row intermediates
# (encoded features, neighbour lists) whatever the batch size.
CHUNK_ROWS = 100_000


class RunFn(Protocol):
    def __call__(self, frame: pd.DataFrame, spec: Any, *, ctx: GateContext) -> CheckResult: ...


FitFn = Callable[[Any, GateContext], Fitted]
ScoreFn = Callable[[pd.DataFrame, Fitted, Any, GateContext], PartScores]
SummarizeFn = Callable[[PartScores, Fitted, Any, GateContext], CheckResult]


@runtime_checkable
class Check(Protocol):
    """The shape of every check (see the module docstring)."""

    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> type[CheckSpec]: ...
    @property
    def codes(self) -> Mapping[str, Severity]: ...
    @property
    def phase(self) -> Phase: ...
    @property
    def doc(self) -> str: ...

    def run(self, frame: pd.DataFrame, spec: Any, *, ctx: GateContext) -> CheckResult: ...


@dataclass(frozen=True)
class CheckDef:
    """A registered check (satisfies :class:`Check`)."""

    name: str
    spec: type[CheckSpec]
    codes: Mapping[str, Severity]
    phase: Phase
    run: RunFn
    doc: str
    fit: FitFn | None = None
    score: ScoreFn | None = None
    summarize: SummarizeFn | None = None
    headline: str | None = None
    reads: Reads = "frame"

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not self.name.isidentifier():
            problems.append(f"name must be a Python identifier. Got {self.name!r}")
        if not (isinstance(self.spec, type) and issubclass(self.spec, CheckSpec)):
            problems.append(f"spec must be a subclass of poisonguard.kernel.spec.CheckSpec. Got {self.spec!r}")
        if self.phase not in ("rows", "batch"):
            problems.append(f"phase must be 'rows' or 'batch'. Got {self.phase!r}")
        if not self.codes or not all(isinstance(s, Severity) for s in self.codes.values()):
            problems.append("codes must map each finding code to a Severity")
        parts = (self.fit, self.score, self.summarize)
        if any(p is not None for p in parts) and not all(callable(p) for p in parts):
            problems.append("a check that scores in parts needs all of fit, score and summarize")
        if not callable(self.run):
            problems.append("run must be callable")
        if self.reads not in ("frame", "batch"):
            problems.append(f"reads must be 'frame' or 'batch'. Got {self.reads!r}")
        if self.reads == "batch" and any(p is not None for p in parts):
            problems.append("a check that scores in parts reads frames (reads='frame')")
        if self.headline is not None and not (isinstance(self.headline, str) and self.headline):
            problems.append(f"headline must be the name of a metric or None. Got {self.headline!r}")
        if problems:
            raise TypeError(f"check {self.name!r} is not a valid check: " + "; ".join(problems) + ".")

    @property
    def partitioned(self) -> bool:
        """Whether the check scores rows in parts (``fit`` / ``score`` / ``summarize``)."""
        return self.fit is not None

    @classmethod
    def of(cls, module: ModuleType) -> CheckDef:
        """The check a module of the documented shape defines."""
        doc = ((module.__doc__ or "").strip().splitlines() or [module.NAME])[0]
        headline = getattr(module, "HEADLINE", None)
        if hasattr(module, "fit"):
            return cls(module.NAME, module.Spec, module.CODES, module.PHASE, _composed(module), doc,
                       module.fit, module.score, module.summarize, headline)
        return cls(module.NAME, module.Spec, module.CODES, module.PHASE, module.run, doc, headline=headline,
                   reads=getattr(module, "READS", "frame"))


def score_in_chunks(score: ScoreFn, frame: pd.DataFrame, fitted: Fitted, spec: Any, ctx: GateContext,
                    chunk_rows: int = CHUNK_ROWS) -> PartScores:
    """``score`` over ``frame`` in chunks of ``chunk_rows``, merged (a row's scores do not
    depend on the chunk it is in). The first row is scored alone (it fills the context's caches:
    models and encodings of trusted data), the chunks after it side by side on threads (see
    :func:`~poisonguard.kernel.models.side_by_side`): a check's ``score`` may run on two chunks at
    once, and its compiled work (tree and neighbour searches) then uses every core."""
    def chunk(start: int, stop: int) -> Callable[[], PartScores]:
        return lambda: score(frame.iloc[start:stop], fitted, spec, ctx)
    if len(frame) <= chunk_rows:
        return score(frame, fitted, spec, ctx)
    first = chunk(0, 1)()
    rest = [chunk(i, min(i + chunk_rows, len(frame))) for i in range(1, len(frame), chunk_rows)]
    return merge([first, *side_by_side(rest)])


def _composed(module: ModuleType) -> RunFn:
    def run(frame: pd.DataFrame, spec: Any, *, ctx: GateContext) -> CheckResult:
        fitted = module.fit(spec, ctx)
        return module.summarize(score_in_chunks(module.score, frame, fitted, spec, ctx), fitted, spec, ctx)

    run.__doc__ = f"{module.NAME}: fit on trusted data, score the batch in chunks, summarize."
    return run
