"""RESULTS.md from the raw rows: the targets of issue 6, then the tables behind them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean

from bench.harness import ALL_DEFENCES, POISONGUARD
from bench.speed import DEFAULT_THREADS

FLOOR = "read+sha256"
NA = "-"
NAMES = {"poisonguard": "poisonguard (CLI)", "owasp": "OWASP ML02 recipe", "cleanlab_lr": "cleanlab + LR",
         "cleanlab_gb": "cleanlab + GBM", "knn": "kNN sanitizer"}


def _f(value: float | None, digits: int = 2) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return NA if value is None else f"{100 * value:.{digits}f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def decisions(rows: list[dict], defence: str) -> list[bool]:
    """Correct decisions of ``defence``: one per batch, and one per multi-batch series (correct
    when any of its batches was blocked)."""
    out = []
    series: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in rows:
        if r["defence"] != defence:
            continue
        if r.get("series"):
            series[(r["dataset"], r["series"])].append(r["decision"] == "block")
        else:
            out.append(bool(r["decision_correct"]))
    return out + [any(v) for v in series.values()]


def matrix_summary(m: list[dict], defences: list[str]) -> dict[str, dict]:
    out = {}
    for d in defences:
        rows = [r for r in m if r["defence"] == d]
        ok = decisions(m, d)
        poisoned = [r for r in rows if r["poisoned"]]
        clean = [r for r in rows if r["kind"] == "clean"]
        flips = [r for r in rows if r["kind"] == "flips" and int(r["scenario"].split("_")[1]) >= 5]
        bd3 = [r for r in rows if r["scenario"] == "backdoor_3"]
        out[d] = {
            "decision_accuracy": sum(ok) / len(ok) if ok else None, "decisions": f"{sum(ok)}/{len(ok)}",
            "mean_f1": mean(r["f1"] for r in poisoned) if poisoned else None,
            "clean_max_flagged": max((r["flagged_fraction"] for r in clean), default=None),
            "clean_promoted": f"{sum(r['decision'] == 'promote' for r in clean)}/{len(clean)}",
            "clean_all_promoted": all(r["decision"] == "promote" for r in clean),
            "false_quarantine": mean(r["false_quarantine_rate"] for r in rows if r["false_quarantine_rate"]
                                     is not None) if rows else None,
            "flips_min_recall": min((r["recall"] for r in flips), default=None),
            "flips_min_precision": min((r["precision"] or 0.0 for r in flips), default=None),
            "bd3_min_recall": min((r["recall"] for r in bd3), default=None),
            "bd3_asr_excess": max((r["attack_success_rate_promoted"] - r["attack_success_rate_truly_clean"]
                                   for r in bd3 if r.get("attack_success_rate_promoted") is not None), default=None),
            "seconds": sum(r["wall_seconds"] or 0 for r in rows),
        }
    return out


def _speed_at(s: list[dict], defence: str, n: int) -> dict | None:
    return next((r for r in s if r["defence"] == defence and r["rows"] == n), None)


def _seconds(r: dict | None) -> float | None:
    if r is None:
        return None
    return r.get("extrapolated_seconds") if r.get("decision") == "skipped" else r.get("wall_seconds")


def targets(summary: dict[str, dict], s: list[dict]) -> list[list[str]]:
    out: list[list[str]] = []

    def add(name: str, goal: str, value: str, met: bool | None) -> None:
        out.append([name, goal, value, NA if met is None else ("**met**" if met else "**missed**")])

    pg = summary.get(POISONGUARD)
    if pg:
        add("Decision accuracy on the matrix", "100%", f"{_pct(pg['decision_accuracy'])} ({pg['decisions']})",
            pg["decision_accuracy"] == 1.0)
        add("Clean batches promoted, ≤ 1% quarantined", "all, ≤ 1%",
            f"{pg['clean_promoted']} promoted, max {_pct(pg['clean_max_flagged'])} quarantined",
            pg["clean_all_promoted"] and (pg["clean_max_flagged"] or 0) <= 0.01)
        if pg["flips_min_recall"] is not None:
            add("Random flips ≥ 5%: recall / precision (worst scenario)", "≥ 0.95 / ≥ 0.9",
                f"{_f(pg['flips_min_recall'])} / {_f(pg['flips_min_precision'])}",
                pg["flips_min_recall"] >= 0.95 and pg["flips_min_precision"] >= 0.9)
        if pg["bd3_min_recall"] is not None:
            add("Backdoor 3%: recall (worst) / attack success after filtering minus clean level", "≥ 0.9 / ≤ +0.02",
                f"{_f(pg['bd3_min_recall'])} / {_f(pg['bd3_asr_excess'], 3)}",
                pg["bd3_min_recall"] >= 0.9 and (pg["bd3_asr_excess"] or 0) <= 0.02)
        others = {d: v["mean_f1"] for d, v in summary.items() if d != POISONGUARD and v["mean_f1"] is not None}
        if others and pg["mean_f1"] is not None:
            best = max(others, key=others.get)  # type: ignore[arg-type]
            add("Mean F1 over poisoned scenarios vs best other", "≥ best + 0.05",
                f"{_f(pg['mean_f1'])} vs {_f(others[best])} ({NAMES[best]})", pg["mean_f1"] >= others[best] + 0.05)
    sizes = sorted({r["rows"] for r in s})
    if sizes:
        big = sizes[-1]
        pg_big = _seconds(_speed_at(s, POISONGUARD, big))
        floor = _seconds(_speed_at(s, FLOOR, big))
        for other, goal, factor in (("owasp", "≥ 50x faster", 50.0), ("cleanlab_gb", "≤ 1/3 of its time", 3.0)):
            r = _speed_at(s, other, big)
            t = _seconds(r)
            if pg_big and t:
                how = {"skipped": " (extrapolated)", "timeout": " (killed, a lower bound)"}.get((r or {}).get("decision"), "")
                add(f"Speed at {big:,} rows vs {NAMES[other]}", goal, f"{t / pg_big:.1f}x ({_f(pg_big, 0)} s vs "
                    f"{_f(t, 0)} s{how})", t / pg_big >= factor)
        if pg_big and floor:
            add(f"Speed at {big:,} rows vs read + SHA-256", "within 25x", f"{pg_big / floor:.1f}x",
                pg_big / floor <= 25)
        pr = _speed_at(s, POISONGUARD, big)
        mem = (_speed_at(s, FLOOR, big) or {}).get("batch_memory_bytes")
        if pr and pr.get("peak_rss_bytes") and mem:
            add(f"Peak RSS at {big:,} rows vs batch in memory", "≤ 3x",
                f"{pr['peak_rss_bytes'] / mem:.2f}x ({pr['peak_rss_bytes'] / 2**20:.0f} MiB vs {mem / 2**20:.0f} MiB)",
                pr["peak_rss_bytes"] / mem <= 3)
        if len(sizes) >= 2 and pg_big:
            prev = _seconds(_speed_at(s, POISONGUARD, sizes[-2]))
            if prev:
                add(f"Time ratio {big:,} / {sizes[-2]:,} rows", "≤ 6", f"{pg_big / prev:.2f}", pg_big / prev <= 6)
    return out


def render(rows: list[dict], meta: dict) -> str:
    m = [r for r in rows if r["section"] == "matrix"]
    s = [r for r in rows if r["section"] == "speed"]
    defences = [d for d in ALL_DEFENCES if any(r["defence"] == d for r in rows)]
    summary = matrix_summary(m, defences)
    mc = meta["machine"]
    parts = [
        "# poisonguard benchmark results",
        "",
        f"Generated by `{meta['command']}` (mode **{meta['mode']}**) on {meta['date']} in {meta['seconds'] / 60:.1f} "
        f"min. Do not edit by hand: `make bench` rewrites this file and `bench/results.jsonl` (one raw row per run); "
        f"how each number is made is in `bench/README.md`.",
        "",
        f"- **Machine**: {mc['cpu']}, {mc['cores']} cores, {mc['memory_gib']} GiB, {mc['os']}, Python {mc['python']}; "
        f"shared with other work (1-min load average at the end: {mc['load_average_at_end'][0]}).",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        f"- **Code**: commit `{meta['git']['commit']}` on `{meta['git']['branch']}`"
        + (" (uncommitted changes)" if meta["git"]["dirty"] else "") + ".",
        f"- **Threads**: matrix runs with {meta['matrix_threads_env'] or 'default threads'}; speed runs with "
        f"{meta['speed_threads_env'] or 'default threads (as users run)'}.",
    ]
    if meta.get("note"):
        parts.append(f"- **Note**: {meta['note']}")
    if meta.get("not_run"):
        parts.append(f"- **Not run**: {', '.join(meta['not_run'])} (cleanlab not installed).")
    tg = targets(summary, s)
    if tg:
        parts += ["", "## Targets (issue 6)", "", _table(["target", "goal", "poisonguard", "status"], tg)]
    if m:
        parts += ["", *_matrix_sections(m, defences, summary)]
    if s:
        parts += ["", *_speed_sections(s, defences)]
    return "\n".join(parts) + "\n"


def _matrix_sections(m: list[dict], defences: list[str], summary: dict[str, dict]) -> list[str]:
    keys = list(dict.fromkeys((r["dataset"], r["scenario"]) for r in m))
    by = {(r["dataset"], r["scenario"], r["defence"]): r for r in m}
    out = ["## Quality: the scenario matrix", "",
           "Each defence gates every batch in its own process. Flagged rows are scored against the planted "
           "poisoned rows; *false quarantine* is the share of truly clean rows flagged; decision accuracy counts "
           "each batch once and each multi-batch series once (correct when any of its batches was blocked).", "",
           _table(["defence", "decision accuracy", "mean F1 (poisoned scenarios)", "mean false quarantine",
                   "clean batches promoted", "max quarantined on a clean batch", "worst recall, flips ≥ 5%",
                   "total seconds"],
                  [[NAMES[d], f"{_pct(v['decision_accuracy'])} ({v['decisions']})", _f(v["mean_f1"]),
                    _pct(v["false_quarantine"], 2), v["clean_promoted"], _pct(v["clean_max_flagged"]),
                    _f(v["flips_min_recall"]), f"{v['seconds']:.0f}"] for d, v in summary.items()]),
           "", "### Scenarios: expected decision and why", ""]
    seen: dict[str, dict] = {}
    for r in m:
        seen.setdefault(r["scenario"], r)
    out.append(_table(["scenario", "expected", "why"], [[f"`{k}`", r["expected"], r["why"]] for k, r in seen.items()]))
    out += ["", "### Decisions (✓ right, ✗ wrong) and P / R / F1 of flagged rows", "",
            _table(["dataset / scenario", "rows", "poisoned", "expected", *[NAMES[d] for d in defences]],
                   [[f"{ds} / {sc}", str(by[(ds, sc, defences[0])]["rows"]), str(by[(ds, sc, defences[0])]["poisoned"]),
                     by[(ds, sc, defences[0])]["expected"],
                     *[_cell(by.get((ds, sc, d))) for d in defences]] for ds, sc in keys])]
    out += ["", "### Holdout accuracy of the fixed model (trained on the batch's rows only)", "",
            "raw = the whole batch; clean = the batch minus its truly poisoned rows; then the batch minus each "
            "defence's flagged rows.", "",
            _table(["dataset / scenario", "raw", "clean", *[NAMES[d] for d in defences]],
                   [[f"{ds} / {sc}", _f(by[(ds, sc, defences[0])]["holdout_accuracy_raw"], 3),
                     _f(by[(ds, sc, defences[0])]["holdout_accuracy_truly_clean"], 3),
                     *[_f((by.get((ds, sc, d)) or {}).get("holdout_accuracy_promoted"), 3) for d in defences]]
                    for ds, sc in keys])]
    bd = [(ds, sc) for ds, sc in keys if "attack_success_rate_raw" in by[(ds, sc, defences[0])]]
    if bd:
        out += ["", "### Backdoor attack success rate (triggered holdout rows of other classes predicted as the "
                "target)", "",
                _table(["dataset / scenario", "raw", "clean", *[NAMES[d] for d in defences]],
                       [[f"{ds} / {sc}", _f(by[(ds, sc, defences[0])]["attack_success_rate_raw"], 3),
                         _f(by[(ds, sc, defences[0])]["attack_success_rate_truly_clean"], 3),
                         *[_f((by.get((ds, sc, d)) or {}).get("attack_success_rate_promoted"), 3) for d in defences]]
                        for ds, sc in bd])]
    slow = [r for r in m if r.get("series")]
    if slow:
        out += ["", "### Slow attack, batch by batch (rolling reference: each promoted batch's kept rows join it)",
                "", _table(["dataset / batch", "defence", "reference rows", "decision", "recall", "leaked rows"],
                           [[f"{r['dataset']} / {r['scenario']}", NAMES[r["defence"]], str(r["reference_rows"]),
                             r["decision"], _f(r["recall"]),
                             str(r["poisoned"] - r["true_positives"]) if r["decision"] == "promote" else "0"]
                            for r in slow])]
    pg = [r for r in m if r["defence"] == POISONGUARD]
    if pg:
        out += ["", "### poisonguard: why it decided, and seconds per check", "",
                _table(["dataset / scenario", "decision", "reasons", "rows flagged per check", "wall s",
                        "slowest checks (s)"],
                       [[f"{r['dataset']} / {r['scenario']}", r["decision"],
                         ", ".join(r["details"].get("reasons", [])) or NA,
                         ", ".join(f"{k} {v}" for k, v in r["details"].get("flagged_by_check", {}).items() if v) or NA,
                         _f(r["wall_seconds"], 1),
                         ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["stage_seconds"].items(),
                                                                    key=lambda kv: -kv[1])[:3])]
                        for r in pg])]
    return out


def _cell(r: dict | None) -> str:
    if r is None:
        return NA
    mark = "✓" if r["decision_correct"] else "✗"
    if r.get("series"):
        mark = "·"  # judged per series, see the slow-attack table
    if r["poisoned"]:
        return f"{mark} {r['decision']} {_f(r['precision'])}/{_f(r['recall'])}/{_f(r['f1'])}"
    return f"{mark} {r['decision']} fq {_pct(r['false_quarantine_rate'])}"


def _speed_sections(s: list[dict], defences: list[str]) -> list[str]:
    sizes = sorted({r["rows"] for r in s})
    floor = {n: _speed_at(s, FLOOR, n) for n in sizes}
    f0 = floor[sizes[0]] or {}
    out = ["## Speed and memory", "",
           f"Synthetic 3-class data, 20 features (4 categorical, missing values), reference {f0.get('reference_rows'):,} "
           f"rows, holdout {f0.get('holdout_rows'):,} rows, 5% of the batch's labels flipped. Wall time and peak RSS "
           "are of the whole process (startup, reading, every check, writing outputs). The floor is reading the same "
           "three files into pandas plus SHA-256 of their bytes, in-process, best of two.", "",
           _table(["rows", "batch in memory", "file", FLOOR + " s",
                   *[f"{NAMES[d]} s" for d in defences], *[f"{NAMES[d]} peak RSS" for d in defences]],
                  [[f"{n:,}", f"{(floor[n] or {}).get('batch_memory_bytes', 0) / 2**20:.0f} MiB",
                    f"{(floor[n] or {}).get('batch_file_bytes', 0) / 2**20:.0f} MiB", _f(_seconds(floor[n])),
                    *[_speed_cell(_speed_at(s, d, n)) for d in defences],
                    *[_rss(_speed_at(s, d, n)) for d in defences]] for n in sizes])]
    ratio_rows = []
    for d in [*defences, FLOOR]:
        t = [_seconds(_speed_at(s, d, n)) for n in sizes]
        if len(sizes) >= 2 and t[-1] and t[-2]:
            ratio_rows.append([NAMES.get(d, d), f"{t[-1] / t[-2]:.2f}"])
    if ratio_rows:
        out += ["", f"Growth: time at {sizes[-1]:,} rows / time at {sizes[-2]:,} rows (rows grew "
                f"{sizes[-1] / sizes[-2]:.0f}x).", "", _table(["defence", "ratio"], ratio_rows)]
    pg = {n: _speed_at(s, POISONGUARD, n) for n in sizes}
    checks = list(dict.fromkeys(k for r in pg.values() if r for k in r.get("stage_seconds", {})))
    if checks:
        rows = [[c, *[_f((pg[n] or {}).get("stage_seconds", {}).get(c), 2) for n in sizes]] for c in checks]
        rows.append(["sum of checks", *[_f(sum((pg[n] or {}).get("stage_seconds", {}).values()), 2) for n in sizes]])
        rows.append(["whole process", *[_f(_seconds(pg[n]), 2) for n in sizes]])
        rows.append(["decision / recall / precision",
                     *[f"{(pg[n] or {}).get('decision')} / {_f((pg[n] or {}).get('recall'))} / "
                       f"{_f((pg[n] or {}).get('precision'))}" for n in sizes]])
        out += ["", "### poisonguard seconds per check", "",
                _table(["check", *[f"{n:,} rows" for n in sizes]], rows)]
    dt = next((r for r in s if r["defence"] == DEFAULT_THREADS), None)
    pinned = _speed_at(s, POISONGUARD, dt["rows"]) if dt else None
    if dt and pinned:
        slowest = sorted(dt.get("stage_seconds", {}).items(), key=lambda kv: -kv[1])[:3]
        out += ["", f"**Threads.** The speed runs pin native thread pools to one thread for every defence. The same "
                f"poisonguard run at {dt['rows']:,} rows with the thread pools it picks itself took "
                f"{_f(dt['wall_seconds'], 1)} s against {_f(pinned['wall_seconds'], 1)} s pinned (load average "
                f"{_f(dt.get('load_average_1m'), 1)}; slowest checks: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in slowest) + ")."]
    others = [r for r in s if r["defence"] not in (POISONGUARD, FLOOR, DEFAULT_THREADS)]
    if others:
        out += ["", "### Other defences: stages (s), decision, recall / precision", "",
                _table(["defence", "rows", "stages", "decision", "recall / precision", "note"],
                       [[NAMES[r["defence"]], f"{r['rows']:,}",
                         ", ".join(f"{k} {v:.1f}" for k, v in (r.get("stage_seconds") or {}).items()) or NA,
                         r["decision"], f"{_f(r.get('recall'))} / {_f(r.get('precision'))}", r.get("note") or ""]
                        for r in others])]
    return out


def _speed_cell(r: dict | None) -> str:
    if r is None:
        return NA
    if r.get("decision") == "skipped":
        return f"~{_f(r.get('extrapolated_seconds'), 0)} (extrapolated)"
    if r.get("decision") == "timeout":
        return f"> {_f(r.get('wall_seconds'), 0)} (killed)"
    return _f(r.get("wall_seconds"), 1)


def _rss(r: dict | None) -> str:
    if r is None or not r.get("peak_rss_bytes"):
        return NA
    return f"{r['peak_rss_bytes'] / 2**20:.0f} MiB"


# Sections other bench commands write into RESULTS.md (bench.fitonce, bench.realdata): a full
# rewrite by `python -m bench` keeps them as they are.
KEPT_SECTIONS = (("<!-- fit-once:begin -->", "<!-- fit-once:end -->"), ("<!-- real-data:begin -->", "<!-- real-data:end -->"))


def with_kept_sections(new: str, old: str) -> str:
    """``new`` with every kept section of ``old`` appended (in the order they stand in ``old``)."""
    kept = []
    for begin, end in KEPT_SECTIONS:
        if begin in old and end in old:
            kept.append((old.index(begin), begin + old.split(begin, 1)[1].split(end, 1)[0] + end))
    return new.rstrip("\n") + "".join("\n\n" + text for _, text in sorted(kept)) + "\n"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` (which starts and ends with one of :data:`KEPT_SECTIONS`' markers) into the
    file at ``path``: in place of the old one, or at the end."""
    begin, end = next((b, e) for b, e in KEPT_SECTIONS if section.startswith(b))
    text = path.read_text() if path.exists() else ""
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def run_stamp() -> dict[str, str]:
    """When and on which commit a bench command ran."""
    import subprocess
    import time

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True).stdout.strip()
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit or "?"}
