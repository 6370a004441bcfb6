"""Seeded test data: a learnable tabular task and fresh batches of it (built when called, never at import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_frame(n: int, seed: int, *, n_features: int = 6, n_classes: int = 2, categorical: bool = True,
               missing: bool = False) -> pd.DataFrame:
    """A learnable tabular task: numeric features around class centres, plus a categorical one."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(0, 2.5, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    x = centres[y] + rng.normal(0, 1.0, size=(n, n_features))
    frame = pd.DataFrame(x.round(6), columns=[f"f{i}" for i in range(n_features)])
    if categorical:
        colours = np.array(["red", "green", "blue"])
        frame["colour"] = colours[(y + (rng.random(n) < 0.2)) % 3]
    if missing:
        frame.loc[rng.random(n) < 0.05, "f0"] = np.nan
    frame["y"] = np.array([f"c{k}" for k in range(n_classes)])[y]
    return frame


def batch_file(tmp_path: Path, name: str, seed: int, n: int = 300, flip_fraction: float = 0.0) -> Path:
    """A fresh incoming batch (distinct rows for each seed), with a share of labels flipped."""
    frame = make_frame(n, seed)
    if flip_fraction:
        rows = np.random.default_rng(seed).choice(n, int(flip_fraction * n), replace=False)
        frame.loc[rows, "y"] = frame.loc[rows, "y"].map({"c0": "c1", "c1": "c0"})
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path
