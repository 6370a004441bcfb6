"""The speed section: whole-process wall time and peak RSS of every defence on synthetic batches
of growing size (20 features), beside the floor no gate can beat: reading the same files and
hashing them with SHA-256.

One synthetic draw (``datasets/build.py: synthetic``) is cut into the reference, the gate's
holdout and the incoming batch, so all three share one distribution; 5% of the batch's labels
are flipped at random (the batch should be blocked), so the flip path is exercised as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.harness import POISONGUARD, Files, run_defence
from bench.metrics import row_scores
from poisonguard.testing import attacks

LABEL = "label"
FLIP_FRACTION = 0.05
MAX_SECONDS = 1800.0
DEFAULT_THREADS = "poisonguard_default_threads"  # a defence predicted to take longer at a size is skipped there (and extrapolated)


def prepare(sizes: Iterable[int], ref_rows: int, holdout_rows: int, seed: int, work: Path) -> dict[int, Path]:
    """Write reference, holdout and one incoming file per size (kept between runs: idempotent)."""
    from bench.data import synthetic_frame

    sizes = sorted(sizes)
    folder = work / "speed" / f"seed{seed}_ref{ref_rows}_hold{holdout_rows}"
    paths = {n: folder / f"incoming_{n}.parquet" for n in sizes}
    done = folder / "done.json"
    if done.exists() and set(json.loads(done.read_text())["sizes"]) >= set(sizes):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    frame = synthetic_frame(ref_rows + holdout_rows + sizes[-1], seed)
    frame.iloc[:ref_rows].to_parquet(folder / "reference.parquet", index=False)
    frame.iloc[ref_rows:ref_rows + holdout_rows].to_parquet(folder / "holdout.parquet", index=False)
    start = ref_rows + holdout_rows
    for n in sizes:
        poisoned = attacks.flip_random(frame.iloc[start:start + n], LABEL, FLIP_FRACTION, seed + n)
        poisoned.frame.to_parquet(paths[n], index=False)
        (folder / f"incoming_{n}.truth.json").write_text(json.dumps({"poisoned_rows": poisoned.rows.tolist()}))
    done.write_text(json.dumps({"sizes": sizes}))
    return paths


def read_and_hash_seconds(paths: list[Path]) -> float:
    """Best of two: SHA-256 of every file's bytes + reading it into pandas, in this process."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for p in paths:
            hashlib.sha256(p.read_bytes()).hexdigest()
            pd.read_parquet(p)
        best = min(best, time.perf_counter() - start)
    return best


def run_speed(sizes: Iterable[int], defences: list[str], work: Path, *, ref_rows: int, holdout_rows: int,
              seed: int, env: dict[str, str], emit: Callable[[dict], None], say: Callable[[str], None],
              max_seconds: float = MAX_SECONDS, default_threads_too: bool = False) -> None:
    """Every defence at every size; with ``default_threads_too`` (and pinned ``env``) poisonguard is
    also run once at the smallest size with the thread pools it picks by itself."""
    sizes = sorted(sizes)
    paths = prepare(sizes, ref_rows, holdout_rows, seed, work)
    folder = paths[sizes[0]].parent
    reference, holdout = folder / "reference.parquet", folder / "holdout.parquet"
    for n in sizes:
        batch = pd.read_parquet(paths[n])
        floor = read_and_hash_seconds([reference, holdout, paths[n]])
        emit({"section": "speed", "defence": "read+sha256", "rows": n, "wall_seconds": floor,
              "batch_memory_bytes": int(batch.memory_usage(deep=True).sum()),
              "batch_file_bytes": paths[n].stat().st_size, "reference_rows": ref_rows, "holdout_rows": holdout_rows})
        say(f"speed {n:>9,} rows: read + SHA-256 floor {floor:.2f}s")
    for defence in defences:
        last: tuple[int, float] | None = None
        for n in sizes:
            poisoned = np.array(json.loads((folder / f"incoming_{n}.truth.json").read_text())["poisoned_rows"])
            row = {"section": "speed", "defence": defence, "rows": n, "reference_rows": ref_rows,
                   "holdout_rows": holdout_rows, "load_average_1m": os.getloadavg()[0], "threads_env": env}
            predicted = None if last is None else last[1] * n / last[0]  # linear: generous to slow defences
            if predicted is not None and predicted > max_seconds:
                row |= {"decision": "skipped", "extrapolated_seconds": predicted,
                        "note": f"skipped: predicted {predicted:.0f} s > {max_seconds:.0f} s, extrapolated linearly "
                                f"from {last[0]:,} rows"}  # type: ignore[index]
                emit(row)
                say(f"speed {n:>9,} rows: {defence:12s} {row['note']}")
                continue
            out = run_defence(defence, Files(reference, paths[n], holdout, LABEL), work / "speed" / "runs" / defence
                              / str(n), timeout=max_seconds, env=env)
            row |= {"decision": out.decision, "expected": "block", "wall_seconds": out.wall_seconds,
                    "peak_rss_bytes": out.peak_rss_bytes, "stage_seconds": out.stage_seconds,
                    "details": out.details, "note": out.note, **row_scores(out.flagged_rows, poisoned, n)}
            emit(row)
            say(f"speed {n:>9,} rows: {defence:12s} {out.decision:8s} {out.wall_seconds:.1f}s "
                f"{(out.peak_rss_bytes or 0) / 2**20:.0f} MiB {out.note}")
            if out.decision in ("timeout", "error"):
                last = (n, max_seconds * 2) if out.decision == "timeout" else last
                continue
            last = (n, out.wall_seconds or 0.0)
    if default_threads_too and env and POISONGUARD in defences:
        n = sizes[0]
        out = run_defence(POISONGUARD, Files(reference, paths[n], holdout, LABEL),
                          work / "speed" / "runs" / "poisonguard_default_threads" / str(n), timeout=max_seconds)
        emit({"section": "speed", "defence": DEFAULT_THREADS, "rows": n, "decision": out.decision,
              "wall_seconds": out.wall_seconds, "peak_rss_bytes": out.peak_rss_bytes, "stage_seconds": out.stage_seconds,
              "load_average_1m": os.getloadavg()[0], "threads_env": {}})
        say(f"speed {n:>9,} rows: poisonguard with default threads {out.wall_seconds:.1f}s")
