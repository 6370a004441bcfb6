"""The p-values of the gate's batch tests on clean real batches, against uniform: a QQ plot.

    python -m bench.qq [--work bench/out/realdata] [--png bench/img/realdata-qq.png]

Reads every clean batch's verdict.json that ``bench.realdata`` wrote, takes each blocking test's
p-value (provenance, outliers, schema failed rows, the three label-flip tests, the baseline's
accuracy drop), and draws -log10(p) against the -log10 of uniform quantiles. A calibrated test
sits on or below the diagonal (discrete and conservative tests below it); a test above it says
"unusual" more often than chance. Writes an SVG beside the PNG (rendered by headless Chromium
when it is installed) and returns a summary for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTS = {
    "provenance": ("provenance", "p_value"),
    "outliers": ("outliers", "p_value"),
    "schema failed rows": ("schema", "p_value"),
    "label_flips flagged share": ("label_flips", "p_value"),
    "label_flips tail share": ("label_flips", "tail_p_value"),
    "label_flips mean surprise": ("label_flips", "surprise_p_value"),
    "baseline accuracy drop": ("baseline", "accuracy_drop_p_value"),
}
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def collect(work: Path) -> dict[str, np.ndarray]:
    """Each test's p-values over the clean batches under ``work``."""
    values: dict[str, list[float]] = {name: [] for name in TESTS}
    for verdict in sorted(work.glob("*/split*/out-clean/verdict.json")):
        checks = json.loads(verdict.read_text())["checks"]
        for name, (check, key) in TESTS.items():
            p = (checks.get(check, {}).get("metrics") or {}).get(key)
            if isinstance(p, int | float):
                values[name].append(float(p))
    return {k: np.asarray(v) for k, v in values.items() if v}


def svg(p_values: dict[str, np.ndarray]) -> str:
    w, h, pad = 640, 480, 50
    top = max(4.0, max(float(-np.log10(max(v.min(), 1e-12))) for v in p_values.values()))
    top = min(np.ceil(top), 12.0)

    def xy(ex: float, ob: float) -> tuple[float, float]:
        return pad + ex / top * (w - 2 * pad), h - pad - min(ob, top) / top * (h - 2 * pad)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' "
             "font-size='12'><rect width='100%' height='100%' fill='white'/>"]
    x0, y0 = xy(0, 0)
    x1, y1 = xy(top, top)
    parts.append(f"<line x1='{x0}' y1='{y0}' x2='{x1}' y2='{y1}' stroke='#999' stroke-dasharray='5 4'/>")
    parts.append(f"<line x1='{x0}' y1='{y0}' x2='{w - pad}' y2='{y0}' stroke='#333'/>"
                 f"<line x1='{x0}' y1='{y0}' x2='{x0}' y2='{pad}' stroke='#333'/>")
    for t in range(int(top) + 1):
        tx, _ = xy(t, 0)
        _, ty = xy(0, t)
        parts.append(f"<text x='{tx}' y='{y0 + 16}' text-anchor='middle'>{t}</text>"
                     f"<text x='{x0 - 8}' y='{ty + 4}' text-anchor='end'>{t}</text>")
    parts.append(f"<text x='{w / 2}' y='{h - 10}' text-anchor='middle'>expected -log10(p) (uniform)</text>"
                 f"<text x='14' y='{h / 2}' transform='rotate(-90 14 {h / 2})' text-anchor='middle'>"
                 "observed -log10(p), clean real batches</text>")
    for i, (name, v) in enumerate(p_values.items()):
        observed = -np.log10(np.clip(np.sort(v), 1e-12, 1.0))
        expected = -np.log10((np.arange(1, len(v) + 1) - 0.5) / len(v))
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join("{:.1f},{:.1f}".format(*xy(e, o)) for e, o in zip(expected, observed, strict=True))
        parts.append(f"<polyline points='{points}' fill='none' stroke='{colour}' stroke-width='1.5'/>")
        parts.append(f"<rect x='{pad + 10}' y='{pad + 6 + 16 * i}' width='10' height='10' fill='{colour}'/>"
                     f"<text x='{pad + 26}' y='{pad + 15 + 16 * i}'>{name} ({len(v)})</text>")
    parts.append("</svg>")
    return "".join(parts)


def write(work: Path, png: Path) -> list[str]:
    """Draw the plot; the lines RESULTS.md shows about it."""
    p_values = collect(work)
    if not p_values:
        return []
    png.parent.mkdir(parents=True, exist_ok=True)
    svg_path = png.with_suffix(".svg")
    svg_path.write_text(svg(p_values))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    picture = svg_path
    if browser:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=640,480", f"--screenshot={png}", svg_path.as_uri()], check=True,
                       capture_output=True, timeout=300)
        picture = png
    rows = ["| test | clean batches | share with p < 0.01 | p < 0.001 | smallest p |", "|---|---:|---:|---:|---:|"]
    for name, v in p_values.items():
        rows.append(f"| {name} | {len(v)} | {np.mean(v < 0.01):.1%} | {np.mean(v < 0.001):.1%} | {v.min():.1e} |")
    link = picture.relative_to(ROOT / "bench").as_posix() if picture.is_relative_to(ROOT / "bench") else str(picture)
    return [f"P-values of the batch tests on the clean batches, against uniform "
            f"([{picture.name}]({link})); a calibrated test has about "
            "1% of them below 0.01 and 0.1% below 0.001, a conservative one fewer:", "", *rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.qq", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "realdata")
    parser.add_argument("--png", type=Path, default=ROOT / "bench" / "img" / "realdata-qq.png")
    args = parser.parse_args(argv)
    print("\n".join(write(args.work, args.png)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
