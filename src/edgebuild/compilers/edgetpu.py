"""Coral's `edgetpu_compiler`: find it, run it, and read what it reports.

The compiler is a closed x86-64 Linux binary from Coral's apt repository. It
prints a summary to stdout (sizes, on-chip/off-chip parameter memory, number of
Edge TPU subgraphs and operations) and writes `<stem>_edgetpu.tflite` plus an
operation log `<stem>_edgetpu.log` into `-o DIR`. The log holds the full
"Operator / Count / Status" table; stdout holds the memory figures. Their
formats, as the compiler writes them (versions 2.0 to 16.0):

    Edge TPU Compiler version 16.0.384591198
    Started a compilation timeout timer of 180 seconds.

    Model compiled successfully in 1354 ms.

    Input model: model.tflite
    Input size: 5.10MiB
    Output model: out/model_edgetpu.tflite
    Output size: 6.28MiB
    On-chip memory used for caching model parameters: 6.03MiB
    On-chip memory remaining for caching model parameters: 1.21MiB
    Off-chip memory used for streaming uncached model parameters: 0.00B
    Number of Edge TPU subgraphs: 1
    Total number of operations: 143
    Operation log: out/model_edgetpu.log

    Model successfully compiled but not all operations are supported by the Edge TPU. ...
    Number of operations that will run on Edge TPU: 139
    Number of operations that will run on CPU: 4

    Operator                       Count      Status

    CONV_2D                        2          Mapped to Edge TPU
    QUANTIZE                       1          Operation is otherwise supported, but not mapped due to ...

and the log file:

    Edge TPU Compiler version 15.0.340273435
    Input: model.tflite
    Output: out/model_edgetpu.tflite

    Operator                       Count      Status

    CONV_2D                        2          Mapped to Edge TPU
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from edgebuild.errors import ExternalToolError
from edgebuild.process import run_tool, tail

DEFAULT_COMPILER = "edgetpu_compiler"
MAPPED = "Mapped to Edge TPU"
DEFAULT_TIMEOUT_S = 180.0  # the compiler's own default compilation timeout

INSTALL = {
    "platform": "x86-64 Debian/Ubuntu Linux only (Coral no longer ships the compiler for ARM64 or macOS)",
    "apt": [
        "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -",
        'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main"'
        " | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list",
        "sudo apt-get update",
        "sudo apt-get install edgetpu-compiler",
    ],
    "docker": "or build the repository's Dockerfile (x86-64), which installs edgetpu-compiler from the same repository",
    "docs": "https://coral.ai/docs/edgetpu/compiler/",
}
INSTALL_HINT = (
    "Install it from Coral's apt repository (deb https://packages.cloud.google.com/apt coral-edgetpu-stable main, "
    "package `edgetpu-compiler`; x86-64 Linux only), or use the Dockerfile; "
    "then put it on PATH or pass --set edgetpu.compiler=/path/to/edgetpu_compiler."
)


def find_compiler(configured: str = DEFAULT_COMPILER) -> str | None:
    """The compiler's absolute path, or None when it is not installed.

    `configured` is either a bare name looked up on PATH (the default,
    "edgetpu_compiler") or an explicit path, which must be an executable file.
    """
    if not configured:
        return None
    if os.sep in configured or (os.altsep and os.altsep in configured):
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        return None
    return shutil.which(configured)


def edgetpu_status(configured: str = DEFAULT_COMPILER) -> dict[str, Any]:
    """Whether the compiler can be used, for the report and `edgebuild doctor`.

    Present: {"available": True, "compiler": path, "version": "16.0.384591198" or None}.
    Absent: {"available": False, "configured": ..., "message": one line to show once, "install": INSTALL}.
    """
    path = find_compiler(configured)
    if path is not None:
        return {"available": True, "compiler": path, "version": compiler_version(path)}
    where = "on PATH" if os.sep not in configured else f"at {configured}"
    return {
        "available": False,
        "compiler": None,
        "configured": configured,
        "message": f"edgetpu_compiler not found {where}: kept the compiler-ready int8 model and "
        f"checked it with edgebuild's own Edge TPU rules instead. {INSTALL_HINT}",
        "install": INSTALL,
    }


def compiler_version(compiler: str, timeout_s: float = 30.0) -> str | None:
    """`edgetpu_compiler --version` -> "16.0.384591198" (None if it does not say)."""
    try:
        run = run_tool([compiler, "--version"], timeout_s, "edgetpu_compiler")
    except ExternalToolError:
        return None
    match = _VERSION.search(run.output)
    return match.group(1) if match else None


def compiler_command(compiler: str, tflite_path: Path, out_dir: Path, min_runtime: int) -> list[str]:
    """The exact argv: -s prints the operation table, -m the lowest runtime version, -o the output folder."""
    return [compiler, "-s", "-m", str(int(min_runtime)), "-o", str(out_dir), str(tflite_path)]


def compile_edgetpu(
    tflite_path: Path, out_dir: Path, compiler: str, min_runtime: int, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Compile `tflite_path` for the Edge TPU into `out_dir` and parse what the compiler reported.

    Writes `model_edgetpu.tflite` and `model_edgetpu.log` (the compiler's operation
    log, unchanged) plus `edgetpu_compiler.txt` (its stdout, which holds the memory
    figures). Raises ExternalToolError on a timeout, a non-zero exit (quoting the
    compiler's own message) or a missing output model.
    """
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    resolved = find_compiler(compiler)
    if resolved is None:
        raise ExternalToolError(f"edgetpu_compiler not found ('{compiler}'). {INSTALL_HINT}")
    out_dir.mkdir(parents=True, exist_ok=True)
    produced = out_dir / f"{tflite_path.stem}_edgetpu.tflite"
    log_file = out_dir / f"{tflite_path.stem}_edgetpu.log"
    for stale in (produced, log_file):  # never mistake an earlier run's output for this one's
        stale.unlink(missing_ok=True)
    argv = compiler_command(resolved, tflite_path.resolve(), out_dir.resolve(), min_runtime)
    run = run_tool(
        argv,
        timeout_s,
        "edgetpu_compiler",
        cwd=out_dir,
        timeout_hint=("Large activations are the usual cause; try a smaller input size, or raise the timeout. "),
    )
    (out_dir / "edgetpu_compiler.txt").write_text(run.output)
    if run.returncode != 0 or not produced.is_file():
        # exit 0 without a model happens too ("Compilation failed!" from the compilation child)
        raise ExternalToolError(failure_message(tflite_path, run.returncode, run.output, argv))
    model = _rename(produced, out_dir / "model_edgetpu.tflite")
    log_text = None
    if log_file.is_file():
        log_file = _rename(log_file, out_dir / "model_edgetpu.log")
        log_text = log_file.read_text(errors="replace")
    result = parse_compiler_output(run.stdout, log_text)
    result.update(
        {
            "compiler": resolved,
            "command": argv,
            "min_runtime": int(min_runtime),
            "seconds": run.seconds,
            "files": {
                "model": model.name,
                "log": log_file.name if log_text is not None else None,
                "output": "edgetpu_compiler.txt",
            },
        }
    )
    return result


