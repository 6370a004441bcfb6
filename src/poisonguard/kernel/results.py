"""Typed, frozen values that flow between the steps of the gate.

Every value has a JSON-safe ``to_dict()`` (for XCom, DVC metrics and files) and a
``from_dict()`` that inverts it. Scores point one way everywhere: **higher = more suspicious**.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np


class Severity(StrEnum):
    """What the policy does with a finding."""

    BLOCK = "block"
    QUARANTINE = "quarantine"
    WARN = "warn"


class Status(StrEnum):
    """How a check came out, as the verdict reports it."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


class Decision(StrEnum):
    PROMOTE = "promote"
    BLOCK = "block"


def _rows(rows: Iterable[int] | np.ndarray) -> tuple[int, ...]:
    """Sorted, unique, plain-int row positions."""
    arr = rows if isinstance(rows, np.ndarray) else np.fromiter(rows, dtype=np.int64)
    return tuple(np.unique(arr.astype(np.int64, copy=False)).tolist())


@dataclass(frozen=True)
class Finding:
    """One thing a check found.

    ``rows`` are 0-based positions in the incoming data that carry the finding; a finding
    about the batch as a whole (a rate over a threshold, a drifted column) has no rows.
    ``value`` and ``threshold`` are the measured number and the bound it was compared to.
    ``null`` says what a batch-level test compared the batch with, so a reviewer can see how
    unusual it is: ``test`` (in words), ``size`` (pseudo-batches drawn, or trusted rows the
    figure was measured on), ``p_value`` (the batch's) and ``max_p_value`` (the test's level).
    """

    check: str
    code: str
    message: str
    rows: tuple[int, ...] = ()
    value: float | None = None
    threshold: float | None = None
    null: Mapping[str, Any] | None = None

    @classmethod
    def at_rows(cls, check: str, code: str, message: str, rows: Iterable[int] | np.ndarray,
                *, value: float | None = None, threshold: float | None = None,
                null: Mapping[str, Any] | None = None) -> Finding:
        return cls(check, code, message, _rows(rows), _num(value), _num(threshold),
                   clean_json(dict(null)) if null is not None else None)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "check": self.check,
            "code": self.code,
            "message": self.message,
            "rows": list(self.rows),
            "value": self.value,
            "threshold": self.threshold,
        }
        if self.null is not None:
            d["null"] = dict(self.null)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(d["check"], d["code"], d["message"], tuple(d.get("rows", ())),
                   d.get("value"), d.get("threshold"), d.get("null"))


# Quantiles kept of the reference's own (out-of-fold) scores, so the report draws the batch's
# score distribution against the reference's.
REFERENCE_QUANTILES = np.linspace(0.0, 1.0, 41)


def reference_quantiles(scores: np.ndarray) -> list[float]:
    """The reference's scores at :data:`REFERENCE_QUANTILES` (for ``metrics["reference_score_quantiles"]``)."""
    return np.quantile(np.asarray(scores, dtype=np.float64), REFERENCE_QUANTILES).tolist() if len(scores) else []


def null_of(test: str, size: int, p_value: float, max_p_value: float, **more: Any) -> dict[str, Any]:
    """The ``null`` of a finding (see :class:`Finding`)."""
    return {"test": test, "size": int(size), "p_value": float(p_value), "max_p_value": float(max_p_value), **more}


UNCALIBRATED = "uncalibrated"  # the finding code (warn) of a test whose null is smaller than the batch


def uncalibrated(check: str, test: str, null_rows: int, batch_rows: int, reference_rows: int,
                 fallback: str) -> Finding | None:
    """A warning that ``test`` could not be calibrated at the batch's size — its pseudo-batches
    of trusted rows hold ``null_rows`` rows, fewer than the batch's — and what it does instead
    (``fallback``); ``None`` when it could."""
    if null_rows >= batch_rows:
        return None
    drawn = f"pseudo-batches of {null_rows:,} rows" if null_rows > 0 else "no pseudo-batch"
    return Finding.at_rows(check, UNCALIBRATED,
        f"{test} is not calibrated at this batch's size: {reference_rows:,} trusted rows give {drawn}, the batch "
        f"has {batch_rows:,}; {fallback}. A larger reference (or smaller batches) calibrates it", [],
        value=null_rows, threshold=batch_rows)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, 10)


