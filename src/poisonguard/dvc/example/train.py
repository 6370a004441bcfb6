"""Example training step. It runs only after the gate passed, on the gate's clean rows.

Usage: python train.py CLEAN_PARQUET LABEL_COLUMN OUT_DIR  (writes OUT_DIR/metrics.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def train(clean: Path, label: str, out: Path) -> dict[str, float]:
    """Fit a small model with 5-fold cross-validation; returns its metrics."""
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_parquet(clean)
    target = frame.pop(label)
    features = pd.get_dummies(frame, dummy_na=True).astype("float64")
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_score(model, features, target, cv=5)
    metrics = {"rows": len(frame), "cv_accuracy": round(float(scores.mean()), 4)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


if __name__ == "__main__":
    print(train(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
