"""Write the firmware project of one mcu build: OUT/mcu/firmware/, buildable with one `make`.

```
firmware/
  Makefile              make -> build/firmware.elf; make run (QEMU); make host run-host (same program on the host)
  README.md
  edgebuild_runner.cc   runs the model on the embedded samples, prints EDGEBUILD_FW lines
  samples.h, samples.cc K validation samples as C arrays (already quantized to the model's input type)
  board/                startup, semihosting, SysTick, linker script (from the board profile)
```
The model sources stay in `../c/` (the emit stage's model_data.cc, model_ops.h, model_settings.h,
main.cc); the Makefile reads them from `C_DIR`. TFLite Micro comes from `TFLM_DIR`: the Makefile compiles
exactly the library sources edgebuild resolved for the model's ops (or every library source when it did
not), with the flags edgebuild uses; `make TFLM_LIB=/path/libtflm.a` links a prebuilt library instead
(edgebuild passes its cached one, so its builds take seconds).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import edgebuild
from edgebuild.firmware.boards import Board
from edgebuild.firmware.tflm_library import (
    C_ONLY,
    COMMON_FLAGS,
    CXX_ONLY,
    HOST_FLAVOR,
    KERNEL_PREFIXES,
    Flavor,
)

RUNNER = "edgebuild_runner.cc"
ELF = "build/firmware.elf"
HOST_RUNNER = "build/host/firmware_host"
HOST_EXAMPLE = "build/host/example_main"
BOARD_FILES = ("startup.c", "semihost.c", "semihost.h", "platform.h", "platform_cortex_m.c", "platform_host.cc")
BYTES_PER_LINE = 16


def _mk_list(name: str, items: Sequence[str]) -> str:
    if not items:
        return f"{name} :=\n"
    return f"{name} := \\\n" + " \\\n".join(f"  {i}" for i in items) + "\n"


def _mk_escape(flag: str) -> str:
    """A compiler flag as one shell word inside a Makefile recipe."""
    if any(c in flag for c in "\"'() <>"):
        return "'" + flag.replace("'", "'\\''") + "'"
    return flag


def _full_sources_block(var: str, flavor: Flavor) -> str:
    """Make code that lists every library source of the tree for `flavor` (used when edgebuild did not resolve)."""
    lines = [
        f"ifeq ($(strip $({var})),)",
        "# Every library source of the tree, specialized as upstream does (cortex_m_generic / cmsis_nn replace",
        "# the generic files of the same name); --gc-sections keeps only what the model uses.",
        "_ALL := $(sort $(shell cd $(TFLM_DIR) && find tensorflow signal -name '*.cc' -o -name '*.c'))",
    ]
    if flavor.kind == "host":
        lines.append(
            f"{var} := $(filter-out tensorflow/lite/micro/kernels/cmsis_nn/% "
            "tensorflow/lite/micro/cortex_m_generic/%,$(_ALL))"
        )
    else:
        special = "tensorflow/lite/micro/cortex_m_generic/%"
        lines.append("_CM := $(filter tensorflow/lite/micro/cortex_m_generic/%,$(_ALL))")
        lines.append("_REPL := $(patsubst tensorflow/lite/micro/cortex_m_generic/%,tensorflow/lite/micro/%,$(_CM))")
        if flavor.kernels == "cmsis-nn":
            lines.append("_NN := $(filter tensorflow/lite/micro/kernels/cmsis_nn/%,$(_ALL))")
            lines.append(
                "_REPL += $(patsubst tensorflow/lite/micro/kernels/cmsis_nn/%,tensorflow/lite/micro/kernels/%,$(_NN))"
            )
            lines.append(
                f"{var} := $(filter-out $(_REPL) $(_NN) {special},$(_ALL)) $(_NN) $(_CM) "
                "$(sort $(shell cd $(TFLM_DIR) && find third_party/cmsis_nn/Source -name '*.c'))"
            )
        else:
            lines.append(
                f"{var} := $(filter-out $(_REPL) tensorflow/lite/micro/kernels/cmsis_nn/% {special},$(_ALL)) $(_CM)"
            )
    lines.append("endif")
    return "\n".join(lines) + "\n"


def makefile_text(
    *,
    board: Board,
    flavor: Flavor,
    tree: Path | None,
    c_dir_rel: str,
    symbol: str,
    device_sources: Sequence[str] | None,
    host_sources: Sequence[str] | None,
) -> str:
    arch = " ".join(board.arch_flags)
    tflm_defs = " ".join(_mk_escape(f) for f in (*COMMON_FLAGS, *flavor.defines))
    host_defs = " ".join(_mk_escape(f) for f in HOST_FLAVOR.base_flags())
    includes = " ".join(flavor.includes)
    host_includes = " ".join(HOST_FLAVOR.includes)
    kernel_filter = " ".join(f"{p}%" for p in KERNEL_PREFIXES)
    tree_line = (
        f"TFLM_DIR ?= {tree}"
        if tree is not None
        else ("TFLM_DIR ?= $(error Set TFLM_DIR to a TensorFlow Lite Micro source tree (create_tflm_tree.py output))")
    )
    qemu_args = " ".join(board.qemu_args)
    return f"""# Firmware for the model in {c_dir_rel}/ on {board.name} ({board.cpu}), written by edgebuild {edgebuild.__version__}.
