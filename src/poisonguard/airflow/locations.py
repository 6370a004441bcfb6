"""Where the Airflow layer finds landed batches and keeps trusted data, read at task run time.

Both roots come from an explicit argument (an operator argument or a DAG Param), else an
environment variable, else a folder under ``$AIRFLOW_HOME/poisonguard``. A dataset's policy is
``<policies>/<dataset>.yml`` when no policy file is given and that file exists (``<policies>``:
the DAG's ``policy_dir``, else ``$POISONGUARD_POLICIES``; the example DAGs point at the project's
``checks/``). Nothing here runs at DAG parse time. With Celery or Kubernetes workers the roots
must be one filesystem every worker mounts.

Landing layout: a batch for ``dataset`` and batch key ``batch`` (the ingest DAG uses the run's
logical date, ``YYYY-MM-DD``) is every ``*.parquet`` file in ``<landing>/<dataset>/<batch>/``
(one mapped scoring task per file), or a single ``<landing>/<dataset>/<batch>.csv`` /
``.parquet`` file.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "POISONGUARD_STORE"  # the core's settings.STORE: the CLI and Airflow share one store
LANDING_ENV = "POISONGUARD_LANDING"
POLICIES_ENV = "POISONGUARD_POLICIES"
# Dataset and batch names as the store accepts them (poisonguard.store.check_name), for the JSON
# schema of DAG Params: Airflow refuses a bad name before any task runs.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"
REPORTS_URL_PREFIX = "/poisonguard"  # where the api-server plugin serves reports


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def store_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The store root: ``explicit``, else ``$POISONGUARD_STORE``, else ``$AIRFLOW_HOME/poisonguard/store``."""
    return Path(explicit or os.environ.get(STORE_ENV) or _airflow_home() / "poisonguard" / "store")


def landing_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The landing root: ``explicit``, else ``$POISONGUARD_LANDING``, else ``$AIRFLOW_HOME/poisonguard/landing``."""
    return Path(explicit or os.environ.get(LANDING_ENV) or _airflow_home() / "poisonguard" / "landing")


def default_policy(dataset: str, policy_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The dataset's policy file ``<dir>/<dataset>.yml`` if it exists (``dir``: ``policy_dir``,
    else ``$POISONGUARD_POLICIES``), else ``None`` (the default policy)."""
    folder = policy_dir or os.environ.get(POLICIES_ENV)
    candidate = Path(folder) / f"{dataset}.yml" if folder else None
    return candidate if candidate is not None and candidate.is_file() else None


def report_url(dataset: str, batch: str) -> str:
    """Where the api-server shows ``batch``'s report.html (a path on the Airflow UI's host;
    see :mod:`poisonguard.airflow.plugin`)."""
    return f"{REPORTS_URL_PREFIX}/reports/{dataset}/{batch}"


def landed_batch(root: Path, dataset: str, batch: str) -> Path | None:
    """The landed input of ``batch`` under ``root`` (a directory, or a single file), or ``None``
    when nothing has landed for it. ``dataset`` and ``batch`` are checked names (one path component each)."""
    base = root / dataset / batch
    if base.is_dir():
        return base
    for suffix in (".parquet", ".csv"):
        single = base.with_name(base.name + suffix)
        if single.is_file():
            return single
    return None
