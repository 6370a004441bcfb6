"""The contract every check passes — built-in or plug-in — as one function a test suite calls.

    from poisonguard.testing import check_contract

    def test_my_check(reference, holdout, batch):
        check_contract(my_check, reference=reference, holdout=holdout, batch=batch, label="y")

It runs the check twice on fresh contexts and asserts: it returns a ``CheckResult`` of its own
name without an error; the same input and seed give the same result; neither the batch nor the
trusted data is modified; the result survives a JSON round trip; scores, if any, are one finite
number per row; flagged rows lie inside the batch; every finding code is declared in ``codes``
with a message; a declared ``headline`` is a number in the metrics (unless the check reports
itself ``skipped``); a check that scores in parts gives the same result however the batch is cut,
also when parts are scored side by side on threads (as the gate scores large batches); and a
check that reads batches (``reads="batch"``) gives the same result on the batch cut into files.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from poisonguard.checks.base import CheckDef, score_in_chunks
from poisonguard.kernel.batch import Batch
from poisonguard.kernel.context import GateContext
from poisonguard.kernel.parts import merge
from poisonguard.kernel.results import CheckResult


def _context(reference: pd.DataFrame, holdout: pd.DataFrame, label: str, seed: int, out: Path) -> GateContext:
    return GateContext(reference=reference, holdout=holdout, label=label, seed=seed, out_dir=out)


def check_contract(check: CheckDef, *, reference: pd.DataFrame, holdout: pd.DataFrame, batch: pd.DataFrame,
                   label: str, spec: object = None, seed: int = 7) -> CheckResult:
    """Assert that ``check`` keeps the contract on ``batch`` (see the module docstring); returns
    its result. ``spec`` defaults to the check's default policy section. Raises AssertionError
    naming the broken clause."""
    spec = check.spec() if spec is None else spec
    trusted_before = (reference.copy(deep=True), holdout.copy(deep=True))
    batch_before = batch.copy(deep=True)
    with tempfile.TemporaryDirectory(prefix="poisonguard-contract-") as tmp:
        first = check.run(batch, spec, ctx=_context(reference, holdout, label, seed, Path(tmp) / "a"))
        second = check.run(batch, spec, ctx=_context(reference, holdout, label, seed, Path(tmp) / "b"))
        assert isinstance(first, CheckResult) and first.check == check.name, \
            f"{check.name}: run returned {type(first).__name__} for {getattr(first, 'check', None)!r}"
        assert first.error is None, f"{check.name}: the result carries an error: {first.error}"
        assert first.to_dict() == second.to_dict(), f"{check.name}: the same input and seed gave another result"
        pd.testing.assert_frame_equal(batch, batch_before, obj=f"{check.name}: the batch (modified)")
        pd.testing.assert_frame_equal(reference, trusted_before[0], obj=f"{check.name}: the reference (modified)")
        pd.testing.assert_frame_equal(holdout, trusted_before[1], obj=f"{check.name}: the holdout (modified)")
        blob = json.dumps(first.to_dict(), allow_nan=False)
        assert CheckResult.from_dict(json.loads(blob)) == first, f"{check.name}: the result does not round-trip"
        if first.scores is not None:
            assert first.scores.shape == (len(batch),), f"{check.name}: {first.scores.shape} scores, not one a row"
            assert np.all(np.isfinite(first.scores)), f"{check.name}: scores that are not finite"
        assert all(0 <= r < len(batch) for r in first.flagged_rows), f"{check.name}: flagged rows outside the batch"
        for finding in first.findings:
            assert finding.code in check.codes, f"{check.name}: finding code {finding.code} is not declared in codes"
            assert finding.message, f"{check.name}: finding {finding.code} has no message"
        if check.headline is not None and "skipped" not in first.metrics:
            value = first.metrics.get(check.headline)
            assert isinstance(value, int | float) and not isinstance(value, bool), \
                f"{check.name}: its headline metric {check.headline!r} is not a number in its metrics ({value!r})"
        if check.partitioned:
            assert check.fit is not None and check.score is not None and check.summarize is not None
            ctx = _context(reference, holdout, label, seed, Path(tmp) / "parts")
            fitted = check.fit(spec, ctx)
            cuts = sorted({0, 1, len(batch) // 2, len(batch) // 2 + 1, len(batch)})  # uneven, one of one row
            parts = [check.score(batch.iloc[a:b], fitted, spec, ctx) for a, b in itertools.pairwise(cuts)]
            assert check.summarize(merge(parts), fitted, spec, ctx).to_dict() == first.to_dict(), \
                f"{check.name}: scoring in parts changed the result"
            ctx = _context(reference, holdout, label, seed, Path(tmp) / "threads")
            fitted = check.fit(spec, ctx)
            chunks = score_in_chunks(check.score, batch, fitted, spec, ctx, chunk_rows=max(len(batch) // 4, 1))
            assert check.summarize(chunks, fitted, spec, ctx).to_dict() == first.to_dict(), \
                f"{check.name}: scoring chunks side by side on threads changed the result"
        if check.reads == "batch":
            files = _cut(batch, sorted({0, 1, len(batch) // 3, len(batch)}))
            again = check.run(files, spec, ctx=_context(reference, holdout, label, seed, Path(tmp) / "files"))
            assert again.to_dict() == first.to_dict(), f"{check.name}: reading the batch file by file changed the result"
    return first


def _cut(frame: pd.DataFrame, cuts: list[int]) -> Batch:
    """``frame`` as a batch of files cut at ``cuts`` (each file read afresh, as the gate reads them)."""
    def reader(a: int, b: int) -> Callable[[Sequence[str] | None], pd.DataFrame]:
        return lambda cols: frame.iloc[a:b].reset_index(drop=True)[list(frame.columns if cols is None else cols)]
    pairs = list(itertools.pairwise(cuts))
    return Batch(tuple(map(str, frame.columns)), tuple(b - a for a, b in pairs), tuple(reader(a, b) for a, b in pairs))
