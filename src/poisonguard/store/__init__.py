"""Dataset stores: trusted data, promoted batches, quarantine and the hash-chained ledger.

``DatasetStore``, ``Actor`` and ``Promotion`` are importable from here (loaded on first use)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"DatasetStore": "poisonguard.store.dataset", "record_check": "poisonguard.store.dataset",
            "Actor": "poisonguard.store.records", "Promotion": "poisonguard.store.records",
            "check_name": "poisonguard.store.records", "Ledger": "poisonguard.store.ledger"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'poisonguard.store' has no attribute {name!r}")
