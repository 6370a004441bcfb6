"""The api-server plugin as Airflow serves it: Airflow's own FastAPI app (``create_app``, which
mounts the plugin and installs its auth manager), called with FastAPI's TestClient and a token
from Airflow's ``/auth/token``. The index lists the store's gated batches with their decision
and links to their reports, the report route serves report.html, both refuse anyone not signed
in, and the plugin's external view puts the index in the UI's navigation."""

from __future__ import annotations

import json

from support.airflow import AirflowHome

_CLIENT = """
import json
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
token = client.post("/auth/token", json={"username": "admin", "password": "admin"}).json()["access_token"]
signed_in = {"Authorization": f"Bearer {token}"}
out = {}
for path in ["/poisonguard/", "/poisonguard/reports/credit/2025-01-02",
             "/poisonguard/reports/credit/2025-01-09", "/poisonguard/reports/credit/..%2Fx"]:
    r = client.get(path, headers=signed_in, follow_redirects=False)
    out[path] = {"status": r.status_code, "text": r.text, "location": r.headers.get("location")}
out["anonymous"] = {p: client.get(p).status_code for p in ["/poisonguard/", "/poisonguard/reports/credit/2025-01-02"]}
plugins = client.get("/api/v2/plugins", headers=signed_in).json()["plugins"]
out["external_views"] = [p["external_views"] for p in plugins if p["name"] == "poisonguard"]
print("RESULT " + json.dumps(out))
"""


def _gated(store, dataset: str, batch: str, decision: str, quarantined: int, report: str | None) -> None:
    """A batch's run folder as the gate leaves it: verdict.json, and report.html."""
    run = store / dataset / "runs" / batch
    run.mkdir(parents=True)
    (run / "verdict.json").write_text(json.dumps({"decision": decision,
                                                  "rows": {"incoming": 600, "quarantined": quarantined}}))
    if report is not None:
        (run / "report.html").write_text(report)


def test_the_plugin_lists_gated_batches_and_serves_their_reports_to_signed_in_users(airflow_home, tmp_path):
    store = tmp_path / "store"
    _gated(store, "credit", "2025-01-02", "block", 60, "<!doctype html><p>the blocked report</p>")
    _gated(store, "credit", "2025-01-03", "promote", 1, "<!doctype html><p>the clean report</p>")
    _gated(store, "synthetic", "2025-02-01", "block", 7, None)  # finished without a report: listed, no link
    (store / "credit" / "runs" / "not a batch").mkdir()  # not a store name: left out
    (airflow_home.path / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "admin"}))
    home = AirflowHome(airflow_home.path, {**airflow_home.env, "POISONGUARD_STORE": str(store)})

    proc = home.python(_CLIENT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))

    index = out["/poisonguard/"]
    assert index["status"] == 200
    page = index["text"]
    rows = page.split("<tr>")[2:]
    assert [r.split("</td>")[1] for r in rows] == [  # datasets by name, batches newest first
        '<td><a href="/poisonguard/reports/credit/2025-01-03">2025-01-03</a>',
        '<td><a href="/poisonguard/reports/credit/2025-01-02">2025-01-02</a>', "<td>2025-02-01"]
    assert '<td class="block">block</td><td>60 of 600</td>' in page and "not a batch" not in page

    assert out["/poisonguard/reports/credit/2025-01-02"]["status"] == 200
    assert out["/poisonguard/reports/credit/2025-01-02"]["text"] == "<!doctype html><p>the blocked report</p>"
    assert out["/poisonguard/reports/credit/2025-01-09"]["status"] == 404
    assert out["/poisonguard/reports/credit/..%2Fx"]["status"] in (400, 404)
    assert out["anonymous"] == {"/poisonguard/": 401, "/poisonguard/reports/credit/2025-01-02": 401}

    [views] = out["external_views"]
    assert [(v["name"], v["href"], v["destination"], v["url_route"]) for v in views] == [
        ("poisonguard reports", "poisonguard/", "nav", "poisonguard")]
