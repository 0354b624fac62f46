"""Running the firmware project's Makefile, and its failures in words (an op without a kernel, a full flash)."""

from __future__ import annotations

import re
from pathlib import Path

MAKE_TIMEOUT_S = 900
APT_HINT = (
    "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
    "qemu-system-arm (or `make install`)"
)


def run_make(project_dir: Path, targets: list[str], variables: dict[str, str], jobs: int) -> tuple[int, str, float]:
    from edgebuild.process import run_tool

    cmd = ["make", "-C", str(project_dir), f"-j{jobs}", *targets, *(f"{k}={v}" for k, v in variables.items())]
    res = run_tool(cmd, MAKE_TIMEOUT_S, "make")
    return res.returncode, res.output, res.seconds


def explain_build_failure(
    output: str, ops: list[tuple[str, str]], registrations: dict[str, list[str]], what: str
) -> str:
    """A build error in words: an op without a kernel (named), else the undefined symbols or compiler errors."""
    undefined = sorted(set(re.findall(r"undefined reference to [`'](.+?)'", output)))
    missing_ops = []
    for sym in undefined:
        reg = re.search(r"\b(Register_\w+)\s*\(", sym)
        if reg:
            names = [op for op, method in ops if reg.group(1) in registrations.get(method, [])]
            missing_ops.append(f"{'/'.join(names) or reg.group(1)} ({sym})")
    no_member = re.findall(r"has no member named '(Add\w+)'", output)
    for method in sorted(set(no_member)):
        names = [op for op, m in ops if m == method]
        missing_ops.append(f"{'/'.join(names) or method} (MicroMutableOpResolver has no {method}())")
    overflow = re.search(r"region [`'](\w+)' overflowed by (\d+) bytes", output)
    if overflow or "RAM overflow" in output:
        region, by = (overflow.group(1), int(overflow.group(2))) if overflow else ("RAM", None)
        amount = f" by {by:,} bytes" if by is not None else ""
        return (
            f"{what} failed: the firmware does not fit the board's {region}{amount}. Shrink the model "
            "(pruning, int8, a smaller input), lower mcu.firmware_samples, or use a board with more memory."
        )
    if missing_ops:
        return (
            f"{what} failed: the TensorFlow Lite Micro build has no kernel for {', '.join(missing_ops)}. "
            "Use a TFLite Micro tree with that kernel, or replace the layer."
        )
    if undefined:
        return f"{what} failed: undefined reference to {', '.join(undefined[:6])}."
    errors = [line.strip() for line in output.splitlines() if "error" in line.lower() or line.startswith("make: ***")][
        :8
    ]
    return f"{what} failed:\n    " + "\n    ".join(errors or output.strip().splitlines()[-12:])
