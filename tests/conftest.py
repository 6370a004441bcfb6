"""Shared fixtures. Data is built in fixtures (seeded), never at import."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poisonguard.telemetry import disable_telemetry

disable_telemetry()
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))


def make_frame(n: int, seed: int, *, n_features: int = 6, n_classes: int = 2, categorical: bool = True,
               missing: bool = False) -> pd.DataFrame:
    """A learnable tabular task: numeric features around class centres, plus a categorical one."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(0, 2.5, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    x = centres[y] + rng.normal(0, 1.0, size=(n, n_features))
    frame = pd.DataFrame(x.round(6), columns=[f"f{i}" for i in range(n_features)])
    if categorical:
        colours = np.array(["red", "green", "blue"])
        frame["colour"] = colours[(y + (rng.random(n) < 0.2)) % 3]
    if missing:
        frame.loc[rng.random(n) < 0.05, "f0"] = np.nan
    frame["y"] = np.array([f"c{k}" for k in range(n_classes)])[y]
    return frame


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


FAST_POLICY = """\
# Real checks, cheaper settings: tests of the store, ledger and promotion, not of detection.
checks:
  label_flips: {model: logistic, n_folds: 3}
  baseline: {enabled: false}
  drift: {enabled: false}
  cumulative: {enabled: false}
"""


@pytest.fixture
def fast_policy(tmp_path: Path) -> Path:
    path = tmp_path / "fast.yml"
    path.write_text(FAST_POLICY)
    return path


@pytest.fixture
def store(tmp_path: Path, files: dict[str, Path]):
    """A dataset store 'toy' created from the reference (golden) and holdout files."""
    from poisonguard.store import Actor, DatasetStore

    return DatasetStore.create(tmp_path / "stores", "toy", golden=files["reference"], label="y",
                               holdout=files["holdout"], unsigned=True, actor=Actor("test"))


def batch_file(tmp_path: Path, name: str, seed: int, n: int = 300, flip_fraction: float = 0.0) -> Path:
    """A fresh incoming batch (distinct rows for each seed), with a share of labels flipped."""
    frame = make_frame(n, seed)
    if flip_fraction:
        rows = np.random.default_rng(seed).choice(n, int(flip_fraction * n), replace=False)
        frame.loc[rows, "y"] = frame.loc[rows, "y"].map({"c0": "c1", "c1": "c0"})
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


# --------------------------------------------------------------------------- Airflow (see airflow_harness.py)

@pytest.fixture(scope="session")
def airflow_parse_home(tmp_path_factory: pytest.TempPathFactory):
    """An AIRFLOW_HOME for parsing DAGs in subprocesses (no metadata DB)."""
    from airflow_harness import AirflowHome, airflow_env

    path = tmp_path_factory.mktemp("airflow-parse")
    return AirflowHome(path, airflow_env(path))


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory):
    """An AIRFLOW_HOME with a migrated SQLite metadata DB, shared by the session's Airflow tests;
    Airflow runs in subprocesses with it, so nothing reaches the project's .airflow. The gate's
    signing key comes from the Airflow connection ``poisonguard_signing``."""
    from airflow_harness import SIGNING_CONNECTION, migrated_home

    return migrated_home(tmp_path_factory.mktemp("airflow"), **SIGNING_CONNECTION)


@pytest.fixture
def gate_data(tmp_path: Path):
    """A store with the ``synthetic`` dataset (golden reference + holdout), an empty landing
    root, and a policy that runs every check in seconds."""
    from airflow_harness import gate_data

    return gate_data(tmp_path)
