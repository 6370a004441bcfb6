"""Refactors keep every verdict byte for byte: the committed breast-cancer batches are gated and
compared with the digests recorded in tests/data/verdict_digests.json (``python -m bench.verdicts``
compares all four datasets; ``--write`` records them when a change is meant to change verdicts)."""

from __future__ import annotations

import json

import pytest
from bench.verdicts import DIGESTS, batches, verdict_digest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("incoming", batches("breast_cancer"), ids=lambda p: p.stem)
def test_the_verdict_is_the_recorded_one(incoming):
    recorded = json.loads(DIGESTS.read_text())[f"breast_cancer/{incoming.stem}"]
    assert verdict_digest("breast_cancer", incoming) == recorded
