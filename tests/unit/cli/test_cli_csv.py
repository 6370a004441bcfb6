"""``--csv-sep`` / ``--csv-decimal`` on the commands that read CSV inputs: ``check`` (and so
``dvc stage check``), ``store init`` and ``gate``; the store's promotion re-reads the batch
split the same way."""

from __future__ import annotations

import json

import pandas as pd

from poisonguard.cli import main
from poisonguard.errors import EXIT_INPUT, EXIT_PROMOTE


def _caret(frame: pd.DataFrame, path):
    """A '^'-separated export with decimal commas: neither is detected."""
    frame.to_csv(path, sep="^", decimal=",", index=False)
    return path


def test_check_reads_a_separator_it_cannot_detect_when_given(tmp_path, frames, fast_policy, capsys):
    ref, inc = _caret(frames["reference"], tmp_path / "ref.csv"), _caret(frames["incoming"], tmp_path / "inc.csv")
    common = ["check", "-q", "--reference", str(ref), "--incoming", str(inc), "--label", "y", "--policy",
              str(fast_policy)]
    assert main([*common, "--out", str(tmp_path / "detected")]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read as one column" in err and "pass it as --csv-sep" in err
    out = tmp_path / "given"
    assert main([*common, "--out", str(out), "--csv-sep", "^", "--csv-decimal", ","]) == EXIT_PROMOTE
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["provenance"]["csv"] == {"sep": "^", "decimal": ","} and verdict["rows"]["incoming"] == 600
    pd.testing.assert_frame_equal(pd.read_parquet(out / "clean.parquet").iloc[:5], frames["incoming"].iloc[:5])


def test_a_wrong_separator_given_is_one_line_naming_the_right_one(tmp_path, frames, fast_policy, capsys):
    ref = tmp_path / "ref.csv"
    frames["reference"].to_csv(ref, sep=";", index=False)
    code = main(["check", "-q", "--reference", str(ref), "--incoming", str(ref), "--label", "y", "--out",
                 str(tmp_path / "out"), "--csv-sep", "|"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and err.count("\n") == 1
    assert "splits into one column with --csv-sep '|'" in err and "pass --csv-sep ';'" in err


def test_detected_inputs_record_no_csv_format(tmp_path, files, fast_policy):
    out = tmp_path / "out"
    main(["check", "-q", "--reference", str(files["reference"]), "--incoming", str(files["incoming"]), "--label",
          "y", "--out", str(out), "--policy", str(fast_policy)])
    assert "csv" not in json.loads((out / "verdict.json").read_text())["provenance"]


def test_store_init_and_gate_split_csv_as_told_and_promotion_rereads_it_so(tmp_path, frames, fast_policy, capsys):
    stores = ["--store", str(tmp_path / "stores"), "--dataset", "toy"]
    golden = _caret(frames["reference"], tmp_path / "golden.csv")
    assert main(["store", "init", *stores, "--golden", str(golden), "--label", "y", "--unsigned",
                 "--csv-sep", "^", "--csv-decimal", ","]) == 0
    batch = _caret(frames["incoming"], tmp_path / "batch.csv")
    code = main(["gate", *stores, "--incoming", str(batch), "--batch", "b1", "--policy", str(fast_policy), "-q",
                 "--csv-sep", "^", "--csv-decimal", ","])
    out = capsys.readouterr().out
    assert code == EXIT_PROMOTE and "PROMOTED: batch b1" in out, out
