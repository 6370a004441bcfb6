"""DAG hygiene: every DAG in dags/ imports through Airflow's own DagBag with no error; parsing a
DAG file queries no database, reads no connection or variable, opens no file but Python
modules, starts no process, opens no socket and imports nothing heavy; the gate's task layout
and the manual DAG's Params are what the docs promise.

Each check runs in a subprocess with its own AIRFLOW_HOME, so the parse is a cold one."""

from __future__ import annotations

import json

import pytest

from support.airflow import DAGS

DAG_IDS = {"poisonguard_ingest", "poisonguard_manual", "poisonguard_review", "poisonguard_dvc_gate", "poisonguard_canary"}
HEAVY = {"sklearn", "great_expectations", "evidently", "pandas", "pyarrow", "scipy", "dvc", "poisonguard.engine.stages",
         "poisonguard.checks", "poisonguard.store"}

_PARSE_WATCHED = """
import json, os, runpy, sys
from airflow.sdk import DAG, BaseHook, Connection, Variable

# Airflow's own lazy loading (config, logging, timetables: croniter runs `file` once) happens
# before the watch starts: a DAG with a schedule is built first.
DAG("warm_up", schedule="@daily")
from sqlalchemy import event
from sqlalchemy.engine import Engine

seen = {"queries": [], "connections": [], "variables": [], "opened": [], "processes": [], "sockets": []}
event.listen(Engine, "before_cursor_execute", lambda *a: seen["queries"].append(str(a[2])[:200]))
def _refuse(kind):
    def get(*args, **kwargs):
        seen[kind].append(repr(args[-1:]))
        raise RuntimeError(f"a DAG file read a {kind[:-1]} at parse time")
    return get
Connection.get = classmethod(_refuse("connections"))
BaseHook.get_connection = classmethod(_refuse("connections"))
Variable.get = staticmethod(_refuse("variables"))
# Modules, and the data files of installed packages (Airflow reads its serialization schema,
# dill probes /dev/null) are not the DAG's I/O; anything else (datasets, store, home) is.
CODE = (".py", ".pyc", ".so", ".pth", ".typed")
LIBS = tuple(sorted({os.path.realpath(p) for p in sys.path if "site-packages" in p or p.startswith(sys.base_prefix)}))
def audit(name, args):
    if name == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if not path.endswith(CODE) and not path.startswith(LIBS + ("/dev/null",)) and not os.path.isdir(path):
            seen["opened"].append(path)
    elif name == "subprocess.Popen":
        seen["processes"].append(str(args[1])[:200])
    elif name == "socket.connect":
        seen["sockets"].append(str(args[1]))
sys.addaudithook(audit)
before = set(sys.modules)
for path in sys.argv[1:]:
    runpy.run_path(path)
loaded = sorted(set(sys.modules) - before)
print("RESULT " + json.dumps(seen | {"loaded": loaded}))
"""


def _result(proc) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_every_dag_imports_through_airflow_dagbag(airflow_parse_home):
    code = ("import json; from airflow.dag_processing.dagbag import DagBag; "
            f"bag = DagBag(dag_folder={str(DAGS)!r}); "
            "print('RESULT ' + json.dumps({'dags': sorted(bag.dag_ids), 'errors': bag.import_errors}))")
    result = _result(airflow_parse_home.python(code))
    assert result["errors"] == {}
    assert set(result["dags"]) == DAG_IDS


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_parsing_a_dag_file_does_no_io_and_imports_nothing_heavy(airflow_parse_home, dag_file):
    result = _result(airflow_parse_home.python(_PARSE_WATCHED, str(DAGS / dag_file)))
    assert result["queries"] == []
    assert result["connections"] == [] and result["variables"] == []
    assert result["processes"] == [] and result["sockets"] == []
    assert result["opened"] == []
    heavy = {m for m in result["loaded"] if m.split(".")[0] in HEAVY or m in HEAVY}
    assert heavy == set()


_LAYOUT = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["dag"]
tasks = {t.task_id: {"rule": getattr(t.trigger_rule, "value", t.trigger_rule), "down": sorted(t.downstream_task_ids), "retries": t.retries,
                     "mapped": type(t).__name__ == "MappedOperator",
                     "outlets": [getattr(o, "name", None) for o in t.outlets]} for t in dag.tasks}
print("RESULT " + json.dumps({"tasks": tasks, "leaves": sorted(t.task_id for t in dag.leaves),
                              "schedule": [type(dag.timetable).__name__, dag.timetable.expression],
                              "max_active_runs": dag.max_active_runs}))
"""


def test_the_ingest_dag_runs_one_task_per_check_and_ends_in_promote(airflow_parse_home):
    from poisonguard.airflow.catalog import CHECKS

    result = _result(airflow_parse_home.python(_LAYOUT, str(DAGS / "poisonguard_ingest.py")))
    tasks = result["tasks"]
    assert result["leaves"] == ["gate.promote", "gate.request_review"]
    # daily, and the run for day D starts once D is over (when its batch has landed)
    assert result["schedule"] == ["CronDataIntervalTimetable", "0 0 * * *"] and result["max_active_runs"] == 1
    for check in CHECKS:
        assert f"gate.checks.{check.name}" in tasks
        assert tasks[f"gate.checks.{check.name}"]["retries"] == 0  # a verdict does not change on retry
        assert (f"gate.fit.{check.name}" in tasks) == check.partitioned
    assert tasks["gate.score_parts"]["mapped"]
    # the joins wait for every check whatever its state; what follows them needs prepare to have worked
    assert tasks["gate.checks.rows_done"]["rule"] == tasks["gate.checks.done"]["rule"] == "all_done"
    assert tasks["gate.finish"]["rule"] == "all_success"
    assert tasks["gate.promote"]["outlets"] == ["poisonguard/synthetic"]
    # promote decides on finish's verdict alone; the review request is its sibling, never its upstream
    assert tasks["gate.finish"]["down"] == ["gate.promote", "gate.request_review"]
    assert tasks["gate.request_review"]["down"] == [] and tasks["gate.promote"]["rule"] == "all_success"
    assert {t: v["retries"] for t, v in tasks.items() if v["retries"]} == {}  # no task of the gate retries


# What the scheduler side does with a trigger's conf before it creates the run.
_PARAMS = """
import json, runpy, sys
from airflow.serialization.serialized_objects import DagSerialization
dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(runpy.run_path(sys.argv[1])["dag"]))
out = {}
for name, conf in json.loads(sys.argv[2]).items():
    try:
        dag.params.deep_merge(conf).validate()
        out[name] = "ok"
    except Exception as e:
        out[name] = type(e).__name__
