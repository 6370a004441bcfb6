"""The policy: which checks run, their parameters, thresholds and severities.

Read in one place (:func:`load_policy`), validated when loaded, into frozen specs. Every field
has a default, so a dataset without a policy file still gets a sound gate.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from poisonguard.checks import REGISTRY
from poisonguard.errors import PolicyError
from poisonguard.kernel.results import Severity
from poisonguard.kernel.spec import CheckSpec


class ChecksPolicy(BaseModel):
    """One section per registered check, built from the registry (:func:`checks_model`): a
    plug-in's ``Spec`` is a section like the built-ins'."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def get(self, name: str) -> Any:
        return getattr(self, _field_name(name))


def _field_name(check: str) -> str:
    """The attribute a check's section is stored under (its name, unless pydantic's BaseModel
    has an attribute of that name, e.g. ``schema``); the policy file always uses the name."""
    return f"{check}_" if hasattr(BaseModel, check) else check


@functools.cache
def _checks_model(specs: tuple[tuple[str, type[CheckSpec]], ...]) -> type[ChecksPolicy]:
    fields: dict[str, Any] = {_field_name(name): (spec, Field(default_factory=spec, alias=name))
                              for name, spec in specs}
    return create_model("ChecksPolicy", __base__=ChecksPolicy, **fields)


def checks_model() -> type[ChecksPolicy]:
    """The ``checks`` section's model for the checks registered now."""
    return _checks_model(tuple((name, check.spec) for name, check in REGISTRY.items()))


@functools.cache
def _policy_model(checks: type[ChecksPolicy]) -> type[Policy]:
    return create_model("Policy", __base__=Policy, checks=(checks, Field(default_factory=checks)))


def policy_model() -> type[Policy]:
    """The policy model for the checks registered now (``Policy()`` and ``Policy.model_validate``
    build it for you)."""
    return _policy_model(checks_model())


class Policy(BaseModel):
    """A dataset's gate policy (``checks/<dataset>.yml``).

    ``Policy(...)`` and ``Policy.model_validate(...)`` give an instance of the model built from the
    check registry (:func:`policy_model`), so every registered check has its section."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    dataset: str | None = Field(None, description="Name of the dataset this policy is for.")
    seed: int = Field(0, ge=0, description="Seed for every random step; same seed, same verdict.")
    holdout_fraction: float = Field(
        0.2, gt=0, le=0.5,
        description="Share of the reference split off as the holdout when no --holdout is given.",
    )
    max_false_block_rate: float = Field(
        0.01, ge=0, le=1,
        description="Share of clean batches the gate may block; `poisonguard canary` fails when clean "
        "pseudo-batches of your trusted data are blocked more often than this.")
    checks: ChecksPolicy = Field(default_factory=ChecksPolicy)

    def __new__(cls, *args: Any, **kwargs: Any) -> Policy:
        return super().__new__(policy_model() if cls is Policy else cls)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Policy:
        target = policy_model() if cls is Policy else cls
        return BaseModel.model_validate.__func__(target, obj, *args, **kwargs)  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _known_codes(self) -> Policy:
        for name, check in REGISTRY.items():
            unknown = set(self.checks.get(name).severity) - set(check.codes)
            if unknown:
                raise ValueError(
                    f"checks.{name}.severity has unknown finding code(s) {sorted(unknown)}; "
                    f"known codes: {sorted(check.codes)}"
                )
        return self

    def severity(self, check: str, code: str) -> Severity:
        """The severity the policy gives finding ``code`` of ``check``."""
        return self.checks.get(check).severity.get(code, REGISTRY[check].codes[code])

    def spec(self, check: str) -> Any:
        return self.checks.get(check)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def sha256(self) -> str:
        """Hash of the effective policy (defaults filled in), stable across key order."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a policy file; ``None`` gives the default policy.

    Raises :class:`PolicyError` naming the file and the field when anything is wrong.
    """
    if path is None:
        return Policy()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist. Pass an existing --policy file.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"policy file {path} cannot be read ({e}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"policy file {path} is not valid YAML: {_one_line(str(e))}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must hold a mapping of fields. Got {type(data).__name__}.")
    return policy_from_dict(data, source=str(path))


def policy_from_dict(data: dict[str, Any], *, source: str = "policy") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        got = first.get("input")
        got_s = "" if first["type"] == "missing" else f" Got {got!r}."
        more = f" ({e.error_count() - 1} more error(s))" if e.error_count() > 1 else ""
        hint = (
            "Remove the field or fix its name; see the policy reference in README.md."
            if first["type"] == "extra_forbidden"
            else "Fix the value, or remove the field to use its default."
        )
        raise PolicyError(f"{source}: field '{where}': {first['msg']}.{got_s} {hint}{more}") from None


def _one_line(s: str) -> str:
    return " ".join(s.split())


def policy_reference_markdown() -> str:
    """The policy reference table for README.md, generated from the specs (so docs match code)."""
    lines = ["| field | default | meaning |", "|---|---|---|"]

    def add(prefix: str, model: type[BaseModel], skip: set[str]) -> None:
        for name, info in model.model_fields.items():
            key = info.alias or name
            if key == "checks" or name in skip:
                continue
            default = info.get_default(call_default_factory=True)
            shown = "{}" if default == {} else json.dumps(default) if not isinstance(default, str) else default
            lines.append(f"| `{prefix}{key}` | `{shown}` | {(info.description or '').replace('|', '/')} |")

    add("", Policy, set())
    add("checks.<any>.", CheckSpec, set())
    common = set(CheckSpec.model_fields)
    for name, check in REGISTRY.items():
        codes = ", ".join(f"`{c}` ({s})" for c, s in check.codes.items())
        lines.append(f"| **`checks.{name}`** | | {check.doc} Finding codes (default severity): {codes}. |")
        add(f"checks.{name}.", check.spec, common)
    return "\n".join(lines)


def update_readme(path: Path) -> None:
    """Rewrite the policy reference between README.md's ``policy-reference`` markers."""
    begin, end = "<!-- policy-reference:begin -->", "<!-- policy-reference:end -->"
    text = path.read_text()
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    path.write_text(f"{head}{begin}\n{policy_reference_markdown()}\n{end}{tail}")


if __name__ == "__main__":  # python -m poisonguard.engine.policy [--update README.md]
    import sys

    if sys.argv[1:2] == ["--update"]:
        update_readme(Path(sys.argv[2]))
    else:
        print(policy_reference_markdown())
