"""The canary: before you trust the gate on your data, see it work on your data.

It cuts pseudo-batches out of *your* trusted data (rows the detectors are then not fitted on),
plants each attack of :mod:`poisonguard.testing.attacks` into them, gates every one with your
policy, and tells you, per attack, how often the gate blocked and how many of the planted rows
it quarantined, and how often it blocked a clean pseudo-batch (a false block). The CLI's
``poisonguard canary`` and the weekly Airflow DAG ``poisonguard_canary`` run :func:`run_canary`.

Each split's fitted state is built once and shared by all the attacks on that split, so a split
costs one cold gate run plus one warm run per attack.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.engine.gate import run_gate
from poisonguard.engine.inputs import GateInputs
from poisonguard.engine.policy import Policy, load_policy
from poisonguard.errors import InputError, UsageError
from poisonguard.io.reading import check_trusted, read_table
from poisonguard.kernel.context import is_numeric
from poisonguard.testing import attacks

# Below this many rows in a pseudo-batch, a batch-level test has too little to judge and the
# canary would measure noise: it refuses instead.
MIN_BATCH_ROWS = 50
MAX_BATCH_ROWS = 2_000


@dataclass(frozen=True)
class Attack:
    """One planted attack: ``plant(batch, reference, label, seed)`` returns the poisoned batch, or
    ``None`` when the data cannot carry it (no numeric column to shift, a single class)."""

    name: str
    what: str
    plant: Callable[[pd.DataFrame, pd.DataFrame, str, int], attacks.Poisoned | None]


def _classes_by_count(frame: pd.DataFrame, label: str) -> list[Any]:
    return frame[label].dropna().value_counts().index.tolist()


def _targeted(batch: pd.DataFrame, reference: pd.DataFrame, label: str, seed: int) -> attacks.Poisoned | None:
    classes = _classes_by_count(reference, label)
    if len(classes) < 2:
        return None
    return attacks.flip_targeted(batch, label, classes[0], classes[1], 0.3, seed)


def _backdoor(kind: str) -> Callable[[pd.DataFrame, pd.DataFrame, str, int], attacks.Poisoned | None]:
    def plant(batch: pd.DataFrame, reference: pd.DataFrame, label: str, seed: int) -> attacks.Poisoned | None:
        classes = _classes_by_count(reference, label)
        trigger = (attacks.occurring_trigger(reference, label) if kind == "in_range"
                   else attacks.default_trigger(reference, label))
        if len(classes) < 2 or not trigger:
            return None
        return attacks.stamp_backdoor(batch, label, classes[-1], 0.04, seed, trigger=trigger)
    return plant


def _needs_numeric(build: Callable[..., attacks.Poisoned]) -> Callable[..., attacks.Poisoned | None]:
    def plant(batch: pd.DataFrame, reference: pd.DataFrame, label: str, seed: int) -> attacks.Poisoned | None:
        if not any(is_numeric(batch[c]) and batch[c].nunique() > 2 for c in batch.columns if c != label):
            return None
        return build(batch, reference, label, seed)
    return plant


ATTACKS: tuple[Attack, ...] = (
    Attack("flips_5", "5% of labels changed at random",
           lambda b, r, label, s: attacks.flip_random(b, label, 0.05, s)),
    Attack("flips_10", "10% of labels changed at random",
           lambda b, r, label, s: attacks.flip_random(b, label, 0.10, s)),
    Attack("targeted_30", "30% of the largest class relabelled as the second largest", _targeted),
    Attack("backdoor_in_range", "4% of rows stamped with values that occur in trusted data, labelled as the "
           "smallest class", _backdoor("in_range")),
    Attack("backdoor_new_value", "4% of rows stamped with in-range values trusted data never holds, labelled as "
           "the smallest class", _backdoor("new_value")),
    Attack("outliers_5", "5% of rows pushed 8 SD out on a few numeric columns",
           _needs_numeric(lambda b, r, label, s: attacks.add_outliers(b, label, 0.05, s))),
    Attack("replay_10", "10% of rows replaced by copies of trusted rows",
           lambda b, r, label, s: attacks.replay(b, r, label, 0.10, s)),
    Attack("drift", "half the numeric columns shifted by 1.5 SD (labels correct)",
           _needs_numeric(lambda b, r, label, s: attacks.shift_covariates(b, label, None, 1.5, s))),
)


@dataclass
class Outcome:
    attack: str
    split: int
    decision: str
    planted: int
    caught: int
    reasons: list[str]
    seconds: float


@dataclass
class CanaryReport:
    """What :func:`run_canary` measured: one :class:`Outcome` per gated pseudo-batch."""

    dataset: str
    reference_rows: int
    batch_rows: int
    splits: int
    max_false_block_rate: float
    outcomes: list[Outcome] = field(default_factory=list)

    def of(self, attack: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.attack == attack]

    @property
    def false_block_rate(self) -> float:
        clean = self.of("clean")
        return sum(o.decision == "block" for o in clean) / max(len(clean), 1)

    @property
    def passed(self) -> bool:
        """Whether clean pseudo-batches were blocked no more often than the policy allows."""
        return self.false_block_rate <= self.max_false_block_rate

    def rows(self) -> list[dict[str, Any]]:
        """One row per attack (clean first): batches, blocked, mean row recall."""
        out = []
        for name, what in (("clean", "no attack: a random sample of trusted rows"),
                           *((a.name, a.what) for a in ATTACKS)):
            runs = self.of(name)
            if not runs:
                continue
            planted = [o for o in runs if o.planted]
            out.append({"attack": name, "what": what, "batches": len(runs),
                        "blocked": sum(o.decision == "block" for o in runs),
                        "row_recall": (float(np.mean([o.caught / o.planted for o in planted])) if planted else None)})
        return out

    def table(self) -> str:
        lines = [f"poisonguard canary: {self.dataset}, {self.splits} split(s) of {self.reference_rows:,} trusted rows "
                 f"into a reference and pseudo-batches of {self.batch_rows:,} rows", "",
                 f"{'attack':<20} {'batches':>7} {'blocked':>8} {'row recall':>10}  what"]
        for r in self.rows():
            recall = "—" if r["row_recall"] is None else f"{r['row_recall']:.2f}"
            lines.append(f"{r['attack']:<20} {r['batches']:>7} {r['blocked']:>8} {recall:>10}  {r['what']}")
        verdict = "within" if self.passed else "ABOVE"
        lines += ["", f"false blocks on clean pseudo-batches: {self.false_block_rate:.1%} — {verdict} the policy's "
                  f"max_false_block_rate of {self.max_false_block_rate:.1%}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "reference_rows": self.reference_rows, "batch_rows": self.batch_rows,
                "splits": self.splits, "false_block_rate": self.false_block_rate,
                "max_false_block_rate": self.max_false_block_rate, "passed": self.passed, "attacks": self.rows(),
                "runs": [o.__dict__ for o in self.outcomes]}


def pseudo_batch_rows(trusted_rows: int, wanted: int | None) -> int:
    """The pseudo-batch size: ``wanted``, else a fifth of the trusted rows up to 2,000; refuses a
    size the batch tests cannot judge."""
    rows = wanted or min(MAX_BATCH_ROWS, trusted_rows // 5)
    if wanted is not None and wanted < MIN_BATCH_ROWS:
        raise InputError(f"pseudo-batches of {wanted} rows are too small for the batch tests to judge; pass "
                         f"--batch-rows {MIN_BATCH_ROWS} or more.")
    if rows < MIN_BATCH_ROWS or trusted_rows - rows < 4 * MIN_BATCH_ROWS:
        raise InputError(f"the trusted data has {trusted_rows} rows: too few to calibrate on (a pseudo-batch needs "
                         f"at least {MIN_BATCH_ROWS} rows and the rest at least {4 * MIN_BATCH_ROWS}). Run the canary "
                         "once more trusted rows are promoted.")
    if rows > trusted_rows // 2:
        raise InputError(f"--batch-rows {rows} is more than half of the {trusted_rows} trusted rows; pass at most "
                         f"{trusted_rows // 2}.")
    return rows


def run_canary(reference: str | Path, label: str, *, holdout: str | Path | None = None,
               policy: Policy | str | Path | None = None, splits: int = 5, batch_rows: int | None = None,
               batches_per_split: int = 1, attack_names: list[str] | None = None, dataset: str | None = None,
               id_column: str | None = None, progress: Callable[[str], None] | None = None) -> CanaryReport:
    """Plant every attack (or ``attack_names``) into pseudo-batches of the trusted data
    ``reference`` and gate each with ``policy``; see the module docstring.

    Each of ``splits`` random splits holds out ``batches_per_split`` disjoint pseudo-batches of
    ``batch_rows`` rows; the rest is the reference they are gated against (fitted once per split).
    Every pseudo-batch is gated clean and with each attack planted."""
    loaded = policy if isinstance(policy, Policy) else load_policy(policy)
    chosen = [a for a in ATTACKS if attack_names is None or a.name in attack_names]
    unknown = set(attack_names or ()) - {a.name for a in ATTACKS}
    if unknown:
        raise UsageError(f"unknown attack(s) {sorted(unknown)}; known: {', '.join(a.name for a in ATTACKS)}.")
    trusted = read_table(reference, role="reference").frame
    check_trusted(trusted, label, id_column)
    if batches_per_split < 1:
        raise UsageError(f"batches per split must be at least 1. Got {batches_per_split}.")
    n = pseudo_batch_rows(len(trusted), batch_rows)
    held = n * batches_per_split
    if len(trusted) - held < max(held, 4 * MIN_BATCH_ROWS):
        raise InputError(f"{batches_per_split} pseudo-batches of {n} rows would leave too little of the "
                         f"{len(trusted)} trusted rows as the reference (it keeps at least half). Ask for fewer "
                         "or smaller pseudo-batches.")
    say = progress or (lambda _line: None)
    report = CanaryReport(dataset or Path(reference).stem, len(trusted), n, splits, loaded.max_false_block_rate)
    total = splits * batches_per_split * (1 + len(chosen))
    with tempfile.TemporaryDirectory(prefix="poisonguard-canary-") as tmp:
        work = Path(tmp)
        for split in range(splits):
            order = np.random.default_rng([loaded.seed, split]).permutation(len(trusted))
            ref = trusted.iloc[np.sort(order[held:])].reset_index(drop=True)
            ref_path = work / f"split{split}" / "reference.parquet"
            ref_path.parent.mkdir(parents=True)
            ref.to_parquet(ref_path, index=False)
            planted = []
            for b in range(batches_per_split):
                batch = trusted.iloc[np.sort(order[b * n:(b + 1) * n])].reset_index(drop=True)
                planted.append(("clean", b, attacks.Poisoned(batch, np.array([], dtype=np.int64))))
                for attack in chosen:
                    poisoned = attack.plant(batch, ref, label, loaded.seed + 1000 * split + 100 * b + len(planted))
                    if poisoned is not None:
                        planted.append((attack.name, b, poisoned))
            for name, b, poisoned in planted:
                batch_path = ref_path.with_name(f"{name}-{b}.parquet")
                poisoned.frame.to_parquet(batch_path, index=False)
                start = time.perf_counter()
                run = run_gate(GateInputs(ref_path, batch_path, label, holdout=holdout, policy=loaded,
                                          id_column=id_column, state=work / "state"), out_dir=None,
                               progress=lambda _line: None)
                v = run.verdict
                truth = set(np.asarray(poisoned.rows).tolist())
                outcome = Outcome(name, split, str(v.decision), len(truth), len(truth & set(v.quarantined_rows)),
                                  [f"{r.check}/{r.code}" for r in v.reasons], time.perf_counter() - start)
                report.outcomes.append(outcome)
                say(f"[{len(report.outcomes)}/{total}] split {split} batch {b} {name}: {outcome.decision}"
                    + (f" ({', '.join(outcome.reasons)})" if outcome.reasons else "")
                    + f" in {outcome.seconds:.1f} s")
    return report
