"""The docs a newcomer reads cannot point nowhere: every relative link in README.md and docs/
resolves, and none points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md",
            ROOT / "datasets" / "README.md", ROOT / "checks" / "README.md"]


def test_every_relative_link_resolves_inside_the_repository():
    broken = []
    for doc in _docs():
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or (ROOT not in path.parents and path != ROOT):
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_no_doc_points_at_the_team_folder():
    assert [d.name for d in _docs() if "../shared" in d.read_text() or "DESIGN.md" in d.read_text()] == []
