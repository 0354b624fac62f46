"""Firmware for mcu builds: the generated C linked with TensorFlow Lite Micro, measured and run.

- `tflm_library`: the TFLM library per tree x compiler x flags x op set, content-addressed cache (its
  names; the work in `store`, `flavors`, `tree`, `resolve`, `objects` and `library`);
- `boards`: board profiles (`targets/boards/*.toml`) and the project-owned board support files;
- `project`: writes OUT/mcu/firmware/ (Makefile project, runner, samples, board files);
- `elf_size`: flash/RAM from the linked ELF, split by the linker map;
- `qemu`: runs the firmware under QEMU and parses what it prints;
- `host_check`: the generated C++ compiled with host g++ against the same tree and run;
- `stage.run_firmware_stage`: all of the above for one build, as a JSON-able dict for report.json.

No TensorFlow import anywhere here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_firmware_stage"]


def run_firmware_stage(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See `edgebuild.firmware.stage.run_firmware_stage` (imported lazily)."""
    from edgebuild.firmware.stage import run_firmware_stage as run

    return run(*args, **kwargs)
