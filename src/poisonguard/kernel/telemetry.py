"""The one place where poisonguard sets its process environment: the telemetry of the tools it
runs off, and one thread for the numeric libraries.

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


# Thread pools cost more than they give here: the models are narrow and many (cross-validation
# folds, nulls, one per batch) and the machines shared (a CI runner, an Airflow worker running
# several tasks). Measured on this project's 2-core machine: busy-waiting OpenMP threads under
# load took 108 s against 7.8 s with passive ones; but passive threads pay a futex sleep and wake at
# every parallel region, so even idle a gradient-boosting fit (20 features) took 1.12 s with 2 of them
# against 0.17 s with one at 20k rows, 1.68 s against 1.05 s at 200k; 17 canary batches of 60 rows
# took 134 s against 25 s. A logistic regression on 20k x 40 took 5.5 s with 2 OpenBLAS threads
# against 0.17 s with one. Parallelism comes from processes (Airflow tasks, pytest workers) and
# from independent fits run side by side on threads (``kernel.models.side_by_side``).
RUNTIME_DEFAULTS: dict[str, str] = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                                    "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


_POOLS_LIMITED = False


def disable_telemetry() -> None:
    """Set every telemetry switch to off, and the runtime defaults, in this process (and so in
    its children). If NumPy or scikit-learn was loaded before this was called (its thread pools
    read the environment then), the pools are limited to the configured thread counts directly."""
    global _POOLS_LIMITED
    for key, value in (TELEMETRY_OFF | RUNTIME_DEFAULTS).items():
        os.environ.setdefault(key, value)
    # Once per process: a pool loaded after the first call reads the environment set above, and
    # threadpoolctl scans every loaded library each time (~4 ms; the gate calls this ~90 times).
    if _POOLS_LIMITED:
        return
    _POOLS_LIMITED = True
    if "numpy" in sys.modules or "sklearn" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"] or 1), user_api="blas")
        threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"] or 1), user_api="openmp")
