"""The Airflow DAG ``poisonguard_dvc_gate``: it imports fast and light, and ``dag.test()`` fails
the run on block (nothing moves) and promotes on pass. Airflow runs in subprocesses with the
session's own AIRFLOW_HOME (the shared fixtures in conftest.py), so its config and metadata DB
never leak into other tests."""

from __future__ import annotations

import json

import pytest

from support.dvc import ROOT, build_template, make_project, run

DAG_FILE = ROOT / "dags" / "poisonguard_dvc_gate.py"

_INSPECT = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["dag_object"]
# The poisonguard package itself may be imported (Airflow loads its plugin); its DVC code may not.
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"dvc", "pandas", "sklearn"}
               | {m for m in sys.modules if m.startswith(("poisonguard.dvc", "poisonguard.engine.stages"))})
try:
    dag.params.validate()
    missing = None
except Exception as e:
    missing = type(e).__name__
print(json.dumps({"dag_id": dag.dag_id, "tasks": dag.task_ids, "params": sorted(dag.params.keys()),
                  "heavy": heavy, "missing": missing}))
"""

_TEST_RUN = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["dag_object"]
print("STATE", dag.test(run_conf=json.loads(sys.argv[2])).state)
"""


def test_the_dag_file_is_light_and_asks_for_repo_path_and_label(airflow_parse_home):
    proc = airflow_parse_home.python(_INSPECT, str(DAG_FILE))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info == {"dag_id": "poisonguard_dvc_gate", "tasks": ["gate_and_promote"], "heavy": [],
                    "params": ["label", "out_dir", "path", "policy", "push", "repo", "rev"],
                    "missing": "ParamValidationError"}


@pytest.mark.e2e
@pytest.mark.slow
def test_dag_test_fails_on_block_and_promotes_on_pass(tmp_path, airflow_home):
    project = make_project(build_template(tmp_path / "template"), tmp_path / "p")
    conf = {"repo": str(project.repo), "path": "data/credit.parquet", "label": "status",
            "policy": str(project.policy), "out_dir": str(tmp_path / "out")}

    project.new_version("flips_20")
    before = project.state()
    blocked = airflow_home.python(_TEST_RUN, str(DAG_FILE), json.dumps(conf))
    assert "STATE failed" in blocked.stdout, blocked.stdout[-3000:] + blocked.stderr[-3000:]
    assert "AirflowFailException" in blocked.stdout + blocked.stderr
    assert project.state() == before

    project.new_version("clean_1")
    passed = airflow_home.python(_TEST_RUN, str(DAG_FILE), json.dumps(conf))
    assert "STATE success" in passed.stdout, passed.stdout[-3000:] + passed.stderr[-3000:]
    promoted = run(project.repo, "git", "rev-parse", "poisonguard/credit/promoted^{commit}")
    assert promoted == run(project.repo, "git", "rev-parse", "HEAD") == run(
        project.git_remote, "git", "rev-parse", "poisonguard/credit/v2^{commit}")