#
#   make                 -> $(BUILD)/firmware.elf (+ .map), compiling TensorFlow Lite Micro from TFLM_DIR
#   make run             -> run it in QEMU ({board.qemu_machine or "no QEMU machine for this board"}); exit status = the firmware's
#   make host run-host   -> the same runner on this machine (g++, reference kernels), plus the generated main.cc
#   make ARENA_BYTES=N   -> a tensor arena of N bytes instead of kTensorArenaSize (model_settings.h)
#   make TFLM_LIB=/path/libtflm.a   -> link a prebuilt library of the same flags instead of compiling TFLM
#
# Overridable: TFLM_DIR C_DIR ARM_PREFIX HOST_CXX QEMU BUILD ARENA_BYTES TFLM_LIB TFLM_HOST_LIB QEMU_TIMEOUT
{tree_line}
C_DIR ?= {c_dir_rel}
ARM_PREFIX ?= arm-none-eabi-
HOST_CXX ?= g++
HOST_CC ?= gcc
QEMU ?= qemu-system-arm
QEMU_TIMEOUT ?= 120
BUILD ?= build
ARENA_BYTES ?=
TFLM_LIB ?=
TFLM_HOST_LIB ?=

ARCH := {arch}
# Must match the library: TF_LITE_STATIC_MEMORY changes struct layouts.
TFLM_DEFS := {tflm_defs}
TFLM_INCLUDES := $(addprefix -I$(TFLM_DIR)/,{includes})
HOST_DEFS := {host_defs}
HOST_INCLUDES := $(addprefix -I$(TFLM_DIR)/,{host_includes})
APP_DEFS := -DEDGEBUILD_MODEL_SYMBOL={symbol} '-DEDGEBUILD_BOARD_NAME="{board.name}"' \\
  -DEDGEBUILD_SYSTICK_HZ={board.systick_hz}u -DEDGEBUILD_DEVICE_IRQS={board.device_irqs} \\
  '-DEDGEBUILD_KERNELS="{flavor.kernels}"'
ifneq ($(strip $(ARENA_BYTES)),)
APP_DEFS += -DEDGEBUILD_ARENA_BYTES=$(ARENA_BYTES)
endif
APP_INCLUDES := -I. -Iboard -I$(C_DIR)
CXX_ONLY := {" ".join(CXX_ONLY)}
C_ONLY := {" ".join(C_ONLY)}

CXXFLAGS := $(CXX_ONLY) -O2 -Wall -Wno-unused-parameter $(ARCH) $(TFLM_DEFS) $(APP_DEFS) $(APP_INCLUDES) $(TFLM_INCLUDES)
CFLAGS := $(C_ONLY) -O2 -Wall $(ARCH) $(TFLM_DEFS) $(APP_DEFS) $(APP_INCLUDES) $(TFLM_INCLUDES)
LDFLAGS := $(ARCH) -T board/board.ld -nostartfiles --specs=nosys.specs -Wl,--gc-sections \\
  -Wl,-Map=$(BUILD)/firmware.map -Wl,--no-warn-rwx-segments
