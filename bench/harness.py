"""Run one defence on one batch as a whole process, the way users run it, and measure it:
wall time and peak RSS (``os.wait4``'s ``ru_maxrss`` of that process), plus its own stage times."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.data import ROOT

POISONGUARD = "poisonguard"
COMPETITORS = ("owasp", "cleanlab_lr", "cleanlab_gb", "knn")
ALL_DEFENCES = (POISONGUARD, *COMPETITORS)
# The slow attack is gated against a rolling reference; poisonguard also gets the frozen, trusted
# reference as `--golden PATH` (issue 7), so its cumulative check can see the doses add up.
PASS_GOLDEN = True
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment pinning native thread pools to ``threads`` (nothing when None: as users run)."""
    return {} if threads is None else dict.fromkeys(THREAD_VARIABLES, str(threads))


@dataclass(frozen=True)
class Files:
    reference: Path
    incoming: Path
    holdout: Path | None
    label: str
    golden: Path | None = None
    # poisonguard's fitted state (the matrix gates many batches against one reference); the speed
    # section leaves it out, so every size is timed cold unless it says otherwise.
    state: Path | None = None


@dataclass
class Outcome:
    """What one run of one defence gave: ``decision`` is promote, block, error, timeout or skipped."""

    decision: str
    flagged_rows: list[int] = field(default_factory=list)
    wall_seconds: float | None = None
    peak_rss_bytes: int | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    note: str = ""


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def command(defence: str, files: Files, out: Path) -> list[str]:
    if defence == POISONGUARD:
        cmd = [_bin("poisonguard"), "check", "-q", "--reference", str(files.reference), "--incoming",
               str(files.incoming), "--label", files.label, "--out", str(out)]
        if files.holdout is not None:
            cmd += ["--holdout", str(files.holdout)]
        if PASS_GOLDEN and files.golden is not None:
            cmd += ["--golden", str(files.golden)]
        if files.state is not None:
            cmd += ["--state", str(files.state)]
        return cmd
    cmd = [sys.executable, "-m", "bench.defences", defence, "--reference", str(files.reference), "--incoming",
           str(files.incoming), "--label", files.label, "--out", str(out)]
    return cmd + (["--holdout", str(files.holdout)] if files.holdout is not None else [])


GNU_TIME = Path("/usr/bin/time")


def _hwm_bytes(pid: int) -> int:
    """The process's own peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next((x for x in f if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    except OSError:
        return 0
    return int(line.split()[1]) * 1024


def measure(cmd: list[str], timeout: float, log: Path, env: dict[str, str] | None = None) -> tuple[int | None, float, int]:
    """Run ``cmd`` (with ``env`` added to this environment); returns (exit code or None on timeout,
    wall seconds, peak RSS in bytes).

    Peak RSS comes from GNU time (``%M``) when it is installed, else from polling the process's
    VmHWM. Not from ``os.wait4`` on our own child: Linux carries the high-water mark of the
    forking parent (this process, holding the generated data) into the child's ``ru_maxrss``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix(".rss")
    wrapped = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *cmd] if GNU_TIME.exists() else cmd
    peak = 0
    with log.open("wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
        while proc.poll() is None:
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None, time.perf_counter() - start, peak
            if not GNU_TIME.exists():
                peak = max(peak, _hwm_bytes(proc.pid))
            time.sleep(0.01)
        wall = time.perf_counter() - start
    if GNU_TIME.exists() and rss_file.exists():
        lines = rss_file.read_text().split()
        peak = int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else 0
    return proc.returncode, wall, peak


def run_defence(defence: str, files: Files, out: Path, timeout: float = 1800.0,
                env: dict[str, str] | None = None) -> Outcome:
    code, wall, rss = measure(command(defence, files, out), timeout, out / "log.txt", env)
    tail = (out / "log.txt").read_text(errors="replace")[-400:].strip()
    if code is None:
        return Outcome("timeout", wall_seconds=wall, peak_rss_bytes=rss, note=f"killed after {timeout:.0f} s")
    if defence == POISONGUARD:
        verdict_path = out / "verdict.json"
        if code not in (0, 1) or not verdict_path.exists():
            return Outcome("error", wall_seconds=wall, peak_rss_bytes=rss, note=f"exit {code}: {tail}")
        verdict = json.loads(verdict_path.read_text())
        run = verdict.get("run", {})
        reasons = [f"{r['check']}/{r['code']}" for r in verdict.get("reasons", [])]
        return Outcome(verdict["decision"], list(verdict["quarantined_rows"]), wall, rss,
                       dict(run.get("check_seconds", {})),
                       {"reasons": reasons, "gate_seconds": run.get("seconds"),
                        "flagged_by_check": {k: v.get("flagged_rows", 0) for k, v in verdict["checks"].items()},
                        "status_by_check": {k: v.get("status") for k, v in verdict["checks"].items()}})
    flags_path = out / "flags.json"
    if code != 0 or not flags_path.exists():
        return Outcome("error", wall_seconds=wall, peak_rss_bytes=rss, note=f"exit {code}: {tail}")
    doc = json.loads(flags_path.read_text())
    return Outcome(doc["decision"], doc["flagged_rows"], wall, rss, doc["stage_seconds"], doc["details"])


def cleanlab_available() -> bool:
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        return False
    return True
