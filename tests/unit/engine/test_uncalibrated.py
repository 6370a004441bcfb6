"""A reference too small to calibrate a test at the batch's size: the verdict and the report say
so, per test, and the tests fall back to what they did before; the decision does not hinge on it."""

from __future__ import annotations

from poisonguard.engine.gate import GateInputs, run_gate
from support.policies import fast_policy


def _gate(tmp_path, frames, reference_rows: int, name: str):
    policy = tmp_path / "policy.yml"
    policy.write_text(fast_policy(every_check=True))
    reference = tmp_path / f"{name}-reference.parquet"
    frames["reference"].iloc[:reference_rows].to_parquet(reference, index=False)
    incoming = tmp_path / "incoming.parquet"
    frames["incoming"].to_parquet(incoming, index=False)
    holdout = tmp_path / "holdout.parquet"
    frames["holdout"].to_parquet(holdout, index=False)
    return run_gate(GateInputs(reference, incoming, "y", holdout=holdout, policy=policy), out_dir=tmp_path / name)


def test_a_reference_smaller_than_the_batch_is_named_in_the_verdict_and_the_report(tmp_path, frames):
    run = _gate(tmp_path, frames, 400, "small")  # 400 reference rows (800 trusted with the holdout), 600 in the batch
    notes = {r.check: r for r in run.verdict.warnings if r.code == "uncalibrated"}
    assert set(notes) == {"provenance", "drift", "baseline"}
    assert "800 trusted rows give pseudo-batches of 400 rows, the batch has 600" in notes["provenance"].message
    assert (notes["drift"].value, notes["drift"].threshold) == (200, 600)
    assert run.verdict.promoted, run.verdict.reasons  # a notice, not a block
    report = (tmp_path / "small" / "report.html").read_text()
    assert report.count("is not calibrated at this batch&#x27;s size") + \
        report.count("is not calibrated at this batch's size") == 3


def test_a_reference_large_enough_for_every_null_gives_no_notice(tmp_path, frames):
    run = _gate(tmp_path, frames, 1200, "large")  # baseline's pseudo-batches: a quarter of the reference
    assert {r.check for r in run.verdict.warnings if r.code == "uncalibrated"} == {"baseline"}
    run = _gate(tmp_path, frames.copy() | {"incoming": frames["incoming"].iloc[:300]}, 1200, "smaller-batch")
    assert not [r for r in run.verdict.warnings if r.code == "uncalibrated"]
