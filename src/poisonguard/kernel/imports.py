"""Importing the heavy third-party libraries (Great Expectations, Evidently, DVC) lazily, in one way.

Their import-time warnings (deprecated stdlib modules, invalid regex escapes, deprecated
dependency APIs) are about their code, not the user's, so they are silenced here — and only
during the import. Telemetry is switched off before any of them loads.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from poisonguard.kernel.telemetry import disable_telemetry


def quiet_import(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with telemetry off and import-time warnings silenced."""
    disable_telemetry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)
