"""Gating DVC-tracked files with real git and DVC: temporary projects with a local directory DVC
remote and a bare git remote. The credit dataset's reference is the trusted v1; its incoming
batches are the new versions (clean_1 passes, flips_20 is blocked)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from poisonguard.cli import main
from poisonguard.dvc.gating import Outcome, gate_dvc_path
from poisonguard.errors import EXIT_BLOCK, EXIT_INPUT, EXIT_PROMOTE, EXIT_USAGE
from poisonguard.kernel.telemetry import disable_telemetry
from support.dvc import CREDIT, Project, build_template, make_project, run


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Project:
    return make_project(template, tmp_path)


def tag_record(repo: Path, tag: str) -> dict[str, object]:
    body = run(repo, "git", "for-each-ref", "--format=%(contents)", f"refs/tags/{tag}")
    return json.loads(body[body.index("{"):])


def commit_of(repo: Path, ref: str) -> str:
    return run(repo, "git", "rev-parse", f"{ref}^{{commit}}").strip()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_init_trusts_the_committed_version_and_pushes_it(template, tmp_path, capsys):
    project = make_project(template, tmp_path, trusted=False)
    head = commit_of(project.repo, "HEAD")
    assert main(["dvc", "init", "data/credit.parquet", "--repo", str(project.repo), "--label", "status"]) == 0
    assert capsys.readouterr().out.startswith("TRUSTED: data/credit.parquet as committed at HEAD is "
                                              "poisonguard/credit/v1")
    for tag in ("poisonguard/credit/v1", "poisonguard/credit/promoted"):
        assert commit_of(project.repo, tag) == head == commit_of(project.git_remote, tag)
    record = tag_record(project.repo, "poisonguard/credit/v1")
    assert record["kind"] == "bootstrap" and record["label"] == "status" and record["version"] == 1
    assert record["dvc_md5"] == md5(CREDIT / "reference.parquet")
    assert project.state()["dvc_remote"] == [f"files/md5/{record['dvc_md5'][:2]}/{record['dvc_md5'][2:]}"]

    before = project.state()
    assert main(["dvc", "init", "data/credit.parquet", "--repo", str(project.repo), "--label", "status"]) == 0
    assert capsys.readouterr().out.startswith("ALREADY PROMOTED")
    assert project.state() == before


@pytest.mark.e2e
def test_a_clean_version_is_committed_tagged_and_pushed(project, tmp_path):
    import dvc.api

    v1 = commit_of(project.repo, "poisonguard/credit/promoted")
    project.new_version("clean_1")
    (project.repo / "notes.txt").write_text("someone else's work in progress\n")
    run(project.repo, "git", "add", "notes.txt")
    out = tmp_path / "out"
    assert project.gate(out) == EXIT_PROMOTE

    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["decision"] == "promote" and verdict["quarantined_rows"]
    # the clean version (batch minus quarantined rows) is what DVC now records and the tags point to
    assert project.data.read_bytes() == (out / "clean.parquet").read_bytes()
    dvc_md5 = md5(project.data)
    assert f"md5: {dvc_md5}" in (project.repo / "data" / "credit.parquet.dvc").read_text()
    head = commit_of(project.repo, "HEAD")
    assert head != v1 and commit_of(project.repo, "HEAD~1") == v1
    # the promotion commit holds the .dvc file alone; other staged work stays staged
    assert run(project.repo, "git", "show", "--name-only", "--format=", "HEAD") == "data/credit.parquet.dvc\n"
    assert run(project.repo, "git", "status", "--porcelain") == "A  notes.txt\n"
    for tag in ("poisonguard/credit/v2", "poisonguard/credit/promoted"):
        assert commit_of(project.repo, tag) == head == commit_of(project.git_remote, tag)
    assert commit_of(project.repo, "poisonguard/credit/v1") == v1
    promoted = dvc.api.read("data/credit.parquet", repo=str(project.repo), rev="poisonguard/credit/promoted",
                            mode="rb")
    assert promoted == (out / "clean.parquet").read_bytes()
    assert f"files/md5/{dvc_md5[:2]}/{dvc_md5[2:]}" in project.state()["dvc_remote"]

    # provenance: DVC's md5 beside our SHA-256, in the tag and in verdict.json
    prov = tag_record(project.repo, "poisonguard/credit/v2")["provenance"]
    incoming = CREDIT / "incoming" / "clean_1.parquet"
    assert prov["incoming_dvc_md5"] == md5(incoming) == verdict["provenance"]["incoming_dvc_md5"]
    assert prov["incoming_sha256"] == hashlib.sha256(incoming.read_bytes()).hexdigest()
    assert prov["rows_root"] == verdict["provenance"]["rows_root"]
    assert prov["policy_sha256"] == verdict["policy_sha256"]
    assert prov["reference_commit"] == v1 and prov["quarantined_rows"] == len(verdict["quarantined_rows"])
    assert prov["verdict_sha256"] == hashlib.sha256((out / "verdict.json").read_bytes()).hexdigest()
    assert json.loads((out / "metrics.json").read_text())["promoted"] == 1
    # and in the tamper-evident ledger, one record per promotion (v1 at init, v2 now)
    from poisonguard.dvc.gating import ledger_path
    from poisonguard.store.ledger import Ledger, verify

    ledger = Ledger(ledger_path(project.repo, "credit"))
    assert verify(ledger) == [] and [r.body["version"] for r in ledger.records()] == [1, 2]

    # re-running on the promoted version is a no-op
    before = project.state()
    result = gate_dvc_path(project.repo, "data/credit.parquet", out_dir=tmp_path / "again", policy=project.policy)
    assert result.outcome is Outcome.ALREADY_PROMOTED and result.promotion.version == 2
    assert project.state() == before and not (tmp_path / "again").exists()


@pytest.mark.e2e
def test_a_blocked_version_moves_nothing(project, tmp_path, capsys):
    project.new_version("flips_20")
    before = project.state()
    out = tmp_path / "out"
    capsys.readouterr()
    assert project.gate(out) == EXIT_BLOCK
    assert capsys.readouterr().out.startswith("BLOCK: data/credit.parquet (workspace)")
    assert project.state() == before
    assert json.loads((out / "verdict.json").read_text())["decision"] == "block"
    assert json.loads((out / "metrics.json").read_text())["promoted"] == 0
    assert md5(project.data) == md5(CREDIT / "incoming" / "flips_20.parquet")  # the work tree is left as it was


@pytest.mark.e2e
def test_a_revision_is_gated_and_promoted_onto_the_current_branch(project, tmp_path):
    run(project.repo, "git", "checkout", "-q", "-b", "incoming/batch-1")
    project.new_version("clean_1")
    run(project.repo, "git", "commit", "-q", "-am", "batch 1")
    run(project.repo, "git", "checkout", "-q", "main")
    run(project.repo, "dvc", "checkout", "-q")
    result = gate_dvc_path(project.repo, "data/credit.parquet", rev="incoming/batch-1", out_dir=tmp_path / "out",
                           policy=project.policy)
    assert result.outcome is Outcome.PROMOTED and result.source == commit_of(project.repo, "incoming/batch-1")
    assert run(project.repo, "git", "branch", "--show-current").strip() == "main"
    assert commit_of(project.repo, "poisonguard/credit/promoted") == commit_of(project.repo, "main")
    assert project.data.read_bytes() == (tmp_path / "out" / "clean.parquet").read_bytes()
    again = gate_dvc_path(project.repo, "data/credit.parquet", rev="incoming/batch-1", out_dir=tmp_path / "again")
    assert again.outcome is Outcome.ALREADY_PROMOTED  # the gated revision, not only its clean version


def test_a_file_changed_behind_dvcs_back_is_refused(project, tmp_path, capsys):
    project.new_version("clean_1", add=False)
    before = project.state()
    assert project.gate(tmp_path / "out") == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed behind DVC's back" in err and "dvc add data/credit.parquet" in err
    assert project.state() == before and not (tmp_path / "out").exists()


def test_a_corrupt_cache_copy_of_the_promoted_version_is_refused(project, tmp_path, capsys):
    trusted = md5(project.data)
    cached = project.repo / ".dvc" / "cache" / "files" / "md5" / trusted[:2] / trusted[2:]
    cached.chmod(0o644)
    cached.write_bytes(cached.read_bytes()[:-1] + b"!")
    project.new_version("clean_1")
    before = project.state()
    assert project.gate(tmp_path / "out") == EXIT_INPUT
    assert "the DVC cache or remote is corrupt" in capsys.readouterr().err
    assert project.state() == before


def test_a_promoted_tag_moved_by_hand_is_refused(project, tmp_path, capsys):
    record = run(project.repo, "git", "for-each-ref", "--format=%(contents)", "refs/tags/poisonguard/credit/promoted")
    project.new_version("clean_1")
    run(project.repo, "git", "commit", "-q", "-am", "unvetted batch")
    run(project.repo, "git", "tag", "-f", "-a", "-m", record, "poisonguard/credit/promoted", "HEAD")
    project.new_version("clean_2")
    assert project.gate(tmp_path / "out") == EXIT_INPUT
    assert "The tag was moved by hand" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["gate", "data/other.parquet", "--out", "o"], EXIT_INPUT, "not tracked by DVC"),
        (["gate", "data/credit.parquet", "--out", "o", "--dataset", "fresh"], EXIT_INPUT, "no promoted version"),
        (["gate", "data/credit.parquet", "--out", "o", "--dataset", "a b"], EXIT_USAGE, "cannot be used in a git tag"),
        (["gate", "data/credit.parquet", "--out", "o", "--rev", "nope"], EXIT_INPUT, "does not name a commit"),
        (["gate", "../outside.parquet", "--out", "o"], EXIT_INPUT, "outside the repository"),
        (["init", "data/credit.parquet", "--label", "nope", "--dataset", "x"], EXIT_INPUT, "label column 'nope'"),
        (["stage", "report", "--out", "o"], EXIT_USAGE, "runs 'check'"),
    ],
    ids=["untracked", "no-promoted-version", "bad-dataset-name", "unknown-rev", "outside-repo", "wrong-label",
         "stage-without-check"],
)
def test_unusable_requests_get_one_clear_line(project, tmp_path, capsys, args, code, needle, monkeypatch):
    monkeypatch.chdir(project.repo)
    before = project.state()
    assert main(["dvc", *args]) == code
    err = capsys.readouterr().err
    assert err.startswith("poisonguard: error:") and needle in err and err.count("\n") == 1, err
    assert project.state() == before


def test_one_dataset_name_belongs_to_one_path(project, capsys):
    shutil.copyfile(CREDIT / "incoming" / "clean_2.parquet", project.repo / "data" / "other.parquet")
    run(project.repo, "dvc", "add", "-q", "data/other.parquet")
    run(project.repo, "git", "tag", "poisonguard/foreign/promoted")  # someone else's tag of our scheme's shape
    before = project.state()
    for dataset, needle in (("credit", "promoted from data/credit.parquet"), ("foreign", "not a poisonguard promotion")):
        assert main(["dvc", "gate", "data/other.parquet", "--repo", str(project.repo), "--out", "o",
                     "--dataset", dataset]) in (EXIT_USAGE, EXIT_INPUT)
        assert needle in capsys.readouterr().err
    assert project.state() == before


def test_init_refuses_an_uncommitted_dvc_file(template, tmp_path, capsys):
    project = make_project(template, tmp_path, trusted=False)
    project.new_version("clean_1")
    assert main(["dvc", "init", "data/credit.parquet", "--repo", str(project.repo), "--label", "status"]) == 3
    assert "has changes not committed to git" in capsys.readouterr().err
    assert run(project.repo, "git", "tag") == ""


def test_a_directory_that_is_not_a_dvc_project_is_refused(tmp_path, capsys):
    run(tmp_path, "git", "init", "-q")
    assert main(["dvc", "gate", "x.parquet", "--repo", str(tmp_path), "--out", "o"]) == EXIT_INPUT
    assert "not a DVC project" in capsys.readouterr().err


def test_dvc_analytics_are_off(project, monkeypatch):
    from dvc import analytics

    disable_telemetry()
    monkeypatch.chdir(project.repo)
    assert not analytics.is_enabled()
