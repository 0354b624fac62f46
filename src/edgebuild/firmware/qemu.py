"""Run a firmware under QEMU and read what the edgebuild runner printed.

`qemu-system-arm -M <machine> -nographic -monitor none -semihosting -icount shift=0 -kernel fw.elf`:
the runner writes its `EDGEBUILD_FW ...` lines over semihosting and leaves with its status
(SYS_EXIT_EXTENDED), which becomes QEMU's exit status. With `-icount shift=0` one guest instruction
advances virtual time by 1 ns, so SysTick ticks convert exactly to instructions (a 2,000,000-instruction
calibration loop at start-up gives the factor: 40 on mps2-an386). These are instruction counts on
QEMU, not cycles or time on silicon: QEMU models no pipeline, caches or wait states.
"""

from __future__ import annotations

import re
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ExternalToolError
from edgebuild.firmware.boards import Board
from edgebuild.process import run_tool

DEFAULT_TIMEOUT_S = 120.0
EXIT_MEANINGS = {
    0: "ok",
    1: "model or op registration failed",
    2: "AllocateTensors() failed (the log says why: usually a tensor arena too small)",
    3: "CPU fault (hard fault)",
    4: "unexpected exception",
    5: "Invoke() failed",
    6: "sample size does not match the input tensor",
}
_PREFIX = "EDGEBUILD_FW "
_KV = re.compile(r"(\w+)=(\S+)")
_DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32}


@dataclass
class RunnerOutput:
    """What one run of edgebuild_runner.cc printed (device or host)."""

    exit_code: int
    start: dict[str, Any] = field(default_factory=dict)
    calibration_ticks: int | None = None
    calibration_instructions: int | None = None
    arena_used: int | None = None
    ticks: dict[int, int] = field(default_factory=dict)
    outputs: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (sample, index) -> values
    dtypes: dict[int, str] = field(default_factory=dict)
    ops: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    done: bool = False
    log: list[str] = field(default_factory=list)  # every other line (TFLM's MicroPrintf, faults)
    seconds: float = 0.0

    @property
    def instructions_per_tick(self) -> float | None:
        if self.calibration_ticks and self.calibration_instructions:
            return self.calibration_instructions / self.calibration_ticks
        return None

    def output_arrays(self) -> list[np.ndarray]:
        """One array per output, samples first (raw values: int8 etc., or float32 decoded from its bits)."""
        if not self.outputs:
            return []
        samples = sorted({s for s, _ in self.outputs})
        indices = sorted({i for _, i in self.outputs})
        arrays = []
        for i in indices:
            rows = [self.outputs.get((s, i), []) for s in samples]
            dtype = self.dtypes.get(i, "int32")
            if dtype == "float32":
                arrays.append(np.array(rows, dtype=np.uint32).view(np.float32))
            else:
                arrays.append(np.array(rows, dtype=_DTYPES.get(dtype, np.int64)))
        return arrays

    def failure_summary(self) -> str:
        meaning = EXIT_MEANINGS.get(self.exit_code, "unknown status")
        detail = ""
        if self.error:
            detail = " (" + ", ".join(f"{k}={v}" for k, v in self.error.items()) + ")"
        logs = [line for line in self.log if line.strip()][-6:]
        tail = ("; firmware log: " + " | ".join(logs)) if logs else ""
        return f"exit status {self.exit_code}: {meaning}{detail}{tail}"


def parse_runner_output(text: str, exit_code: int) -> RunnerOutput:
    out = RunnerOutput(exit_code=exit_code)
    for raw in text.splitlines():
        line = raw.strip("\r")
        pos = line.find(_PREFIX)
        if pos < 0:
            if line.strip():
                out.log.append(line.strip())
            continue
        if pos > 0 and line[:pos].strip():
            out.log.append(line[:pos].strip())
        body = line[pos + len(_PREFIX) :]
        kind = body.split(" ", 1)[0]
        values = dict(_KV.findall(body))
        if kind == "start":
            out.start = values
        elif kind == "calibration":
            out.calibration_ticks = int(values["ticks"])
            out.calibration_instructions = int(values["instructions"])
        elif kind.startswith("arena_used="):
            out.arena_used = int(values["arena_used"])
        elif kind.startswith("sample="):
            out.ticks[int(values["sample"])] = int(values["ticks"])
        elif kind == "out":
            sample, index = int(values["sample"]), int(values["index"])
            out.dtypes[index] = values["dtype"]
            numbers = body.split("values=", 1)[1].split()
            parsed = [int(v, 16) if v.startswith("0x") else int(v) for v in numbers]
            out.outputs.setdefault((sample, index), []).extend(parsed)
        elif kind == "op":
            out.ops.append({"op": values["name"], "count": int(values["count"]), "ticks": int(values["ticks"])})
        elif kind == "memory":
            out.memory = {k: int(v) for k, v in values.items()}
        elif kind == "error":
            out.error = values
        elif kind == "done":
            out.done = True
        elif kind.startswith("outputs="):
            out.start["outputs"] = values["outputs"]
        elif kind == "fault" or kind == "unexpected_exception":
            out.error = {"kind": kind}
    return out


def qemu_command(board: Board, elf: Path) -> list[str]:
    if board.qemu_machine is None:
        raise ExternalToolError(f"Board {board.name} has no QEMU machine ([qemu] machine in {board.source}).")
    return ["qemu-system-arm", "-M", board.qemu_machine, *board.qemu_args, "-kernel", str(elf)]


def qemu_missing(board: Board) -> str | None:
    """Why this board cannot run under QEMU here (None when it can)."""
    if board.qemu_machine is None:
        return f"board {board.name} has no QEMU machine"
    if shutil.which("qemu-system-arm") is None:
        return "qemu-system-arm not found (Debian: apt-get install qemu-system-arm, or `make install`)"
    return None


def run_qemu(board: Board, elf: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunnerOutput:
    """Run `elf` on the board's QEMU machine; ExternalToolError only when QEMU itself cannot run or hangs."""
    cmd = qemu_command(board, elf)
    result = run_tool(
        cmd, timeout_s, "qemu-system-arm", timeout_hint="The firmware never exited: a hang or a very slow model. "
    )
    text = result.stdout + "\n" + result.stderr
    out = parse_runner_output(text, result.returncode)
    out.seconds = result.seconds
    if not out.start and result.returncode != 0:
        raise ExternalToolError(
            f"QEMU could not run {elf} (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-800:]}\nCommand: {' '.join(cmd)}"
        )
    return out


def instructions(out: RunnerOutput) -> dict[str, Any] | None:
    """Instructions per inference (from SysTick ticks x the calibrated instructions per tick)."""
    factor = out.instructions_per_tick
    if factor is None or not out.ticks:
        return None
    per = [t * factor for _, t in sorted(out.ticks.items())]
    ops = [{"op": o["op"], "count": o["count"], "instructions": round(o["ticks"] * factor)} for o in out.ops]
    return {
        "median": round(statistics.median(per)),
        "min": round(min(per)),
        "max": round(max(per)),
        "per_op": ops,
        "instructions_per_tick": round(factor, 3),
        "resolution_instructions": round(factor),
        "unit": "instructions executed on QEMU (-icount shift=0); not cycles or time on real hardware",
    }
