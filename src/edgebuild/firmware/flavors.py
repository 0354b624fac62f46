"""Compiler flavors: the compilers, flags and includes a TFLite Micro library is built with."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from edgebuild.errors import ExternalToolError, UsageError

# ------------------------------------------------------------------------------------------ flags
# They mirror upstream tensorflow/lite/micro/tools/make/Makefile (TARGET=linux and TARGET=cortex_m_generic
# with OPTIMIZED_KERNEL_DIR=cmsis_nn): -Os for the framework, -O2 for kernels, TF_LITE_STATIC_MEMORY
# (which changes struct layouts, so an application must be compiled with the same defines).
COMMON_FLAGS = (
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-fmessage-length=0",
    "-DTF_LITE_STATIC_MEMORY",
    "-DTF_LITE_DISABLE_X86_NEON",
    "-DKERNELS_OPTIMIZED_FOR_SPEED",
)
CXX_ONLY = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_ONLY = ("-std=c17",)
TREE_INCLUDES = (
    ".",
    "third_party",
    "third_party/gemmlowp",
    "third_party/flatbuffers/include",
    "third_party/kissfft",
    "third_party/ruy",
)
CMSIS_INCLUDES = (
    "third_party/cmsis/CMSIS/Core/Include",
    "third_party/cmsis",
    "third_party/cmsis_nn",
    "third_party/cmsis_nn/Include",
)


@dataclass(frozen=True)
class Flavor:
    """One compiler + flag set + kernel choice: everything that makes two libraries differ.

    `kind` is "cortex-m" (cross compiler, cortex_m_generic debug log/time) or "host" (g++, TARGET=linux).
    `kernels` is "cmsis-nn" (Arm's optimized kernels replace the reference ones they cover) or "reference".
    """

    name: str
    kind: str
    kernels: str
    tool_prefix: str  # "arm-none-eabi-" or "" (host)
    arch_flags: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    includes: tuple[str, ...] = TREE_INCLUDES

    @property
    def cxx(self) -> str:
        return f"{self.tool_prefix}g++"

    @property
    def cc(self) -> str:
        return f"{self.tool_prefix}gcc"

    @property
    def ar(self) -> str:
        return f"{self.tool_prefix}ar"

    @property
    def nm(self) -> str:
        return f"{self.tool_prefix}nm"

    def base_flags(self) -> tuple[str, ...]:
        """Flags every TFLM source of this flavor is compiled with (before -O and the language flags)."""
        return (*COMMON_FLAGS, *self.arch_flags, *self.defines)

    def describe(self) -> str:
        where = "host g++" if self.kind == "host" else f"{self.cxx} {' '.join(self.arch_flags)}"
        return f"{self.name} ({where}, {self.kernels} kernels)"


def cortex_m_flavor(
    cpu: str, arch_flags: Sequence[str], cmsis_device: str, cpu_define: str, kernels: str = "cmsis-nn"
) -> Flavor:
    """The Cortex-M library for one CPU (board profiles give the arch flags and CMSIS device header)."""
    if kernels not in ("cmsis-nn", "reference"):
        raise UsageError(f"TFLite Micro kernels must be 'cmsis-nn' or 'reference', got {kernels!r}.")
    defines = [
        "-DTF_LITE_MCU_DEBUG_LOG",
        "-fomit-frame-pointer",
        f"-D{cpu_define}",
        "-funsigned-char",
        f'-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE="{cmsis_device}.h"',
        f"-D{cmsis_device}",
        "-DARM_NN_ENABLE_F16=0",
        "-DARM_NN_ENABLE_F32=0",
    ]
    if kernels == "cmsis-nn":
        defines.insert(0, "-DCMSIS_NN")
    includes = (*TREE_INCLUDES, f"third_party/cmsis/Cortex_DFP/Device/{cmsis_device}/Include", *CMSIS_INCLUDES)
    return Flavor(
        name=f"{cpu}-{kernels}",
        kind="cortex-m",
        kernels=kernels,
        tool_prefix="arm-none-eabi-",
        arch_flags=tuple(arch_flags),
        defines=tuple(defines),
        includes=includes,
    )


HOST_FLAVOR = Flavor(
    name="host-reference", kind="host", kernels="reference", tool_prefix="", defines=("-DTF_LITE_USE_CTIME",)
)


# ------------------------------------------------------------------------------------------ tools
@cache
def compiler_identity(compiler: str) -> str:
    """`<path> | <first --version line> | <-dumpmachine>`: part of every object's cache key."""
    path = shutil.which(compiler)
    if path is None:
        raise ExternalToolError(f"{compiler} was not found on PATH.")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
        machine = subprocess.run([path, "-dumpmachine"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExternalToolError(f"{compiler} --version failed: {exc}") from None
    first = version.strip().splitlines()[0] if version.strip() else "?"
    return f"{os.path.realpath(path)} | {first} | {machine.strip()}"


def missing_tools(flavor: Flavor) -> list[str]:
    return [t for t in (flavor.cxx, flavor.cc, flavor.ar, flavor.nm) if shutil.which(t) is None]
