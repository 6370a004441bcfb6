"""Real Airflow for the tests: a migrated metadata DB in a temporary AIRFLOW_HOME, Airflow's own
CLI and Python run in subprocesses with that home (so nothing leaks into ``.airflow`` or into
other tests), and the long-running services (scheduler, api-server) started on loopback and
always stopped.

Also the data every Airflow test gates: a store with the ``synthetic`` dataset and batches
landed under a landing root, and a gate policy that runs every check in seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.kernel.telemetry import TELEMETRY_OFF
from support.policies import fast_policy

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SYNTHETIC = ROOT / "datasets" / "synthetic"
BIN = Path(sys.executable).parent
# Every check runs, for real, in seconds: smaller models and fewer noise draws, no Evidently HTML.
FAST_POLICY = fast_policy(every_check=True)


# The Airflow connection the operators read the signing key from (an environment variable here;
# a secrets backend in production).
SIGNING_CONNECTION = {"AIRFLOW_CONN_POISONGUARD_SIGNING": json.dumps(
    {"conn_type": "generic", "login": "pytest", "password": "a-test-signing-key-0123456789"})}


def signing_key():
    """The key of :data:`SIGNING_CONNECTION`: the store is signed with it, as Airflow signs."""
    from poisonguard.kernel.signing import SigningKey

    return SigningKey.from_text("a-test-signing-key-0123456789", "pytest")


def open_store(root: Path):
    """The test store of ``synthetic`` under ``root``, opened with its key."""
    from poisonguard.store.dataset import DatasetStore

    return DatasetStore(root, "synthetic", key=signing_key())


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow process that keeps everything in ``home``."""
    return {**os.environ, **TELEMETRY_OFF, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO", **extra}


@dataclass
class AirflowHome:
    """An AIRFLOW_HOME with a migrated SQLite metadata DB."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)

    def airflow(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(BIN / "airflow"), *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def python(self, code: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=False)


def migrated_home(path: Path, **extra: str) -> AirflowHome:
    home = AirflowHome(path, airflow_env(path, **extra))
    home.airflow("db", "migrate")
    return home


# --------------------------------------------------------------------------- dag.test() in a subprocess

_DAG_TEST = """
import json, runpy, sys
from datetime import UTC, datetime
dag = runpy.run_path(sys.argv[1])["dag"]
logical_date = datetime.fromisoformat(sys.argv[3]).replace(tzinfo=UTC) if sys.argv[3] else None
run = dag.test(logical_date=logical_date, run_conf=json.loads(sys.argv[2]))
tis = {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
       for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tis}))
"""


@dataclass(frozen=True)
class TestedRun:
    state: str
    run_id: str
    tasks: dict[str, str]
    output: str


def dag_test(home: AirflowHome, dag_file: str, conf: dict[str, Any], logical_date: str | None = None,
             timeout: float = 900) -> TestedRun:
    """Run ``dags/<dag_file>`` with ``dag.test()`` (every task, in one process) and return each
    task's final state."""
    proc = home.python(_DAG_TEST, str(DAGS / dag_file), json.dumps(conf), logical_date or "", timeout=timeout)
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"dag.test() of {dag_file} did not finish:\n{output[-6000:]}"
    result = json.loads(lines[-1].removeprefix("RESULT "))
    return TestedRun(result["state"], result["run_id"], result["tasks"], output)


# --------------------------------------------------------------------------- services on loopback

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Services:
    """Airflow processes started by a test, and how to reach the api-server."""

    home: AirflowHome
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str, *args: str) -> None:
        with open(self.home.path / f"{name}.log", "wb") as log:  # the child keeps its own copy
            self.processes[name] = subprocess.Popen([str(BIN / "airflow"), *args], stdout=log,
                                                    stderr=subprocess.STDOUT, env=self.home.env,
                                                    start_new_session=True, preexec_fn=_die_with_parent)

    def stop(self) -> None:
        """SIGTERM each process group we started, then SIGKILL what is left after 30 s."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.home.path / f"{name}.log").read_text(errors="replace")[-4000:]

    def assert_alive(self) -> None:
        for name, proc in self.processes.items():
            assert proc.poll() is None, f"airflow {name} exited with {proc.returncode}:\n{self.log(name)}"

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """Call the REST API (``/api/v2/...``) as the admin user; returns the decoded JSON."""
        headers = {"Content-Type": "application/json"}
        if not path.startswith("/auth/"):
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: HTTP {e.code}: {e.read().decode()[:2000]}") from None
        return json.loads(text) if text else None

    def get_text(self, path: str) -> str:
        req = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {self.token()}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return str(resp.read().decode())

    def status_without_login(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=30) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def token(self) -> str:
        if self._token is None:
            self._token = self.request("POST", "/auth/token", {"username": "admin", "password": "admin"})[
                "access_token"]
        return self._token

    def wait_until(self, what: str, condition: Any, timeout: float, every: float = 3) -> Any:
        """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.assert_alive()
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)


def _die_with_parent() -> None:
    """Linux: SIGTERM the service if the test process dies without running its finalizers."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def running_services(home: AirflowHome, *names: str) -> Iterator[Services]:
    """Start ``names`` (``scheduler``, ``api-server``, ``dag-processor``) and stop them on exit,
    whatever happens. The api-server listens on a free loopback port; the scheduler serves no
    logs over the network (the api-server reads them from disk)."""
    services = Services(home, free_port())
    # Tasks report to this api-server; the admin's password is known to the test.
    home.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{services.base_url}/execution/"
    (home.path / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "admin"}))
    try:
        if "api-server" in names:  # first: tasks report to it from their first second
            services.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(services.port))
            services.wait_until("the api-server", lambda: _answers(services.base_url + "/api/v2/monitor/health"), 180, 2)
        for name in (n for n in names if n != "api-server"):
            services.start(name, *({"scheduler": ("scheduler", "--skip-serve-logs")}.get(name, (name,))))
        yield services
    finally:
        services.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


# --------------------------------------------------------------------------- a store and landed batches

@dataclass(frozen=True)
class GateData:
    """A store with the ``synthetic`` dataset initialised, a landing root, and a fast policy."""

    store_root: Path
    landing_root: Path
    policy: Path

    def land(self, batch: str, scenario: str, *, files: int = 1) -> Path:
        """Land ``datasets/synthetic/incoming/<scenario>.parquet`` as batch ``batch``, split into
        ``files`` Parquet files (one mapped scoring task each)."""
        frame = pd.read_parquet(SYNTHETIC / "incoming" / f"{scenario}.parquet")
        folder = self.landing_root / "synthetic" / batch
        folder.mkdir(parents=True, exist_ok=True)
        for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
            frame.iloc[rows].to_parquet(folder / f"part-{i:03d}.parquet", index=False)
        return folder

    def conf(self) -> dict[str, str]:
        """The Params of ``poisonguard_ingest`` that point a run at this data."""
        return {"store_root": str(self.store_root), "landing_root": str(self.landing_root), "policy": str(self.policy)}


def gate_data(root: Path) -> GateData:
    from poisonguard.store.dataset import DatasetStore
    from poisonguard.store.records import Actor

    data = GateData(root / "store", root / "landing", root / "policy.yml")
    data.policy.write_text(FAST_POLICY)
    DatasetStore.create(data.store_root, "synthetic", golden=SYNTHETIC / "reference.parquet", label="label",
                        holdout=SYNTHETIC / "holdout.parquet", key=signing_key(), actor=Actor(kind="test", user="pytest"))
    return data
