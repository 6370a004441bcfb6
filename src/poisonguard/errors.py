"""Errors the gate raises when it cannot evaluate a batch. Each type owns its exit code.

Bad *data* is never an exception: it is a finding in a result. These are for what the tool
cannot evaluate at all. Messages say what is wrong, where, and what to do.
"""

from __future__ import annotations

# The exit codes of the outcomes that are not errors.
EXIT_PROMOTE, EXIT_BLOCK = 0, 1


class PoisonguardError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(PoisonguardError):
    """The command line or a policy file is wrong (exit code 2)."""

    exit_code = 2


class PolicyError(UsageError):
    """A policy file cannot be used as it is (exit code 2)."""


class InputError(PoisonguardError):
    """An input cannot be read or used: missing, corrupt, empty, wrong columns (exit code 3)."""

    exit_code = 3


class CheckTimeout(PoisonguardError):
    """A check ran past its ``timeout_seconds``; the gate blocks (fail closed)."""


class LockTimeout(PoisonguardError):
    """Another run held the lock for longer than the timeout (exit code 4)."""

    exit_code = 4


class PromotionRefused(PoisonguardError):
    """What was asked to be promoted is not what the gate passed (exit code 5)."""

    exit_code = 5


class LedgerTampered(PoisonguardError):
    """A ledger record was edited, removed, reordered, inserted or left unsigned, or its
    signatures cannot be verified (no key, another key): nothing acts on it (exit code 6)."""

    exit_code = 6

EXIT_USAGE, EXIT_INPUT = UsageError.exit_code, InputError.exit_code
