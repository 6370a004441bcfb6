"""``poisonguard check --state``: a warm run skips fitting and gives the cold run's verdict byte for
byte (apart from ``run``); a damaged state is said on stderr, even with -q, and rebuilt; dataset
stores keep theirs inside the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poisonguard.cli import main
from poisonguard.errors import EXIT_USAGE


def _verdict(out: Path) -> dict:
    doc = json.loads((out / "verdict.json").read_text())
    doc.pop("run")
    return doc


def _check(files, out: Path, *extra: str, policy: Path | None = None) -> int:
    args = ["check", "--reference", str(files["reference"]), "--holdout", str(files["holdout"]), "--incoming",
            str(files["incoming"]), "--label", "y", "--out", str(out), *extra]
    return main([*args, *(["--policy", str(policy)] if policy else [])])


def test_a_warm_run_reuses_every_fit_and_gives_the_same_verdict(tmp_path, files, capsys):
    cold = _check(files, tmp_path / "cold", "--state", str(tmp_path / "state"))
    cold_err = capsys.readouterr().err
    warm = _check(files, tmp_path / "warm", "--state", str(tmp_path / "state"))
    warm_err = capsys.readouterr().err
    none = _check(files, tmp_path / "none")
    capsys.readouterr()
    assert cold == warm == none
    assert (tmp_path / "warm" / "verdict.json").read_bytes() != b""
    assert _verdict(tmp_path / "cold") == _verdict(tmp_path / "warm") == _verdict(tmp_path / "none")
    for check in ("provenance", "schema", "outliers", "label_flips"):
        assert f"{check}: fitted on trusted data" in cold_err
        assert f"{check}: taken from the fitted state" in warm_err
    entries = sorted(p.name for p in (tmp_path / "state").iterdir())
    # 4 row checks, provenance's null and the baseline's reference model and null at this size, the drift noise
    assert len(entries) == 8
    assert all((tmp_path / "state" / e / "manifest.json").exists() for e in entries)


def test_a_damaged_state_is_said_even_when_quiet_and_rebuilt(tmp_path, files, fast_policy, capsys):
    assert _check(files, tmp_path / "a", "-q", "--state", str(tmp_path / "state"), policy=fast_policy) == 0
    capsys.readouterr()
    for entry in (tmp_path / "state").iterdir():
        fitted = entry / "fitted.json"
        fitted.write_text(fitted.read_text().replace("0.", "0.9", 1))
    assert _check(files, tmp_path / "b", "-q", "--state", str(tmp_path / "state"), policy=fast_policy) == 0
    err = capsys.readouterr().err
    assert err.count("is not used: fitted.json does not match its SHA-256") >= 3, err
    assert _verdict(tmp_path / "a") == _verdict(tmp_path / "b")
    _check(files, tmp_path / "c", "-q", "--state", str(tmp_path / "state"), policy=fast_policy)
    assert capsys.readouterr().err == ""  # rebuilt: intact again


def test_a_state_path_that_is_a_file_exits_2_with_one_line(tmp_path, files, capsys):
    path = tmp_path / "state"
    path.write_text("not a directory")
    assert _check(files, tmp_path / "out", "-q", "--state", str(path)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a directory" in err
    assert not (tmp_path / "out" / "verdict.json").exists()


@pytest.mark.parametrize("signed", [False, True])
def test_a_store_keeps_its_state_and_refuses_a_damaged_one_when_signed(tmp_path, files, fast_policy, signed):
    from poisonguard.kernel.signing import SigningKey
    from poisonguard.kernel.state import StateRefused
    from poisonguard.store.dataset import DatasetStore
    from poisonguard.store.records import Actor
    from poisonguard.workflows import gate_batch
    from support.data import batch_file

    key = SigningKey.from_text("fitted-state-store-key-0123456789") if signed else None
    store = DatasetStore.create(tmp_path / "stores", "toy", golden=files["reference"], label="y",
                                holdout=files["holdout"], key=key, unsigned=not signed)
    actor = Actor("test")
    first, _ = gate_batch(store, batch_file(tmp_path, "b1", seed=5), "b1", actor=actor, policy=fast_policy,
                          promote=False, key="2026-01-01")
    built = sorted(p.name for p in store.state_dir.iterdir())
    assert len(built) == 5  # the 4 row checks and provenance's null at this batch size
    again, _ = gate_batch(store, batch_file(tmp_path, "b2", seed=6), "b2", actor=actor, policy=fast_policy,
                          promote=False, key="2026-01-01")
    assert sorted(p.name for p in store.state_dir.iterdir()) == built  # same reference: nothing new
    entry = store.state_dir / built[0]
    (entry / "fitted.json").write_text((entry / "fitted.json").read_text() + " ")
    if signed:
        with pytest.raises(StateRefused, match="failed its check"):
            gate_batch(store, batch_file(tmp_path, "b3", seed=7), "b3", actor=actor, policy=fast_policy,
                       promote=False, key="2026-01-01")
    else:
        third, _ = gate_batch(store, batch_file(tmp_path, "b3", seed=7), "b3", actor=actor, policy=fast_policy,
                              promote=False, key="2026-01-01")
        assert third.verdict.checks.keys() == first.verdict.checks.keys()
    assert again.verdict.n_rows == first.verdict.n_rows
