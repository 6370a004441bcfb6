"""The defences poisonguard is compared with, each run as its own process like the CLI:

    python -m bench.defences NAME --reference R --incoming B --label Y --out DIR [--holdout H]

writes ``DIR/flags.json``: ``decision``, ``flagged_rows`` (0-based, sorted), ``stage_seconds``
and ``details``. Every defence encodes features with :class:`bench.data.Encoder` (fitted on the
reference) and flags rows; "promoted rows" are the batch minus its flagged rows.

How each decides (the recipes flag rows; a gate must also say block or promote):

- ``owasp``: the OWASP ML02 recipe. IsolationForest(contamination=0.05) fitted on the batch flags
  rows; a RandomForest's 5-fold cross-validated accuracy on the batch is compared with the same on a
  seeded sample of the reference of the batch's size: block when it is below that baseline - 0.05.
- ``cleanlab_lr`` / ``cleanlab_gb``: cleanlab ``find_label_issues`` on out-of-fold (5-fold)
  probabilities of a logistic regression / a gradient-boosted model, over reference + batch
  together (cleanlab's usual set-up: more data, better probabilities). Flagged = the batch's
  issues; the reference's own issue rate is the natural rate.
- ``knn``: a row is flagged when its label is not the most common among its k = 10 nearest
  reference rows; the reference's own rate is measured leave-one-out.
- cleanlab and kNN block when the batch's flagged share exceeds the reference's rate by more than
  1 point and a one-sided binomial test gives p < 0.001 (the rule poisonguard applies to its
  own flip share, so only the quality of the flags differs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data import Encoder

K_NEIGHBOURS = 10
MIN_EXCESS_FRACTION = 0.01
MAX_P_VALUE = 1e-3
OWASP_CONTAMINATION = 0.05
OWASP_MARGIN = 0.05


class Stages:
    """Wall time of each stage of a defence."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], object]) -> object:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


def rate_rule(batch_flagged: int, n_batch: int, reference_fraction: float) -> tuple[str, float]:
    """Block when the flagged share clearly and significantly exceeds the reference's own."""
    from scipy.stats import binom

    p0 = float(np.clip(reference_fraction, 1e-6, 1 - 1e-6))
    p_value = float(binom.sf(batch_flagged - 1, n_batch, p0)) if batch_flagged else 1.0
    exceeded = batch_flagged / max(n_batch, 1) > reference_fraction + MIN_EXCESS_FRACTION and p_value < MAX_P_VALUE
    return ("block" if exceeded else "promote"), p_value


def _folds(y: np.ndarray, seed: int, n: int = 5):  # type: ignore[no-untyped-def]
    from sklearn.model_selection import KFold, StratifiedKFold

    smallest = int(np.bincount(y).min()) if len(y) else 0
    if smallest >= n:
        return StratifiedKFold(n, shuffle=True, random_state=seed)
    return KFold(n, shuffle=True, random_state=seed)


def owasp(ref: pd.DataFrame, batch: pd.DataFrame, label: str, seed: int, st: Stages) -> dict:
    from sklearn.ensemble import IsolationForest, RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    enc = st("encode", lambda: Encoder(ref, label))
    xb, yb = enc.x(batch), enc.y(batch)
    sample = ref.sample(n=min(len(ref), len(batch)), random_state=seed)
    xr, yr = enc.x(sample), enc.y(sample)
    iso = IsolationForest(contamination=OWASP_CONTAMINATION, random_state=seed)
    flagged = st("isolation_forest", lambda: np.flatnonzero(iso.fit(xb).predict(xb) == -1))

    def cv(x: np.ndarray, y: np.ndarray) -> float:
        rf = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=-1)
        return float(cross_val_score(rf, x, y, cv=_folds(y, seed)).mean())

    baseline = st("rf_cv_reference", lambda: cv(xr, yr))
    accuracy = st("rf_cv_batch", lambda: cv(xb, yb))
    decision = "block" if accuracy < baseline - OWASP_MARGIN else "promote"  # type: ignore[operator]
    return {"decision": decision, "flagged_rows": flagged,
            "details": {"cv_accuracy": accuracy, "baseline_cv_accuracy": baseline}}


