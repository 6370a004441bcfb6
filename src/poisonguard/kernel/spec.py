"""Base of every check's policy section. Each check subclasses :class:`CheckSpec` with its
own parameters and thresholds, each with a documented default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from poisonguard.kernel.results import Severity


class CheckSpec(BaseModel):
    """Fields common to every check's section of the policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="Run this check. A disabled check is reported as skipped.")
    severity: dict[str, Severity] = Field(
        default_factory=dict,
        description="Override what a finding code does: block, quarantine or warn. "
        "Codes not listed keep the check's default.",
    )
    timeout_seconds: float = Field(
        1800.0, gt=0, description="A check running longer than this counts as an error (the gate blocks)."
    )

    def fit_parameters(self) -> dict:
        """The fields that can change what is learned from trusted data (all but ``enabled``,
        ``severity`` and ``timeout_seconds``): part of a fitted state's address."""
        return self.model_dump(mode="json", exclude={"enabled", "severity", "timeout_seconds"})
