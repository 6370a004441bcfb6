"""The human report: one self-contained HTML page per run (Evidently's drift page sits beside it).

Its first screen answers three questions: what was decided, why (each reason in plain words with
the number that crossed the line and its threshold), and what to do next (the exact commands).
Then inline SVG charts (no network), the checks, the details and the quarantined rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from poisonguard.kernel.results import GateRun
from poisonguard.kernel.stats import p_text

MAX_ROWS_SHOWN = 200
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#222}
.banner{padding:1rem 1.5rem;border-radius:8px;font-size:1.4rem;font-weight:600}
.promote{background:#e3f6e8;color:#14532d}.block{background:#fde8e8;color:#7f1d1d}
.why li{margin:.3rem 0}.next{background:#f5f7fb;border-radius:8px;padding:.6rem 1rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f5f5f5}.pass{color:#166534}.warn{color:#92400e}.fail,.error{color:#b91c1c;font-weight:600}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:4px}pre{padding:.6rem;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{border:1px solid #eee;border-radius:6px;padding:.4rem}
"""


def fmt(v: Any) -> str:
    """One number format for the whole page: thousands separators for large numbers, 4
    significant digits otherwise, scientific only for tiny ones; text is escaped."""
    if isinstance(v, bool) or v is None:
        return escape(str(v))
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        x = float(v)
        if not math.isfinite(x):
            return escape(str(x))
        if x == 0:
            return "0"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) < 1e-3:
            return f"{x:.1e}"
        return f"{x:.4g}"
    return escape(str(v))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class='n'>{fmt(c)}</td>" if isinstance(c, int | float | np.number)
                                    and not isinstance(c, bool) else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def render_report(run: GateRun, quarantine: pd.DataFrame) -> str:
    """The report of ``run``; ``quarantine`` is the frame written as quarantine.parquet."""
    doc = run.document
    v = run.verdict
    decision = str(v.decision)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
             f"content='width=device-width'><title>poisonguard: {decision}</title><style>{_CSS}</style></head><body>",
             f"<div class='banner {decision}'>{decision.upper()} — {fmt(len(v.quarantined_rows))} of {fmt(v.n_rows)} "
             f"rows quarantined</div>", _why(run), _next_steps(run)]
    if v.warnings:
        parts.append("<h2>Warnings</h2><ul class='why'>" + "".join(
            f"<li><b>{escape(r.check)}</b> <code>{escape(r.code)}</code>: {escape(r.message)}</li>"
            for r in v.warnings) + "</ul>")
    parts.append(_charts(run))
    rows = []
    for name, s in v.checks.items():
        metrics = {k: val for k, val in s.metrics.items() if not isinstance(val, dict | list)}
        rows.append([escape(name), f"<span class='{s.status}'>{s.status}</span>", s.flagged_rows,
                     escape(s.error or "") or "<br>".join(f"{escape(k)}: {fmt(x)}" for k, x in metrics.items())])
    parts.append("<h2>Checks</h2>" + _table(["check", "status", "rows flagged", "summary"], rows))
    parts.append(_details(run))
    parts.append(_quarantine(quarantine))
    if "drift.html" in doc.get("artifacts", []):
        parts.append("<p>Evidently's full per-column drift report: <a href='drift.html'>drift.html</a></p>")
    parts.append("<h2>Provenance</h2><pre>" + escape(json.dumps(doc["provenance"], indent=2)) + "</pre>")
    parts.append(f"<p>policy sha256 <code>{doc['policy_sha256']}</code> · seed {doc['seed']} · "
                 f"poisonguard {escape(doc['poisonguard_version'])} · started {doc['run']['started_at']}</p>")
    parts.append("<details><summary>Effective policy</summary><pre>"
                 + escape(json.dumps(doc["policy"], indent=2)) + "</pre></details></body></html>")
    return "\n".join(parts)


def _why(run: GateRun) -> str:
    """Each blocking reason in plain words, with the number that crossed the line and its bound."""
    v = run.verdict
    if not v.reasons:
        held = f"; {fmt(len(v.quarantined_rows))} row(s) are held back for review" if v.quarantined_rows else ""
        return f"<h2>Why</h2><p>No check found a reason to block the batch{held}.</p>"
    found = {(f.check, f.code): f for r in run.results for f in r.findings}
    items = []
    for r in v.reasons:
        f = found.get((r.check, r.code))
        bound = ""
        if f is not None and f.value is not None and f.threshold is not None:
            bound = f" <i>(measured {fmt(f.value)}, threshold {fmt(f.threshold)})</i>"
        if f is not None and f.null:
            bound += f"<br><small class='null'>{_null_text(f.null)}</small>"
        items.append(f"<li><b>{escape(r.check)}</b> <code>{escape(r.code)}</code>: {escape(r.message)}{bound}</li>")
    return "<h2>Why it was blocked</h2><ul class='why'>" + "".join(items) + "</ul>"


