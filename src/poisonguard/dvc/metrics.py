"""The verdict's numbers as a flat DVC metrics file, so ``dvc metrics show`` / ``dvc metrics diff``
compare gate runs across versions.

Keys are dotted paths (``checks.label_flips.mean_surprise``); values are numbers only (booleans
as 0/1); lists and strings are left out. Built from the documented verdict.json fields only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from poisonguard.kernel.fsio import atomic_write_bytes

METRICS_FILE = "metrics.json"


def _numbers(prefix: str, value: Any) -> Iterator[tuple[str, float | int]]:
    if isinstance(value, bool):
        yield prefix, int(value)
    elif isinstance(value, int | float):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key in sorted(value):
            yield from _numbers(f"{prefix}.{key}", value[key])


def verdict_metrics(verdict: Mapping[str, Any]) -> dict[str, float | int]:
    """Flat numbers of a verdict.json document: decision, counts, and every check's numbers."""
    quarantined = len(verdict["quarantined_rows"])
    rows = verdict.get("rows", {}).get("incoming", verdict.get("provenance", {}).get("rows"))
    flat: dict[str, float | int] = {"promoted": int(verdict["decision"] == "promote"),
                                    "reasons": len(verdict["reasons"]), "quarantined_rows": quarantined}
    if rows:
        flat |= {"rows": rows, "quarantined_fraction": round(quarantined / rows, 6)}
    for name, check in sorted(verdict["checks"].items()):
        flat[f"checks.{name}.failed"] = int(check["status"] in ("fail", "error"))
        flat[f"checks.{name}.flagged_rows"] = check["flagged_rows"]
        flat.update(_numbers(f"checks.{name}", check.get("metrics", {})))
    return flat


def write_metrics(verdict_file: Path, metrics_file: Path | None = None) -> Path:
    """Write the metrics of ``verdict_file`` (default: ``metrics.json`` beside it); returns its path."""
    target = metrics_file or verdict_file.with_name(METRICS_FILE)
    flat = verdict_metrics(json.loads(verdict_file.read_text(encoding="utf-8")))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, (json.dumps(flat, indent=2, allow_nan=False) + "\n").encode())
    return target
