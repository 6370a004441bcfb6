"""The decision: one pure function from check results + policy to the verdict, and the verdict
document (``verdict.json``) it becomes."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from poisonguard import __version__
from poisonguard.checks import REGISTRY
from poisonguard.engine.policy import Policy
from poisonguard.kernel.results import CheckResult, CheckSummary, Decision, Reason, Severity, Status, Verdict


def decide(results: Iterable[CheckResult], policy: Policy, n_rows: int) -> Verdict:
    """Turn what the checks found into promote or block, and the rows to quarantine.

    - a check that errored blocks (fail closed);
    - a finding whose severity is ``block`` blocks, and is a reason;
    - a finding whose severity is ``quarantine`` quarantines its rows;
    - a finding whose severity is ``warn`` is reported only.
    Quarantined rows are listed whatever the decision. ``reasons`` is empty on promote.
    """
    reasons: list[Reason] = []
    warnings: list[Reason] = []
    row_codes: dict[int, set[str]] = defaultdict(set)
    summaries: dict[str, CheckSummary] = {}
    for result in results:
        if result.error is not None:
            reasons.append(Reason(result.check, "check_error",
                                  f"the {result.check} check could not run: {result.error}"))
            summaries[result.check] = CheckSummary(Status.ERROR, result.metrics, 0, result.error)
            continue
        status = Status.PASS
        flagged: set[int] = set()
        for finding in result.findings:
            severity = policy.severity(result.check, finding.code)
            if severity is Severity.BLOCK:
                reasons.append(Reason.of(finding))
                status = Status.FAIL
            elif severity is Severity.QUARANTINE:
                for row in finding.rows:
                    row_codes[row].add(finding.code)
                flagged.update(finding.rows)
                if status is Status.PASS and finding.rows:
                    status = Status.WARN
            else:
                warnings.append(Reason.of(finding))
                if status is Status.PASS:
                    status = Status.WARN
        summaries[result.check] = CheckSummary(status, result.metrics, len(flagged))
    quarantined = tuple(sorted(row_codes))
    return Verdict(
        decision=Decision.BLOCK if reasons else Decision.PROMOTE,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        quarantined_rows=quarantined,
        row_reasons={r: tuple(sorted(row_codes[r])) for r in quarantined},
        checks=summaries,
        n_rows=n_rows,
    )


def verdict_document(verdict: Verdict, results: tuple[CheckResult, ...], provenance: dict[str, Any],
                     policy: Policy, *, label: str, started: float) -> dict[str, Any]:
    """The content of verdict.json. Everything but the ``run`` block is a function of the
    inputs, the policy and the seed."""
    doc = verdict.to_dict()
    doc["provenance"] = provenance
    doc["policy_sha256"] = policy.sha256
    doc["policy"] = policy.to_dict()
    doc["label"] = label
    doc["seed"] = policy.seed
    doc["poisonguard_version"] = __version__
    doc["skipped_checks"] = [name for name in REGISTRY if not policy.spec(name).enabled]
    doc["artifacts"] = sorted({a for r in results for a in r.artifacts})
    doc["run"] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "check_seconds": {r.check: round(r.seconds, 3) for r in results},
    }
    return doc
