"""A world to attack: a signed and an unsigned dataset store, each with a promoted batch
(``good``), a blocked one (``bad``) and a passed one gated but not promoted (``held``), all
through the real CLI. Built once per module and restored before every test at the same path
(ledger records name absolute run directories)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from poisonguard.cli import main
from poisonguard.kernel.signing import SigningKey
from poisonguard.store.dataset import DatasetStore
from support.data import batch_file, make_frame
from support.policies import FAST_POLICY

SECRET = "adversarial-test-key-0123456789abcdef"
KEY = SigningKey.from_text(SECRET)


@dataclass
class World:
    root: Path  # the store root
    data: Path  # incoming batches and the policy
    policy: Path

    def store(self, name: str, key: SigningKey | None = None) -> DatasetStore:
        return DatasetStore(self.root, name, key=key)

    def run_dir(self, name: str, batch: str) -> Path:
        return self.root / name / "runs" / batch

    def batch(self, name: str) -> Path:
        return self.data / f"{name}.parquet"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns the exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, *needles: str) -> str:
    """The one line a failing command prints on stderr (codes 2-6), checked for ``needles``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("poisonguard: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _build(base: Path) -> World:
    world = World(base / "stores", base / "data", base / "data" / "fast.yml")
    world.data.mkdir(parents=True)
    world.policy.write_text(FAST_POLICY)
    golden, holdout = base / "data" / "golden.parquet", base / "data" / "holdout.parquet"
    make_frame(1200, 1).to_parquet(golden, index=False)
    make_frame(400, 2).to_parquet(holdout, index=False)
    batch_file(world.data, "good", seed=11)
    batch_file(world.data, "bad", seed=12, flip_fraction=0.2)
    batch_file(world.data, "held", seed=13)
    for name, key in (("signed", KEY), ("plain", None)):
        DatasetStore.create(world.root, name, golden=golden, label="y", holdout=holdout, key=key,
                            unsigned=key is None)
        store = DatasetStore(world.root, name, key=key)
        from poisonguard.store.records import Actor
        from poisonguard.workflows import gate_batch

        actor = Actor("test", user="builder")
        for batch, promote in (("good", True), ("bad", True), ("held", False)):
            gate_batch(store, world.batch(batch), batch, actor=actor, policy=world.policy, promote=promote,
                       key=f"2026-01-0{'gbh'.index(batch[0]) + 1}")
    return world


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    base = tmp_path_factory.mktemp("adversarial")
    world = _build(base)
    shutil.copytree(world.root, base / "pristine")
    return world, base / "pristine"


@pytest.fixture
def world(_pristine: tuple[World, Path], monkeypatch: pytest.MonkeyPatch) -> World:
    """The world as built, restored in place; no signing key in the environment."""
    world, pristine = _pristine
    shutil.rmtree(world.root)
    shutil.copytree(pristine, world.root)
    monkeypatch.delenv("POISONGUARD_SIGNING_KEY", raising=False)
    monkeypatch.delenv("POISONGUARD_SIGNING_KEY_ID", raising=False)
    monkeypatch.setenv("POISONGUARD_STORE", str(world.root))
    return world


@pytest.fixture
def signed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POISONGUARD_SIGNING_KEY", SECRET)
