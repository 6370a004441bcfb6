"""Scoring a defence's output against the ground truth.

Row flags: precision, recall and F1 of flagged rows against the poisoned rows; the
false-quarantine rate is the share of truly clean rows flagged. The evaluation model is fixed
(HistGradientBoosting, 100 iterations, seed 0, on :class:`bench.data.Encoder` features) and is
trained on the *batch's rows only* — raw, minus the defence's flagged rows ("promoted rows"),
or minus the truly poisoned rows — so a poison's effect is not diluted by the reference; it is
scored on the evaluation half of the holdout, which no defence sees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.data import Encoder
from poisonguard.testing import attacks


def row_scores(flagged: list[int] | np.ndarray, poisoned: np.ndarray, n_rows: int) -> dict[str, float | int | None]:
    f = set(map(int, flagged))
    p = set(map(int, poisoned))
    tp = len(f & p)
    precision = tp / len(f) if f else None
    recall = tp / len(p) if p else None
    f1 = 2 * tp / (len(f) + len(p)) if p else None  # 0 when nothing is flagged
    clean = n_rows - len(p)
    return {"flagged": len(f), "poisoned": len(p), "true_positives": tp, "precision": precision, "recall": recall,
            "f1": f1, "flagged_fraction": len(f) / n_rows if n_rows else 0.0,
            "false_quarantine_rate": (len(f - p) / clean) if clean else None}


class Evaluator:
    """The fixed evaluation model for one dataset: accuracy on the evaluation holdout, and the
    backdoor's attack success rate (share of triggered holdout rows of other classes predicted as
    the target)."""

    def __init__(self, reference: pd.DataFrame, eval_holdout: pd.DataFrame, label: str) -> None:
        self.encoder = Encoder(reference, label)
        self.holdout = eval_holdout
        self.label = label
        self.x_hold, self.y_hold = self.encoder.x(eval_holdout), self.encoder.y(eval_holdout)

    def fit(self, rows: pd.DataFrame):  # type: ignore[no-untyped-def]
        from sklearn.ensemble import HistGradientBoostingClassifier

        y = self.encoder.y(rows)
        keep = y >= 0
        if len(np.unique(y[keep])) < 2:
            return None
        return HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(self.encoder.x(rows)[keep], y[keep])

    def accuracy(self, model) -> float | None:  # type: ignore[no-untyped-def]
        return None if model is None else float(np.mean(model.predict(self.x_hold) == self.y_hold))

    def attack_success(self, model, trigger: dict[str, object], target: str) -> float | None:  # type: ignore[no-untyped-def]
        if model is None:
            return None
        victims = self.holdout[self.holdout[self.label].astype(str) != str(target)]
        stamped = attacks.stamp(victims, trigger)
        target_code = int(np.flatnonzero(self.encoder.classes_ == str(target))[0])
        return float(np.mean(model.predict(self.encoder.x(stamped)) == target_code))

    def judge(self, rows: pd.DataFrame, trigger: dict[str, object] | None, target: str | None) -> dict:
        model = self.fit(rows)
        out: dict[str, float | None] = {"holdout_accuracy": self.accuracy(model)}
        if trigger is not None and target is not None:
            out["attack_success_rate"] = self.attack_success(model, trigger, target)
        return out


def without(frame: pd.DataFrame, rows: list[int] | np.ndarray) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    keep[np.asarray(list(rows), dtype=np.int64)] = False
    return frame[keep].reset_index(drop=True)