def _null_text(null: Mapping[str, Any]) -> str:
    """What a blocking test compared the batch with, in one line: how unusual the batch is."""
    p = null.get("p_value")
    level = null.get("max_p_value")
    parts = [f"compared with: {escape(str(null.get('test', '')))}"]
    if null.get("size") and null.get("rows"):
        parts.append(f"{fmt(null['size'])} pseudo-batches of {fmt(null['rows'])} rows")
    elif null.get("size"):
        parts.append(f"measured on {fmt(null['size'])} trusted rows")
    if p is not None and level is not None:
        parts.append(f"the batch's {p_text(p)} against a level of {level:.0e}")
    elif level is not None:
        parts.append(f"threshold = the null's upper {level:.1e} quantile")
    return "; ".join(parts)


def _store_of(out: Path | None) -> tuple[str, str, str] | None:
    """``(store root, dataset, batch)`` when the run's outputs are a dataset store's run directory."""
    if out is None:
        return None
    out = Path(out).resolve()
    if out.parent.name == "runs" and (out.parent.parent / "store.json").exists():
        return str(out.parent.parent.parent), out.parent.parent.name, out.name
    return None


def _next_steps(run: GateRun) -> str:
    """The exact commands a reviewer runs next."""
    v = run.verdict
    where = _store_of(run.out_dir)
    lines = []
    if where is not None:
        root, dataset, batch = where
        common = f"--store {root} --dataset {dataset}"
        if v.quarantined_rows:
            lines.append((f"poisonguard quarantine show {common} --batch {batch}", "see the held rows, their reasons "
                          "and scores"))
            lines.append((f"poisonguard quarantine release {common} --batch {batch} --rows N,N "
                          "--reviewer YOU --reason WHY", "re-gate rows you judge clean; those that pass are promoted"))
            lines.append((f"poisonguard quarantine reject {common} --batch {batch} --rows N,N --reviewer YOU "
                          "--reason WHY", "reject rows for good"))
        if not v.promoted:
            lines.append((f"poisonguard review approve {common} --batch {batch} --reviewer YOU --reason WHY",
                          "approve this very verdict (recorded in the ledger); then:"))
            lines.append((f"poisonguard promote {common} --batch {batch}", "promote the approved batch"))
            lines.append((f"poisonguard review reject {common} --batch {batch} --reviewer YOU --reason WHY",
                          "or record that it stays out"))
    else:
        out = str(run.out_dir) if run.out_dir is not None else "DIR"
        if v.quarantined_rows:
            lines.append((f"python -c \"import pandas as pd; print(pd.read_parquet('{out}/quarantine.parquet'))\"",
                          "the held rows with their reasons (_pg_reasons) and scores (_pg_score_*)"))
        if not v.promoted:
            lines.append(("poisonguard gate --dataset NAME --incoming PATH --batch ID",
                          "gate it into a dataset store to review, approve or release it with a record"))
        else:
            lines.append((f"train on {out}/clean.parquet", "the batch without its held rows"))
    if not lines:
        return ""
    body = "".join(f"<li><code>{escape(cmd)}</code> — {escape(why)}</li>" for cmd, why in lines)
    return f"<h2>What to do next</h2><div class='next'><ul>{body}</ul></div>"


