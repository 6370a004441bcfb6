"""The one place where poisonguard turns off the telemetry of the tools it runs.

Called by every entry point (CLI, gate, Airflow operators, tests) before Great Expectations,
Evidently, DVC or Airflow is imported. Values already set by the user are kept.
"""

from __future__ import annotations

import os

TELEMETRY_OFF: dict[str, str] = {
    # Great Expectations 1.x
    "GX_ANALYTICS_ENABLED": "False",
    # Evidently (and any tool honouring the consoledonottrack.com convention)
    "DO_NOT_TRACK": "1",
    # DVC
    "DVC_NO_ANALYTICS": "1",
    # Airflow's usage data collection
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "SCARF_ANALYTICS": "false",
}


def disable_telemetry() -> None:
    """Set every telemetry switch to off in this process (and so in its children)."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
