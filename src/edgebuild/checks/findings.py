"""What a rule check hands back: findings and the report that carries them.

Plain frozen data with `to_dict()`, so report.json and the CLI render the same
thing and tests can compare it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One broken rule: which op and tensor, which rule, what is wrong, what to change."""

    op_index: int | None
    op: str | None
    tensor: str | None
    rule: str
    message: str
    fix: str
    severity: Severity = "error"
    layer: str | None = None  # the Keras layer the op came from, when its tensor names say (see rules.keras_layer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op_index": self.op_index,
            "op": self.op,
            "layer": self.layer,
            "tensor": self.tensor,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class RuleReport:
    """The outcome of one rule set on one artifact; `passed` means no error findings."""

    rule_set: str
    runtime_version: str
    findings: list[Finding] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # rule-set specific summary (edgetpu mapping)

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def __getattr__(self, name: str) -> Any:
        # report.first_unsupported, report.mapped_ops_fraction, ... for edgetpu
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rule_set": self.rule_set,
            "runtime_version": self.runtime_version,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            **self.extra,
            "findings": [f.to_dict() for f in self.findings],
        }