def cleanlab_defence(model: str) -> Callable[[pd.DataFrame, pd.DataFrame, str, int, Stages], dict]:
    def run(ref: pd.DataFrame, batch: pd.DataFrame, label: str, seed: int, st: Stages) -> dict:
        from cleanlab.filter import find_label_issues
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict

        enc = st("encode", lambda: Encoder(ref, label))
        x = np.vstack([enc.x(ref), enc.x(batch)])
        y = np.concatenate([enc.y(ref), enc.y(batch)])
        known = np.flatnonzero(y >= 0)
        clf = (HistGradientBoostingClassifier(max_iter=100, random_state=seed) if model == "gb"
               else LogisticRegression(max_iter=500))
        probs = st("out_of_fold", lambda: cross_val_predict(clf, x[known], y[known], cv=_folds(y[known], seed),
                                                             method="predict_proba"))
        issues = np.zeros(len(y), dtype=bool)
        issues[known] = st("find_label_issues", lambda: find_label_issues(y[known], probs, n_jobs=1))
        n_ref = len(ref)
        ref_fraction = float(issues[:n_ref].mean())
        flagged = np.flatnonzero(issues[n_ref:])
        decision, p_value = rate_rule(len(flagged), len(batch), ref_fraction)
        return {"decision": decision, "flagged_rows": flagged,
                "details": {"reference_flagged_fraction": ref_fraction, "p_value": p_value}}

    return run


def knn(ref: pd.DataFrame, batch: pd.DataFrame, label: str, seed: int, st: Stages) -> dict:
    from sklearn.neighbors import NearestNeighbors

    enc = st("encode", lambda: Encoder(ref, label))
    xr, yr, xb, yb = enc.x(ref), enc.y(ref), enc.x(batch), enc.y(batch)
    index = st("index", lambda: NearestNeighbors(n_neighbors=K_NEIGHBOURS + 1).fit(xr))
    n_classes = len(enc.classes_)

    def disagree(x: np.ndarray, y: np.ndarray, skip_self: bool) -> np.ndarray:
        out = np.zeros(len(x), dtype=bool)
        for start in range(0, len(x), 50_000):  # bounded memory for the neighbour matrix
            idx = index.kneighbors(x[start:start + 50_000], n_neighbors=K_NEIGHBOURS + int(skip_self),
                                   return_distance=False)[:, int(skip_self):]
            votes = np.stack([(yr[idx] == c).sum(axis=1) for c in range(n_classes)], axis=1)
            given = y[start:start + 50_000]
            mine = np.where(given >= 0, votes[np.arange(len(idx)), np.maximum(given, 0)], -1)
            out[start:start + 50_000] = mine < votes.max(axis=1)
        return out

    ref_fraction = float(st("reference_rate", lambda: disagree(xr, yr, True)).mean())  # type: ignore[union-attr]
    flagged = np.flatnonzero(st("batch", lambda: disagree(xb, yb, False)))  # type: ignore[arg-type]
    decision, p_value = rate_rule(len(flagged), len(batch), ref_fraction)
    return {"decision": decision, "flagged_rows": flagged,
            "details": {"reference_flagged_fraction": ref_fraction, "p_value": p_value}}


DEFENCES: dict[str, Callable[[pd.DataFrame, pd.DataFrame, str, int, Stages], dict]] = {
    "owasp": owasp,
    "cleanlab_lr": cleanlab_defence("lr"),
    "cleanlab_gb": cleanlab_defence("gb"),
    "knn": knn,
}
NEEDS_CLEANLAB = {"cleanlab_lr", "cleanlab_gb"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.defences")
    parser.add_argument("name", choices=sorted(DEFENCES))
    parser.add_argument("--reference", required=True)
    parser.add_argument("--incoming", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--holdout", help="accepted for a uniform command line; these recipes do not use it")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    st = Stages()
    ref = st("read", lambda: pd.read_parquet(args.reference))
    batch = st("read_incoming", lambda: pd.read_parquet(args.incoming))
    result = DEFENCES[args.name](ref, batch, args.label, args.seed, st)  # type: ignore[arg-type]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"decision": result["decision"], "flagged_rows": [int(r) for r in result["flagged_rows"]],
           "stage_seconds": st.seconds, "details": result["details"]}
    (out / "flags.json").write_text(json.dumps(doc) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
