"""Every committed policy loads, and the README's policy reference is the one the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from poisonguard.engine.policy import load_policy, policy_reference_markdown

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", sorted((ROOT / "checks").glob("*.yml")), ids=lambda p: p.name)
def test_committed_policies_load(path):
    policy = load_policy(path)
    assert policy.dataset == path.stem


def test_readme_policy_reference_matches_the_code():
    assert policy_reference_markdown() in (ROOT / "README.md").read_text(), \
        "README.md's policy reference is stale: run `python -m poisonguard.engine.policy --update README.md`"
