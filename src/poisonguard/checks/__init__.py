"""The registry of checks. Adding a check = one module here + one entry in :data:`REGISTRY`
+ its ``Spec`` as a field of :class:`poisonguard.policy.ChecksPolicy`.

Every check module exposes the same shape:

- ``NAME``: its id in the policy and the verdict;
- ``Spec``: a :class:`poisonguard.spec.CheckSpec` subclass with its parameters and thresholds;
- ``CODES``: each finding code it can emit, with its default severity;
- ``PHASE``: ``"rows"`` (scores rows) or ``"batch"`` (judges the batch; runs after the row
  checks, with ``ctx.suspect_rows`` set);
- ``run(frame, spec, *, ctx) -> CheckResult``: reports everything it found, never decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from poisonguard.checks import (
    backdoor,
    baseline,
    drift,
    label_flips,
    outliers,
    provenance,
    schema,
)
from poisonguard.results import Severity
from poisonguard.spec import CheckSpec


@dataclass(frozen=True)
class CheckDef:
    name: str
    spec: type[CheckSpec]
    codes: Mapping[str, Severity]
    phase: Literal["rows", "batch"]
    run: Callable[..., object]
    doc: str

    @classmethod
    def of(cls, module: ModuleType) -> CheckDef:
        return cls(module.NAME, module.Spec, module.CODES, module.PHASE, module.run,
                   (module.__doc__ or "").strip().splitlines()[0])


# Order is the order of the flow in DESIGN.md.
REGISTRY: dict[str, CheckDef] = {
    d.name: d
    for d in map(CheckDef.of, (provenance, schema, outliers, label_flips, backdoor, baseline, drift))
}
