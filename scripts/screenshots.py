"""``make screenshots``: the report of a blocked and of a promoted batch, as a person sees them at
1280 px, rendered by headless Chromium (Debian's ``chromium`` package) into docs/img/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "datasets" / "synthetic"
SHOTS = {"report-blocked.png": "flips_10", "report-promoted.png": "clean_2"}


def main() -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("make screenshots needs Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    from poisonguard.store.dataset import DatasetStore
    from poisonguard.store.records import Actor
    from poisonguard.workflows import gate_batch

    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="poisonguard-shots-") as tmp:
        store = DatasetStore.create(Path(tmp) / "stores", "synthetic", golden=SYNTHETIC / "reference.parquet",
                                    holdout=SYNTHETIC / "holdout.parquet", label="label", unsigned=True)
        for png, scenario in SHOTS.items():
            gate_batch(store, SYNTHETIC / "incoming" / f"{scenario}.parquet", scenario, actor=Actor("screenshots"),
                       policy=ROOT / "checks" / "synthetic.yml", promote=False, progress=lambda _: None)
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--window-size=1280,1400", f"--screenshot={out / png}",
                            (store.run_dir(scenario) / "report.html").as_uri()], check=True, capture_output=True,
                           timeout=300)
            print(f"wrote {out / png} ({scenario})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
