"""``python -m bench [--quick | --smoke] [--out DIR]``: run the benchmark, write ``results.jsonl``
(one raw row per run) and ``RESULTS.md`` (tables, machine, versions, date) into ``--out``.

- full (``make bench``): 4 datasets x every scenario, speed at 20k / 200k / 1M rows; ~1-2 h here;
- ``--quick`` (``make bench-quick``): a few scenarios of two datasets, speed at 20k rows; < 5 min;
- ``--smoke``: two scenarios of the smallest dataset, speed at 1k rows (the test suite's run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import environment, report
from bench.data import ROOT, SEED
from bench.harness import ALL_DEFENCES, POISONGUARD, cleanlab_available, thread_env
from bench.matrix import run_dataset
from bench.speed import run_speed

# mode -> (dataset -> scenarios (None = all), speed sizes, speed reference rows, speed holdout rows)
PLANS: dict[str, tuple[dict[str, set[str] | None], tuple[int, ...], int, int]] = {
    "full": ({"breast_cancer": None, "digits": None, "credit": None, "synthetic": None},
             (20_000, 200_000, 1_000_000), 20_000, 5_000),
    "quick": ({"credit": {"clean_1", "flips_5", "backdoor_3"}},
              (20_000,), 20_000, 5_000),
    "smoke": ({"breast_cancer": {"clean_1", "flips_10"}}, (1_000,), 2_000, 500),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="a subset, < 5 minutes")
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke", help="tiny data (tests)")
    parser.set_defaults(mode="full")
    parser.add_argument("--out", type=Path, help="where RESULTS.md and results.jsonl go "
                        "(default: bench/ for the full run, bench/out/<mode>/ otherwise)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "work",
                        help="generated batches and each run's outputs (default: bench/out/work)")
    parser.add_argument("--defences", nargs="+", choices=ALL_DEFENCES, default=list(ALL_DEFENCES))
    parser.add_argument("--datasets", nargs="+", help="only these datasets of the plan")
    parser.add_argument("--scenarios", nargs="+", help="only these scenarios (slow_attack = its whole series)")
    parser.add_argument("--sizes", nargs="+", type=int, help="speed sizes instead of the plan's")
    parser.add_argument("--no-matrix", action="store_true", help="skip the scenario matrix")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed section")
    parser.add_argument("--matrix-threads", type=int, default=1,
                        help="native threads per process in the matrix (default 1: this machine is shared and "
                        "quality does not depend on it); 0 = leave as users run")
    parser.add_argument("--speed-threads", type=int, default=1,
                        help="native threads per process in the speed section (default 1, for every defence alike: "
                        "on a shared machine OpenMP thread pools stall; poisonguard is also timed once with default "
                        "threads at the smallest size); 0 = leave as users run")
    parser.add_argument("--no-threads-probe", action="store_true",
                        help="skip the extra poisonguard run with default threads (part of the full run)")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite RESULTS.md from the results.jsonl already in --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan, sizes, ref_rows, holdout_rows = PLANS[args.mode]
    sizes = tuple(args.sizes or sizes)
    out = args.out or (ROOT / "bench" if args.mode == "full" else ROOT / "bench" / "out" / args.mode)
    out.mkdir(parents=True, exist_ok=True)
    defences = [d for d in args.defences if not d.startswith("cleanlab") or cleanlab_available()]
    skipped = sorted(set(args.defences) - set(defences))
    if POISONGUARD not in defences:
        defences.insert(0, POISONGUARD)
    rows_path = out / "results.jsonl"
    if args.render:
        rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
        meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else \
            environment.describe() | {"mode": args.mode, "command": "python -m bench (partial run)", "seconds": 0,
                                      "matrix_threads_env": {}, "speed_threads_env": {}}
        _write_results(out / "RESULTS.md", report.render(rows, meta))
        return 0
    rows = []
    started = time.time()

    def emit(row: dict) -> None:
        rows.append(row)
        with rows_path.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")

    def say(line: str) -> None:
        print(f"[bench {time.time() - started:6.0f}s] {line}", flush=True)

    rows_path.write_text("")
    if skipped:
        say(f"not run: {', '.join(skipped)} (cleanlab is not installed; `make bench` installs it)")
    matrix_env = thread_env(args.matrix_threads or None)
    speed_env = thread_env(args.speed_threads or None)
    from threadpoolctl import threadpool_limits

    # Speed first: it is the section whose cost is least known. The evaluation model in this
    # process uses one thread, like the defences' processes.
    with threadpool_limits(1):
        if not args.no_speed:
            run_speed(sizes, defences, args.work, ref_rows=ref_rows, holdout_rows=holdout_rows, seed=SEED,
                      env=speed_env, emit=emit, say=say, default_threads_too=args.mode == "full" and not args.no_threads_probe)
        if not args.no_matrix:
            for name, scenarios in plan.items():
                if args.datasets is None or name in args.datasets:
                    chosen = set(args.scenarios) if args.scenarios else scenarios
                    run_dataset(name, chosen, defences, args.work, matrix_env, emit, say)
    meta = environment.describe() | {
        "mode": args.mode, "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "seconds": round(time.time() - started, 1), "defences": defences, "not_run": skipped,
        "matrix_threads_env": matrix_env, "speed_threads_env": speed_env}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    _write_results(out / "RESULTS.md", report.render(rows, meta))
    say(f"wrote {out / 'RESULTS.md'} and {rows_path} ({len(rows)} rows)")
    return 0


def _write_results(path: Path, text: str) -> None:
    """Write RESULTS.md, keeping the sections bench.fitonce and bench.realdata wrote into it."""
    old = path.read_text() if path.exists() else ""
    path.write_text(report.with_kept_sections(text, old))
