"""Fit once, gate many: cold and warm whole-process runs of ``poisonguard check --state`` on the
speed section's synthetic data (20 features, 5% flipped labels), seconds per check, peak RSS, and
the import time of each heavy library; written into bench/RESULTS.md between the ``fit-once``
markers (the rest of the file is left as it is).

    python -m bench.fitonce [--sizes 1000 20000 1000000] [--runs 2] [--directory 10000000 10] [--numeric 1000000]

A cold run starts from an empty state directory; a warm run reuses the state the cold run built
(the same reference, holdout and policy); both are timed as the user would see them, the whole
process. The verdicts of the cold and warm run must be equal apart from ``run`` (checked here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness import Files, command, measure
from bench.report import run_stamp, write_section
from bench.speed import LABEL, prepare

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- fit-once:begin -->", "<!-- fit-once:end -->"
HEAVY = ("great_expectations", "evidently", "sklearn", "pandas", "pyarrow", "scipy")
CHECKS = ("provenance", "schema", "outliers", "label_flips", "backdoor", "baseline", "drift", "cumulative")


def import_seconds(module: str) -> float:
    """Cumulative import time of ``module`` in a fresh interpreter (``python -X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, check=True)
    last = [line for line in proc.stderr.splitlines() if line.rstrip().endswith(f" {module}")][-1]
    return int(last.split("|")[1]) / 1e6


def gate(files: Files, out: Path, state: Path) -> dict:
    cmd = command("poisonguard", Files(files.reference, files.incoming, files.holdout, files.label, state=state), out)
    code, wall, rss = measure(cmd, 3600.0, out / "log.txt", {"OMP_NUM_THREADS": "1"})
    verdict = json.loads((out / "verdict.json").read_text()) if (out / "verdict.json").exists() else {}
    return {"exit": code, "wall_seconds": wall, "peak_rss_bytes": rss, "verdict": verdict}


def measure_size(n: int, paths: dict[int, Path], work: Path, runs: int, tag: str = "") -> dict:
    folder = paths[n].parent
    files = Files(folder / "reference.parquet", paths[n], folder / "holdout.parquet", LABEL)
    best: dict[str, dict] = {}
    for i in range(runs):
        state = work / f"state-{n}{tag}-{i}"
        shutil.rmtree(state, ignore_errors=True)
        cold = gate(files, work / f"cold-{n}{tag}-{i}", state)
        warm = gate(files, work / f"warm-{n}{tag}-{i}", state)
        for name, r in (("cold", cold), ("warm", warm)):
            if name not in best or (r["wall_seconds"] or 1e9) < best[name]["wall_seconds"]:
                best[name] = r
        same = {k: v for k, v in cold["verdict"].items() if k != "run"} == \
            {k: v for k, v in warm["verdict"].items() if k != "run"}
        if not same:
            raise SystemExit(f"warm and cold verdicts differ at {n} rows: a fitted state changed a verdict")
    batch_bytes = int(__import__("pandas").read_parquet(paths[n]).memory_usage(deep=True).sum())
    return {"rows": n, "what": f"{n:,}" + (" all numeric" if tag else ""), "batch_memory_bytes": batch_bytes,
            **{f"{k}_{m}": best[k][m] for k in ("cold", "warm") for m in ("wall_seconds", "peak_rss_bytes")},
            **{f"{k}_check_seconds": best[k]["verdict"].get("run", {}).get("check_seconds", {}) for k in ("cold", "warm")},
            "decision": best["warm"]["verdict"].get("decision")}


