"""The gate: read inputs, run every enabled check (fail closed), decide, write the outputs."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.checks import REGISTRY, CheckDef, provenance
from poisonguard.context import GateContext
from poisonguard.decide import decide
from poisonguard.errors import CheckTimeout, InputError
from poisonguard.policy import Policy, load_policy
from poisonguard.reading import check_usable, read_table
from poisonguard.results import CheckResult, Verdict
from poisonguard.telemetry import disable_telemetry

log = logging.getLogger("poisonguard")


@dataclass(frozen=True)
class GateRun:
    """What one gate run produced. ``document`` is the content of ``verdict.json``."""

    verdict: Verdict
    results: tuple[CheckResult, ...]
    incoming: pd.DataFrame
    document: dict[str, Any]
    out_dir: Path | None

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict.promoted else 1


def split_holdout(reference: pd.DataFrame, label: str, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a holdout off the reference (stratified by label when every class can be split)."""
    from sklearn.model_selection import train_test_split

    counts = reference[label].value_counts()
    stratify = reference[label] if counts.min() >= 2 and len(counts) <= fraction * len(reference) else None
    fit, hold = train_test_split(reference, test_size=fraction, random_state=seed, stratify=stratify)
    return fit.sort_index().reset_index(drop=True), hold.sort_index().reset_index(drop=True)


def build_context(reference: pd.DataFrame, holdout: pd.DataFrame | None, label: str, policy: Policy, *,
                  id_column: str | None = None, out_dir: Path | None = None,
                  sources: dict[str, tuple[Path, ...]] | None = None) -> GateContext:
    """The trusted side of a run; splits a holdout off the reference when none is given."""
    if holdout is None:
        reference, holdout = split_holdout(reference, label, policy.holdout_fraction, policy.seed)
    return GateContext(reference=reference, holdout=holdout, label=label, seed=policy.seed,
                       id_column=id_column, out_dir=out_dir, sources=sources or {})


@contextlib.contextmanager
def _deadline(seconds: float, check: str) -> Iterator[None]:
    """Interrupt a check that runs past its timeout (only possible on the main thread; elsewhere
    the elapsed time is compared after the fact)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise CheckTimeout(f"ran longer than its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_check(check: CheckDef, frame: pd.DataFrame, spec: Any, ctx: GateContext) -> CheckResult:
    """Run one check; a crash or a timeout becomes an error result (and the gate blocks)."""
    start = time.perf_counter()
    try:
        with _deadline(spec.timeout_seconds, check.name):
            result = check.run(frame, spec, ctx=ctx)
        if not isinstance(result, CheckResult) or result.check != check.name:
            raise TypeError(f"returned {type(result).__name__}, not a CheckResult for {check.name}")
        if result.scores is not None and len(result.scores) != len(frame):
            raise ValueError(f"returned {len(result.scores)} scores for {len(frame)} rows")
        seconds = time.perf_counter() - start
        if seconds > spec.timeout_seconds:
            raise CheckTimeout(f"ran {seconds:.0f} s, longer than its timeout of {spec.timeout_seconds:g} s")
    except Exception as e:  # fail closed: any failure of a check blocks the batch
        log.debug("check %s failed", check.name, exc_info=True)
        return CheckResult(check.name, error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - start)
    return CheckResult(result.check, result.findings, result.metrics, result.scores, result.error,
                       time.perf_counter() - start, result.artifacts)


def evaluate(frame: pd.DataFrame, ctx: GateContext, policy: Policy,
             progress: Callable[[str], None] | None = None) -> tuple[Verdict, tuple[CheckResult, ...]]:
    """Run every enabled check on ``frame`` and decide. Row checks run first; batch checks then
    see the rows the row checks would quarantine (``ctx.suspect_rows``)."""
    say = progress or log.info
    results: list[CheckResult] = []
    enabled = [c for c in REGISTRY.values() if policy.spec(c.name).enabled]
    for phase in ("rows", "batch"):
        if phase == "batch":
            ctx.suspect_rows = np.asarray(decide(results, policy, len(frame)).quarantined_rows, dtype=np.int64)
        for check in (c for c in enabled if c.phase == phase):
            say(f"{check.name}: running")
            result = run_check(check, frame, policy.spec(check.name), ctx)
            results.append(result)
            state = f"ERROR {result.error}" if result.error else f"{len(result.flagged_rows)} row(s) flagged, " \
                f"{sum(not f.rows for f in result.findings)} batch finding(s)"
            say(f"{check.name}: {state} ({result.seconds:.1f} s)")
    return decide(results, policy, len(frame)), tuple(results)


def run_gate(reference: str | Path, incoming: str | Path, *, label: str, out_dir: str | Path | None,
             holdout: str | Path | None = None, policy: Policy | str | Path | None = None,
             id_column: str | None = None, progress: Callable[[str], None] | None = None) -> GateRun:
    """Gate one batch end to end and write ``verdict.json``, ``quarantine.parquet``,
    ``report.html`` (and ``clean.parquet`` on promote) to ``out_dir``.

    Raises :class:`~poisonguard.errors.InputError` / :class:`~poisonguard.errors.PolicyError`
    for inputs or policies that cannot be used; bad data is a verdict, not an exception.
    """
    from poisonguard import outputs

    disable_telemetry()
    say = progress or log.info
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        outputs.prepare_out_dir(out)
    started = time.time()
    ref_t = read_table(reference, role="reference")
    inc_t = read_table(incoming, role="incoming")
    hold_t = read_table(holdout, role="holdout") if holdout is not None else None
    frame = check_usable(ref_t.frame, inc_t.frame, None if hold_t is None else hold_t.frame, label, id_column)
    say(f"read {len(ref_t.frame)} reference and {len(frame)} incoming rows")
    sources = {"reference": ref_t.files, "incoming": inc_t.files}
    if hold_t is not None:
        sources["holdout"] = hold_t.files
    ctx = build_context(ref_t.frame, None if hold_t is None else hold_t.frame[list(ref_t.frame.columns)], label,
                        policy, id_column=id_column, out_dir=out, sources=sources)
    if len(ctx.reference) < 2:
        raise InputError("the reference has too few rows to fit detectors once the holdout is split off.")
    verdict, results = evaluate(frame, ctx, policy, say)
    document = outputs.verdict_document(verdict, results, provenance.describe(frame, ctx), policy,
                                        label=label, started=started)
    run = GateRun(verdict, results, frame, document, out)
    if out is not None:
        outputs.write_outputs(run, ctx)
    return run
