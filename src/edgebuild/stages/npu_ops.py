"""Ops Vela puts on the Ethos-U NPU need no TFLite Micro kernel: reconcile the mcu checks with Vela's mapping.

An Ethos-U target is checked with the mcu rules and run in TFLite Micro on the host, both on the int8 model
before Vela. An op TFLite Micro has no kernel for (GELU, say) fails those checks, yet when Vela maps every
instance of it to the NPU the device firmware never needs that kernel: the artifact is correct. Such
findings become warnings that say so, and the host TFLite Micro run that cannot load the model is reported
as not run (accuracy against the float model, measured in LiteRT, still gates). Ops Vela leaves on the CPU
keep their errors.
"""

from __future__ import annotations

import re
from typing import Any

from edgebuild.validation import add_check


def npu_only_ops(vela: dict[str, Any] | None) -> set[str]:
    """Op types every instance of which Vela mapped to the NPU."""
    rows = (vela or {}).get("per_op") or []
    return {row["op"] for row in rows if row.get("count") and not row.get("cpu")}


def reconcile(validation: dict[str, Any], vela: dict[str, Any] | None) -> None:
    """Downgrade kernel findings and the host TFLM failure for ops that run on the NPU; `passed` recomputed."""
    npu = npu_only_ops(vela)
    if not npu:
        return
    checks = validation["checks"]
    for check in checks:
        if check["name"].startswith("op rules") and not check["passed"]:
            _downgrade_findings(check, npu)
        elif check["name"] == "TFLite Micro" and not check["passed"]:
            missing = re.findall(r"Didn't find op for builtin opcode '(\w+)'", check.get("summary", ""))
            if missing and set(missing) <= npu:
                check["passed"] = True
                check["ran"] = False
                check["summary"] = (
                    f"not run on the host: TFLite Micro has no kernel for {', '.join(sorted(set(missing)))}, "
                    "which Vela maps to the Ethos-U NPU (the device needs no such kernel); the int8 model is "
                    "checked against the float model in LiteRT instead"
                )
    validation["checks"] = []
    for check in checks:
        add_check(validation, check)


def _downgrade_findings(check: dict[str, Any], npu: set[str]) -> None:
    errors, moved = 0, set()
    for finding in check.get("findings", []):
        if finding.get("rule") == "mcu.kernel" and finding.get("op") in npu and finding["severity"] == "error":
            finding["severity"] = "warning"
            finding["message"] += (
                f" Vela maps every {finding['op']} to the Ethos-U NPU, so the firmware needs no TFLite Micro kernel "
                "for it (it would if Vela left it on the CPU)."
            )
            moved.add(finding["op"])
        errors += finding.get("severity") == "error"
    details = check.get("details") or {}
    details["errors"] = errors
    if errors == 0 and moved:
        check["passed"] = details["passed"] = True
        warnings = sum(f.get("severity") != "error" for f in check.get("findings", []))
        head = re.sub(r"^\d+ error\(s\), \d+ warning", f"0 error(s), {warnings} warning", check["summary"])
        head = head.split("; first:")[0]
        check["summary"] = f"{head}; no TFLite Micro kernel for {', '.join(sorted(moved))}, which Vela maps to the NPU"