def prepare_directory(rows: int, files: int, seed: int, work: Path) -> Path:
    """A reference (20k rows), a holdout (5k) and a batch of ``rows`` rows in ``files`` Parquet
    files, all from one synthetic draw (5% of labels flipped in each file); kept between runs."""
    from bench.data import synthetic_frame
    from bench.speed import FLIP_FRACTION
    from poisonguard.testing import attacks

    folder = work / "speed" / f"seed{seed}_ref20000_hold5000_dir{rows}x{files}"
    if (folder / "done.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    frame = synthetic_frame(25_000 + rows, seed)
    frame.iloc[:20_000].to_parquet(folder / "reference.parquet", index=False)
    frame.iloc[20_000:25_000].to_parquet(folder / "holdout.parquet", index=False)
    incoming = folder / "incoming"
    incoming.mkdir(exist_ok=True)
    per_file = rows // files
    for k in range(files):
        part = frame.iloc[25_000 + k * per_file:25_000 + (k + 1) * per_file].reset_index(drop=True)
        attacks.flip_random(part, LABEL, FLIP_FRACTION, seed + k).frame.to_parquet(
            incoming / f"part-{k:03d}.parquet", index=False)
    (folder / "done.json").write_text(json.dumps({"rows": rows, "files": files}))
    return folder


def prepare_numeric(rows: int, seed: int, work: Path) -> Path:
    """The speed data with every column a number (categorical features and the label as codes):
    a reference (20k rows), a holdout (5k) and a batch of ``rows`` (5% of labels flipped); kept."""
    import pandas as pd

    from bench.data import synthetic_frame
    from bench.speed import FLIP_FRACTION
    from poisonguard.testing import attacks

    folder = work / "speed" / f"seed{seed}_ref20000_hold5000_numeric{rows}"
    incoming = folder / "incoming.parquet"
    if (folder / "done.json").exists():
        return incoming
    folder.mkdir(parents=True, exist_ok=True)
    frame = synthetic_frame(25_000 + rows, seed)
    for c in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            codes = pd.Categorical(frame[c]).codes
            frame[c] = codes.astype("int64") if c == LABEL else codes.astype("float64")
    frame.iloc[:20_000].to_parquet(folder / "reference.parquet", index=False)
    frame.iloc[20_000:25_000].to_parquet(folder / "holdout.parquet", index=False)
    batch = frame.iloc[25_000:].reset_index(drop=True)
    attacks.flip_random(batch, LABEL, FLIP_FRACTION, seed).frame.to_parquet(incoming, index=False)
    (folder / "done.json").write_text(json.dumps({"rows": rows}))
    return incoming


def measure_directory(rows: int, files: int, work: Path) -> dict:
    """Cold and warm runs of ``--incoming DIR`` on a batch of ``files`` files."""
    folder = prepare_directory(rows, files, 2026, work)
    gate_files = Files(folder / "reference.parquet", folder / "incoming", folder / "holdout.parquet", LABEL)
    state = work / f"state-dir-{rows}"
    shutil.rmtree(state, ignore_errors=True)
    cold = gate(gate_files, work / f"cold-dir-{rows}", state)
    warm = gate(gate_files, work / f"warm-dir-{rows}", state)
    first_file = sorted((folder / "incoming").glob("*.parquet"))[0]
    part_bytes = int(__import__("pandas").read_parquet(first_file).memory_usage(deep=True).sum())
    return {"rows": rows, "files": files, "file_memory_bytes": part_bytes,
            **{f"{k}_{m}": r[m] for k, r in (("cold", cold), ("warm", warm)) for m in ("wall_seconds", "peak_rss_bytes")},
            **{f"{k}_check_seconds": r["verdict"].get("run", {}).get("check_seconds", {})
               for k, r in (("cold", cold), ("warm", warm))},
            "decision": warm["verdict"].get("decision"), "exit": warm["exit"]}


def render(rows: list[dict], imports: dict[str, float], meta: dict, directory: dict | None = None) -> str:
    lines = [BEGIN, "## Fit once, gate many (`python -m bench.fitonce`)", "",
             f"{meta['when']}, commit {meta['commit']}, load average before the run {meta['load']:.2f} "
             f"({os.cpu_count()} cores). Whole process, best of {meta['runs']}; reference 20,000 rows, holdout "
             "5,000, 20 features; cold = empty `--state`, warm = the state the cold run built. Verdicts equal "
             "apart from `run` (checked).", "",
             "| batch rows | cold s | warm s | cold peak RSS | warm peak RSS | RSS / batch (warm) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        what = r.get("what") or f"{r['rows']:,}"
        lines.append(f"| {what} | {r['cold_wall_seconds']:.1f} | {r['warm_wall_seconds']:.1f} | "
                     f"{r['cold_peak_rss_bytes'] / 2**20:.0f} MiB | {r['warm_peak_rss_bytes'] / 2**20:.0f} MiB | "
                     f"{r['warm_peak_rss_bytes'] / max(r['batch_memory_bytes'], 1):.1f}x |")
    lines += ["", "Seconds per check (cold / warm):", "",
              "| batch rows | " + " | ".join(CHECKS) + " |", "|---:|" + "---:|" * len(CHECKS)]
    for r in rows:
        cells = [f"{r['cold_check_seconds'].get(c, 0):.1f} / {r['warm_check_seconds'].get(c, 0):.1f}" for c in CHECKS]
        what = r.get("what") or f"{r['rows']:,}"
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    if directory:
        d = directory
        lines += ["", f"A batch of {d['rows']:,} rows in {d['files']} Parquet files (`--incoming DIR`, one file of "
                  f"{d['rows'] // d['files']:,} rows is {d['file_memory_bytes'] / 2**20:.0f} MiB in memory): cold "
                  f"{d['cold_wall_seconds']:.0f} s, warm {d['warm_wall_seconds']:.0f} s; peak RSS cold "
                  f"{d['cold_peak_rss_bytes'] / 2**30:.2f} GiB, warm {d['warm_peak_rss_bytes'] / 2**30:.2f} GiB; "
                  f"decision {d['decision']}. Seconds per check, warm: "
                  + ", ".join(f"{c} {d['warm_check_seconds'].get(c, 0):.1f}" for c in CHECKS) + "."]
    lines += ["", "Import time of each heavy library in a fresh interpreter (`python -X importtime`, cumulative): "
              + ", ".join(f"{m} {s:.2f} s" for m, s in imports.items()) + ".", END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fitonce", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 20_000])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--directory", nargs=2, type=int, metavar=("ROWS", "FILES"),
                        help="also gate a batch of ROWS rows split into FILES Parquet files (e.g. 10000000 10)")
    parser.add_argument("--numeric", type=int, metavar="ROWS",
                        help="also gate an all-numeric batch of ROWS rows (the RSS target holds there too)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "fitonce")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    # Bytecode compiled first, as an installed package has it: a fresh checkout's first run would
    # otherwise pay ~2 s compiling poisonguard's modules inside the first cold measurement.
    import compileall

    import poisonguard
    compileall.compile_dir(str(Path(poisonguard.__file__).parent), quiet=1)
    load = os.getloadavg()[0]
    paths = prepare(args.sizes, 20_000, 5_000, 2026, args.work)
    rows = []
    for n in sorted(args.sizes):
        rows.append(measure_size(n, paths, args.work, args.runs))
        r = rows[-1]
        print(f"[fit-once] {n:,} rows: cold {r['cold_wall_seconds']:.1f} s, warm {r['warm_wall_seconds']:.1f} s, "
              f"warm peak RSS {r['warm_peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
    if args.numeric:
        rows.append(measure_size(args.numeric, {args.numeric: prepare_numeric(args.numeric, 2026, args.work)},
                                 args.work, args.runs, tag="-numeric"))
        r = rows[-1]
        print(f"[fit-once] {r['what']} rows: cold {r['cold_wall_seconds']:.1f} s, warm {r['warm_wall_seconds']:.1f} s, "
              f"warm peak RSS {r['warm_peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
    directory = None
    if args.directory:
        directory = measure_directory(*args.directory, args.work)
        print(f"[fit-once] {args.directory[0]:,} rows in {args.directory[1]} files: cold "
              f"{directory['cold_wall_seconds']:.0f} s, warm {directory['warm_wall_seconds']:.0f} s, warm peak RSS "
              f"{directory['warm_peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
    imports = {m: min(import_seconds(m) for _ in range(2)) for m in HEAVY}
    meta = run_stamp() | {"load": load, "runs": args.runs}
    write_section(args.results, render(rows, imports, meta, directory))
    (args.work / "fitonce.json").write_text(json.dumps({"rows": rows, "directory": directory, "imports": imports,
                                                        "meta": meta}, indent=1))
    print(f"[fit-once] wrote the section into {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
