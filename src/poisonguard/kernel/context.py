"""What every check can see besides the batch: the trusted data, the label, the seed, and a
numeric feature space fitted on the reference (shared so no check re-encodes the batch)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

if TYPE_CHECKING:
    from poisonguard.kernel.parts import Fitted
    from poisonguard.kernel.state import StateDir

MAX_CATEGORIES_ENCODED = 30
T = TypeVar("T")


def is_numeric(series: pd.Series) -> bool:
    """Numbers and booleans are numeric features; everything else is categorical."""
    return bool(ptypes.is_numeric_dtype(series))


class FeatureSpace:
    """Numeric encoding of the features, fitted on trusted data only.

    Numeric columns: missing values imputed with the reference median, then standardised with
    the reference mean and standard deviation; a missing-indicator column is added for each
    numeric column that has missing values in the reference. Categorical columns: one-hot over
    the reference's most frequent categories (missing is a category of its own); categories the
    reference never saw encode as all zeros.
    """

    def __init__(self, reference: pd.DataFrame, feature_columns: list[str]) -> None:
        self.feature_columns = list(feature_columns)
        self.numeric_columns = [c for c in feature_columns if is_numeric(reference[c])]
        self.categorical_columns = [c for c in feature_columns if c not in self.numeric_columns]
        num = reference[self.numeric_columns].astype("float64")
        self.medians_ = num.median().fillna(0.0).to_numpy()
        filled = num.fillna(dict(zip(self.numeric_columns, self.medians_, strict=True)))
        self.means_ = filled.mean().to_numpy()
        std = filled.std(ddof=0).to_numpy()
        self.stds_ = np.where(std > 0, std, 1.0)
        self.missing_indicator_columns_ = [c for c in self.numeric_columns if num[c].isna().any()]
        self.categories_: dict[str, list[str]] = {}
        for c in self.categorical_columns:
            counts = _as_category_strings(reference[c]).value_counts(sort=True)
            self.categories_[c] = sorted(counts.index[:MAX_CATEGORIES_ENCODED].tolist())

    @property
    def n_features(self) -> int:
        return (len(self.numeric_columns) + len(self.missing_indicator_columns_)
                + sum(len(v) for v in self.categories_.values()))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode ``frame`` into a float32 matrix of shape (rows, n_features)."""
        n = len(frame)
        out = np.zeros((n, self.n_features), dtype=np.float32)
        j = 0
        if self.numeric_columns:
            num = frame[self.numeric_columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
            num[~np.isfinite(num)] = np.nan
            missing = np.isnan(num)
            num = np.where(missing, self.medians_, num)
            out[:, : num.shape[1]] = (num - self.means_) / self.stds_
            j = num.shape[1]
            for c in self.missing_indicator_columns_:
                out[:, j] = missing[:, self.numeric_columns.index(c)]
                j += 1
        for c in self.categorical_columns:
            cats = self.categories_[c]
            codes = pd.Categorical(_as_category_strings(frame[c]), categories=cats).codes
            known = codes >= 0
            out[np.flatnonzero(known), j + codes[known]] = 1.0
            j += len(cats)
        return out


def _as_category_strings(series: pd.Series) -> pd.Series:
    return series.astype("object").where(series.notna(), "<missing>").astype(str)


@dataclass(eq=False)
class GateContext:
    """Trusted data and settings shared by every check of one gate run.

    ``reference`` is the trusted data detectors are fitted on; ``holdout`` is trusted data no
    model trains on. Encoded matrices are computed once, on first use.
    """

    reference: pd.DataFrame
    holdout: pd.DataFrame
    label: str
    seed: int = 0
    id_column: str | None = None
    out_dir: Path | None = None
    sources: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    # The frozen golden reference, when there is one (slow-poisoning defence); the reference may
    # then be golden + what was promoted since.
    golden: pd.DataFrame | None = None
    # Positions of incoming rows the row-level checks flagged for quarantine; set by the gate
    # before the batch-level checks (baseline, drift) run, which compare "clean" with "raw".
    suspect_rows: np.ndarray | None = None
    # Where what is learned from trusted data only is kept between runs (see kernel/state.py), and
    # the identity of the trusted inputs (reference, holdout, golden, label, seed, ...).
    state: StateDir | None = None
    trusted_key: str | None = None
    _memo: dict[tuple[str, int], tuple[object, Any]] = field(default_factory=dict, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.reference.columns if c not in (self.label, self.id_column)]

    @cached_property
    def features(self) -> FeatureSpace:
        return FeatureSpace(self.reference, self.feature_columns)

    @cached_property
    def classes(self) -> list[str]:
        """The label's classes, as strings, in a fixed order."""
        return sorted(label_strings(self.reference[self.label]).unique().tolist())

    def memo(self, name: str, frame: pd.DataFrame, compute: Callable[[pd.DataFrame], T]) -> T:
        """``compute(frame)``, computed once per (name, frame object) for this run. Values for the
        trusted frames are kept for the run; for any other frame only the latest is kept, so
        scoring a batch chunk by chunk does not hold every chunk's value in memory."""
        key = (name, id(frame))
        hit = self._memo.get(key)
        if hit is not None and hit[0] is frame:
            return hit[1]
        value = compute(frame)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
        if frame is not self.reference and frame is not self.holdout:
            trusted = (id(self.reference), id(self.holdout))
            for old in [k for k in self._memo if k[0] == name and k[1] not in trusted]:
                self._memo.pop(old, None)  # chunks may be scored on two threads at once
        self._memo[key] = (frame, value)
        return value

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, computed once per ``key`` for this context (e.g. a model fitted on the
        reference, refitted deterministically in each process rather than stored)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def persisted(self, what: str, parts: tuple[Any, ...], compute: Callable[[], Fitted]) -> Fitted:
        """``compute()``, a value learned from trusted data only; with a state directory, built once
        per (trusted inputs, ``what``, ``parts``) and reused (``parts``: whatever else it depends on,
        JSON-safe: the spec's fields, the batch size ...)."""
        if self.state is None or self.trusted_key is None:
            return compute()
        return self.state.fitted(what, (self.trusted_key, *parts), compute)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The encoded features of ``frame`` (memoised, see :meth:`memo`)."""
        return self.memo("encode", frame, self.features.transform)

    def label_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Label of each row as an index into :attr:`classes`; -1 for a class the reference lacks."""
        return pd.Categorical(label_strings(frame[self.label]), categories=self.classes).codes.astype(np.int64)


def label_strings(series: pd.Series) -> pd.Series:
    """Labels as strings, so 1, 1.0 and "1" from CSV and Parquet compare equal."""
    if ptypes.is_float_dtype(series) and np.all(np.mod(series.dropna(), 1) == 0):
        series = series.astype("Int64")
    return series.astype("object").where(series.notna(), "<missing>").astype(str)