HOST_CXXFLAGS := $(CXX_ONLY) -O2 -Wall -Wno-unused-parameter $(HOST_DEFS) \\
  -DEDGEBUILD_MODEL_SYMBOL={symbol} $(APP_INCLUDES) $(HOST_INCLUDES)
ifneq ($(strip $(ARENA_BYTES)),)
HOST_CXXFLAGS += -DEDGEBUILD_ARENA_BYTES=$(ARENA_BYTES)
endif

# ------------------------------------------------------------ TensorFlow Lite Micro sources
# The library sources this model needs (framework + its ops' kernels + what they call), as edgebuild
# resolved them for {flavor.describe()}.
{_mk_list("TFLM_SRCS", device_sources or [])}{_full_sources_block("TFLM_SRCS", flavor)}
{_mk_list("TFLM_HOST_SRCS", host_sources or [])}{_full_sources_block("TFLM_HOST_SRCS", HOST_FLAVOR)}
tflm_opt = $(if $(filter {kernel_filter},$(1)),-O2,-Os)

# ------------------------------------------------------------ device
APP_OBJS := $(BUILD)/app/{RUNNER}.o $(BUILD)/app/samples.cc.o $(BUILD)/app/model_data.cc.o \\
  $(BUILD)/app/startup.c.o $(BUILD)/app/semihost.c.o $(BUILD)/app/platform_cortex_m.c.o
ifeq ($(strip $(TFLM_LIB)),)
TFLM_LIB_USED := $(BUILD)/tflm/libtflm.a
else
TFLM_LIB_USED := $(TFLM_LIB)
endif

.PHONY: all fw run host run-host clean
all: fw
fw: $(BUILD)/firmware.elf

$(BUILD)/app/%.cc.o: %.cc
\t@mkdir -p $(dir $@)
\t$(ARM_PREFIX)g++ $(CXXFLAGS) -c $< -o $@
$(BUILD)/app/model_data.cc.o: $(C_DIR)/model_data.cc
\t@mkdir -p $(dir $@)
\t$(ARM_PREFIX)g++ $(CXXFLAGS) -c $< -o $@
$(BUILD)/app/%.c.o: board/%.c
\t@mkdir -p $(dir $@)
\t$(ARM_PREFIX)gcc $(CFLAGS) -c $< -o $@

$(BUILD)/firmware.elf: $(APP_OBJS) $(TFLM_LIB_USED) board/board.ld
\t$(ARM_PREFIX)g++ $(LDFLAGS) $(APP_OBJS) $(TFLM_LIB_USED) -lm -o $@
\t$(ARM_PREFIX)size $@

# TFLM compiled in its own folder (as edgebuild does), so objects match edgebuild's cached ones.
$(BUILD)/tflm/%.cc.o: $(TFLM_DIR)/%.cc
\t@mkdir -p $(dir $@)
\tcd $(TFLM_DIR) && $(ARM_PREFIX)g++ $(CXX_ONLY) $(TFLM_DEFS) $(ARCH) $(call tflm_opt,$*.cc) \\
\t  $(addprefix -I,{includes}) -c $*.cc -o $(abspath $@)
$(BUILD)/tflm/%.c.o: $(TFLM_DIR)/%.c
\t@mkdir -p $(dir $@)
\tcd $(TFLM_DIR) && $(ARM_PREFIX)gcc $(C_ONLY) $(TFLM_DEFS) $(ARCH) $(call tflm_opt,$*.c) \\
\t  $(addprefix -I,{includes}) -c $*.c -o $(abspath $@)
$(BUILD)/tflm/libtflm.a: $(patsubst %,$(BUILD)/tflm/%.o,$(TFLM_SRCS))
\t@rm -f $@
\t$(ARM_PREFIX)ar rcs $@ $^

run: $(BUILD)/firmware.elf
\ttimeout $(QEMU_TIMEOUT) $(QEMU) -M {board.qemu_machine} {qemu_args} -kernel $(BUILD)/firmware.elf

