"""The gate: read inputs, run every enabled check (fail closed), decide, write the outputs.

The stages themselves are in :mod:`poisonguard.engine.stages`; what they share (running one
check under its timeout, the trusted context) in :mod:`poisonguard.engine.runner`."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from poisonguard.engine import stages
from poisonguard.engine.inputs import GateInputs
from poisonguard.io import outputs
from poisonguard.kernel.results import GateRun
from poisonguard.kernel.signing import SigningKey
from poisonguard.kernel.telemetry import disable_telemetry

__all__ = ["GateInputs", "run_gate"]


def run_gate(inputs: GateInputs, *, out_dir: str | Path | None, progress: Callable[[str], None] | None = None,
             signing_key: SigningKey | None = None) -> GateRun:
    """Gate one batch end to end and write ``verdict.json``, ``quarantine.parquet``,
    ``report.html`` (and ``clean.parquet`` on promote) to ``out_dir``; the verdict is signed
    with ``signing_key`` (HMAC) when one is given.

    Runs every stage of :mod:`poisonguard.engine.stages` in this process, in a temporary work
    directory. Raises :class:`~poisonguard.errors.InputError` / :class:`~poisonguard.errors.PolicyError`
    for inputs or policies that cannot be used; bad data is a verdict, not an exception.
    """
    disable_telemetry()
    inputs = replace(inputs, policy=inputs.loaded_policy())
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        outputs.prepare_out_dir(out)
    with tempfile.TemporaryDirectory(prefix="poisonguard-") as work:
        return stages.run_all(inputs, work_dir=work, out_dir=out, progress=progress, signing_key=signing_key)
