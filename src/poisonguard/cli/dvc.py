"""``poisonguard dvc ...``: init, gate, stage, example. A few lines each over the core functions.

Exit codes as ``poisonguard check``: 0 promote (or already promoted), 1 block, 2 usage or
policy error, 3 input that cannot be used (untracked, tampered or dirty path, no promoted version).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonguard.errors import UsageError

if TYPE_CHECKING:
    from poisonguard.dvc.gating import DvcGateResult


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dvc = subparsers.add_parser("dvc", help="gate and promote DVC-tracked datasets",
                                description="Gate DVC-tracked datasets; see docs/dvc.md.")
    sub = dvc.add_subparsers(dest="dvc_command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("path", metavar="PATH", help="the DVC-tracked file (relative to --repo)")
    common.add_argument("--repo", default=".", metavar="DIR", help="the git + DVC project (default: .)")
    common.add_argument("--dataset", metavar="NAME",
                        help="name used in the tags poisonguard/NAME/... (default: PATH's file name without suffix)")
    common.add_argument("--no-push", dest="push", action="store_false",
                        help="do not push data and tags even if remotes are configured")
    common.add_argument("--git-remote", metavar="NAME", help="git remote for the tags (default: origin, if any)")
    common.add_argument("--dvc-remote", metavar="NAME", help="DVC remote for the data (default: the default remote)")
    common.add_argument("--json", action="store_true", help="print the result as JSON instead of one line")

    init = sub.add_parser("init", parents=[common], help="trust the version committed at HEAD (tag v1)",
                          description="Mark the version of PATH committed at HEAD as trusted: the first promoted "
                          "version (tags poisonguard/NAME/v1 and poisonguard/NAME/promoted).")
    init.add_argument("--label", required=True, metavar="COLUMN", help="the label column")
    init.set_defaults(handler=_init)

    gate = sub.add_parser("gate", parents=[common], help="gate a new version; promote it on pass",
                          description="Gate the work tree's version of PATH (or the one --rev records) against "
                          "its promoted version. On pass the clean version is committed to DVC and git, tagged "
                          "and pushed; on block nothing changes. Exit 0 promote, 1 block, 2 usage, 3 input.")
    gate.add_argument("--out", required=True, metavar="DIR", help="where verdict.json and the other outputs go")
    gate.add_argument("--rev", metavar="REV", help="gate the version this git revision records (default: work tree)")
    gate.add_argument("--label", metavar="COLUMN", help="the label column (default: the one given at init)")
    gate.add_argument("--policy", metavar="FILE", help="policy YAML (default: checks/NAME.yml in the repo, if any)")
    gate.add_argument("--holdout", metavar="PATH", help="trusted rows no model trains on")
    gate.add_argument("--id-column", metavar="COLUMN", help="a row id column: carried along, not a feature")
    gate.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    gate.set_defaults(handler=_gate)

    stage = sub.add_parser("stage", help="run 'check' as a dvc.yaml stage and write DVC metrics",
                           description="Run 'poisonguard check ARGS' and write the verdict's numbers to "
                           "OUT/metrics.json for 'dvc metrics show/diff'. Exits with check's exit code.",
                           usage="poisonguard dvc stage [--metrics FILE] check --reference ... --out DIR")
    stage.add_argument("--metrics", metavar="FILE", help="where the metrics go (default: OUT/metrics.json)")
    stage.add_argument("check_args", nargs=argparse.REMAINDER, metavar="check ...")
    stage.set_defaults(handler=_stage)

    example = sub.add_parser("example", help="create an example DVC project with a gate stage",
                             description="Create a git + DVC project whose dvc.yaml gates --incoming against "
                             "--reference before a train stage. Without them: the credit data of the poisonguard "
                             "source checkout (datasets/credit), with a batch whose labels were flipped.")
    example.add_argument("dir", metavar="DIR", help="a new or empty folder")
    example.add_argument("--reference", metavar="FILE",
                         help="trusted data, CSV or Parquet (default: datasets/credit/reference.parquet)")
    example.add_argument("--incoming", metavar="FILE",
                         help="the batch to gate (default: datasets/credit/incoming/flips_20.parquet)")
    example.add_argument("--label", metavar="COLUMN",
                         help="the label column (default: status; required with --reference)")
    example.add_argument("--policy", metavar="FILE", help="policy YAML to use (default: all defaults)")
    example.set_defaults(handler=_example)


def _remotes(args: argparse.Namespace) -> dict[str, Any]:
    return {"dataset": args.dataset, "push": args.push, "git_remote": args.git_remote,
            "dvc_remote": args.dvc_remote}


def _report(result: DvcGateResult, as_json: bool) -> int:
    print(json.dumps(result.to_dict(), indent=2) if as_json else result.summary())
    if not as_json:
        for reason in result.reasons:
            print(f"  - {reason}")
    return int(result.exit_code)


def _init(args: argparse.Namespace) -> int:
    from poisonguard.dvc.gating import init_dvc_path

    return _report(init_dvc_path(args.repo, args.path, label=args.label, **_remotes(args)), args.json)


def _gate(args: argparse.Namespace) -> int:
    from poisonguard.dvc.gating import gate_dvc_path

    result = gate_dvc_path(args.repo, args.path, out_dir=args.out, label=args.label, rev=args.rev,
                           policy=args.policy, holdout=args.holdout, id_column=args.id_column, **_remotes(args))
    return _report(result, args.json)


def _stage(args: argparse.Namespace) -> int:
    from poisonguard.dvc.metrics import write_metrics

    if not args.check_args or args.check_args[0] != "check":
        raise UsageError("'poisonguard dvc stage' runs 'check': write 'poisonguard dvc stage check --reference ... "
                         "--out DIR'.")
    check = args.build_parser().parse_args(args.check_args)
    if check.quiet:  # 'check -q': main() set the progress level from the outer arguments, which lack it
        logging.getLogger("poisonguard").setLevel(logging.WARNING)
    code = int(check.handler(check))
    verdict = Path(check.out) / "verdict.json"
    print(f"DVC metrics in {write_metrics(verdict, Path(args.metrics) if args.metrics else None)}")
    return code


def _example(args: argparse.Namespace) -> int:
    from poisonguard.dvc.example import make_example

    root = make_example(args.dir, reference=args.reference, incoming=args.incoming, label=args.label,
                        policy=args.policy)
    print(f"example DVC project in {root}; run 'cd {args.dir} && dvc repro && dvc metrics show'")
    return 0