def clean_json(obj: Any) -> Any:
    """Make metrics JSON-safe and stable: numpy scalars to Python, floats rounded, NaN to None."""
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean_json(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    return obj


@dataclass(frozen=True)
class CheckResult:
    """Everything one check found about a batch. A check reports; it never decides.

    ``scores`` holds one number per incoming row (higher = more suspicious), or is ``None``
    for checks without a per-row score. ``metrics`` are JSON-safe summary numbers.
    ``error`` is set when the check could not run; the gate then blocks (fail closed).
    ``artifacts`` name files the check wrote next to the report (relative to the out dir).
    """

    check: str
    findings: tuple[Finding, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    scores: np.ndarray | None = None
    error: str | None = None
    seconds: float = 0.0
    artifacts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", clean_json(dict(self.metrics)))
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64)
            scores.setflags(write=False)
            object.__setattr__(self, "scores", scores)

    @property
    def flagged_rows(self) -> tuple[int, ...]:
        return _rows(r for f in self.findings for r in f.rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self, *, with_scores: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "check": self.check,
            "findings": [f.to_dict() for f in self.findings],
            "metrics": dict(self.metrics),
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "artifacts": list(self.artifacts),
        }
        if with_scores:
            d["scores"] = None if self.scores is None else [_num(s) for s in self.scores.tolist()]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        scores = d.get("scores")
        return cls(
            check=d["check"],
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", ())),
            metrics=d.get("metrics", {}),
            scores=None if scores is None else np.array([np.nan if s is None else s for s in scores]),
            error=d.get("error"),
            seconds=float(d.get("seconds", 0.0)),
            artifacts=tuple(d.get("artifacts", ())),
        )


@dataclass(frozen=True)
class Reason:
    check: str
    code: str
    message: str
    value: float | None = None
    threshold: float | None = None
    null: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, finding: Finding) -> Reason:
        return cls(finding.check, finding.code, finding.message, finding.value, finding.threshold, finding.null)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"check": self.check, "code": self.code, "message": self.message}
        if self.value is not None and self.threshold is not None:
            d |= {"value": self.value, "threshold": self.threshold}
        if self.null is not None:
            d["null"] = dict(self.null)
        return d


@dataclass(frozen=True)
class CheckSummary:
    status: Status
    metrics: Mapping[str, Any]
    flagged_rows: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"status": str(self.status), "metrics": dict(self.metrics), "flagged_rows": self.flagged_rows}
        if self.error:
            d["error"] = self.error
        return d


@dataclass(frozen=True)
class Verdict:
    """The gate's decision about one batch, as written to ``verdict.json``."""

    decision: Decision
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...]
    quarantined_rows: tuple[int, ...]
    row_reasons: Mapping[int, tuple[str, ...]]
    checks: Mapping[str, CheckSummary]
    n_rows: int

    @property
    def promoted(self) -> bool:
        return self.decision is Decision.PROMOTE

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": str(self.decision),
            "reasons": [r.to_dict() for r in self.reasons],
            "warnings": [r.to_dict() for r in self.warnings],
            "quarantined_rows": list(self.quarantined_rows),
            "rows": {"incoming": self.n_rows, "quarantined": len(self.quarantined_rows),
                     "clean": self.n_rows - len(self.quarantined_rows)},
            "checks": {k: v.to_dict() for k, v in self.checks.items()},
        }


@dataclass(frozen=True)
class GateRun:
    """What one gate run produced. ``document`` is the content of ``verdict.json``."""

    verdict: Verdict
    results: tuple[CheckResult, ...]
    document: dict[str, Any]
    out_dir: Path | None

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict.promoted else 1
