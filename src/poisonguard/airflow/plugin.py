"""An Airflow 3 plugin for the api-server: the gate's reports, shown in the Airflow UI.

- ``GET /poisonguard/reports/<dataset>/<batch>`` returns the report the gate wrote for the batch
  (from the store under ``$POISONGUARD_STORE``, else ``$AIRFLOW_HOME/poisonguard/store``);
- ``GET /poisonguard/`` lists every gated batch of every dataset in that store, newest first,
  with its decision and a link to its report; the plugin's external view puts it in the UI's
  navigation ("poisonguard reports", under Browse).

Both answer a user Airflow lets read DAG runs; anyone else gets 401/403 (plugin apps are not
authenticated by Airflow, so the routes ask Airflow's own auth dependency, which reads the UI's
session cookie or a bearer token). The tasks ``gate.finish`` and ``gate.promote`` link to their
batch's report (the extra link "poisonguard report", :class:`~poisonguard.airflow.operators.ReportLink`),
and so does the review of a blocked batch. Registered through the ``airflow.plugins`` entry point.

Every Airflow process loads plugins (task processes do, for macros), so this module imports
nothing heavy: the FastAPI app is built the first time the api-server asks for it.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations (``Request``,
# imported inside reports_app) at run time.
import json
from functools import cache
from pathlib import Path
from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

from poisonguard.airflow.locations import REPORTS_URL_PREFIX

INDEX_ROUTE = "poisonguard"  # the UI's route of the external view (it shows the index in a frame)


def gated_batches(root: Path) -> list[dict[str, Any]]:
    """Every batch with a verdict under the store ``root``: dataset, batch, decision, row counts;
    datasets by name, batches newest name first. Folders that are not store names are left out."""
    from poisonguard.errors import UsageError
    from poisonguard.store.records import check_name

    def named(folder: Path, kind: str) -> bool:
        try:
            check_name(folder.name, kind)
        except UsageError:
            return False
        return folder.is_dir()

    out: list[dict[str, Any]] = []
    for dataset in sorted(d for d in (root.iterdir() if root.is_dir() else ()) if named(d, "dataset")):
        runs = dataset / "runs"
        for batch in sorted((b for b in (runs.iterdir() if runs.is_dir() else ()) if named(b, "batch")), reverse=True):
            try:
                verdict = json.loads((batch / "verdict.json").read_text())
            except (OSError, ValueError):
                continue
            rows = verdict.get("rows") or {}
            out.append({"dataset": dataset.name, "batch": batch.name, "decision": str(verdict.get("decision")),
                        "rows": rows.get("incoming"), "quarantined": rows.get("quarantined"),
                        "report": (batch / "report.html").is_file()})
    return out


def index_html(root: Path, batches: list[dict[str, Any]], base: str = REPORTS_URL_PREFIX) -> str:
    """The index page: one row per gated batch, linking to its report at ``<base>/reports/...``."""
    from html import escape

    rows = []
    for b in batches:
        name = escape(b["batch"])
        href = escape(f"{base.rstrip('/')}/reports/{b['dataset']}/{b['batch']}")
        link = f'<a href="{href}">{name}</a>' if b["report"] else name
        rows.append(f'<tr><td>{escape(b["dataset"])}</td><td>{link}</td>'
                    f'<td class="{escape(b["decision"])}">{escape(b["decision"])}</td>'
                    f'<td>{b["quarantined"]} of {b["rows"]}</td></tr>')
    body = ("<table><tr><th>dataset</th><th>batch</th><th>decision</th><th>quarantined rows</th></tr>"
            + "".join(rows) + "</table>") if rows else f"<p>No gated batch in {escape(str(root))} yet.</p>"
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>poisonguard reports</title><style>"
            "body{font-family:sans-serif;margin:1.5em}td,th{padding:.3em .8em;text-align:left}"
            ".block{color:#b3261e;font-weight:bold}.promote{color:#1e7b34}</style></head><body>"
            f"<h1>poisonguard reports</h1><p>Store: <code>{escape(str(root))}</code></p>{body}</body></html>")


@cache
def reports_app() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse

    from poisonguard.airflow import locations
    from poisonguard.errors import UsageError
    from poisonguard.store.records import check_name

    app = FastAPI(title="poisonguard", description="Reports of poisonguard gate runs.")
    readers = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]

    @app.get("/", dependencies=readers, response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        root = locations.store_root()
        # Links start at the app's mount point (root_path: "/poisonguard", behind any prefix the
        # api-server is served under).
        return HTMLResponse(index_html(root, gated_batches(root), base=request.scope.get("root_path", "")))

    @app.get("/reports/{dataset}/{batch}", dependencies=readers)
    def report(dataset: str, batch: str) -> FileResponse:
        try:
            check_name(dataset, "dataset")
            check_name(batch, "batch")
        except UsageError as e:
            raise HTTPException(400, str(e)) from None
        path = locations.store_root() / dataset / "runs" / batch / "report.html"
        if not path.is_file():
            raise HTTPException(404, f"no report for batch '{batch}' of '{dataset}'.")
        return FileResponse(path, media_type="text/html")

    return app


class PoisonguardPlugin(AirflowPlugin):
    name = "poisonguard"

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        # The index in the UI's navigation (Browse); href is relative to the UI's base URL.
        return [{"name": "poisonguard reports", "href": REPORTS_URL_PREFIX.lstrip("/") + "/",
                 "destination": "nav", "category": "browse", "url_route": INDEX_ROUTE}]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": reports_app(), "url_prefix": REPORTS_URL_PREFIX, "name": "poisonguard reports"}]
