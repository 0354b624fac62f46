"""`qemu:BOARD` as a benchmark device: the artifact's TFLite Micro firmware, run on QEMU's emulated board.

A microcontroller has no Python or LiteRT to ship a runner to, so "benchmarking on the device" means
building the firmware (arena proven, C sources, TFLite Micro from $EDGEBUILD_TFLM_DIR) and running it.
The cost is instructions per inference under `-icount` (deterministic), never milliseconds: QEMU models
no pipeline, caches or wait states. The result carries the firmware's flash, RAM and arena as well.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.device.errors import DeviceArtifactError, DeviceSetupError

SCHEME = "qemu:"
MAX_SAMPLES = 16  # each sample is embedded in the firmware image


def parse_board(device: str) -> str:
    return device[len(SCHEME) :] or "mps2-an386"


def bench_qemu(
    artifact: Path, device: str, runs: int, kernels: str = "cmsis-nn", tflm_dir: Path | None = None
) -> dict[str, Any]:
    """Build and run the firmware for `artifact` on the board `device` names; `runs` seeded random inputs.

    Raises DeviceSetupError (exit 10) when the tree, the cross compiler or QEMU is missing, and
    DeviceArtifactError (exit 9) when the firmware does not link, run or match LiteRT.
    """
    from edgebuild.artifact import read_artifact
    from edgebuild.firmware.boards import load_board
    from edgebuild.firmware.stage import firmware_for_artifact

    board = load_board(parse_board(device))
    if board.qemu_machine is None:
        raise DeviceSetupError(
            f"Board {board.name} ({board.source}) has no [qemu] machine: QEMU cannot run it. "
            "Use `edgebuild flash` with a probe for real hardware."
        )
    parsed = read_artifact(artifact)
    rng = np.random.default_rng(0)
    count = max(1, min(runs, MAX_SAMPLES))
    samples = [rng.uniform(-1.0, 1.0, (count, *t.shape[1:])).astype(np.float32) for t in parsed.inputs]
    with tempfile.TemporaryDirectory(prefix="edgebuild-qemu-") as scratch:
        block = firmware_for_artifact(
            artifact,
            Path(scratch),
            samples[0] if len(samples) == 1 else samples,
            board,
            tflm_dir,
            kernels=kernels,
            host_check=False,
        )
    if block["status"] == "skipped":
        raise DeviceSetupError(f"Cannot run {artifact.name} on {device}: {block.get('note')}")
    if block["status"] == "failed":
        failed = "; ".join(c["summary"] for c in block["checks"] if not c["passed"])
        raise DeviceArtifactError(f"{artifact.name} on {device}: {failed}")
    dev = block["device"]
    return {
        "device": {
            "url": device,
            "transport": "qemu",
            "board": board.name,
            "cpu": board.cpu,
            "machine": board.qemu_machine,
            "kernels": kernels,
        },
        "unit": "instructions on QEMU -icount (not cycles or time)",
        "instructions_per_inference": dev["instructions_per_inference"],
        "runs": count,
        "input_source": "seeded uniform noise in [-1, 1]",
        "arena": {"declared_bytes": dev["arena_size_bytes"], "used_bytes": dev["arena_used_bytes"]},
        "stack_used_bytes": dev.get("stack_used_bytes"),
        "flash_bytes": block["flash"]["total_bytes_without_samples"],
        "ram_bytes": block["ram"]["total_bytes"],
        "flash_breakdown": {k: v for k, v in block["flash"]["breakdown"].items() if k != "validation_samples"},
        "vs_litert_reference": {k: block["comparison"].get(k) for k in ("max_steps", "mean_steps", "top1_agreement")},
    }
