"""The report's first screen answers what was decided, why (with the number and its threshold)
and what to do next (the exact commands); the rows table starts with position, reasons, scores."""

from __future__ import annotations

import re

import pandas as pd

from poisonguard.io.report import fmt
from poisonguard.store.records import Actor
from poisonguard.workflows import gate_batch
from support.data import batch_file


def test_a_blocked_batch_in_a_store_says_why_and_what_to_run_next(store, tmp_path, fast_policy):
    run, _ = gate_batch(store, batch_file(tmp_path, "bad", seed=31, flip_fraction=0.2), "bad", actor=Actor("test"),
                        policy=fast_policy)
    assert not run.verdict.promoted
    html = (store.run_dir("bad") / "report.html").read_text()
    first_screen = html[:html.index("<h2>Checks</h2>")]
    assert "BLOCK" in first_screen and "Why it was blocked" in first_screen
    assert re.search(r"flip_fraction_exceeded</code>: .*\(measured [\d.]+, threshold [\d.]+\)", first_screen)
    root, dataset = store.path.parent, store.dataset
    for command in (f"poisonguard quarantine show --store {root} --dataset {dataset} --batch bad",
                    f"poisonguard review approve --store {root} --dataset {dataset} --batch bad",
                    f"poisonguard promote --store {root} --dataset {dataset} --batch bad"):
        assert command in first_screen, command
    assert "<svg" in html and "label_flips score" in html  # an inline chart, no network
    assert "<b>label flips</b>" in html and "<table class='matrix'>" in html  # given -> looks like, shaded
    # The batch's scores are drawn against the reference's own (an outline), with the threshold.
    chart = html[html.index("<b>label_flips score</b>"):]
    assert "blue line: reference" in chart[:200] and "<polyline" in chart[:chart.index("</svg>")]
    assert "http" not in html.replace("http-equiv", "")
    table = html[html.index("<h2>Quarantine"):]
    header = re.findall(r"<th>([^<]*)</th>", table)
    assert header[:2] == ["_pg_position", "_pg_reasons"] and header[2].startswith("_pg_score_")
    assert "blocked as a targeted flip" in html and ">yes<" not in html  # no targeted finding fired
    # Each blocking test says what it compared the batch with, in the report and in verdict.json.
    assert re.search(r"compared with: flagged share of the reference\S+ out-of-fold-scored rows .*; measured on "
                     r"[\d,]+ trusted rows; the batch\S+ p[<=][\d.e+-]+ against a level of 1e-03", first_screen)
    reason = next(r for r in run.document["reasons"] if r["code"] == "flip_fraction_exceeded")
    assert reason["value"] > reason["threshold"]
    assert reason["null"]["p_value"] < reason["null"]["max_p_value"] == 1e-3 and reason["null"]["size"] > 100
    assert len(pd.read_parquet(store.run_dir("bad") / "quarantine.parquet")) == len(run.verdict.quarantined_rows)


def test_one_number_format():
    assert [fmt(7500), fmt(75000.0), fmt(0.123456), fmt(2.5e-5), fmt(0.0), fmt(3)] == \
        ["7,500", "75,000", "0.1235", "2.5e-05", "0", "3"]
