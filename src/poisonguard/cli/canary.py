"""``poisonguard canary``: plant attacks into pseudo-batches of your trusted data and gate them
(see :mod:`poisonguard.canary`). Exit 0 when clean pseudo-batches were blocked no more often than
the policy's ``max_false_block_rate``, 1 when more often."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from poisonguard.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "canary", help="before trusting the gate on your data: plant attacks into pseudo-batches of it and gate them",
        description="Cut pseudo-batches out of your trusted data, plant each attack in them, gate every one with "
        "your policy, and print per attack how often the gate blocked and its row recall, and the false-block "
        "rate on clean pseudo-batches. Exit 0 when that rate is within the policy's max_false_block_rate, "
        "1 when above, 2 usage/policy error, 3 unusable or too small trusted data.")
    p.add_argument("--store", metavar="DIR", help="root of the dataset stores (default: $POISONGUARD_STORE)")
    p.add_argument("--dataset", metavar="NAME", help="a dataset in the store: its reference, holdout and label")
    p.add_argument("--reference", metavar="PATH", help="trusted data (instead of --dataset)")
    p.add_argument("--label", metavar="COLUMN", help="the label column (with --reference)")
    p.add_argument("--holdout", metavar="PATH", help="trusted rows no model trains on (with --reference; optional)")
    p.add_argument("--id-column", metavar="COLUMN", help="a row id column (with --reference)")
    p.add_argument("--policy", metavar="FILE", help="the policy to test (default: checks/<dataset>.yml if it exists, "
                   "else the built-in defaults)")
    p.add_argument("--splits", type=int, default=5, metavar="N",
                   help="random reference / pseudo-batch splits (default 5; each costs one cold gate run)")
    p.add_argument("--batch-rows", type=int, metavar="N",
                   help="rows per pseudo-batch (default: a fifth of the trusted rows, at most 2000)")
    p.add_argument("--batches-per-split", type=int, default=1, metavar="K",
                   help="disjoint pseudo-batches held out per split (default 1); more batches, one fit per split")
    p.add_argument("--attacks", nargs="+", metavar="NAME",
                   help="only these attacks (default: all of them, as the table lists them)")
    p.add_argument("--json", metavar="FILE", help="also write every run and the table as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=_canary)


def _canary(args: argparse.Namespace) -> int:
    from poisonguard.canary import run_canary
    from poisonguard.cli.store import default_policy, open_store

    if args.splits < 1:
        raise UsageError(f"--splits must be at least 1. Got {args.splits}.")
    if bool(args.dataset) == bool(args.reference):
        raise UsageError("pass either --dataset NAME (a dataset store) or --reference PATH --label COLUMN.")
    policy = args.policy
    if args.dataset:
        store = open_store(args)
        reference, label, holdout, name = store.reference_path(), store.label, store.holdout_path, args.dataset
        policy = default_policy(args)
    else:
        if not args.label:
            raise UsageError("--reference needs --label COLUMN.")
        reference, label, holdout, name = args.reference, args.label, args.holdout, None
    log = logging.getLogger("poisonguard")
    report = run_canary(reference, label, holdout=holdout, policy=policy, splits=args.splits,
                        batch_rows=args.batch_rows, batches_per_split=args.batches_per_split,
                        attack_names=args.attacks, dataset=name,
                        id_column=args.id_column, progress=log.info)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    print(report.table())
    return 0 if report.passed else 1
