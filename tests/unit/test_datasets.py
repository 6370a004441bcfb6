"""The committed datasets are the ones datasets/README.md describes (sha256 of every file) and
each poisoned batch's ground truth is consistent with its file."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def test_every_committed_file_matches_the_readme_sha256_table():
    table = dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", (DATASETS / "README.md").read_text(), re.M))
    files = {str(p.relative_to(DATASETS)): p for p in DATASETS.glob("*/**/*")
             if p.is_file() and p.suffix in (".parquet", ".json") and p.relative_to(DATASETS).parts[0] != "landing"}
    assert table and set(table) == set(files)
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == table[name], name


@pytest.mark.parametrize("truth", sorted(DATASETS.glob("*/incoming/*.truth.json")), ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_ground_truth_points_inside_its_batch(truth):
    doc = json.loads(truth.read_text())
    frame = pd.read_parquet(truth.with_name(truth.name.replace(".truth.json", ".parquet")))
    assert doc["expected_decision"] in ("promote", "block") and doc["why"]
    assert all(0 <= r < len(frame) for r in doc["poisoned_rows"])
    assert sorted(set(doc["poisoned_rows"])) == doc["poisoned_rows"]
