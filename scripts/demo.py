"""make demo: run the scheduled DAG ``poisonguard_ingest`` for real, on Airflow with its embedded
SQLite metadata DB, over a few landed batches of ``synthetic`` — clean and poisoned.

What it does (idempotent: run it again and every date gives the same outcome, with no new
promotion or ledger record):

1. migrates the metadata DB in ``$AIRFLOW_HOME`` (``.airflow`` under the project);
2. creates the ``synthetic`` store (golden reference + holdout) and lands one batch per date
   under ``$POISONGUARD_LANDING/synthetic/<date>/`` (``make demo``: ``datasets/landing/``; the first split into 3 files,
   so its scoring runs as 3 mapped tasks);
3. starts an api-server and a scheduler (LocalExecutor) on loopback and backfills the dates
   with Airflow's own CLI, one run at a time, oldest first;
4. prints each date's outcome, the checks that fired, where the reports are, and what the
   ledger holds; stops the services; says how to open the UI to look at it and to review the
   blocked batches.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SYNTHETIC = ROOT / "datasets" / "synthetic"
# date -> (scenario in datasets/synthetic/incoming, files it lands as). The poisoned scenarios
# are made from clean_1, so the clean dates use clean_2 and clean_3 (otherwise the poisoned
# batches would also repeat rows of a promoted one).
BATCHES = {"2025-01-01": ("clean_2", 3), "2025-01-02": ("flips_10", 1), "2025-01-03": ("clean_3", 1),
           "2025-01-04": ("backdoor_3", 1)}
# checks/synthetic.yml with lighter models, so the demo takes minutes: every check still runs.
LIGHTER = {"checks": {"label_flips": {"model": "logistic", "n_folds": 3}, "baseline": {"model": "logistic"},
                      "drift": {"noise_draws": 2}}}
TIMEOUT_SECONDS = 40 * 60


def say(text: str = "") -> None:
    print(text, flush=True)


def environment(home: Path) -> dict[str, str]:
    from poisonguard.kernel.telemetry import TELEMETRY_OFF

    return {**os.environ, **TELEMETRY_OFF, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__PARALLELISM": "4"}


def airflow(env: dict[str, str], *args: str, allow: str | None = None) -> str:
    """Run ``airflow ARGS``; exit on failure unless its output contains ``allow``."""
    proc = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 and not (allow and allow in proc.stdout + proc.stderr):
        sys.exit(f"airflow {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def land(landing: Path) -> None:
    import numpy as np
    import pandas as pd

    for date, (scenario, files) in BATCHES.items():
        folder = landing / "synthetic" / date
        if folder.is_dir() and len(list(folder.glob("*.parquet"))) == files:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.read_parquet(SYNTHETIC / "incoming" / f"{scenario}.parquet")
        for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
            frame.iloc[rows].to_parquet(folder / f"part-{i:03d}.parquet", index=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(env: dict[str, str], home: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """Start ``airflow <name>`` in its own process group, logging to ``$AIRFLOW_HOME/demo-<name>.log``."""
    with open(home / f"demo-{name}.log", "wb") as log:
        return subprocess.Popen([str(BIN / "airflow"), name, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def check_alive(services: list[subprocess.Popen[bytes]], home: Path) -> None:
    for proc in services:
        if proc.poll() is not None:
            sys.exit(f"{' '.join(map(str, proc.args[1:2]))} exited with {proc.returncode}; see {home}/demo-*.log")


def wait_for(url: str, services: list[subprocess.Popen[bytes]], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(2)


def stop(services: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group started here; SIGKILL what is left after 60 s."""
    for proc in services:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in services:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def json_output(env: dict[str, str], *args: str) -> list[dict[str, str]]:
    """The JSON list an ``airflow ... --output json`` command prints (after any log lines)."""
    for line in reversed(airflow(env, *args, "--output", "json").splitlines()):
        if line.startswith("["):
            return list(json.loads(line))
    return []


def runs_by_date(env: dict[str, str]) -> dict[str, dict[str, str]]:
    runs = json_output(env, "dags", "list-runs", "poisonguard_ingest")
    return {r["logical_date"][:10]: r for r in runs if r["logical_date"] and r["logical_date"][:10] in BATCHES}


