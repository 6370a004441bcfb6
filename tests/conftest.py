"""Shared fixtures. Data is built in fixtures (seeded), never at import; helpers live in
``support/``. Tests under ``integration/`` run real Airflow, DVC and git: they are marked ``e2e``
here, by directory."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from poisonguard.kernel.telemetry import disable_telemetry
from support.data import make_frame
from support.policies import FAST_POLICY

disable_telemetry()
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    """reference (1,200 rows), holdout (400), a clean incoming batch (600): one distribution."""
    return {"reference": make_frame(1200, 1), "holdout": make_frame(400, 2), "incoming": make_frame(600, 3)}


@pytest.fixture
def files(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """The frames written as files: reference CSV, holdout and incoming Parquet."""
    paths = {"reference": tmp_path / "reference.csv", "holdout": tmp_path / "holdout.parquet",
             "incoming": tmp_path / "incoming.parquet"}
    frames["reference"].to_csv(paths["reference"], index=False)
    frames["holdout"].to_parquet(paths["holdout"], index=False)
    frames["incoming"].to_parquet(paths["incoming"], index=False)
    return paths


@pytest.fixture
def fast_policy(tmp_path: Path) -> Path:
    path = tmp_path / "fast.yml"
    path.write_text(FAST_POLICY)
    return path


@pytest.fixture
def store(tmp_path: Path, files: dict[str, Path]):
    """A dataset store 'toy' created from the reference (golden) and holdout files."""
    from poisonguard.store.dataset import DatasetStore
    from poisonguard.store.records import Actor

    return DatasetStore.create(tmp_path / "stores", "toy", golden=files["reference"], label="y",
                               holdout=files["holdout"], unsigned=True, actor=Actor("test"))


# --------------------------------------------------------------------------- Airflow (see support/airflow.py)

@pytest.fixture(scope="session")
def airflow_parse_home(tmp_path_factory: pytest.TempPathFactory):
    """An AIRFLOW_HOME for parsing DAGs in subprocesses (no metadata DB)."""
    from support.airflow import AirflowHome, airflow_env

    path = tmp_path_factory.mktemp("airflow-parse")
    return AirflowHome(path, airflow_env(path))


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory):
    """An AIRFLOW_HOME with a migrated SQLite metadata DB, shared by the session's Airflow tests;
    Airflow runs in subprocesses with it, so nothing reaches the project's .airflow. The gate's
    signing key comes from the Airflow connection ``poisonguard_signing``."""
    from support.airflow import SIGNING_CONNECTION, migrated_home

    return migrated_home(tmp_path_factory.mktemp("airflow"), **SIGNING_CONNECTION)


@pytest.fixture
def gate_data(tmp_path: Path):
    """A store with the ``synthetic`` dataset (golden reference + holdout), an empty landing
    root, and a policy that runs every check in seconds."""
    from support.airflow import gate_data

    return gate_data(tmp_path)
