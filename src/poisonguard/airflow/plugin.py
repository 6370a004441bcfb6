"""An Airflow 3 plugin for the api-server: a batch's report.html, shown in the Airflow UI.

``GET /poisonguard/reports/<dataset>/<batch>`` returns the report the gate wrote for the batch
(from the store under ``$POISONGUARD_STORE``, else ``$AIRFLOW_HOME/poisonguard/store``) to a
user Airflow lets read DAG runs; anyone else gets 401/403 (plugin apps are not authenticated
by Airflow, so the route asks Airflow's own auth dependency). The review of a blocked batch
links to it. Registered through the ``airflow.plugins`` entry point.

Every Airflow process loads plugins (task processes do, for macros), so this module imports
nothing heavy: the FastAPI app is built the first time the api-server asks for it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

from poisonguard.airflow.locations import REPORTS_URL_PREFIX


@cache
def reports_app() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse

    from poisonguard.airflow import locations
    from poisonguard.errors import UsageError
    from poisonguard.store.records import check_name

    app = FastAPI(title="poisonguard", description="Reports of poisonguard gate runs.")

    @app.get("/reports/{dataset}/{batch}", dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))])
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
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": reports_app(), "url_prefix": REPORTS_URL_PREFIX, "name": "poisonguard reports"}]
