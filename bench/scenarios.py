"""The scenario matrix: every batch with its ground truth (poisoned rows), the decision it should
get, and why. Built from the committed clean batches with :mod:`poisonguard.testing.attacks`, seeded."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.data import SEED, Dataset
from poisonguard.testing import attacks

PROMOTE, BLOCK = "promote", "block"
FLIP_PERCENTS = (2, 5, 10, 20, 40)
SLOW_STEPS = 3
SLOW_FRACTION_OF_SOURCE = 0.15


@dataclass(frozen=True)
class Scenario:
    """One batch to gate. ``poisoned`` are 0-based positions of the rows an attack touched.

    Batches of a multi-batch attack share a ``series``: each is gated after the previous one,
    against a reference that grows by the rows each promoted batch let through."""

    dataset: str
    name: str
    kind: str
    frame: pd.DataFrame = field(repr=False)
    poisoned: np.ndarray = field(repr=False)
    expected: str
    why: str
    trigger: dict[str, object] | None = None
    target: str | None = None
    series: str | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.name}"


def _seed(*parts: object) -> int:
    return SEED * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode()) % 1_000_003


def _clean_scenarios(ds: Dataset) -> list[Scenario]:
    noisy = ds.name == "credit"
    why = ("untouched rows from the reference's source; credit's labels are noisy by nature (its trusted "
           "reference disagrees with itself as much), so a gate must not mistake natural noise for an attack"
           if noisy else "untouched rows from the reference's source: nothing to catch")
    empty = np.array([], dtype=np.int64)
    return [Scenario(ds.name, f"clean_{i}", "clean", b, empty, PROMOTE, why)
            for i, b in enumerate(ds.clean_batches, start=1)]


def build_matrix(ds: Dataset, names: set[str] | None = None) -> list[Scenario]:
    """All scenarios of one dataset (only ``names`` when given; ``slow_attack`` selects the series)."""
    base, label, ref = ds.clean_batches[0], ds.label, ds.reference
    src, dst = ds.targeted
    out = _clean_scenarios(ds)

    def add(name: str, kind: str, p: attacks.Poisoned, expected: str, why: str, **kw: object) -> None:
        out.append(Scenario(ds.name, name, kind, p.frame, np.asarray(p.rows, dtype=np.int64), expected, why,
                            **kw))  # type: ignore[arg-type]

    for pct in FLIP_PERCENTS:
        p = attacks.flip_random(base, label, pct / 100, _seed(ds.name, "flips", pct))
        if pct == 2:
            add(f"flips_{pct}", "flips", p, PROMOTE,
                "2% of labels changed at random: within the label noise real data carries and too little to "
                "move a model; the right outcome is to quarantine those rows and promote the rest")
        else:
            add(f"flips_{pct}", "flips", p, BLOCK,
                f"{pct}% of labels changed at random: far more wrong labels than trusted data has")
    add("targeted_flip", "targeted", attacks.flip_targeted(base, label, src, dst, 0.3, _seed(ds.name, "targeted")),
        BLOCK, f"30% of class '{src}' relabelled '{dst}': teaches the model to confuse one chosen pair")
    trigger = attacks.default_trigger(ref, label)
    for pct in (3, 8):
        p = attacks.stamp_backdoor(base, label, ds.backdoor_target, pct / 100, _seed(ds.name, "backdoor", pct),
                                   trigger=trigger)
        add(f"backdoor_{pct}", "backdoor", p, BLOCK,
            f"{pct}% of rows of other classes carry an in-range trigger and the label '{ds.backdoor_target}': "
            "a model trained on them obeys the trigger", trigger=trigger, target=ds.backdoor_target)
    p = attacks.stamp_backdoor(base, label, ds.backdoor_target, 0.03, _seed(ds.name, "backdoor_clean"),
                               trigger=trigger, clean_label=True)
    add("backdoor_clean_3", "backdoor", p, BLOCK,
        f"the trigger on 3% of rows already labelled '{ds.backdoor_target}' (no label changed): a clean-label "
        "backdoor, invisible to label checks", trigger=trigger, target=ds.backdoor_target)
    add("outliers_3", "outliers", attacks.add_outliers(base, label, 0.03, _seed(ds.name, "outliers")), BLOCK,
        "3% of rows pushed 8 standard deviations out on up to three features: values no trusted row comes near")
    add("drift", "drift", attacks.shift_covariates(base, label, None, 1.5, _seed(ds.name, "drift")), BLOCK,
        "half the numeric features shifted by 1.5 SD with correct labels: no row is poisoned, but the batch as a "
        "whole moved and would silently skew the model (OWASP ML08); a human decides")
    add("priors_10", "priors",
        attacks.shift_priors(base, ref, label, dst, 0.10, _seed(ds.name, "priors")), BLOCK,
        f"10% of the batch replaced by jittered near-copies of trusted rows of other classes, all labelled "
        f"'{dst}': the class prior shifts and every copy carries a wrong label")
    add("replay_10", "replay", attacks.replay(base, ref, label, 0.10, _seed(ds.name, "replay")), BLOCK,
        "10% of the batch are exact copies of trusted rows: replayed data up-weights chosen rows and is not the "
        "fresh data the batch claims to be")
    if len(ds.clean_batches) >= SLOW_STEPS:
        steps = attacks.slow_attack(list(ds.clean_batches[:SLOW_STEPS]), label, src, dst, SLOW_FRACTION_OF_SOURCE,
                                    _seed(ds.name, "slow"))
        for i, p in enumerate(steps, start=1):
            add(f"slow_attack_{i}", "slow", p, BLOCK,
                f"batch {i} of {SLOW_STEPS}: {SLOW_FRACTION_OF_SOURCE:.0%} of class '{src}' relabelled '{dst}' in "
                "every batch (half the one-shot dose); promoted rows join the reference, so each promoted dose "
                "makes the next look normal. The series must be blocked by its last batch at the latest (scored "
                "as one decision); rows of earlier promoted batches count as leaked", series="slow_attack")
    if names is None:
        return out
    return [s for s in out if s.name in names or (s.series is not None and s.series in names)]
