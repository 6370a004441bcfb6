"""The registry of checks: the built-in ones, in the order of the flow, then every third-party
check installed under the entry-point group ``poisonguard.checks``.

A plug-in is one module of the documented shape (see :mod:`poisonguard.checks.base`) — or a
:class:`~poisonguard.checks.base.CheckDef` — named by an entry point, e.g. in its
``pyproject.toml``::

    [project.entry-points."poisonguard.checks"]
    constant_columns = "my_package.constant_columns"

Its ``Spec`` then appears in the policy (``checks.<name>``: validated, with defaults), in the
verdict and in the policy reference, with no change to poisonguard. ``register`` adds one in
process (notebooks, tests). ``poisonguard.testing.check_contract`` is the contract every check
passes. The registry is built on first use, not at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from types import ModuleType

from poisonguard.checks.base import CHUNK_ROWS, Check, CheckDef, score_in_chunks
from poisonguard.errors import UsageError

ENTRY_POINT_GROUP = "poisonguard.checks"
BUILTIN = ("provenance", "schema", "outliers", "label_flips", "backdoor", "baseline", "drift", "cumulative")
__all__ = ["BUILTIN", "CHUNK_ROWS", "ENTRY_POINT_GROUP", "REGISTRY", "Check", "CheckDef", "register",
           "score_in_chunks"]


def as_check(obj: object, where: str) -> CheckDef:
    """``obj`` (a :class:`CheckDef`, or a module of the documented shape) as a :class:`CheckDef`."""
    if isinstance(obj, CheckDef):
        return obj
    if isinstance(obj, ModuleType):
        missing = [a for a in ("NAME", "Spec", "CODES", "PHASE") if not hasattr(obj, a)]
        if not hasattr(obj, "run") and not hasattr(obj, "fit"):
            missing.append("run (or fit/score/summarize)")
        if missing:
            raise UsageError(f"check {where} lacks {missing}. A check module defines NAME, Spec, CODES, PHASE and "
                             "run (see poisonguard.checks.base).")
        try:
            return CheckDef.of(obj)
        except TypeError as e:
            raise UsageError(f"check {where}: {e}") from None
    raise UsageError(f"check {where} is a {type(obj).__name__}, not a CheckDef or a check module.")


class _Registry(MutableMapping[str, CheckDef]):
    """Name -> check, built on first use: the built-ins, then the entry points."""

    def __init__(self) -> None:
        self._checks: dict[str, CheckDef] | None = None

    def _loaded(self) -> dict[str, CheckDef]:
        if self._checks is None:
            checks = {c.name: c for c in (CheckDef.of(importlib.import_module(f"poisonguard.checks.{n}"))
                                          for n in BUILTIN)}
            for check in _entry_point_checks():
                if check.name in checks:
                    raise UsageError(f"check plug-in '{check.name}' has the name of a check that is already "
                                     "registered. Rename the plug-in's NAME.")
                checks[check.name] = check
            self._checks = checks
        return self._checks

    def __getitem__(self, name: str) -> CheckDef:
        return self._loaded()[name]

    def __setitem__(self, name: str, check: CheckDef) -> None:
        self._loaded()[name] = check

    def __delitem__(self, name: str) -> None:
        del self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._loaded()))

    def __len__(self) -> int:
        return len(self._loaded())


def _entry_point_checks() -> list[CheckDef]:
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"plug-in '{ep.name}' ({ep.value}, entry point group {ENTRY_POINT_GROUP})"
        try:
            loaded = ep.load()
        except Exception as e:  # a broken plug-in stops the gate with a clear error, never silently
            raise UsageError(f"check {where} cannot be loaded ({type(e).__name__}: {e}). Fix or uninstall it.") \
                from None
        out.append(as_check(loaded, where))
    return out


REGISTRY: MutableMapping[str, CheckDef] = _Registry()


def register(check: CheckDef | ModuleType) -> CheckDef:
    """Add a check to the registry in this process; returns it as registered."""
    checked = as_check(check, repr(getattr(check, "name", getattr(check, "__name__", check))))
    if checked.name in REGISTRY:
        raise UsageError(f"a check named '{checked.name}' is already registered.")
    REGISTRY[checked.name] = checked
    return checked
