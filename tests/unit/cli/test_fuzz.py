"""Property-based tests: malformed tables, encodings, sizes and policies thrown at the CLI never
give a traceback, and never promote malformed data."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonguard.cli import main
from support.data import make_frame

# Only the checks that read and validate (schema, provenance, outliers) run: the properties are
# about input handling, and each example must stay around a second.
POLICY = {"checks": {name: {"enabled": False} for name in ("label_flips", "backdoor", "baseline", "drift",
                                                           "cumulative")}}
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def trusted(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trusted")
    paths = {"reference": root / "reference.csv", "policy": root / "policy.yml", "root": root}
    make_frame(300, 1).to_csv(paths["reference"], index=False)
    paths["policy"].write_text(yaml.safe_dump(POLICY))
    return paths


def _run(trusted, incoming: Path, policy: Path | None = None) -> tuple[int, str, Path]:
    out = Path(tempfile.mkdtemp(dir=trusted["root"]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", "-q", "--reference", str(trusted["reference"]), "--incoming", str(incoming), "--label",
                     "y", "--out", str(out), "--policy", str(policy or trusted["policy"])])
    return code, err.getvalue(), out


def _no_traceback(code: int, err: str, out: Path) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 1, 2, 3), (code, err)
    if code in (2, 3):
        lines = [line for line in err.splitlines() if line.startswith("poisonguard: error:")]
        assert len(lines) == 1, err
    if code != 0:
        assert not (out / "clean.parquet").exists()


def _promoted_data_is_well_formed(out: Path) -> None:
    """What a promotion writes has the reference's columns and types, and known labels only."""
    clean = pd.read_parquet(out / "clean.parquet")
    reference = make_frame(300, 1)
    assert list(clean.columns) == list(reference.columns)
    for c in ("f0", "f1", "f2", "f3", "f4", "f5"):
        assert pd.api.types.is_numeric_dtype(clean[c]), c
    assert set(clean["y"].dropna().astype(str)) <= {"c0", "c1"}
    assert clean["y"].notna().all()


@pytest.mark.slow
@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".csv", ".parquet", ".tsv"]))
def test_arbitrary_bytes_are_refused_cleanly(trusted, data, suffix):
    path = Path(tempfile.mkdtemp(dir=trusted["root"])) / f"batch{suffix}"
    path.write_bytes(data)
    code, err, out = _run(trusted, path)
    _no_traceback(code, err, out)
    assert code != 0


_EDITS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "replace"]), st.integers(0, 10_000),
                            st.sampled_from(['"', ",", "\n", "x", "1e999", "-", "", "nan", ",,", "\r", "\x00", "é"])),
                  max_size=8)


@pytest.mark.slow
@FUZZ
@given(n_rows=st.integers(0, 60), edits=_EDITS, encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
       truncate=st.one_of(st.none(), st.integers(0, 3000)))
def test_mangled_csv_never_crashes_and_never_promotes_malformed_rows(trusted, n_rows, edits, encoding, truncate):
    text = make_frame(max(n_rows, 1), 2).head(n_rows).to_csv(index=False)
    for op, at, s in edits:
        at = at % (len(text) + 1)
        text = text[:at] + s + text[at + (op != "insert"):] if op != "delete" else text[:at] + text[at + 1:]
    data = text.encode(encoding, errors="replace")
    if truncate is not None:
        data = data[:truncate]
    path = Path(tempfile.mkdtemp(dir=trusted["root"])) / "batch.csv"
    path.write_bytes(data)
    code, err, out = _run(trusted, path)
    _no_traceback(code, err, out)
    if code == 0:
        _promoted_data_is_well_formed(out)


_KEYS = st.sampled_from(["seed", "holdout_fraction", "dataset", "checks", "bogus"])
_CHECKS = st.sampled_from(["schema", "outliers", "label_flips", "drift", "nope"])
_FIELDS = st.sampled_from(["enabled", "severity", "timeout_seconds", "reference_quantile", "max_p_value",
                           "min_excess_fraction", "columns", "unknown_field"])
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))


@pytest.mark.slow
@FUZZ
@given(top=st.dictionaries(_KEYS, _VALUES, max_size=3),
       checks=st.dictionaries(_CHECKS, st.dictionaries(_FIELDS, _VALUES, max_size=3), max_size=3),
       raw=st.one_of(st.none(), st.text(max_size=40)))
def test_random_policies_are_accepted_or_refused_with_one_line(trusted, top, checks, raw):
    policy = Path(tempfile.mkdtemp(dir=trusted["root"])) / "policy.yml"
    if raw is not None:
        policy.write_text(raw)
    else:
        doc = dict(top)
        if checks:
            doc["checks"] = {**POLICY["checks"], **checks}
        policy.write_text(yaml.safe_dump(doc))
    code, err, out = _run(trusted, trusted["reference"], policy)
    _no_traceback(code, err, out)
    if code == 2:
        assert "policy" in err
