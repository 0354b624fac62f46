"""Per-target op and tensor rules, checked on a converted `.tflite` without TensorFlow.

`check_rules("edgetpu" | "mcu" | "mobile" | "none", artifact)` returns a
RuleReport. Each rule is a small function in `edgetpu.py`, `mcu.py` or
`mobile.py` whose docstring is the rule text; supported-op tables are TOML
files beside them, each naming the runtime version it reflects.
"""

from __future__ import annotations

from edgebuild.artifact import TfliteArtifact
from edgebuild.errors import ProfileError

from . import edgetpu, mcu, mobile
from .findings import Finding, RuleReport
from .rules import REGISTRY, Rule, with_layers

RULE_SETS = ("edgetpu", "mcu", "mobile", "none")

__all__ = ["REGISTRY", "RULE_SETS", "Finding", "Rule", "RuleReport", "check_rules", "rules_for"]


def check_rules(
    rules: str,
    artifact: TfliteArtifact,
    *,
    edgetpu_runtime: int = edgetpu.DEFAULT_RUNTIME,
    edgetpu_accept_cpu_fallback: bool = False,
) -> RuleReport:
    """Check `artifact` against the rule set `rules`; `passed` is False if any finding is an error."""
    if rules == "edgetpu":
        return with_layers(
            edgetpu.check(artifact, runtime=edgetpu_runtime, accept_cpu_fallback=edgetpu_accept_cpu_fallback), artifact
        )
    if rules == "mcu":
        return with_layers(mcu.check(artifact), artifact)
    if rules == "mobile":
        return with_layers(mobile.check(artifact), artifact)
    if rules == "none":
        return RuleReport("none", "", [])
    raise ProfileError(f"Unknown rule set '{rules}' in validation.rules. Valid values: {', '.join(RULE_SETS)}.")


def rules_for(rule_set: str) -> list[Rule]:
    """The rules of one rule set, for `targets show` and generated docs."""
    return [r for r in REGISTRY.values() if r.id.startswith(rule_set + ".")]
