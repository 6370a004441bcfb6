"""Data for the benchmark: the committed offline datasets, the large synthetic set, and one
feature encoding shared by every competitor defence and by the evaluation model."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"
SEED = 6  # issue 6


@dataclass(frozen=True)
class Dataset:
    """A committed dataset, with its holdout cut in two halves: ``gate_holdout`` is handed to the
    defences (poisonguard's ``--holdout``), ``eval_holdout`` only scores the evaluation model, so
    no defence has seen the rows it is judged on."""

    name: str
    label: str
    kind: str
    reference: pd.DataFrame
    gate_holdout: pd.DataFrame
    eval_holdout: pd.DataFrame
    clean_batches: tuple[pd.DataFrame, ...]
    targeted: tuple[str, str]  # (source class, target class) of the targeted flip
    backdoor_target: str


# name -> (targeted flip source -> target, backdoor target); the same choices as datasets/build.py.
ATTACK_CLASSES = {
    "breast_cancer": (("malignant", "benign"), "benign"),
    "digits": (("7", "1"), "0"),
    "credit": (("bad", "good"), "good"),
    "synthetic": (("alpha", "beta"), "gamma"),
}


def load(name: str) -> Dataset:
    folder = DATASETS / name
    meta = json.loads((folder / "meta.json").read_text())
    label = meta["label"]
    holdout = pd.read_parquet(folder / "holdout.parquet")
    order = np.random.default_rng(SEED).permutation(len(holdout))
    half = len(holdout) // 2
    batches = tuple(pd.read_parquet(p) for p in sorted((folder / "incoming").glob("clean_*.parquet")))
    targeted, target = ATTACK_CLASSES[name]
    return Dataset(name, label, meta["description"], pd.read_parquet(folder / "reference.parquet"),
                   holdout.iloc[np.sort(order[:half])].reset_index(drop=True),
                   holdout.iloc[np.sort(order[half:])].reset_index(drop=True), batches, targeted, target)


def synthetic_frame(n: int, seed: int) -> pd.DataFrame:
    """``datasets/build.py: synthetic(n, seed)``: 3 classes, 20 features (4 categorical), missing values."""
    sys.path.insert(0, str(DATASETS))
    try:
        from build import synthetic  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(DATASETS))
    return synthetic(n, seed)


class Encoder:
    """Reference-fitted numeric encoding for the competitor defences and the evaluation model:
    numeric columns median-imputed and standardised, categorical ones one-hot (missing is its own
    category, unseen categories all zeros). Fitted on trusted data only."""

    def __init__(self, reference: pd.DataFrame, label: str) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        features = reference.drop(columns=[label])
        numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
        categorical = [c for c in features.columns if c not in numeric]
        self.label = label
        self.classes_ = np.array(sorted(reference[label].astype(str).unique()))
        self.transformer_ = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32,
                                  max_categories=30), categorical),
        ]).fit(self._text(features, categorical))
        self.categorical_ = categorical

    @staticmethod
    def _text(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
        out = frame.copy()
        for c in categorical:
            out[c] = out[c].astype("object").where(out[c].notna(), "<missing>").astype(str)
        return out

    def x(self, frame: pd.DataFrame) -> np.ndarray:
        features = self._text(frame.drop(columns=[self.label]), self.categorical_)
        return np.asarray(self.transformer_.transform(features), dtype=np.float32)

    def y(self, frame: pd.DataFrame) -> np.ndarray:
        """Labels as indices into ``classes_`` (-1 for a class the reference lacks)."""
        return pd.Categorical(frame[self.label].astype(str), categories=self.classes_).codes.astype(np.int64)
