"""The numbers a person compares across gate runs, as a flat DVC metrics file for
``dvc metrics show`` / ``dvc metrics diff``.

One number per line of the comparison, at most 3 + 2 per check (19 with the eight built-in checks):

- ``promoted``: 1 promote, 0 block;
- ``rows``: rows in the batch; ``quarantined_fraction``: the share of them held back;
- per check in the verdict, ``checks.<id>.status``: 0 pass, 1 warn, 2 fail (it blocked), 3 error
  (it could not run, which blocks); and ``checks.<id>.<headline>``: the one figure the check
  declares as its headline (:attr:`~poisonguard.checks.base.CheckDef.headline`, e.g.
  ``checks.label_flips.changed_label_estimate``), or ``checks.<id>.flagged_fraction`` (flagged
  rows / rows) for a check that declares none. A headline the run did not produce (a skipped
  check, one that errored) is left out.

Everything else stays in ``verdict.json``. Built from the documented verdict.json fields only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poisonguard.kernel.fsio import atomic_write_bytes

METRICS_FILE = "metrics.json"
STATUS_CODES = {"pass": 0, "warn": 1, "fail": 2, "error": 3}
FLAGGED_FRACTION = "flagged_fraction"


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def headline_of(name: str) -> str | None:
    """The metric check ``name`` declares as its headline (``None``: none declared, or the check
    is not installed here)."""
    from poisonguard.checks import REGISTRY

    check = REGISTRY.get(name)
    return check.headline if check is not None else None


def verdict_metrics(verdict: Mapping[str, Any]) -> dict[str, float | int]:
    """The comparison numbers of a verdict.json document (see the module docstring)."""
    rows = verdict.get("rows", {}).get("incoming", verdict.get("provenance", {}).get("rows"))
    flat: dict[str, float | int] = {"promoted": int(verdict["decision"] == "promote")}
    if rows:
        flat |= {"rows": rows, "quarantined_fraction": round(len(verdict["quarantined_rows"]) / rows, 6)}
    for name, check in sorted(verdict["checks"].items()):
        flat[f"checks.{name}.status"] = STATUS_CODES.get(check["status"], STATUS_CODES["error"])
        headline = headline_of(name)
        if headline is None:
            value = _number(check["flagged_rows"] / rows) if rows else None
            headline = FLAGGED_FRACTION
        else:
            value = _number(check.get("metrics", {}).get(headline))
        if value is not None:
            flat[f"checks.{name}.{headline}"] = value
    return flat


def write_metrics(verdict_file: Path, metrics_file: Path | None = None) -> Path:
    """Write the metrics of ``verdict_file`` (default: ``metrics.json`` beside it); returns its path."""
    target = metrics_file or verdict_file.with_name(METRICS_FILE)
    flat = verdict_metrics(json.loads(verdict_file.read_text(encoding="utf-8")))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, (json.dumps(flat, indent=2, allow_nan=False) + "\n").encode())
    return target
