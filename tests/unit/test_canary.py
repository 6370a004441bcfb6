"""``poisonguard canary``: attacks planted into pseudo-batches of the user's trusted data, gated
for real; a clean pseudo-batch blocked more often than the policy allows fails it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from poisonguard.canary import ATTACKS, pseudo_batch_rows, run_canary
from poisonguard.cli import main
from poisonguard.errors import InputError
from poisonguard.testing import attacks
from support.policies import fast_policy

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
CREDIT = DATASETS / "credit"


def test_canary_measures_each_attack_and_the_false_blocks_on_the_users_data(tmp_path, capsys):
    policy = tmp_path / "policy.yml"
    policy.write_text(fast_policy())
    code = main(["canary", "-q", "--reference", str(CREDIT / "reference.parquet"), "--label", "status",
                 "--holdout", str(CREDIT / "holdout.parquet"), "--policy", str(policy), "--splits", "1",
                 "--attacks", "flips_10", "replay_10", "--json", str(tmp_path / "canary.json")])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "canary.json").read_text())
    assert code == 0, out
    assert [a["attack"] for a in report["attacks"]] == ["clean", "flips_10", "replay_10"]
    by = {a["attack"]: a for a in report["attacks"]}
    assert by["clean"]["blocked"] == 0 and report["false_block_rate"] == 0.0
    assert by["replay_10"]["blocked"] == 1 and by["replay_10"]["row_recall"] == 1.0
    assert by["flips_10"]["row_recall"] > 0
    assert "within the policy's max_false_block_rate of 1.0%" in out
    # The pseudo-batch is a fifth of the trusted rows: the rest is the reference it is gated against.
    assert report["batch_rows"] == len(pd.read_parquet(CREDIT / "reference.parquet")) // 5


def test_a_policy_that_blocks_clean_data_fails_the_canary(tmp_path, capsys):
    # Any row that looks relabelled blocks: credit's naturally noisy labels make a clean batch fail.
    policy = tmp_path / "policy.yml"
    policy.write_text(fast_policy(label_flips={"severity": {"label_flip": "block"}}))
    code = main(["canary", "-q", "--reference", str(CREDIT / "reference.parquet"), "--label", "status",
                 "--policy", str(policy), "--splits", "1", "--attacks", "flips_10"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "false blocks on clean pseudo-batches: 100.0% — ABOVE the policy's max_false_block_rate" in out


def test_too_small_trusted_data_is_refused_with_one_line(tmp_path, capsys):
    small = pd.read_parquet(CREDIT / "reference.parquet").head(120)
    small.to_parquet(tmp_path / "small.parquet", index=False)
    code = main(["canary", "--reference", str(tmp_path / "small.parquet"), "--label", "status"])
    err = capsys.readouterr().err
    assert code == InputError.exit_code
    assert err.count("poisonguard: error:") == 1 and "too few to calibrate on" in err
    with pytest.raises(InputError, match="more than half"):
        pseudo_batch_rows(1000, 600)
    with pytest.raises(InputError, match="too small for the batch tests"):
        pseudo_batch_rows(1000, 20)


def test_unknown_attacks_and_missing_label_are_usage_errors(capsys):
    assert main(["canary", "--reference", str(CREDIT / "reference.parquet"), "--label", "status",
                 "--attacks", "nope"]) == 2
    assert "unknown attack(s) ['nope']" in capsys.readouterr().err
    assert main(["canary", "--reference", str(CREDIT / "reference.parquet")]) == 2
    assert main(["canary", "--label", "status"]) == 2


def test_every_attack_plants_what_it_says_or_declines(tmp_path):
    reference = pd.read_parquet(CREDIT / "reference.parquet")
    batch = reference.sample(300, random_state=0).reset_index(drop=True)
    for attack in ATTACKS:
        poisoned = attack.plant(batch, reference, "status", 7)
        assert poisoned is not None, attack.name
        assert len(poisoned.frame) == len(batch)
        if attack.name != "drift":
            assert len(poisoned.rows) > 0, attack.name
            changed = (poisoned.frame.iloc[poisoned.rows].astype(str).to_numpy()
                       != batch.iloc[poisoned.rows].astype(str).to_numpy()).any(axis=1)
            assert changed.mean() > 0.5, attack.name
    # The in-range trigger is made of values trusted data holds; the other of values it never holds.
    held = attacks.occurring_trigger(reference, "status")
    assert held and all((reference[c] == v).any() for c, v in held.items())
    new = attacks.default_trigger(reference, "status")
    assert new and not any((reference[c] == v).any() for c, v in new.items())


def test_run_canary_reports_progress_per_gated_batch(tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(fast_policy())
    lines: list[str] = []
    report = run_canary(CREDIT / "reference.parquet", "status", policy=policy, splits=1, attack_names=["outliers_5"],
                        progress=lines.append)
    assert [line.split(":")[0] for line in lines] == ["[1/2] split 0 batch 0 clean", "[2/2] split 0 batch 0 outliers_5"]
    assert report.rows()[1]["row_recall"] >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["credit", "synthetic"])
def test_clean_pseudo_batches_are_blocked_no_more_often_than_the_default_policy_allows(dataset):
    # 51 clean pseudo-batches of a committed dataset's trusted rows (3 seeded splits x 17 disjoint
    # batches of 60 rows), gated with the default policy: the false blocks must stay within what a
    # 1% false-block rate gives 51 batches 99% of the time.
    from scipy.stats import binom

    label = json.loads((DATASETS / dataset / "meta.json").read_text())["label"]
    report = run_canary(DATASETS / dataset / "reference.parquet", label, splits=3, batches_per_split=17,
                        batch_rows=60, attack_names=[])
    clean = report.of("clean")
    assert len(clean) == 51
    blocked = [o.reasons for o in clean if o.decision == "block"]
    assert len(blocked) <= binom.ppf(0.99, len(clean), report.max_false_block_rate), blocked