print("RESULT " + json.dumps(out))
"""


def test_airflow_validates_the_manual_dags_params_before_anything_runs(airflow_parse_home):
    cases = {
        "good": {"dataset": "credit", "incoming": "/data/b.parquet",
                 "policy_overrides": {"checks": {"baseline": {"model": "logistic"}}, "seed": 3}},
        "no dataset": {"incoming": "/data/b.parquet"},
        "bad dataset name": {"dataset": "../etc", "incoming": "/data/b.parquet"},
        "unknown check": {"dataset": "credit", "incoming": "x", "policy_overrides": {"checks": {"nope": {}}}},
        "unknown field": {"dataset": "credit", "incoming": "x", "policy_overrides": {"thresholds": 1}},
        "bad fraction": {"dataset": "credit", "incoming": "x", "policy_overrides": {"holdout_fraction": 0.9}},
    }
    result = _result(airflow_parse_home.python(_PARAMS, str(DAGS / "poisonguard_manual.py"), json.dumps(cases)))
    assert result == {"good": "ok"} | {k: "ParamValidationError" for k in cases if k != "good"}


def test_airflow_lists_poisonguard_as_a_provider(airflow_parse_home):
    proc = airflow_parse_home.airflow("providers", "get", "poisonguard", "--output", "json")
    [info] = json.loads(proc.stdout[proc.stdout.index("["):])
    assert info == {"Provider": "poisonguard", "Version": "0.1.0"}


def test_the_api_server_plugin_is_registered_and_light_to_load(airflow_parse_home):
    plugins = json.loads(airflow_parse_home.airflow("plugins", "--output", "json").stdout.strip().splitlines()[-1])
    [plugin] = [p for p in plugins if p["name"] == "poisonguard"]
    assert plugin["fastapi_apps"] == [{"app": "fastapi.applications.FastAPI", "url_prefix": "/poisonguard",
                                       "name": "poisonguard reports"}]
    # Task processes load every plugin (for macros): the module itself must stay light.
    code = ("import json, sys; import airflow.sdk.plugins_manager; before = set(sys.modules); "
            "import poisonguard.airflow.plugin; "
            "print('RESULT ' + json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    assert _result(airflow_parse_home.python(code)) == ["poisonguard"]


def test_the_check_table_of_the_airflow_layer_is_the_core_registry():
    from poisonguard.airflow.catalog import CHECKS
    from poisonguard.checks import REGISTRY

    assert [(c.name, c.phase, c.partitioned) for c in CHECKS] == [
        (d.name, d.phase, d.partitioned) for d in REGISTRY.values()]


@pytest.mark.parametrize("name", ["synthetic", "2025-01-02", "2025-01-02T101500", "a.b~c_d", "-x", "../etc", "a:b",
                                  "", "x" * 129, "é"])
def test_dag_params_accept_the_names_the_store_accepts(name):
    import re

    from poisonguard.airflow.locations import NAME_PATTERN
    from poisonguard.errors import UsageError
    from poisonguard.store.records import check_name

    try:
        check_name(name, "batch")
        accepted = True
    except UsageError:
        accepted = False
    assert (re.match(NAME_PATTERN, name) is not None) == accepted


def test_the_gates_retries_are_its_own_whatever_the_dags_default_args_say():
    from datetime import UTC, datetime

    from airflow.sdk import DAG

    from poisonguard.airflow import poisoning_gate

    decide = {"gate.checks." + c for c in ("provenance", "schema", "outliers", "label_flips", "backdoor", "baseline",
                                            "drift", "cumulative", "rows_done", "done")} | {"gate.promote"}
    with DAG("retries_default", default_args={"retries": 3}, start_date=datetime(2025, 1, 1, tzinfo=UTC)) as dag:
        poisoning_gate(dataset="credit")
    assert {t.task_id: t.retries for t in dag.tasks if t.retries} == {}
    with DAG("retries_given", default_args={"retries": 3}, start_date=datetime(2025, 1, 1, tzinfo=UTC)) as dag:
        poisoning_gate(dataset="credit", retries=2, review_dag_id="poisonguard_review")
    retries = {t.task_id: t.retries for t in dag.tasks}
    assert {t for t, r in retries.items() if r == 2} == {"gate.prepare", "gate.score_parts", "gate.finish"} | {
        f"gate.fit.{c}" for c in ("provenance", "schema", "outliers", "label_flips")}
    assert {t for t, r in retries.items() if r == 0} == decide | {"gate.request_review"}
    with pytest.raises(ValueError, match="retries must be"):
        poisoning_gate(dataset="credit", retries=-1)
