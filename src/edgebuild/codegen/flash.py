"""Measure what the model array costs in flash on a Cortex-M, with the real Arm GNU toolchain.

Both helpers return None when the tool is not installed (Debian: `gcc-arm-none-eabi`
and `libnewlib-arm-none-eabi`), so the report can say "not measured" instead of failing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgebuild.errors import ExternalToolError
from edgebuild.process import run_tool

CORTEX_M_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c++17", "-fno-exceptions", "-fno-rtti")
COMPILE_TIMEOUT_S = 600  # a multi-megabyte array takes seconds per MB to parse
_INSTALL_HINT = "Install it with `apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi` (or `make install`)."


def compile_for_cortex_m(model_data_cc: Path, workdir: Path) -> Path | None:
    """Compile model_data.cc to `workdir/model_data.o` with arm-none-eabi-g++ (None without it)."""
    compiler = shutil.which("arm-none-eabi-g++")
    if compiler is None:
        return None
    source = Path(model_data_cc)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    obj = workdir / (source.stem + ".o")
    cmd = [compiler, *CORTEX_M_FLAGS, "-I", str(source.parent), "-c", str(source), "-o", str(obj)]
    result = run_tool(cmd, COMPILE_TIMEOUT_S, "arm-none-eabi-g++")
    if result.returncode != 0:
        raise ExternalToolError(
            f"arm-none-eabi-g++ could not compile {source} (exit {result.returncode}):\n"
            f"{result.stderr.strip()}\nCommand: {' '.join(cmd)}"
        )
    return obj


def object_sizes(object_path: Path) -> dict[str, int] | None:
    """text, data and bss bytes of an object or ELF file from `arm-none-eabi-size` (None without it)."""
    tool = shutil.which("arm-none-eabi-size")
    if tool is None:
        return None
    result = run_tool([tool, "--format=berkeley", str(object_path)], 60, "arm-none-eabi-size")
    if result.returncode != 0:
        raise ExternalToolError(
            f"arm-none-eabi-size could not read {object_path} (exit {result.returncode}): "
            f"{result.stderr.strip()}. {_INSTALL_HINT}"
        )
    # "   text    data     bss     dec     hex filename" then one line per file
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    try:
        text, data, bss = (int(v) for v in lines[1][:3])
    except (IndexError, ValueError):
        raise ExternalToolError(
            f"Unexpected output from arm-none-eabi-size for {object_path}:\n{result.stdout}"
        ) from None
    return {"text": text, "data": data, "bss": bss}
