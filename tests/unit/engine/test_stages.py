"""The staged gate (what Airflow runs task by task, a batch file per mapped task) decides exactly
like the one-call gate, however the batch is split into files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poisonguard.engine import stages
from poisonguard.engine.gate import GateInputs, run_gate


def _stable(doc: dict) -> dict:
    doc = {k: v for k, v in doc.items() if k != "run"}
    doc["provenance"] = {k: v for k, v in doc["provenance"].items() if k not in ("incoming_sha256", "incoming_files")}
    return doc


def _staged(work, out, reference, incoming, holdout):
    plan = stages.prepare(GateInputs(reference, incoming, "y", holdout=holdout), work_dir=work)
    infos = [stages.fit(work, name) for name in plan["row_checks"]]
    infos += [stages.score_part(work, i) for i in plan["parts"]]
    for phase in ("rows", "batch"):
        infos += [stages.summarize(work, name, out_dir=out) for name in plan["checks"]
                  if stages.REGISTRY[name].phase == phase]
    for info in infos:
        assert json.loads(json.dumps(info)) == info  # small and JSON-safe: fit for XCom
    return plan, stages.finish(work, out)


@pytest.mark.parametrize("n_files", [1, 3])
def test_stages_give_the_same_verdict_as_run_gate_however_the_batch_is_split(tmp_path, files, frames, n_files):
    direct = run_gate(GateInputs(files["reference"], files["incoming"], "y", holdout=files["holdout"]),
                      out_dir=tmp_path / "direct")
    batch = tmp_path / "batch"
    batch.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frames["incoming"])), n_files)):
        frames["incoming"].iloc[part].to_parquet(batch / f"part-{i}.parquet", index=False)
    stages._LOADED.clear()  # as in a fresh worker process
    plan, staged = _staged(tmp_path / "work", tmp_path / "staged", files["reference"], batch, files["holdout"])
    assert plan["parts"] == list(range(n_files))
    assert _stable(staged.document) == _stable(direct.document)
    on_disk = json.loads((tmp_path / "staged" / "verdict.json").read_text())
    assert _stable(on_disk) == _stable(json.loads((tmp_path / "direct" / "verdict.json").read_text()))


def test_a_missing_stage_blocks(tmp_path, files):
    work = tmp_path / "work"
    stages.prepare(GateInputs(files["reference"], files["incoming"], "y", holdout=files["holdout"]), work_dir=work)
    run = stages.finish(work, tmp_path / "out")
    assert not run.verdict.promoted
    assert {r.code for r in run.verdict.reasons} == {"check_error"}
    assert not (tmp_path / "out" / "clean.parquet").exists()


def test_a_part_changed_after_prepare_is_refused(tmp_path, files, frames):
    from poisonguard.errors import InputError

    work = tmp_path / "work"
    plan = stages.prepare(GateInputs(files["reference"], files["incoming"], "y", holdout=files["holdout"]), work_dir=work)
    frames["incoming"].iloc[:10].to_parquet(files["incoming"], index=False)
    with pytest.raises(InputError, match="changed after the gate started"):
        stages.score_part(work, plan["parts"][0])


def test_a_batch_of_files_is_read_once_each_and_never_held_whole(tmp_path, files, frames, monkeypatch):
    """Each file is decoded and hash-checked once (when scored); the whole-batch checks and the
    outputs read the copy kept then, a column or a set of rows at a time: never all of it."""
    from poisonguard.kernel.batch import Batch

    batch = tmp_path / "batch"
    batch.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frames["incoming"])), 3)):
        frames["incoming"].iloc[part].to_parquet(batch / f"part-{i}.parquet", index=False)
    whole, decoded = Batch.frame, []

    def frame(self, columns=None):
        assert columns is not None, "a built-in check or the output writer asked for the whole batch as one frame"
        return whole(self, columns)

    def read_part(part, role, keep_as=None):
        decoded.append(part.path.name)
        return real_read_part(part, role, keep_as)

    real_read_part = stages.read_part
    monkeypatch.setattr(Batch, "frame", frame)
    monkeypatch.setattr(stages, "read_part", read_part)
    stages._LOADED.clear()
    _, staged = _staged(tmp_path / "work", tmp_path / "staged", files["reference"], batch, files["holdout"])
    assert sorted(decoded) == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    direct = run_gate(GateInputs(files["reference"], files["incoming"], "y", holdout=files["holdout"]),
                      out_dir=tmp_path / "direct")
    assert _stable(staged.document) == _stable(direct.document)


def test_without_the_kept_copy_a_part_is_read_again_from_its_file(tmp_path, files, frames):
    work, batch = tmp_path / "work", tmp_path / "batch"
    batch.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frames["incoming"])), 2)):
        frames["incoming"].iloc[part].to_parquet(batch / f"part-{i}.parquet", index=False)
    stages._LOADED.clear()
    _, first = _staged(work, tmp_path / "a", files["reference"], batch, files["holdout"])
    (work / "parts" / "00001" / "rows.arrow").unlink()
    again = stages.finish(work, tmp_path / "b")
    assert _stable(again.document) == _stable(first.document)