def main() -> int:
    from poisonguard.airflow.locations import landing_root, store_root
    from poisonguard.store.dataset import DatasetStore
    from poisonguard.store.records import Actor

    started = time.monotonic()
    home = Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow").resolve()
    env = environment(home)
    os.environ.update({"AIRFLOW_HOME": str(home)})
    store, landing = store_root(), landing_root()
    say(f"AIRFLOW_HOME={home}")
    say("1. metadata DB (SQLite): airflow db migrate")
    airflow(env, "db", "migrate")
    say(f"2. store {store}/synthetic and {len(BATCHES)} landed batches in {landing}/synthetic/")
    DatasetStore.create(store, "synthetic", golden=SYNTHETIC / "reference.parquet", label="label",
                        holdout=SYNTHETIC / "holdout.parquet", unsigned=True,
                        actor=Actor(kind="demo", user=os.environ.get("USER")))
    land(landing)
    for date, (scenario, files) in BATCHES.items():
        say(f"   {date}: {scenario} ({files} file{'s' if files > 1 else ''})")
    airflow(env, "dags", "reserialize")
    airflow(env, "dags", "unpause", "poisonguard_ingest")  # a paused DAG's backfill runs wait
    say("3. api-server + scheduler (LocalExecutor) on loopback; airflow backfill create, one date at a time")
    say("   policy: checks/synthetic.yml with lighter models")
    dates = sorted(BATCHES)
    # Before the scheduler starts: SQLite takes one writer at a time.
    # (An interrupted earlier demo may have left its backfill active: it resumes with the scheduler.)
    airflow(env, "backfill", "create", "--dag-id", "poisonguard_ingest", "--from-date", dates[0],
            "--to-date", dates[-1], "--max-active-runs", "1", "--reprocess-behavior", "completed",
            "--dag-run-conf", json.dumps({"policy_overrides": LIGHTER}), allow="AlreadyRunningBackfill")
    port = free_port()
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    services = []
    try:
        services.append(start(env, home, "api-server", "--host", "127.0.0.1", "--port", str(port)))
        wait_for(f"http://127.0.0.1:{port}/api/v2/monitor/health", services)
        services.append(start(env, home, "scheduler", "--skip-serve-logs"))
        deadline = time.monotonic() + TIMEOUT_SECONDS
        shown: set[str] = set()
        while len(shown) < len(dates):
            runs = runs_by_date(env)
            for date in dates:
                run = runs.get(date)
                if run and run["state"] in ("success", "failed") and date not in shown:
                    shown.add(date)
                    say(f"   {date}: run {run['state']} ({time.monotonic() - started:.0f} s in)")
            waiting = [f"{d} ({runs[d]['state'] if d in runs else 'not started'})" for d in dates if d not in shown]
            if waiting:  # a line at least every 15 s while it waits, saying for what
                say(f"   ... waiting for {', '.join(waiting)} ({time.monotonic() - started:.0f} s in)")
            check_alive(services, home)
            if time.monotonic() > deadline:
                sys.exit(f"timed out after {TIMEOUT_SECONDS} s; see {home}/demo-*.log")
            time.sleep(15)
    finally:
        stop(services)
    report(env, store, runs_by_date(env))
    say(f"\nmake demo took {time.monotonic() - started:.0f} s.")
    return 0


def report(env: dict[str, str], store: Path, runs: dict[str, dict[str, str]]) -> None:
    from poisonguard.store.dataset import DatasetStore

    say("\n4. outcome per date")
    for date in sorted(BATCHES):
        run = runs[date]
        verdict_file = store / "synthetic" / "runs" / date / "verdict.json"
        verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else None
        states = json_output(env, "tasks", "states-for-dag-run", "poisonguard_ingest", run["run_id"])
        failed = sorted({s["task_id"] for s in states if s["state"] == "failed"})
        decision = verdict["decision"].upper() if verdict else "NO VERDICT"
        say(f"\n   {date}  {BATCHES[date][0]:<11} run {run['state']:<8} {decision}")
        if verdict:
            say(f"      {verdict['rows']['quarantined']} of {verdict['rows']['incoming']} rows quarantined")
            for reason in verdict["reasons"]:
                say(f"      - {reason['check']}/{reason['code']}: {reason['message']}")
            say(f"      report: {verdict_file.with_name('report.html')}")
        if failed:
            say(f"      failed tasks (red in the grid): {', '.join(failed)}")
    ds = DatasetStore(store, "synthetic")
    promoted = ds.promoted()
    say(f"\n   store {ds.path}: {len(promoted)} batch(es) promoted "
        f"({', '.join(p['batch'] for p in promoted) or 'none'}); ledger: {len(ds.records())} record(s)")
    home = env["AIRFLOW_HOME"]
    say("\nLook at it in the Airflow UI:")
    say("   make airflow-ui      (airflow standalone on http://localhost:8080, same AIRFLOW_HOME)")
    say(f"   log in as admin; the password is in {home}/simple_auth_manager_passwords.json.generated")
    say("   Dags -> poisonguard_ingest -> Grid: one column per date; in a blocked date the checks that fired and")
    say("   gate.promote are red. Blocked batches wait for you under Browse -> Required Actions")
    say("   (poisonguard_review): approve or reject with a reason; an approved batch is then promoted.")


if __name__ == "__main__":
    sys.exit(main())
