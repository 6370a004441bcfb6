"""What one gate run is asked to judge, as one value: the batch, the trusted data, the label and
the policy. Every surface (CLI, store, Airflow, DVC) builds one and hands it down unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poisonguard.engine.policy import Policy, load_policy
from poisonguard.io.reading import DETECT, CsvFormat


@dataclass(frozen=True)
class GateInputs:
    """The inputs of a gate run.

    ``reference``: trusted data the detectors are fitted on; ``incoming``: the batch under test
    (CSV, Parquet, or a directory of Parquet files); ``label``: the label column; ``holdout``:
    trusted rows no model trains on (default: split off the reference with the policy's seed);
    ``golden``: the frozen golden reference the cumulative check measures everything since it
    against; ``policy``: a :class:`Policy`, a policy file, or ``None`` for the defaults;
    ``id_column``: a row id, carried along and never a feature; ``state``: a directory where what
    is learned from trusted data only is kept and reused (see :mod:`poisonguard.kernel.state`);
    ``csv_format``: how CSV inputs are split (default: detected per file; given, it applies to every
    CSV input and is recorded in the verdict's provenance as ``csv``)."""

    reference: str | Path
    incoming: str | Path
    label: str
    holdout: str | Path | None = None
    golden: str | Path | None = None
    policy: Policy | str | Path | None = None
    id_column: str | None = None
    state: str | Path | None = None
    csv_format: CsvFormat = DETECT

    def loaded_policy(self) -> Policy:
        """The policy, read and validated (raises :class:`~poisonguard.errors.PolicyError`)."""
        return self.policy if isinstance(self.policy, Policy) else load_policy(self.policy)
