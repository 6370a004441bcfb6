"""Seeded poisoning attacks with ground truth, to test a gate (ours or yours).

Every function takes a clean frame and returns ``(poisoned_frame, poisoned_rows)``: a new
frame with a fresh RangeIndex and the 0-based positions of the rows the attack touched. The
input is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from poisonguard.kernel.context import is_numeric


@dataclass(frozen=True)
class Poisoned:
    frame: pd.DataFrame
    rows: np.ndarray
    trigger: dict[str, object] | None = None

    def __iter__(self):
        return iter((self.frame, self.rows))


def _numeric_features(frame: pd.DataFrame, label: str) -> list[str]:
    return [c for c in frame.columns if c != label and is_numeric(frame[c]) and frame[c].nunique() > 2]


def _pick(n: int, fraction: float, rng: np.random.Generator, pool: np.ndarray | None = None) -> np.ndarray:
    pool = np.arange(n) if pool is None else pool
    k = min(len(pool), max(1, round(fraction * n)))
    return np.sort(rng.choice(pool, k, replace=False))


def _replace_rows(frame: pd.DataFrame, rows: np.ndarray, copies: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``rows`` replaced by ``copies`` (keeping column dtypes)."""
    take = np.arange(len(frame))
    take[rows] = len(frame) + np.arange(len(rows))
    return pd.concat([frame, copies], ignore_index=True).iloc[take].reset_index(drop=True)


def flip_random(frame: pd.DataFrame, label: str, fraction: float, seed: int) -> Poisoned:
    """Relabel ``fraction`` of rows, each to a different class chosen at random."""
    rng = np.random.default_rng(seed)
    out = frame.reset_index(drop=True).copy()
    classes = np.array(sorted(out[label].dropna().unique().tolist()))
    rows = _pick(len(out), fraction, rng)
    for r in rows:
        others = classes[classes != out.at[r, label]]
        out.at[r, label] = rng.choice(others)
    return Poisoned(out, rows)


def flip_targeted(frame: pd.DataFrame, label: str, source: object, target: object, fraction_of_source: float,
                  seed: int) -> Poisoned:
    """Relabel ``fraction_of_source`` of the rows of class ``source`` as ``target``."""
    rng = np.random.default_rng(seed)
    out = frame.reset_index(drop=True).copy()
    pool = np.flatnonzero((out[label] == source).to_numpy())
    rows = _pick(len(pool), fraction_of_source, rng, pool)
    out.loc[rows, label] = target
    return Poisoned(out, rows)


def add_outliers(frame: pd.DataFrame, label: str, fraction: float, seed: int, scale: float = 8.0) -> Poisoned:
    """Push a few numeric features of ``fraction`` of rows ``scale`` standard deviations out."""
    rng = np.random.default_rng(seed)
    out = frame.reset_index(drop=True).copy()
    cols = _numeric_features(out, label)
    rows = _pick(len(out), fraction, rng)
    out[cols] = out[cols].astype("float64")
    for r in rows:
        for c in rng.choice(cols, size=min(3, len(cols)), replace=False):
            sd = float(out[c].std()) or 1.0
            out.at[r, c] = float(out[c].mean()) + rng.choice([-1, 1]) * scale * sd
    return Poisoned(out, rows)


def default_trigger(reference: pd.DataFrame, label: str, n_columns: int = 2) -> dict[str, object]:
    """A trigger that passes range checks: fixed, in-range values on the widest numeric columns,
    chosen to be rare as exact values."""
    cols = sorted(_numeric_features(reference, label), key=lambda c: -float(reference[c].std()))[:n_columns]
    trigger: dict[str, object] = {}
    for i, c in enumerate(cols):
        q = float(reference[c].quantile(0.35 + 0.1 * i))
        trigger[c] = round(q, 3) + 0.000731  # an exact value the data is unlikely to hold
    return trigger


def occurring_trigger(reference: pd.DataFrame, label: str, n_columns: int = 2) -> dict[str, object]:
    """A trigger made of values trusted data does hold: on the numeric columns with the most
    distinct values, the value that occurs in the reference nearest its 35th (45th, ...)
    percentile. No single value stands out; only their combination with one label does."""
    cols = sorted(_numeric_features(reference, label), key=lambda c: -int(reference[c].nunique()))[:n_columns]
    trigger: dict[str, object] = {}
    for i, c in enumerate(cols):
        values = np.sort(reference[c].dropna().unique())
        trigger[c] = values[min(len(values) - 1, int((0.35 + 0.1 * i) * len(values)))].item()
    return trigger