# ------------------------------------------------------------ host (g++, reference kernels)
ifeq ($(strip $(TFLM_HOST_LIB)),)
TFLM_HOST_LIB_USED := $(BUILD)/host/tflm/libtflm.a
else
TFLM_HOST_LIB_USED := $(TFLM_HOST_LIB)
endif
HOST_OBJS := $(BUILD)/host/app/{RUNNER}.o $(BUILD)/host/app/samples.cc.o $(BUILD)/host/app/model_data.cc.o \\
  $(BUILD)/host/app/platform_host.cc.o

host: $(BUILD)/host/firmware_host $(BUILD)/host/example_main
$(BUILD)/host/app/%.cc.o: %.cc
\t@mkdir -p $(dir $@)
\t$(HOST_CXX) $(HOST_CXXFLAGS) -c $< -o $@
$(BUILD)/host/app/platform_host.cc.o: board/platform_host.cc
\t@mkdir -p $(dir $@)
\t$(HOST_CXX) $(HOST_CXXFLAGS) -c $< -o $@
$(BUILD)/host/app/model_data.cc.o: $(C_DIR)/model_data.cc
\t@mkdir -p $(dir $@)
\t$(HOST_CXX) $(HOST_CXXFLAGS) -c $< -o $@
$(BUILD)/host/app/main.cc.o: $(C_DIR)/main.cc
\t@mkdir -p $(dir $@)
\t$(HOST_CXX) $(HOST_CXXFLAGS) -c $< -o $@
$(BUILD)/host/firmware_host: $(HOST_OBJS) $(TFLM_HOST_LIB_USED)
\t$(HOST_CXX) $(HOST_OBJS) $(TFLM_HOST_LIB_USED) -lm -o $@
# The generated example entry point ($(C_DIR)/main.cc), unchanged.
$(BUILD)/host/example_main: $(BUILD)/host/app/main.cc.o $(BUILD)/host/app/model_data.cc.o $(TFLM_HOST_LIB_USED)
\t$(HOST_CXX) $^ -lm -o $@

$(BUILD)/host/tflm/%.cc.o: $(TFLM_DIR)/%.cc
\t@mkdir -p $(dir $@)
\tcd $(TFLM_DIR) && $(HOST_CXX) $(CXX_ONLY) $(HOST_DEFS) $(call tflm_opt,$*.cc) \\
\t  $(addprefix -I,{host_includes}) -c $*.cc -o $(abspath $@)
$(BUILD)/host/tflm/%.c.o: $(TFLM_DIR)/%.c
\t@mkdir -p $(dir $@)
\tcd $(TFLM_DIR) && $(HOST_CC) $(C_ONLY) $(HOST_DEFS) $(call tflm_opt,$*.c) \\
\t  $(addprefix -I,{host_includes}) -c $*.c -o $(abspath $@)
$(BUILD)/host/tflm/libtflm.a: $(patsubst %,$(BUILD)/host/tflm/%.o,$(TFLM_HOST_SRCS))
\t@rm -f $@
\tar rcs $@ $^

run-host: $(BUILD)/host/firmware_host $(BUILD)/host/example_main
\t$(BUILD)/host/firmware_host
\t$(BUILD)/host/example_main

