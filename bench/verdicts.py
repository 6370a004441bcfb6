"""Verdict digests of every committed dataset batch: the fixed point that refactors must keep.

``python -m bench.verdicts --write`` gates every batch under ``datasets/<name>/incoming/`` against
its reference and holdout (policy ``checks/<name>.yml`` when it exists, else the defaults) and
writes the SHA-256 of each verdict — without its ``run`` block, with input paths cut to their
file names — to ``tests/data/verdict_digests.json``. Without ``--write`` it compares and prints
every difference (exit 1 if any). ``tests/integration/test_same_verdicts.py`` runs the comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DIGESTS = ROOT / "tests" / "data" / "verdict_digests.json"
DATASETS = ("breast_cancer", "digits", "synthetic", "credit")


def stable_digest(document: dict[str, Any]) -> str:
    """SHA-256 of a verdict without its ``run`` block and with input paths cut to file names."""
    doc = {k: v for k, v in document.items() if k not in ("run", "signature")}
    prov = dict(doc.get("provenance", {}))
    prov["incoming_files"] = [Path(p).name for p in prov.get("incoming_files", [])]
    doc["provenance"] = prov
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def batches(dataset: str) -> list[Path]:
    return sorted((ROOT / "datasets" / dataset / "incoming").glob("*.parquet"))


def verdict_digest(dataset: str, incoming: Path) -> str:
    from poisonguard.engine.gate import GateInputs, run_gate

    folder = ROOT / "datasets" / dataset
    label = json.loads((folder / "meta.json").read_text())["label"]
    policy = ROOT / "checks" / f"{dataset}.yml"
    with tempfile.TemporaryDirectory() as out:
        inputs = GateInputs(folder / "reference.parquet", incoming, label, holdout=folder / "holdout.parquet",
                            policy=policy if policy.exists() else None)
        run = run_gate(inputs, out_dir=out, progress=lambda _: None)
        return stable_digest(run.document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the digests instead of comparing")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args(argv)
    known = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    differ = 0
    for dataset in args.datasets:
        for incoming in batches(dataset):
            name = f"{dataset}/{incoming.stem}"
            digest = verdict_digest(dataset, incoming)
            if args.write:
                known[name] = digest
            elif known.get(name) != digest:
                differ += 1
                print(f"DIFFERS {name}: {known.get(name)} -> {digest}", flush=True)
            print(f"{name} {digest[:16]}", file=sys.stderr, flush=True)
    if args.write:
        DIGESTS.write_text(json.dumps(dict(sorted(known.items())), indent=2) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