def _svg_histogram(title: str, values: np.ndarray, held: np.ndarray, threshold: float | None,
                   reference: list[float] | None = None) -> str:
    """A small histogram of ``values`` (held rows in red) with a dashed line at ``threshold`` and,
    given the reference's score quantiles, the reference's distribution as an outline (same
    scale: share of rows per bin)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return ""
    lo, hi = float(values[finite].min()), float(values[finite].max())
    ref_q = np.asarray(reference or [], dtype=np.float64)
    if len(ref_q):
        lo, hi = min(lo, float(ref_q[0])), max(hi, float(ref_q[-1]))
    if threshold is not None and np.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    hi = hi if hi > lo else lo + 1.0
    bins = np.linspace(lo, hi, 31)
    kept, _ = np.histogram(values[finite & ~held], bins)
    flagged, _ = np.histogram(values[finite & held], bins)
    n = max(int(finite.sum()), 1)
    ref_share = np.zeros(30)
    if len(ref_q) > 1:  # the reference's share of rows per bin, from its CDF at the quantiles
        levels = np.linspace(0.0, 1.0, len(ref_q))
        tied = np.unique(ref_q)  # a value many quantiles share: the CDF jumps to the last of them
        cdf = np.interp(bins, tied, levels[np.searchsorted(ref_q, tied, side="right") - 1], left=0.0, right=1.0)
        ref_share = np.diff(cdf)
    top = max(float((kept + flagged).max()) / n, float(ref_share.max()), 1e-12)
    kept, flagged = kept / n, flagged / n
    w, h, pad = 300, 120, 20
    bar = (w - 2 * pad) / 30
    rects = []
    for i in range(30):
        x = pad + i * bar
        hk, hf = (h - 2 * pad) * kept[i] / top, (h - 2 * pad) * flagged[i] / top
        rects.append(f"<rect x='{x:.1f}' y='{h - pad - hk:.1f}' width='{bar - 1:.1f}' height='{hk:.1f}' fill='#94a3b8'/>")
        if hf:
            rects.append(f"<rect x='{x:.1f}' y='{h - pad - hk - hf:.1f}' width='{bar - 1:.1f}' height='{hf:.1f}' "
                         "fill='#dc2626'/>")
    outline = ""
    if len(ref_q) > 1:
        points = " ".join(f"{pad + (i + d) * bar:.1f},{h - pad - (h - 2 * pad) * ref_share[i] / top:.1f}"
                          for i in range(30) for d in (0, 1))
        outline = f"<polyline points='{points}' fill='none' stroke='#2563eb' stroke-width='1.5'/>"
    line = ""
    if threshold is not None and np.isfinite(threshold):
        tx = pad + (threshold - lo) / (hi - lo) * (w - 2 * pad)
        label = (f"<text x='{tx - 3:.1f}' y='{pad}' font-size='10' text-anchor='end'>threshold {fmt(threshold)}</text>"
                 if tx > w / 2 else f"<text x='{tx + 3:.1f}' y='{pad}' font-size='10'>threshold {fmt(threshold)}</text>")
        line = (f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='{pad / 2}' y2='{h - pad}' stroke='#111' stroke-dasharray='4 3'/>"
                + label)
    axis = (f"<text x='{pad}' y='{h - 4}' font-size='10'>{fmt(lo)}</text>"
            f"<text x='{w - pad}' y='{h - 4}' font-size='10' text-anchor='end'>{fmt(hi)}</text>")
    legend = "batch; red: held rows" + ("; blue line: reference" if outline else "")
    return (f"<div class='chart'><div><b>{escape(title)}</b> <small>({legend})</small></div>"
            f"<svg width='{w}' height='{h}' role='img' aria-label='{escape(title)}'>{''.join(rects)}{outline}{line}"
            f"{axis}</svg></div>")


_THRESHOLDS = {"outliers": 1.0, "schema": 0.5, "provenance": 0.25, "backdoor": 0.5}


def _charts(run: GateRun) -> str:
    held = np.zeros(run.verdict.n_rows, dtype=bool)
    held[np.asarray(run.verdict.quarantined_rows, dtype=np.int64)] = True
    charts = []
    for r in run.results:
        if r.scores is None or len(r.scores) != len(held):
            continue
        threshold = _THRESHOLDS.get(r.check)
        if r.check == "label_flips":
            by_class = r.metrics.get("thresholds") or {}
            threshold = float(min(by_class.values())) if by_class else None
        charts.append(_svg_histogram(f"{r.check} score", r.scores, held, threshold,
                                     r.metrics.get("reference_score_quantiles")))
    drift = next((r.metrics.get("columns") for r in run.results if r.check == "drift"), None) or {}
    if drift:
        names = sorted(drift, key=lambda c: -drift[c]["score"] / max(drift[c]["threshold"], 1e-12))[:12]
        w, row = 300, 16
        bars = []
        for i, c in enumerate(names):
            ratio = min(drift[c]["score"] / max(drift[c]["threshold"], 1e-12), 2.0)
            colour = "#dc2626" if drift[c]["drifted"] else "#94a3b8"
            bars.append(f"<text x='0' y='{i * row + 12}' font-size='10'>{escape(str(c))[:18]}</text>"
                        f"<rect x='110' y='{i * row + 3}' width='{ratio * 90:.1f}' height='{row - 5}' fill='{colour}'/>")
        bars.append(f"<line x1='200' x2='200' y1='0' y2='{len(names) * row}' stroke='#111' stroke-dasharray='4 3'/>")
        charts.append(f"<div class='chart'><div><b>drift</b> <small>(distance / threshold; the line is 1; red: "
                      f"drifted)</small></div><svg width='{w}' height='{len(names) * row + 4}'>{''.join(bars)}</svg></div>")
    pairs = next((r.metrics.get("flip_pairs") for r in run.results if r.check == "label_flips"), None) or []
    if pairs:
        charts.append(_flip_matrix(pairs))
    return "<h2>At a glance</h2><div class='charts'>" + "".join(charts) + "</div>" if charts else ""


def _flip_matrix(pairs: list[dict[str, Any]], most: int = 10) -> str:
    """The label-flip matrix: flagged rows by given label (rows) and what they look like (columns),
    shaded by count; at most ``most`` classes (the busiest)."""
    totals: dict[str, int] = {}
    for p in pairs:  # one class order for both axes (the busiest first), so the diagonal is the diagonal
        for key in ("given", "predicted"):
            totals[str(p[key])] = totals.get(str(p[key]), 0) + int(p["flagged"])
    given = looks = sorted(totals, key=lambda c: (-totals[c], c))[:most]
    counts = {(str(p["given"]), str(p["predicted"])): int(p["flagged"]) for p in pairs}
    top = max(counts.values(), default=1) or 1
    head = "".join(f"<th>{escape(c)}</th>" for c in looks)
    body = []
    for g in given:
        cells = []
        for c in looks:
            n = counts.get((g, c), 0)
            shade = f" style='background: rgba(220,38,38,{0.15 + 0.75 * n / top:.2f})'" if n else ""
            cells.append(f"<td{shade}>{fmt(n) if n else ''}</td>")
        body.append(f"<tr><th>{escape(g)}</th>{''.join(cells)}</tr>")
    return ("<div class='chart'><div><b>label flips</b> <small>(flagged rows: given label ↓, looks like →)</small>"
            f"</div><table class='matrix'><tr><th></th>{head}</tr>{''.join(body)}</table></div>")


def _details(run: GateRun) -> str:
    by_check = {r.check: r.metrics for r in run.results}
    fired = {(r.check, r.code) for r in run.verdict.reasons}
    out = []
    pairs = by_check.get("label_flips", {}).get("flip_pairs") or []
    if pairs:
        targeted = ("label_flips", "targeted_flip") in fired
        out.append("<h3>Label flips: what flagged rows are labelled, and what they look like</h3>" + _table(
            ["given", "looks like", "rows flagged", "share of flagged", "rate in batch", "rate in reference",
             "p-value", "blocked as a targeted flip"],
            [[fmt(p["given"]), fmt(p["predicted"]), p["flagged"], p["share_of_flagged"], p["batch_rate"],
              p["reference_rate"], p["p_value"], "yes" if targeted and i == 0 else ""]
             for i, p in enumerate(pairs)]))
    patterns = by_check.get("backdoor", {}).get("patterns") or []
    if patterns:
        out.append("<h3>Backdoor patterns</h3>" + _table(
            ["trigger", "label", "rows", "label share", "reference share", "lift"],
            [[escape(json.dumps(p["trigger"])), fmt(p["label"]), p["rows"], p["purity"],
              p["reference_label_share"], p["lift"]] for p in patterns]))
    acc = by_check.get("baseline", {}).get("accuracy")
    if acc:
        out.append("<h3>Baseline comparison on the trusted holdout</h3>" + _table(
            ["model trained on", "holdout accuracy"], [[escape(k), x] for k, x in acc.items()]))
    drift = by_check.get("drift", {}).get("columns") or {}
    drifted = [(c, d) for c, d in drift.items() if d["drifted"]]
    if drift:
        out.append(f"<h3>Drift: {len(drifted)} of {len(drift)} column(s) drifted</h3>" + (_table(
            ["column", "method", "distance", "threshold"],
            [[escape(str(c)), escape(d["method"]), d["score"], d["threshold"]] for c, d in drifted])
            if drifted else "<p>No column drifted beyond its threshold.</p>"))
    return "<h2>Details</h2>" + "".join(out) if out else ""


def _quarantine(q: pd.DataFrame) -> str:
    if q.empty:
        return "<h2>Quarantine</h2><p>No rows quarantined.</p>"
    first = [c for c in ("_pg_position", "_pg_reasons") if c in q.columns]
    scores = [c for c in q.columns if str(c).startswith("_pg_score_")]
    rest = [c for c in q.columns if c not in first and c not in scores]
    shown = q[first + scores + rest].head(MAX_ROWS_SHOWN)
    note = f" (first {MAX_ROWS_SHOWN} of {len(q):,}; all are in quarantine.parquet)" if len(q) > MAX_ROWS_SHOWN else ""
    return (f"<h2>Quarantine{escape(note)}</h2><div class='scroll'>"
            + shown.to_html(index=False, float_format=fmt, na_rep="") + "</div>")
