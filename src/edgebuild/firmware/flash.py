"""`edgebuild flash OUT/mcu --board NAME`: build the firmware for a real board, flash it with pyOCD, read the result.

The build is the firmware stage's (same project, cached TFLite Micro library, sizes from the ELF); a board
other than the one the build used gets its own project in `OUT/mcu/firmware-<board>/`. Flashing and
running go through pyOCD's command line (`pyocd load`, then `pyocd run`, which serves the runner's
semihosting output on stdout), so any probe pyOCD supports works (CMSIS-DAP, ST-LINK, J-Link). Without
a probe it stops after the build with exit code 10 and says how to flash the ELF by hand.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgebuild.device.errors import DeviceArtifactError, DeviceConnectionError, DeviceSetupError
from edgebuild.errors import UsageError
from edgebuild.firmware.boards import Board, load_board
from edgebuild.firmware.project import ELF

Log = Callable[[str], None]
PYOCD_HINT = "pip install 'edgebuild[flash]' (pyOCD)"


def read_mcu_build(target_dir: Path) -> dict[str, Any]:
    """The report of an mcu build folder (OUT/mcu, or OUT with one mcu target inside)."""
    target_dir = Path(target_dir)
    if not (target_dir / "report.json").is_file() and (target_dir / "mcu" / "report.json").is_file():
        target_dir = target_dir / "mcu"
    report_path = target_dir / "report.json"
    if not report_path.is_file() or not (target_dir / "c" / "model_settings.h").is_file():
        raise UsageError(
            f"{target_dir} is not an mcu build folder: it needs report.json and c/model_settings.h (written by "
            "`edgebuild build MODEL --target mcu --data DATA`). Pass the target's folder, e.g. build/demo/mcu."
        )
    report: dict[str, Any] = json.loads(report_path.read_text())
    report["_dir"] = str(target_dir)
    return report


def ensure_elf(report: dict[str, Any], board: Board, tflm_dir: Path | None, log: Log) -> tuple[Path, dict[str, Any]]:
    """The firmware ELF for `board`: the build's own when it matches, else built now (firmware-<board>/)."""
    from edgebuild.firmware.stage import run_firmware_stage

    target_dir = Path(report["_dir"])
    built = report.get("firmware") or {}
    own = target_dir / "firmware" / ELF
    if (built.get("board") or {}).get("name") == board.name and built.get("status") == "ok" and own.is_file():
        return own, built
    settings = (target_dir / "c" / "model_settings.h").read_text()
    match = re.search(r"kTensorArenaSize\s*=\s*(\d+)", settings)
    if match is None:
        raise UsageError(f"{target_dir}/c/model_settings.h declares no kTensorArenaSize: rebuild the mcu target.")
    tree = tflm_dir or (Path(built["tflm"]["tree"]) if built.get("tflm") else None)
    log(f"building the firmware for {board.name} in {target_dir / f'firmware-{board.name}'}")
    block = run_firmware_stage(
        target_dir / "model.tflite",
        target_dir / "c",
        target_dir / f"firmware-{board.name}",
        None,
        board,
        tree,
        int(match.group(1)),
        host_check=False,
        log=log,
    )
    elf = target_dir / f"firmware-{board.name}" / ELF
    if block["status"] == "failed":
        raise DeviceArtifactError(
            block["error"]["message"]
            if block.get("error")
            else "; ".join(c["summary"] for c in block["checks"] if not c["passed"])
        )
    if not elf.is_file():
        raise DeviceSetupError(f"Cannot build the firmware for {board.name}: {block.get('note')}")
    return elf, block


def connected_probes() -> list[str]:
    """Unique IDs of the debug probes pyOCD sees (DeviceSetupError when pyOCD is not installed)."""
    try:
        from pyocd.core.helpers import ConnectHelper
    except ImportError:
        raise DeviceSetupError(f"Flashing a board needs pyOCD, which is not installed: {PYOCD_HINT}.") from None
    return [
        probe.unique_id for probe in ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    ]


def flash_and_run(
    target_dir: Path,
    board_name: str | None = None,
    probe: str | None = None,
    tflm_dir: Path | None = None,
    timeout: float = 60.0,
    log: Log | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the ELF, flash it with pyOCD and return what the runner printed."""
    from edgebuild.firmware.qemu import parse_runner_output
    from edgebuild.process import run_tool

    log = log or (lambda text: None)
    report = read_mcu_build(target_dir)
    board = load_board(board_name or ((report.get("firmware") or {}).get("board") or {}).get("name") or "mps2-an386")
    elf, block = ensure_elf(report, board, tflm_dir, log)
    flash_bytes = (block.get("flash") or {}).get("total_bytes_without_samples")
    built = f"Built {elf} for {board.name}" + (f" ({flash_bytes:,} bytes of flash)" if flash_bytes else "")
    if board.pyocd_target is None:
        raise UsageError(
            f"{built}, but board {board.name} ({board.source}) names no pyOCD target ([probe] "
            "pyocd_target): it is an emulated board. Run it with `edgebuild bench MODEL --device "
            f"qemu:{board.name}`, or flash a real board: --board cortex-m4-generic or your board's .toml."
        )
    probes = connected_probes()
    if probe is not None:
        probes = [p for p in probes if probe in p]
    if not probes:
        raise DeviceSetupError(
            f"{built}; no debug probe is connected{f' matching {probe!r}' if probe else ''} (pyOCD found none). "
            "Connect the board's CMSIS-DAP, ST-LINK or J-Link probe over USB (on Linux, install the probe's udev "
            f"rules), or flash the ELF yourself: pyocd load -t {board.pyocd_target} {elf}."
        )
    pyocd = shutil.which("pyocd") or "pyocd"
    chosen = probes[0]
    load = run_tool([pyocd, "load", "-W", "-t", board.pyocd_target, "-u", chosen, str(elf)], timeout, "pyocd load")
    if load.returncode != 0:
        raise DeviceConnectionError(f"pyocd load of {elf} on probe {chosen} failed: {load.output.strip()[-600:]}")
    run = run_tool(
        [pyocd, "run", "-W", "-t", board.pyocd_target, "-u", chosen, "--timelimit", f"{timeout:g}"],
        timeout + 30,
        "pyocd run",
    )
    result = parse_runner_output(run.output, 0 if "EDGEBUILD_FW done" in run.output else 1)
    return {
        "board": board.name,
        "probe": chosen,
        "elf": str(elf),
        "flash_bytes": flash_bytes,
        "done": result.done,
        "arena_used_bytes": result.arena_used,
        "outputs": [a.tolist() for a in result.output_arrays()],
        "log": result.log[-12:],
    }
