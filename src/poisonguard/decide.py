"""The decision: one pure function from check results + policy to the verdict."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from poisonguard.policy import Policy
from poisonguard.results import (
    CheckResult,
    CheckSummary,
    Decision,
    Reason,
    Severity,
    Status,
    Verdict,
)


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
                reasons.append(Reason(result.check, finding.code, finding.message))
                status = Status.FAIL
            elif severity is Severity.QUARANTINE:
                for row in finding.rows:
                    row_codes[row].add(finding.code)
                flagged.update(finding.rows)
                if status is Status.PASS and finding.rows:
                    status = Status.WARN
            else:
                warnings.append(Reason(result.check, finding.code, finding.message))
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
