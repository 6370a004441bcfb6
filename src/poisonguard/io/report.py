"""The human report: one self-contained HTML page per run (Evidently's drift page sits beside it)."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from poisonguard.kernel.results import GateRun

MAX_ROWS_SHOWN = 200
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}
.banner{padding:1rem 1.5rem;border-radius:8px;font-size:1.4rem;font-weight:600}
.promote{background:#e3f6e8;color:#14532d}.block{background:#fde8e8;color:#7f1d1d}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}.pass{color:#166534}.warn{color:#92400e}.fail,.error{color:#b91c1c;font-weight:600}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:4px}pre{padding:.6rem;overflow:auto}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def render_report(run: GateRun, quarantine: pd.DataFrame) -> str:
    """The report of ``run``; ``quarantine`` is the frame written as quarantine.parquet."""
    doc = run.document
    v = run.verdict
    decision = str(v.decision)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>poisonguard: {decision}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<div class='banner {decision}'>{decision.upper()} — {len(v.quarantined_rows)} of {v.n_rows} rows "
             f"quarantined</div>"]
    if v.reasons:
        parts.append("<h2>Why it was blocked</h2>" + _table(["check", "code", "message"],
                     [[escape(r.check), f"<code>{escape(r.code)}</code>", escape(r.message)] for r in v.reasons]))
    if v.warnings:
        parts.append("<h2>Warnings</h2>" + _table(["check", "code", "message"],
                     [[escape(r.check), f"<code>{escape(r.code)}</code>", escape(r.message)] for r in v.warnings]))
    rows = []
    for name, s in v.checks.items():
        metrics = {k: val for k, val in s.metrics.items() if not isinstance(val, (dict, list))}
        rows.append([escape(name), f"<span class='{s.status}'>{s.status}</span>", s.flagged_rows,
                     escape(s.error or "") or "<br>".join(f"{escape(k)}: {_fmt(x)}" for k, x in metrics.items())])
    parts.append("<h2>Checks</h2>" + _table(["check", "status", "rows flagged", "summary"], rows))
    parts.append(_details(run))
    parts.append(_quarantine(quarantine))
    if "drift.html" in doc.get("artifacts", []):
        parts.append("<h2>Drift</h2><p>Evidently's per-column drift report: <a href='drift.html'>drift.html</a></p>")
    parts.append("<h2>Provenance</h2><pre>" + escape(json.dumps(doc["provenance"], indent=2)) + "</pre>")
    parts.append(f"<p>policy sha256 <code>{doc['policy_sha256']}</code> · seed {doc['seed']} · "
                 f"poisonguard {escape(doc['poisonguard_version'])} · started {doc['run']['started_at']}</p>")
    parts.append("<details><summary>Effective policy</summary><pre>"
                 + escape(json.dumps(doc["policy"], indent=2)) + "</pre></details></body></html>")
    return "\n".join(parts)


def _details(run: GateRun) -> str:
    by_check = {r.check: r.metrics for r in run.results}
    out = []
    pairs = by_check.get("label_flips", {}).get("flip_pairs") or []
    if pairs:
        out.append("<h3>Label flips by (given, predicted) label</h3>" + _table(
            ["given", "looks like", "rows flagged", "share of flagged", "rate in batch", "rate in reference",
             "p-value", "targeted"],
            [[_fmt(p["given"]), _fmt(p["predicted"]), p["flagged"], _fmt(p["share_of_flagged"]),
              _fmt(p["batch_rate"]), _fmt(p["reference_rate"]), _fmt(p["p_value"]),
              "yes" if p["significant"] else ""] for p in pairs]))
    patterns = by_check.get("backdoor", {}).get("patterns") or []
    if patterns:
        out.append("<h3>Backdoor patterns</h3>" + _table(
            ["trigger", "label", "rows", "label share", "reference share", "lift"],
            [[escape(json.dumps(p["trigger"])), _fmt(p["label"]), p["rows"], _fmt(p["purity"]),
              _fmt(p["reference_label_share"]), _fmt(p["lift"])] for p in patterns]))
    acc = by_check.get("baseline", {}).get("accuracy")
    if acc:
        out.append("<h3>Baseline comparison on the trusted holdout</h3>" + _table(
            ["model trained on", "holdout accuracy"], [[escape(k), _fmt(x)] for k, x in acc.items()]))
    return "<h2>Details</h2>" + "".join(out) if out else ""


def _quarantine(q: pd.DataFrame) -> str:
    if q.empty:
        return "<h2>Quarantine</h2><p>No rows quarantined.</p>"
    shown = q.head(MAX_ROWS_SHOWN)
    note = f" (first {MAX_ROWS_SHOWN} of {len(q)}; all are in quarantine.parquet)" if len(q) > MAX_ROWS_SHOWN else ""
    return f"<h2>Quarantine{escape(note)}</h2>" + shown.to_html(index=False, float_format=lambda x: f"{x:.4g}")
