"""``poisonguard dvc example DIR`` needs no more than DIR in a source checkout: its data defaults
to the checkout's credit files; elsewhere, or half given, it says what to pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from poisonguard.cli import main
from poisonguard.dvc import example
from poisonguard.errors import EXIT_USAGE, UsageError

ROOT = Path(__file__).resolve().parents[3]


def test_without_flags_the_example_uses_the_checkouts_credit_data():
    reference, incoming, label = example.example_inputs(None, None, None)
    assert reference == ROOT / "datasets" / "credit" / "reference.parquet" and reference.is_file()
    assert incoming == ROOT / "datasets" / "credit" / "incoming" / "flips_20.parquet" and incoming.is_file()
    assert label == "status"


def test_a_reference_of_ones_own_needs_its_label(tmp_path):
    with pytest.raises(UsageError, match="--label is required with --reference"):
        example.example_inputs(tmp_path / "ref.csv", None, None)
    assert example.example_inputs(tmp_path / "ref.csv", tmp_path / "in.csv", "y") == (
        tmp_path / "ref.csv", tmp_path / "in.csv", "y")


def test_outside_a_checkout_the_missing_default_data_is_one_clear_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(example, "CREDIT", tmp_path / "datasets" / "credit")
    monkeypatch.setitem(example.DEFAULTS, "reference", tmp_path / "datasets" / "credit" / "reference.parquet")
    assert main(["dvc", "example", str(tmp_path / "project")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Pass --reference, --incoming and --label" in err
    assert not (tmp_path / "project").exists()
