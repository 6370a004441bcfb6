"""Every code 2-6 prints exactly one line on stderr, and inputs that used to crash get their own code."""

from __future__ import annotations

import fcntl
import os

import pandas as pd

from adversarial.conftest import cli, one_line
from adversarial.helpers import promoted_batches
from support.data import make_frame


def test_a_list_typed_column_is_unusable_input_not_an_internal_error(world, capsys, tmp_path):
    frame = make_frame(50, 5)
    frame["tags"] = [[1, 2]] * len(frame)
    incoming = tmp_path / "lists.parquet"
    frame.to_parquet(incoming, index=False)
    for args in (["check", "-q", "--reference", str(world.data / "golden.parquet"), "--incoming", str(incoming),
                  "--label", "y", "--out", str(tmp_path / "out")],
                 ["gate", "-q", "--dataset", "plain", "--incoming", str(incoming), "--batch", "lists"]):
        code, _, err = cli(capsys, *args)
        assert code == 3
        one_line(err, "nested column(s) ['tags", "Flatten")
    code, _, err = cli(capsys, "store", "init", "--dataset", "lists", "--golden", str(incoming), "--label", "y",
                       "--unsigned")
    assert code == 3
    one_line(err, "nested column")


def test_out_naming_an_existing_file_is_a_usage_error(world, capsys, tmp_path):
    out = tmp_path / "a-file"
    out.write_text("keep me")
    code, _, err = cli(capsys, "check", "-q", "--reference", str(world.data / "golden.parquet"), "--incoming",
                       str(world.batch("held")), "--label", "y", "--out", str(out))
    assert code == 2
    one_line(err, "is a file, not a directory")
    assert out.read_text() == "keep me"


def test_store_init_without_a_key_needs_an_explicit_unsigned(world, capsys):
    golden = str(world.data / "golden.parquet")
    code, _, err = cli(capsys, "store", "init", "--dataset", "new", "--golden", golden, "--label", "y")
    assert code == 2
    one_line(err, "no signing key is set", "--unsigned")
    assert not (world.root / "new").exists()
    code, out, err = cli(capsys, "store", "init", "--dataset", "new", "--golden", golden, "--label", "y", "--unsigned")
    assert code == 0 and "UNSIGNED" in out
    assert err.count("warning") == 1 and "forge" in err


def test_store_init_with_a_key_records_it(world, capsys, signed_env):
    from adversarial.conftest import KEY

    code, out, _ = cli(capsys, "store", "init", "--dataset", "new", "--golden", str(world.data / "golden.parquet"),
                       "--label", "y")
    assert code == 0 and f"signed with key '{KEY.key_id}'" in out
    code, _, err = cli(capsys, "store", "init", "--dataset", "other", "--golden", str(world.data / "golden.parquet"),
                       "--label", "y", "--unsigned")
    assert code == 2
    one_line(err, "--unsigned", "signing key is set")


def test_codes_2_to_6_each_print_one_line(world, capsys, tmp_path):
    lock = os.open(world.root / "plain" / ".lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        code, _, err = cli(capsys, "gate", "-q", "--dataset", "plain", "--incoming", str(world.batch("held")),
                           "--batch", "x", "--lock-timeout", "0.2")
    finally:
        os.close(lock)
    assert code == 4
    one_line(err, "locked")
    cases = {
        2: ["promote", "--dataset", "plain"],
        3: ["gate", "-q", "--dataset", "plain", "--incoming", str(tmp_path / "missing.parquet"), "--batch", "x"],
        5: ["promote", "--dataset", "plain", "--batch", "bad"],
    }
    for expected, args in cases.items():
        code, _, err = cli(capsys, *args)
        assert code == expected, err
        one_line(err)
    lines = (world.root / "plain" / "ledger.jsonl").read_bytes().split(b"\n")
    (world.root / "plain" / "ledger.jsonl").write_bytes(b"\n".join(lines[:2] + lines[3:]))
    code, out, err = cli(capsys, "ledger", "verify", "--dataset", "plain")
    assert code == 6 and "TAMPERED" in out
    one_line(err, "missing")
    assert promoted_batches(world, "plain") == []  # the promote record (2) is the one cut out
    assert pd.read_parquet(world.run_dir("plain", "held") / "quarantine.parquet") is not None