def failure_message(tflite_path: Path, returncode: int, output: str, argv: list[str]) -> str:
    """What to tell the user when the compiler failed: its own last lines, quoted, and the command."""
    hint = ""
    if "Compilation timeout" in output:
        hint = "The compiler's own timer expired (large activations are the usual cause). "
    elif "not quantized" in output:
        hint = 'The Edge TPU needs a fully int8-quantized model (profile quantization.scheme = "int8"). '
    elif "dynamic-sized tensors" in output:
        hint = "Fix the batch size (profile model.batch = 1) so every tensor has a static shape. "
    status = f"exit {returncode}" if returncode != 0 else f"exit 0 but no {Path(tflite_path).stem}_edgetpu.tflite"
    said = f"It said:\n{tail(output)}" if output.strip() else "It printed nothing."
    return f"edgetpu_compiler could not compile {tflite_path} ({status}). {hint}{said}\nCommand: {' '.join(argv)}"


def _rename(src: Path, dst: Path) -> Path:
    if src != dst:
        src.replace(dst)
    return dst


# ---------------------------------------------------------------------------------------------------------
# Parsing

_VERSION = re.compile(r"Edge TPU Compiler version (\S+)")
_SIZE = r"([0-9]+(?:\.[0-9]+)?)\s*(B|KiB|MiB|GiB)"
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_FIELDS = {
    "input_model": re.compile(r"^Input model: (.+?)\s*$", re.M),
    "output_model": re.compile(r"^Output model: (.+?)\s*$", re.M),
    "operation_log": re.compile(r"^Operation log: (.+?)\s*$", re.M),
}
_SIZES = {
    "input_size_bytes": re.compile(r"^Input size: " + _SIZE, re.M),
    "output_size_bytes": re.compile(r"^Output size: " + _SIZE, re.M),
    "on_chip_memory_bytes": re.compile(r"^On-chip memory used for caching model parameters: " + _SIZE, re.M),
    "on_chip_memory_remaining_bytes": re.compile(
        r"^On-chip memory (?:remaining|available) for caching model parameters: " + _SIZE, re.M
    ),
    "off_chip_memory_bytes": re.compile(
        r"^Off-chip memory used for streaming uncached model parameters: " + _SIZE, re.M
    ),
}
_COUNTS = {
    "edgetpu_subgraphs": re.compile(r"^Number of Edge TPU subgraphs: (\d+)", re.M),
    "total_ops": re.compile(r"^Total number of operations: (\d+)", re.M),
    "_tpu": re.compile(r"^Number of operations that will run on Edge TPU: (\d+)", re.M),
    "_cpu": re.compile(r"^Number of operations that will run on CPU: (\d+)", re.M),
}
_COMPILE_MS = re.compile(r"Models? compiled successfully in (\d+) ms")
_TABLE_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$")
_TABLE_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
_PARTIAL_TABLE = "All other operators were mapped successfully"


