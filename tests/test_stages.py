"""The staged gate (what Airflow runs task by task) decides exactly like the one-call gate."""

from __future__ import annotations

import json

from poisonguard import stages
from poisonguard.gate import run_gate


def _stable(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "run"}


def test_stages_give_the_same_verdict_as_run_gate(tmp_path, files):
    direct = run_gate(files["reference"], files["incoming"], label="y", out_dir=tmp_path / "direct",
                      holdout=files["holdout"])
    work = tmp_path / "work"
    summary = stages.prepare(files["reference"], files["incoming"], label="y", work_dir=work,
                             holdout=files["holdout"])
    for name in summary["checks"]:
        info = stages.run_stage(work, name, out_dir=tmp_path / "staged")
        assert json.loads(json.dumps(info)) == info  # small and JSON-safe: fit for XCom
    staged = stages.finish(work, tmp_path / "staged")
    assert _stable(staged.document) == _stable(direct.document)
    on_disk = json.loads((tmp_path / "staged" / "verdict.json").read_text())
    assert _stable(on_disk) == _stable(json.loads((tmp_path / "direct" / "verdict.json").read_text()))


def test_a_missing_stage_blocks(tmp_path, files):
    work = tmp_path / "work"
    stages.prepare(files["reference"], files["incoming"], label="y", work_dir=work, holdout=files["holdout"])
    run = stages.finish(work, tmp_path / "out")
    assert not run.verdict.promoted
    assert {r.code for r in run.verdict.reasons} == {"check_error"}