clean:
\trm -rf $(BUILD)
"""


def samples_sources(inputs: Sequence[np.ndarray]) -> tuple[str, str]:
    """samples.h and samples.cc: each input's K samples as one 16-byte aligned byte array (native layout)."""
    count = int(inputs[0].shape[0]) if inputs else 0
    per_sample = [int(a[0].nbytes) if count else int(np.prod(a.shape[1:]) * a.dtype.itemsize) for a in inputs]
    header = f"""// samples.h: {count} validation sample(s) for the firmware runner, written by edgebuild {edgebuild.__version__}.
#ifndef EDGEBUILD_SAMPLES_H_
#define EDGEBUILD_SAMPLES_H_

constexpr int kSampleCount = {count};
constexpr int kSampleInputs = {len(inputs)};
// g_sample_inputs[i] holds kSampleCount samples of input i, g_sample_input_bytes[i] bytes each, already in the
// input tensor's type (quantized with its scale and zero point for int8/uint8/int16 inputs), little-endian.
extern const unsigned char* const g_sample_inputs[kSampleInputs];
extern const int g_sample_input_bytes[kSampleInputs];

#endif  // EDGEBUILD_SAMPLES_H_
"""
    parts = [f"// samples.cc: written by edgebuild {edgebuild.__version__}; see samples.h.", '#include "samples.h"', ""]
    for i, array in enumerate(inputs):
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        rows = [
            ", ".join(f"0x{b:02x}" for b in data[j : j + BYTES_PER_LINE]) for j in range(0, len(data), BYTES_PER_LINE)
        ]
        body = ",\n  ".join(rows) if rows else "0"
        parts.append(f"// input {i}: {array.dtype}{list(array.shape)}")
        parts.append(
            f"alignas(16) static const unsigned char g_sample_input{i}[{max(len(data), 1)}] = {{\n  {body}\n}};"
        )
        parts.append("")
    names = ", ".join(f"g_sample_input{i}" for i in range(len(inputs)))
    parts.append(f"const unsigned char* const g_sample_inputs[kSampleInputs] = {{{names}}};")
    parts.append(f"const int g_sample_input_bytes[kSampleInputs] = {{{', '.join(map(str, per_sample))}}};")
    return header, "\n".join(parts) + "\n"


def readme_text(board: Board, flavor: Flavor, tree: Path | None, samples: int) -> str:
    return f"""# Firmware: the model on {board.name} ({board.cpu})

Written by edgebuild {edgebuild.__version__}. `edgebuild_runner.cc` loads the model from `../c/`, allocates
exactly `kTensorArenaSize` bytes (model_settings.h), runs the {samples} validation sample(s) of `samples.cc`
and prints one `EDGEBUILD_FW ...` line per result: the int8 outputs, `arena_used_bytes()`, SysTick ticks
per inference, per-op ticks and the stack/heap high-water marks.

```sh
make                      # build/firmware.elf (+ build/firmware.map); compiles TFLite Micro from TFLM_DIR
make run                  # qemu-system-arm -M {board.qemu_machine} {" ".join(board.qemu_args)} -kernel build/firmware.elf
make host run-host        # the same runner and ../c/main.cc on this machine (g++, reference kernels)
make ARENA_BYTES=2048 run # a smaller arena: the runner reports the allocation failure and exits 2
```

TensorFlow Lite Micro: `TFLM_DIR` (default `{tree or "unset"}`), built as {flavor.describe()}.
Debian packages: gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm.

Under QEMU with `-icount shift=0` every instruction advances virtual time by 1 ns and SysTick counts
{board.systick_hz:,} ticks per virtual second, so ticks count instructions ({1e9 / board.systick_hz:g} per tick):
the figures are instructions on QEMU, not cycles or time on a real {board.cpu}.
"""


def write_project(
    out_dir: Path,
    *,
    c_dir: Path,
    board: Board,
    flavor: Flavor,
    tree: Path | None,
    symbol: str,
    samples: Sequence[np.ndarray],
    device_sources: Sequence[str] | None = None,
    host_sources: Sequence[str] | None = None,
) -> list[Path]:
    """Write the project into `out_dir` (created); returns the files written."""
    out_dir = Path(out_dir)
    (out_dir / "board").mkdir(parents=True, exist_ok=True)
    c_dir_rel = os.path.relpath(Path(c_dir).resolve(), out_dir.resolve())
    files: dict[str, str] = {
        "Makefile": makefile_text(
            board=board,
            flavor=flavor,
            tree=tree,
            c_dir_rel=c_dir_rel,
            symbol=symbol,
            device_sources=device_sources,
            host_sources=host_sources,
        ),
        "README.md": readme_text(board, flavor, tree, int(samples[0].shape[0]) if samples else 0),
        "board/board.ld": board.linker_script(),
    }
    header, source = samples_sources(samples)
    files["samples.h"], files["samples.cc"] = header, source
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    template_dir = Path(__file__).resolve().parent / "templates"
    shutil.copyfile(template_dir / RUNNER, out_dir / RUNNER)
    written.append(out_dir / RUNNER)
    for name in BOARD_FILES:
        shutil.copyfile(board.support_dir / name, out_dir / "board" / name)
        written.append(out_dir / "board" / name)
    return written
