"""The one place where poisonguard sets its process environment: the telemetry of the tools it
runs off, and OpenMP threads that sleep instead of spinning.

Called by every entry point (CLI, gate, Airflow operators, tests) before Great Expectations,
Evidently, DVC, Airflow or scikit-learn is imported. Values already set by the user are kept.
"""

from __future__ import annotations

import os
import sys

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


# Thread pools that spin are a disaster on a shared or oversubscribed machine (a CI runner, an
# Airflow worker running several tasks). Measured on this project's 2-core machine under load:
# scikit-learn's gradient boosting with busy-waiting OpenMP threads took 108 s against 7.8 s with
# passive ones; a logistic regression on 20k x 40 took 5.5 s with 2 OpenBLAS threads against
# 0.17 s with one (the matrices here are narrow, so BLAS threads buy little even when idle).
RUNTIME_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1",
                                    "MKL_NUM_THREADS": "1"}


def disable_telemetry() -> None:
    """Set every telemetry switch to off, and the runtime defaults, in this process (and so in
    its children). If NumPy was loaded before this was called (its BLAS read the environment
    then), the BLAS pool is limited to the configured thread count directly."""
    for key, value in (TELEMETRY_OFF | RUNTIME_DEFAULTS).items():
        os.environ.setdefault(key, value)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"] or 1), user_api="blas")
