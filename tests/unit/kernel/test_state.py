"""The fitted state: content-addressed entries, verified on every load, never trusted when they
fail (rebuilt, or refused with a key), written atomically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from poisonguard.errors import UsageError
from poisonguard.kernel.parts import Fitted
from poisonguard.kernel.signing import SigningKey
from poisonguard.kernel.state import StateDir, StateRefused, address

KEY = SigningKey.from_text("state-test-key-0123456789abcdef")


def _value(seed: int = 0) -> Fitted:
    return Fitted({"threshold": 0.5 + seed}, {"scores": np.arange(5, dtype=np.float64) + seed})


def _build(state: StateDir, calls: list[int], seed: int = 0) -> Fitted:
    def compute() -> Fitted:
        calls.append(seed)
        return _value(seed)
    return state.fitted("outliers", ("trusted", {"n": 1}), compute)


def test_an_entry_is_built_once_and_reused(tmp_path):
    calls: list[int] = []
    first = _build(StateDir(tmp_path / "s"), calls)
    again = _build(StateDir(tmp_path / "s"), calls)
    assert calls == [0]
    assert again.meta == first.meta and np.array_equal(again.arrays["scores"], first.arrays["scores"])
    other = StateDir(tmp_path / "s").fitted("outliers", ("trusted", {"n": 2}), lambda: _value(1))
    assert other.meta["threshold"] == 1.5  # another address: another entry
    assert len(list((tmp_path / "s").iterdir())) == 2


@pytest.mark.parametrize("damage", ["edit-json", "edit-npz", "drop-manifest", "other-version", "garbage-manifest"])
def test_a_damaged_entry_is_never_used_and_is_rebuilt_with_a_warning(tmp_path, damage, caplog):
    calls: list[int] = []
    _build(StateDir(tmp_path / "s"), calls)
    entry = tmp_path / "s" / address("outliers", "trusted", {"n": 1})
    if damage == "edit-json":
        (entry / "fitted.json").write_text(json.dumps({"threshold": 99.0}))
    elif damage == "edit-npz":
        np.savez(entry / "fitted.npz", scores=np.zeros(5))
    elif damage == "drop-manifest":
        (entry / "manifest.json").unlink()
    elif damage == "other-version":
        manifest = json.loads((entry / "manifest.json").read_text())
        (entry / "manifest.json").write_text(json.dumps(manifest | {"version": "0.0.1"}))
    else:
        (entry / "manifest.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="poisonguard"):
        value = _build(StateDir(tmp_path / "s"), calls)
    assert calls == [0, 0] and value.meta["threshold"] == 0.5
    assert any("is not used" in r.message and str(entry) in r.message for r in caplog.records)
    assert _build(StateDir(tmp_path / "s"), calls).meta["threshold"] == 0.5 and calls == [0, 0]  # rebuilt, intact


def test_with_a_key_a_failing_entry_is_refused(tmp_path):
    calls: list[int] = []
    _build(StateDir(tmp_path / "s", KEY), calls)
    entry = tmp_path / "s" / address("outliers", "trusted", {"n": 1})
    assert "signature" in json.loads((entry / "manifest.json").read_text())
    (entry / "fitted.json").write_text(json.dumps({"threshold": 99.0}))
    with pytest.raises(StateRefused, match="failed its check") as e:
        _build(StateDir(tmp_path / "s", KEY), calls)
    assert e.value.exit_code == 5
    # An unsigned entry (built without the key) is refused too when a key is configured.
    _build(StateDir(tmp_path / "u"), calls)
    with pytest.raises(StateRefused, match="not signed with the configured key"):
        _build(StateDir(tmp_path / "u", KEY), calls)


def test_a_state_path_that_is_a_file_is_a_usage_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UsageError, match="is a file, not a directory") as e:
        StateDir(path)
    assert e.value.exit_code == 2


BUILDER = """
import os, signal, sys, time
import numpy as np
from poisonguard.kernel.parts import Fitted
from poisonguard.kernel.state import StateDir

def compute():
    if sys.argv[2] == "die":
        # Die in the middle of writing the entry: after its files, before the rename.
        real = os.rename
        def rename(a, b):
            os.kill(os.getpid(), signal.SIGKILL)
        os.rename = rename
    if sys.argv[2] == "slow":
        time.sleep(1.0)
    return Fitted({"pid": 0}, {"x": np.arange(3.0)})

StateDir(sys.argv[1]).fitted("outliers", ("trusted",), compute)
print("ok", flush=True)
"""


def test_kill_9_while_building_leaves_nothing_that_is_used(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BUILDER, str(tmp_path / "s"), "die"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in (tmp_path / "s").iterdir() if not p.name.startswith(".")] == []  # only a tmp dir
    calls: list[int] = []
    value = StateDir(tmp_path / "s").fitted("outliers", ("trusted",), lambda: calls.append(1) or _value())
    assert calls == [1] and value.meta["threshold"] == 0.5


def test_two_processes_building_one_entry_both_succeed_and_one_entry_remains(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(tmp_path / "s"), "slow"], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(2)]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["ok", "ok"]
    entries = [p for p in (tmp_path / "s").iterdir()]
    assert [p.name.startswith(".") for p in entries] == [False]
    assert StateDir(tmp_path / "s").fitted("outliers", ("trusted",), lambda: pytest.fail("rebuilt")).meta == {"pid": 0}
