"""poisonguard: a training-data poisoning gate for Airflow, the CLI and DVC.

The public API, importable from here (each loaded on first use, so ``import poisonguard`` stays
cheap): ``run_gate``, ``GateInputs``, ``GateRun``, ``Policy``, ``load_policy``, ``Verdict``,
``CheckResult``, ``Finding``, ``Severity``, ``DatasetStore``, ``Actor``, ``gate_batch``,
``register_check``, ``CheckDef`` and the errors of :mod:`poisonguard.errors`.

Layers, from the bottom: ``errors``; ``kernel`` (values and tools every layer uses); ``checks``
(the registry and one module per check) and ``io`` (reading inputs, writing outputs);
``engine`` (policy, decision, stages, the gate) and ``store`` (dataset stores, ledger,
promotion, quarantine); ``workflows`` (gate into a store, release from quarantine); the
adapters ``cli``, ``airflow`` and ``dvc``; and ``testing`` (the check contract, attacks).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "run_gate": "poisonguard.engine.gate", "GateInputs": "poisonguard.engine.gate",
    "GateRun": "poisonguard.kernel.results", "Verdict": "poisonguard.kernel.results",
    "CheckResult": "poisonguard.kernel.results", "Finding": "poisonguard.kernel.results",
    "Severity": "poisonguard.kernel.results",
    "Policy": "poisonguard.engine.policy", "load_policy": "poisonguard.engine.policy",
    "DatasetStore": "poisonguard.store.dataset", "Actor": "poisonguard.store.records",
    "gate_batch": "poisonguard.workflows",
    "register_check": "poisonguard.checks", "CheckDef": "poisonguard.checks",
    "PoisonguardError": "poisonguard.errors", "UsageError": "poisonguard.errors",
    "PolicyError": "poisonguard.errors", "InputError": "poisonguard.errors",
    "PromotionRefused": "poisonguard.errors", "LedgerTampered": "poisonguard.errors",
    "LockTimeout": "poisonguard.errors",
}
_RENAMED = {"register_check": "register"}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'poisonguard' has no attribute {name!r}")
