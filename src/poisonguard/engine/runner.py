"""What every stage of the gate shares: the trusted context of a run (with the holdout split off
when none is given) and running one check under its timeout, failing closed."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from poisonguard.checks import CheckDef
from poisonguard.engine.policy import Policy
from poisonguard.errors import CheckTimeout, InputError, PromotionRefused
from poisonguard.kernel.batch import Batch, as_batch
from poisonguard.kernel.context import GateContext
from poisonguard.kernel.results import CheckResult

log = logging.getLogger("poisonguard")
T = TypeVar("T")


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
def _deadline(seconds: float) -> Iterator[None]:
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


def guarded(step: Callable[[], T], seconds: float) -> tuple[T | None, str | None]:
    """``(step(), None)``, or ``(None, error)`` when the step raises or runs past ``seconds``.

    This is where a check failing closed starts: the error becomes the check's result and the
    gate blocks. Input errors, and a fitted state refused for failing its check, are not the
    check's fault and propagate."""
    start = time.perf_counter()
    try:
        with _deadline(seconds):
            value = step()
        elapsed = time.perf_counter() - start
        if elapsed > seconds:
            raise CheckTimeout(f"ran {elapsed:.0f} s, longer than its timeout of {seconds:g} s")
    except (InputError, PromotionRefused):
        raise
    except Exception as e:  # fail closed: any failure of a check blocks the batch
        log.debug("check step failed", exc_info=True)
        return None, f"{type(e).__name__}: {e}"
    return value, None


def run_check(check: CheckDef, batch: Batch | pd.DataFrame, spec: Any, ctx: GateContext) -> CheckResult:
    """Run one whole-batch check — on ``batch`` as it is when the check reads batches, else on the
    batch as one frame; a crash or a timeout becomes an error result (and the gate blocks)."""
    start = time.perf_counter()
    batch = as_batch(batch)

    def step() -> CheckResult:
        result = check.run(batch if check.reads == "batch" else batch.frame(), spec, ctx=ctx)
        if not isinstance(result, CheckResult) or result.check != check.name:
            raise TypeError(f"returned {type(result).__name__}, not a CheckResult for {check.name}")
        if result.scores is not None and len(result.scores) != len(batch):
            raise ValueError(f"returned {len(result.scores)} scores for {len(batch)} rows")
        return result

    result, error = guarded(step, spec.timeout_seconds)
    seconds = time.perf_counter() - start
    if result is None:
        return CheckResult(check.name, error=error, seconds=seconds)
    return CheckResult(result.check, result.findings, result.metrics, result.scores, result.error,
                       seconds, result.artifacts)
