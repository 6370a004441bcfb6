"""CLI commands over dataset stores: ``store init``, ``gate``, ``promote``, ``review``, ``ledger``
and ``quarantine``. Each handler is a few lines over the core; errors carry their exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from poisonguard.cli.options import add_csv_options, csv_format
from poisonguard.errors import LedgerTampered, UsageError

EXIT_TAMPERED = LedgerTampered.exit_code


def open_store(args: argparse.Namespace):
    """The dataset store ``--store``/``--dataset`` name, opened with the configured signing key."""
    from poisonguard.settings import signing_key, store_root
    from poisonguard.store.dataset import DatasetStore

    return DatasetStore(store_root(args.store), args.dataset, key=signing_key())


def _actor(args: argparse.Namespace):
    from poisonguard.store.records import Actor

    actor = Actor.cli()
    return Actor("cli", user=getattr(args, "reviewer", None) or actor.user)


def _print(args: argparse.Namespace, human: str, data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str) if getattr(args, "json", False) else human)


def _rows(text: str) -> list[int]:
    try:
        return sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"--rows must be comma-separated row positions, e.g. 3,17,42. Got {text!r}.") from None


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="DIR", help="root of the dataset stores (default: $POISONGUARD_STORE)")
    p.add_argument("--dataset", required=True, metavar="NAME", help="the dataset's name in the store")


def add_parser(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="create and inspect dataset stores")
    ssub = store.add_subparsers(dest="store_command", required=True)
    init = ssub.add_parser("init", help="create a dataset store from a trusted golden reference")
    _add_store_args(init)
    init.add_argument("--golden", required=True, metavar="PATH", help="the frozen, trusted golden reference")
    init.add_argument("--label", required=True, metavar="COLUMN", help="the label column")
    init.add_argument("--holdout", metavar="PATH", help="trusted rows no model trains on (optional)")
    add_csv_options(init)
    init.add_argument("--max-reference-rows", type=int, default=200_000, metavar="N",
                      help="golden + newest promoted rows kept in the reference (default 200000)")
    init.add_argument("--unsigned", action="store_true",
                      help="create a store without a signing key (anyone who can write its files can forge its "
                      "records); without this flag, POISONGUARD_SIGNING_KEY must be set")
    init.set_defaults(handler=_store_init)
    status = ssub.add_parser("status", help="what the store holds: promoted batches, reference size, ledger head")
    _add_store_args(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_store_status)

    gate = sub.add_parser("gate", help="gate a batch against a dataset store; promote it into the store on pass",
                          description="Exit 0 promoted, 1 blocked, 2 usage, 3 unusable input, 4 lock timeout, "
                          "5 promotion refused.")
    _add_store_args(gate)
    gate.add_argument("--incoming", required=True, metavar="PATH", help="the batch (CSV, Parquet or a directory)")
    gate.add_argument("--batch", required=True, metavar="ID", help="the batch's id (e.g. its landing date)")
    gate.add_argument("--key", metavar="KEY", help="where the batch sorts among promotions (default: now, ISO "
                      "8601 UTC); the reference is golden + batches promoted with a smaller key")
    gate.add_argument("--policy", metavar="FILE", help="the dataset's policy (default: checks/<dataset>.yml if "
                      "it exists, else the built-in defaults)")
    gate.add_argument("--no-promote", action="store_true", help="gate and record only")
    add_csv_options(gate)
    gate.add_argument("--lock-timeout", type=float, default=600.0, metavar="SECONDS",
                      help="how long to wait for another run on this dataset (default 600)")
    gate.add_argument("-q", "--quiet", action="store_true")
    gate.set_defaults(handler=_gate)

    promote = sub.add_parser("promote", help="promote a recorded gate run into a store (verified, at most once)",
                             description="Exit 0 promoted (or already promoted as this batch), 5 refused, "
                             "6 ledger tampered.")
    _add_store_args(promote)
    promote.add_argument("--batch", required=True, metavar="ID")
    promote.add_argument("--out", metavar="DIR", help="the gate run's output directory (default: the one the "
                         "batch's latest gate record names)")
    promote.add_argument("--key", metavar="KEY", help="see 'gate --key' (default: the gate run's)")
    promote.set_defaults(handler=_promote)

    review = sub.add_parser("review", help="record a reviewer's decision on a gated batch (signed like every record)")
    rsub = review.add_subparsers(dest="review_command", required=True)
    for name, text in (("approve", "approve the batch's latest verdict: a blocked batch can then be promoted"),
                       ("reject", "reject the batch's latest verdict: it stays unpromoted")):
        p = rsub.add_parser(name, help=text)
        _add_store_args(p)
        p.add_argument("--batch", required=True, metavar="ID")
        p.add_argument("--reviewer", required=True, metavar="NAME", help="who decides (recorded)")
        p.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=_review, approved=name == "approve")

    ledger = sub.add_parser("ledger", help="verify or show a dataset's tamper-evident ledger")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True)
    for name, handler, text in (("verify", _ledger_verify, "find edited, removed, reordered or inserted records "
                                 f"(exit {EXIT_TAMPERED} if any)"),
                                ("show", _ledger_show, "print the records")):
        p = lsub.add_parser(name, help=text)
        p.add_argument("--store", metavar="DIR", help="root of the dataset stores (default: $POISONGUARD_STORE)")
        p.add_argument("--dataset", metavar="NAME", help="the dataset whose ledger to read")
        p.add_argument("--ledger", metavar="FILE", help="a ledger file (instead of --dataset)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=handler)

    q = sub.add_parser("quarantine", help="review held rows: list, show, release (re-gate, promote) or reject")
    qsub = q.add_subparsers(dest="quarantine_command", required=True)
    ql = qsub.add_parser("list", help="batches with their held, released and rejected rows")
    _add_store_args(ql)
    ql.add_argument("--json", action="store_true")
    ql.set_defaults(handler=_q_list)
    qs = qsub.add_parser("show", help="a batch's held rows with reasons and scores")
    _add_store_args(qs)
    qs.add_argument("--batch", required=True, metavar="ID")
    qs.add_argument("--json", action="store_true")
    qs.set_defaults(handler=_q_show)
    for name, handler, text in (("release", _q_release, "re-gate rows and promote those that pass"),
                                ("reject", _q_reject, "reject rows for good")):
        p = qsub.add_parser(name, help=text)
        _add_store_args(p)
        p.add_argument("--batch", required=True, metavar="ID")
        p.add_argument("--rows", required=True, metavar="N,N,...", help="row positions, as 'show' lists them")
        p.add_argument("--reviewer", required=True, metavar="NAME", help="who decides (recorded)")
        p.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
        if name == "release":
            p.add_argument("--policy", metavar="FILE", help="policy for the re-gate (default as for 'gate')")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=handler)


def _store_init(args: argparse.Namespace) -> int:
    from poisonguard.settings import signing_key, store_root
    from poisonguard.store.dataset import DatasetStore

    store = DatasetStore.create(store_root(args.store), args.dataset, golden=args.golden, label=args.label,
                                holdout=args.holdout, key=signing_key(), unsigned=args.unsigned, actor=_actor(args),
                                max_reference_rows=args.max_reference_rows, csv_format=csv_format(args))
    info = store.info
    if args.unsigned:
        print(f"poisonguard: warning: store '{args.dataset}' is unsigned: anyone who can write {store.path} can "
              "forge its ledger records and verdicts. Use a signing key in production.", file=sys.stderr)
    signed = f"signed with key '{store.signed_by}'" if store.signed_by else "UNSIGNED"
    print(f"store for '{args.dataset}' at {store.path}: golden {info['golden_rows']} rows "
          f"(sha256 {info['golden_sha256'][:12]}), label '{info['label']}', {signed}")
    return 0


def _store_status(args: argparse.Namespace) -> int:
    store = open_store(args)
    promoted = store.promoted()
    n, head = store.ledger.head()
    data = {"dataset": store.dataset, "path": str(store.path), "info": store.info, "ledger_records": n,
            "ledger_head": head, "promoted": [{k: p[k] for k in ("batch", "key", "clean_rows", "quarantined_rows")}
                                               for p in promoted]}
    lines = [f"{store.dataset}: {len(promoted)} promoted batch(es); ledger {n} records, head {head[:16]}"]
    lines += [f"  {p['batch']} (key {p['key']}): {p['clean_rows']} clean rows, {p['quarantined_rows']} quarantined"
              for p in promoted]
    _print(args, "\n".join(lines), data)
    return 0


def default_policy(args: argparse.Namespace) -> str | None:
    """``--policy``, else ``checks/<dataset>.yml`` when it exists, else ``None`` (the defaults)."""
    if getattr(args, "policy", None):
        return str(args.policy)
    candidate = Path("checks") / f"{args.dataset}.yml"
    return str(candidate) if candidate.exists() else None


def _gate(args: argparse.Namespace) -> int:
    from poisonguard.workflows import gate_batch

    store = open_store(args)
    run, promotion = gate_batch(store, args.incoming, args.batch, actor=_actor(args), policy=default_policy(args),
                                promote=not args.no_promote, key=args.key, lock_timeout=args.lock_timeout,
                                progress=None if not args.quiet else (lambda _: None), csv_format=csv_format(args))
    v = run.verdict
    state = "PROMOTED" if promotion is not None else str(v.decision).upper()
    print(f"{state}: batch {args.batch}: {len(v.quarantined_rows)} of {v.n_rows} rows quarantined; outputs in "
          f"{store.run_dir(args.batch)}" + (" (already promoted)" if promotion is not None and promotion.already else ""))
    for reason in v.reasons:
        print(f"  - {reason.check}/{reason.code}: {reason.message}")
    return run.exit_code


def _promote(args: argparse.Namespace) -> int:
    store = open_store(args)
    out = args.out or store.latest_gate(args.batch).body["run_dir"]
    promotion = store.promote(out, args.batch, _actor(args), key=args.key)
    print(f"PROMOTED: batch {args.batch}: {promotion.clean_rows} clean rows into '{store.dataset}'"
          + (" (already promoted: nothing changed)" if promotion.already else ""))
    return 0


def _review(args: argparse.Namespace) -> int:
    store = open_store(args)
    record = store.record_review(args.batch, approved=args.approved, reviewer=args.reviewer, reason=args.reason,
                                 actor=_actor(args))
    body = record.body
    verb = "approved" if body["approved"] else "rejected"
    human = f"{verb}: batch {args.batch} ({body['decision']} verdict {body['verdict_sha256'][:12]}) by " \
            f"{body['reviewer']} (ledger record {record.seq})"
    if body["approved"] and body["decision"] != "promote":
        human += f"\n  promote it with: poisonguard promote --dataset {store.dataset} --batch {args.batch}"
    _print(args, human, record.to_dict())
    return 0


def _ledger(args: argparse.Namespace):
    from poisonguard.settings import signing_key
    from poisonguard.store.ledger import Ledger

    if args.ledger:
        return Ledger(Path(args.ledger), signing_key())
    if not args.dataset:
        raise UsageError("pass --dataset NAME (with --store or $POISONGUARD_STORE) or --ledger FILE.")
    return open_store(args).ledger


def _ledger_verify(args: argparse.Namespace) -> int:
    from poisonguard.store.ledger import verify

    ledger = _ledger(args)
    if not ledger.path.exists():
        raise UsageError(f"ledger {ledger.path} does not exist.")
    problems = verify(ledger)
    tampered = [p for p in problems if p.tampering]
    n = len(ledger._lines()[0])
    if getattr(args, "json", False):
        print(json.dumps({"records": n, "problems": [str(p) for p in problems], "intact": not tampered}, indent=2))
    elif not problems:
        print(f"OK: {n} records, chain intact" + (", every signature valid" if ledger.signed else " (an unsigned "
                                                    "ledger: anyone who can write it can rewrite it)"))
    else:
        for p in problems:
            print(("TAMPERED " if p.tampering else "NOTE ") + str(p))
    if tampered:
        more = f" ({len(tampered) - 1} more on stdout)" if len(tampered) > 1 else ""
        raise LedgerTampered(f"ledger {ledger.path}: {tampered[0]}{more}. Restore it from a backup.")
    return 0


def _ledger_show(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    records = ledger.raw_records()  # shown as they are, verified or not ('ledger verify' judges them)
    if getattr(args, "json", False):
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    for r in records:
        body = r.body
        what = ", ".join(f"{k}={body[k]}" for k in ("batch", "decision", "approved", "reviewer", "clean_rows",
                                                    "quarantined_rows") if k in body)
        print(f"{r.seq:5d} {r.time} {r.kind:18s} {what}")
    return 0


def _q_list(args: argparse.Namespace) -> int:
    from poisonguard.store import quarantine

    rows = quarantine.summary(open_store(args))
    human = "\n".join(f"{r['batch']}: {r['decision']}, {r['held']} held of {r['quarantined']} quarantined "
                      f"({r['released']} released, {r['rejected']} rejected); reasons {r['reasons']}"
                      for r in rows) or "nothing quarantined"
    _print(args, human, rows)
    return 0


def _q_show(args: argparse.Namespace) -> int:
    from poisonguard.store import quarantine

    frame = quarantine.held(open_store(args), args.batch)
    if getattr(args, "json", False):
        print(frame.to_json(orient="records"))
    else:
        print(quarantine.describe_rows(frame))
    return 0


def _q_release(args: argparse.Namespace) -> int:
    from poisonguard.workflows import release

    out = release(open_store(args), args.batch, _rows(args.rows), reviewer=args.reviewer, reason=args.reason,
                             actor=_actor(args), policy=default_policy(args))
    _print(args, f"released {len(out['rows'])} row(s) of {args.batch} as {out['release_batch']}: "
           f"{out['decision']}; promoted {out['promoted_rows']}, still held {out['still_held']}", out)
    return 0


def _q_reject(args: argparse.Namespace) -> int:
    from poisonguard.store import quarantine

    record = quarantine.reject(open_store(args), args.batch, _rows(args.rows), reviewer=args.reviewer, reason=args.reason,
                               actor=_actor(args))
    _print(args, f"rejected {len(record.body['rows'])} row(s) of {args.batch} (ledger record {record.seq})",
           record.to_dict())
    return 0