def size_to_bytes(value: str, unit: str) -> int:
    """ "41.75KiB" as printed by the compiler -> 42752 (rounded; the compiler prints two decimals)."""
    return round(float(value) * _UNITS[unit])


def parse_operation_table(text: str) -> list[dict[str, Any]]:
    """The rows under "Operator  Count  Status", in the order the compiler lists them."""
    rows: list[dict[str, Any]] = []
    in_table = False
    for line in text.splitlines():
        if _TABLE_HEADER.match(line):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        match = _TABLE_ROW.match(line)
        if match is None:
            in_table = False  # "... All other operators were mapped successfully" or the next block
            continue
        op, count, status = match.group(1), int(match.group(2)), match.group(3)
        mapped = status == MAPPED
        rows.append(
            {"op": op, "count": count, "status": status, "mapped": mapped, "reason": None if mapped else status}
        )
    return rows


def parse_compiler_output(stdout: str, log: str | None = None) -> dict[str, Any]:
    """Parse the compiler's stdout and (optionally) its `.log` file into the report's `edgetpu` block.

    The per-op table comes from the log file when given (always complete); from
    stdout otherwise, where it is complete only with `-s` (without it, stdout
    lists just the ops that did not map and ends with "... All other operators
    were mapped successfully"; then `per_op_complete` is False).
    """
    text = stdout or ""
    version = _VERSION.search(text) or (_VERSION.search(log) if log else None)
    result: dict[str, Any] = {"compiler_version": version.group(1) if version else None}
    ms = _COMPILE_MS.search(text)
    result["compile_ms"] = int(ms.group(1)) if ms else None
    for key, pattern in _FIELDS.items():
        match = pattern.search(text)
        result[key] = match.group(1) if match else None
    for key, pattern in _SIZES.items():
        match = pattern.search(text)
        result[key] = size_to_bytes(match.group(1), match.group(2)) if match else None
    counts: dict[str, int | None] = {}
    for key, pattern in _COUNTS.items():
        match = pattern.search(text)
        counts[key] = int(match.group(1)) if match else None

    log_rows = parse_operation_table(log) if log else []
    if log_rows:
        per_op, complete = log_rows, True
    else:
        per_op = parse_operation_table(text)
        complete = bool(per_op) and _PARTIAL_TABLE not in text
    total = counts["total_ops"]
    if total is None and complete:
        total = sum(row["count"] for row in per_op)
    mapped: int | None
    if counts["_tpu"] is not None:
        mapped = counts["_tpu"]
    elif complete:
        mapped = sum(row["count"] for row in per_op if row["mapped"])
    else:
        mapped = total  # stdout without the "not all operations are supported" block: everything mapped
    if counts["_cpu"] is not None:
        cpu = counts["_cpu"]
    elif total is not None and mapped is not None:
        cpu = total - mapped
    else:
        cpu = None

    by_op: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    for row in per_op:
        entry = by_op.setdefault(row["op"], {"edgetpu": 0, "cpu": 0})
        entry["edgetpu" if row["mapped"] else "cpu"] += row["count"]
        if row["reason"]:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["count"]

    result.update(
        {
            "edgetpu_subgraphs": counts["edgetpu_subgraphs"],
            "total_ops": total,
            "ops_mapped_edgetpu": mapped,
            "ops_cpu": cpu,
            "mapped_fraction": round(mapped / total, 4) if total and mapped is not None else None,
            "per_op": per_op,
            "per_op_complete": complete,
            "by_op": dict(sorted(by_op.items())),
            "cpu_reasons": reasons,
        }
    )
    return result
