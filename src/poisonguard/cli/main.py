"""The ``poisonguard`` command.

Exit codes: 0 promote · 1 block · 2 usage or policy error · 3 input that cannot be read or used.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from poisonguard import __version__
from poisonguard.cli import canary as canary_commands
from poisonguard.cli import dvc as dvc_commands
from poisonguard.cli import store as store_commands
from poisonguard.cli.options import add_csv_options, csv_format
from poisonguard.errors import EXIT_BLOCK, EXIT_INPUT, EXIT_PROMOTE, EXIT_USAGE, PoisonguardError, UsageError

__all__ = ["EXIT_BLOCK", "EXIT_INPUT", "EXIT_PROMOTE", "EXIT_USAGE", "build_parser", "main"]

# Further subcommands: each module has ``add_parser(subparsers)`` that registers its parser with
# ``set_defaults(handler=fn)``, where ``fn(args) -> exit code``. Modules import cheaply.
_SUBCOMMANDS = (store_commands, dvc_commands, canary_commands)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}. Run '{self.prog} --help' for usage.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poisonguard", description="Gate batches of training data against poisoning.")
    parser.add_argument("--version", action="version", version=f"poisonguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser(
        "check", help="gate one incoming batch against trusted reference data",
        description="Gate one incoming batch. Exit 0 promote, 1 block, 2 usage/policy error, 3 unusable input.")
    check.add_argument("--reference", required=True, metavar="PATH",
                       help="trusted data: CSV or Parquet file, or a directory of Parquet files")
    check.add_argument("--incoming", required=True, metavar="PATH", help="the batch under test (same formats)")
    check.add_argument("--label", required=True, metavar="COLUMN", help="the label column")
    check.add_argument("--out", required=True, metavar="DIR", help="where verdict.json and the other outputs go")
    check.add_argument("--holdout", metavar="PATH",
                       help="trusted rows no model trains on (default: split off the reference, seeded)")
    check.add_argument("--policy", metavar="FILE", help="the dataset's policy YAML (default: built-in defaults)")
    check.add_argument("--id-column", metavar="COLUMN", help="a row id column: carried along, not used as a feature")
    check.add_argument("--golden", metavar="PATH",
                       help="the frozen golden reference: the cumulative check measures everything in the reference "
                       "since it, plus this batch, against it (slow-poisoning defence)")
    check.add_argument("--ledger", metavar="FILE", help="append this run's record to a tamper-evident ledger file")
    check.add_argument("--state", metavar="DIR", help="keep what is learned from trusted data here and reuse it: the "
                       "next batch against the same reference skips fitting (created if missing; shareable)")
    add_csv_options(check)
    check.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    check.set_defaults(handler=_check)
    for module in _SUBCOMMANDS:
        module.add_parser(sub)
    parser.set_defaults(build_parser=build_parser)  # for commands that parse a 'check' of their own
    return parser


def _check(args: argparse.Namespace) -> int:
    from poisonguard.engine.gate import GateInputs, run_gate
    from poisonguard.settings import signing_key

    key = signing_key()
    inputs = GateInputs(args.reference, args.incoming, args.label, holdout=args.holdout, golden=args.golden,
                        policy=args.policy, id_column=args.id_column, state=args.state, csv_format=csv_format(args))
    run = run_gate(inputs, out_dir=args.out, signing_key=key)
    if args.ledger:
        from poisonguard.store.dataset import record_check

        record_check(Path(args.ledger), Path(args.out), key)
    v = run.verdict
    print(f"{str(v.decision).upper()}: {len(v.quarantined_rows)} of {v.n_rows} rows quarantined; "
          f"outputs in {args.out}")
    for reason in v.reasons:
        print(f"  - {reason.check}/{reason.code}: {reason.message}")
    return run.exit_code


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (not when the handler was made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextlib.contextmanager
def _progress_to_stderr(*, quiet: bool) -> Iterator[None]:
    """Progress lines of poisonguard's own logger on stderr while a command runs; other
    libraries' logs stay quiet. The logger is restored afterwards (main() may run many times in
    one process: tests, notebooks)."""
    log = logging.getLogger("poisonguard")
    saved = (list(log.handlers), log.level, log.propagate)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("[poisonguard] %(message)s"))
    log.handlers = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.handlers, log.level, log.propagate = saved[0], saved[1], saved[2]


def main(argv: Sequence[str] | None = None) -> int:
    from poisonguard.kernel.telemetry import disable_telemetry

    disable_telemetry()
    try:
        args = build_parser().parse_args(argv)
        with _progress_to_stderr(quiet=getattr(args, "quiet", False)):
            return int(args.handler(args))
    except PoisonguardError as e:
        print(f"poisonguard: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("poisonguard: interrupted; nothing was promoted", file=sys.stderr)
        return 130
    except Exception as e:  # fail closed, one line, no traceback
        print(f"poisonguard: internal error ({type(e).__name__}: {e}); nothing was promoted. "
              "Re-run with PYTHONDEVMODE=1 for details and report it.", file=sys.stderr)
        return EXIT_BLOCK


if __name__ == "__main__":
    sys.exit(main())
