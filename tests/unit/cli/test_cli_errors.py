"""Bad input gets one clear line on stderr and its documented exit code, never a traceback,
never an output that looks promoted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poisonguard.cli import main
from poisonguard.errors import EXIT_BLOCK, EXIT_INPUT, EXIT_USAGE


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", "-q", *args])
    out, err = capsys.readouterr()
    return code, out, err


def gate(capsys, files: dict[str, Path], out: Path, **override: str) -> tuple[int, str, str]:
    args = {"reference": files["reference"], "incoming": files["incoming"], "label": "y", "out": out,
            "holdout": files["holdout"], **override}
    flat = [x for k, v in args.items() if v is not None for x in (f"--{k.replace('_', '-')}", str(v))]
    return run_cli(capsys, *flat)


def assert_one_clear_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("poisonguard: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_nothing_promoted(out: Path) -> None:
    assert not (out / "clean.parquet").exists()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("make_input", "needle"),
    [
        (lambda d, f: d / "nope.csv", "does not exist"),
        (lambda d, f: write(d, "bad.parquet", b"PAR1 this is not parquet"), "not a readable Parquet"),
        (lambda d, f: write(d, "trunc.parquet", f["incoming"].read_bytes()[:300]), "not a readable Parquet"),
        (lambda d, f: write(d, "trunc.csv", b"f0,f1,y\n1.0,2.0,c0\n3.0,4"), "truncated"),
        (lambda d, f: write(d, "empty.csv", b""), "empty"),
        (lambda d, f: write(d, "header.csv", b"f0,f1,f2,f3,f4,f5,colour,y\n"), "no rows"),
        (lambda d, f: write(d, "latin1.csv", "f0,y\n1,caf\u00e9\n".encode("latin-1")), "not UTF-8"),
        (lambda d, f: write(d, "dups.csv", b"f0,f0,y\n1,2,c0\n"), "duplicate column"),
        (lambda d, f: write(d, "data.xlsx", b"xx"), "unsupported type"),
        (lambda d, f: d, "no .parquet files"),
    ],
    ids=["missing", "corrupt-parquet", "truncated-parquet", "truncated-csv", "empty", "header-only",
         "non-utf8", "duplicate-columns", "unsupported-type", "empty-directory"],
)
def test_unreadable_incoming_exits_3(capsys, tmp_path, files, make_input, needle):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    out = tmp_path / "out"
    code, _, err = gate(capsys, files, out, incoming=make_input(bad_dir, files))
    assert code == EXIT_INPUT
    assert_one_clear_line(err, needle, "incoming")
    assert_nothing_promoted(out)


def _frame_file(tmp_path: Path, name: str, frame: pd.DataFrame) -> Path:
    p = tmp_path / name
    frame.to_parquet(p, index=False)
    return p


@pytest.mark.parametrize(
    ("role", "mutate", "needle"),
    [
        ("incoming", lambda f: f.drop(columns=["y"]), "label column 'y'"),
        ("reference", lambda f: f.drop(columns=["y"]), "label column 'y'"),
        ("incoming", lambda f: f.drop(columns=["f2"]), "missing ['f2']"),
        ("incoming", lambda f: f.assign(extra=1.0), "extra ['extra']"),
        ("reference", lambda f: f.assign(y="c0"), "1 class"),
        ("reference", lambda f: f.assign(f1=np.nan), "'f1' has no values"),
        ("reference", lambda f: f.assign(f1=np.where(np.arange(len(f)) == 3, np.inf, f.f1)), "infinite"),
        ("reference", lambda f: f.assign(y=f.y.where(np.arange(len(f)) != 5)), "missing on 1 row"),
    ],
    ids=["label-missing-incoming", "label-missing-reference", "column-missing", "column-extra",
         "one-class", "all-nan-reference-column", "inf-in-reference", "unlabelled-reference-row"],
)
def test_unusable_inputs_exit_3(capsys, tmp_path, files, frames, role, mutate, needle):
    bad = _frame_file(tmp_path, f"bad_{role}.parquet", mutate(frames[role]))
    out = tmp_path / "out"
    code, _, err = gate(capsys, files, out, **{role: bad})
    assert code == EXIT_INPUT
    assert_one_clear_line(err, needle)
    assert_nothing_promoted(out)


def test_all_nan_incoming_column_blocks_with_reason(capsys, tmp_path, files, frames):
    bad = _frame_file(tmp_path, "nan.parquet", frames["incoming"].assign(f1=np.nan))
    out = tmp_path / "out"
    code, stdout, _ = gate(capsys, files, out, incoming=bad)
    assert code == EXIT_BLOCK
    assert "schema" in stdout and "f1" in stdout
    assert_nothing_promoted(out)


def test_inf_in_incoming_is_quarantined_not_crashed(capsys, tmp_path, files, frames):
    inc = frames["incoming"].copy()
    inc.loc[[4, 9], "f3"] = [np.inf, -np.inf]
    out = tmp_path / "out"
    code, _, err = gate(capsys, files, out, incoming=_frame_file(tmp_path, "inf.parquet", inc))
    assert "Traceback" not in err
    quarantined = pd.read_parquet(out / "quarantine.parquet")["_pg_position"].tolist()
    assert {4, 9} <= set(quarantined)
    assert code in (0, 1)


@pytest.mark.parametrize(
    ("policy_text", "needle"),
    [
        ("checks:\n  outliers:\n    bogus_field: 1\n", "checks.outliers.bogus_field"),
        ("checks:\n  outliers:\n    reference_quantile: 1.5\n", "checks.outliers.reference_quantile"),
        ("seed: -3\n", "'seed'"),
        ("checks:\n  label_flips:\n    severity:\n      not_a_code: block\n", "unknown finding code"),
        ("checks:\n  label_flips:\n    severity:\n      label_flip: explode\n", "severity"),
        ("checks: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping"),
    ],
    ids=["unknown-field", "out-of-range", "negative-seed", "unknown-code", "bad-severity", "bad-yaml", "not-mapping"],
)
def test_bad_policy_exits_2(capsys, tmp_path, files, policy_text, needle):
    policy = write(tmp_path, "policy.yml", policy_text.encode())
    out = tmp_path / "out"
    code, _, err = gate(capsys, files, out, policy=policy)
    assert code == EXIT_USAGE
    assert_one_clear_line(err, needle, "policy.yml")
    assert_nothing_promoted(out)


def test_missing_policy_file_exits_2(capsys, tmp_path, files):
    code, _, err = gate(capsys, files, tmp_path / "out", policy=tmp_path / "nope.yml")
    assert code == EXIT_USAGE
    assert_one_clear_line(err, "does not exist")


def test_usage_error_exits_2(capsys, files, tmp_path):
    code, _, err = run_cli(capsys, "--reference", str(files["reference"]), "--out", str(tmp_path))
    assert code == EXIT_USAGE
    assert_one_clear_line(err, "required")


def test_stale_outputs_are_removed_when_a_rerun_fails(capsys, tmp_path, files):
    out = tmp_path / "out"
    out.mkdir()
    (out / "clean.parquet").write_bytes(b"old")
    (out / "verdict.json").write_text("{}")
    code, _, _ = gate(capsys, files, out, incoming=tmp_path / "missing.parquet")
    assert code == EXIT_INPUT
    assert not (out / "clean.parquet").exists() and not (out / "verdict.json").exists()
