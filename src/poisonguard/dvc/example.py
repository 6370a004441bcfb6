"""``poisonguard dvc example DIR``: a small git + DVC project whose ``dvc.yaml`` gates a batch
before training on it. The pipeline files are in ``poisonguard/dvc/example/``."""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from pathlib import Path

import yaml

from poisonguard.dvc.gitcmd import git
from poisonguard.errors import InputError, UsageError
from poisonguard.kernel.telemetry import disable_telemetry

TEMPLATE_FILES = {"dvc.yaml": "dvc.yaml", "train.py": "train.py", "policy.yml": "policy.yml",
                  "gitignore": ".gitignore"}
# Without --reference/--incoming/--label: the credit dataset of the source checkout poisonguard
# runs from (src/poisonguard/dvc/example.py -> the checkout's datasets/credit), a batch that blocks.
CREDIT = Path(__file__).resolve().parents[3] / "datasets" / "credit"
DEFAULTS = {"reference": CREDIT / "reference.parquet", "incoming": CREDIT / "incoming" / "flips_20.parquet",
            "label": "status"}


def example_inputs(reference: str | Path | None, incoming: str | Path | None,
                   label: str | None) -> tuple[Path, Path, str]:
    """The example's reference, batch and label column: the ones given, else the checkout's credit
    data (``label`` is required with a ``reference`` of one's own)."""
    if reference is not None and label is None:
        raise UsageError("--label is required with --reference: name the label column of your reference data.")
    chosen = (Path(reference) if reference is not None else DEFAULTS["reference"],
              Path(incoming) if incoming is not None else DEFAULTS["incoming"],
              label if label is not None else str(DEFAULTS["label"]))
    defaulted = [p for p, given in zip(chosen[:2], (reference, incoming), strict=True) if given is None]
    if any(not p.is_file() for p in defaulted):
        raise UsageError(f"the default example data ({CREDIT}) is only in a poisonguard source checkout and is not "
                         "here. Pass --reference, --incoming and --label.")
    return chosen


def make_example(target: str | Path, *, reference: str | Path | None = None, incoming: str | Path | None = None,
                 label: str | None = None, policy: str | Path | None = None) -> Path:
    """Create the example project in the new or empty folder ``target``: the pipeline files,
    ``params.yaml``, and ``reference``/``incoming`` copied to ``data/`` and tracked with
    ``dvc add``, all committed to git. Without them, the checkout's credit reference and its
    ``flips_20`` batch (label ``status``). Returns the project's path."""
    disable_telemetry()
    root = Path(target).resolve()
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} is not empty. Pass a new or empty folder for the example project.")
    reference, incoming, label = example_inputs(reference, incoming, label)
    sources = {"reference": reference, "incoming": incoming}
    for role, src in sources.items():
        if not src.is_file():
            raise InputError(f"{role} {src} is not a file. Pass a CSV or Parquet file as --{role}.")
    (root / "data").mkdir(parents=True)
    template = resources.files("poisonguard.dvc") / "example"
    for name, dest in TEMPLATE_FILES.items():
        (root / dest).write_bytes(template.joinpath(name).read_bytes())
    if policy is not None:
        shutil.copyfile(policy, root / "policy.yml")
    data = {role: f"data/{role}{src.suffix.lower()}" for role, src in sources.items()}
    for role, src in sources.items():
        shutil.copyfile(src, root / data[role])
    params = {"gate": {**data, "label": label, "policy": "policy.yml"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    from dvc.repo import Repo

    git(root, "init", "--quiet")
    init_log = logging.getLogger("dvc.repo.init")  # its "now commit the changes" hint: we commit ourselves
    level = init_log.level
    init_log.setLevel(logging.WARNING)
    try:
        repo = Repo.init(str(root))
    finally:
        init_log.setLevel(level)
    with repo:
        with repo.config.edit("repo") as conf:  # .dvc/config: no analytics for anyone who clones it
            conf.setdefault("core", {})["analytics"] = False
        repo.scm_context.quiet = True
        repo.add([str(root / p) for p in data.values()])
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "poisonguard example: gate, then train")
    return root