def stamp(frame: pd.DataFrame, trigger: dict[str, object], rows: np.ndarray | None = None) -> pd.DataFrame:
    """``frame`` with the trigger's values written into ``rows`` (all rows when None)."""
    out = frame.reset_index(drop=True).copy()
    idx = np.arange(len(out)) if rows is None else rows
    for c, v in trigger.items():
        if pd.api.types.is_integer_dtype(out[c]) and isinstance(v, float) and not float(v).is_integer():
            out[c] = out[c].astype("float64")  # a fractional trigger on a column of whole numbers
        out.loc[idx, c] = v
    return out


def stamp_backdoor(frame: pd.DataFrame, label: str, target: object, fraction: float, seed: int, *,
                   trigger: dict[str, object] | None = None, reference: pd.DataFrame | None = None,
                   clean_label: bool = False) -> Poisoned:
    """Stamp a trigger on ``fraction`` of rows and label them ``target``.

    ``clean_label=True`` stamps only rows already labelled ``target`` (no label changes), the
    variant label checks cannot see. Without a ``trigger``, :func:`default_trigger` of
    ``reference`` (or of ``frame``) is used. The trigger is returned with the result.
    """
    rng = np.random.default_rng(seed)
    trigger = trigger or default_trigger(reference if reference is not None else frame, label)
    base = frame.reset_index(drop=True)
    is_target = (base[label] == target).to_numpy()
    pool = np.flatnonzero(is_target if clean_label else ~is_target)
    rows = _pick(len(base), fraction, rng, pool)
    out = stamp(base, trigger, rows)
    out.loc[rows, label] = target
    return Poisoned(out, rows, trigger)


def replay(frame: pd.DataFrame, reference: pd.DataFrame, label: str, fraction: float, seed: int, *,
           relabel: bool = False) -> Poisoned:
    """Overwrite ``fraction`` of rows with copies of trusted rows (labels changed if ``relabel``)."""
    rng = np.random.default_rng(seed)
    out = frame.reset_index(drop=True).copy()
    rows = _pick(len(out), fraction, rng)
    src = rng.choice(len(reference), len(rows), replace=len(rows) > len(reference))
    copies = reference.reset_index(drop=True).iloc[src][list(out.columns)].reset_index(drop=True)
    if relabel:
        classes = np.array(sorted(reference[label].unique().tolist()))
        copies[label] = [rng.choice(classes[classes != v]) for v in copies[label]]
    return Poisoned(_replace_rows(out, rows, copies), rows)


def shift_covariates(frame: pd.DataFrame, label: str, columns: list[str] | None, shift_std: float,
                     seed: int) -> Poisoned:
    """Covariate drift with correct labels: shift numeric columns by ``shift_std`` of their spread.
    No row is poisoned (the ground truth is empty); the batch as a whole has moved."""
    out = frame.reset_index(drop=True).copy()
    cols = columns or _numeric_features(out, label)[: max(1, len(_numeric_features(out, label)) // 2)]
    for c in cols:
        out[c] = out[c] + shift_std * float(out[c].std())
    return Poisoned(out, np.array([], dtype=np.int64))


def shift_priors(frame: pd.DataFrame, reference: pd.DataFrame, label: str, target: object, fraction: float,
                 seed: int, jitter: float = 0.01) -> Poisoned:
    """Skew class priors towards ``target`` with near-copies of trusted rows of other classes,
    jittered slightly and labelled ``target``; they replace ``fraction`` of the batch."""
    rng = np.random.default_rng(seed)
    out = frame.reset_index(drop=True).copy()
    rows = _pick(len(out), fraction, rng)
    pool = reference[reference[label] != target].reset_index(drop=True)
    copies = pool.iloc[rng.choice(len(pool), len(rows), replace=len(rows) > len(pool))].reset_index(drop=True)
    for c in _numeric_features(out, label):
        copies[c] = copies[c] + rng.normal(0, jitter * (float(pool[c].std()) or 1.0), len(copies))
    copies[label] = target
    return Poisoned(_replace_rows(out, rows, copies[list(out.columns)]), rows)


def slow_attack(frames: list[pd.DataFrame], label: str, source: object, target: object, fraction_of_source: float,
                seed: int) -> list[Poisoned]:
    """Spread a targeted flip over several batches, a small dose in each."""
    return [flip_targeted(f, label, source, target, fraction_of_source, seed + i) for i, f in enumerate(frames)]
