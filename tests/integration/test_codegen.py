"""Generated C sources for a real int8 model, compiled with real compilers.

- host g++: the embedded array equals the .tflite file byte for byte and is 16-byte aligned;
- arm-none-eabi-g++ (Cortex-M4): model_data.cc and model_settings.h compile, and the object's
  flash (text + data, read with arm-none-eabi-size) holds at least the whole model;
- model_ops.h needs TFLM headers, which are not installed: its content is checked instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from tflite_helpers import to_tflite

from edgebuild.artifact import read_artifact
from edgebuild.codegen import CSourceOptions, write_c_sources
from edgebuild.codegen.flash import compile_for_cortex_m, object_sizes
from edgebuild.codegen.ops import BUILTIN_METHODS

pytestmark = pytest.mark.tf

ARM_MISSING = shutil.which("arm-none-eabi-g++") is None or shutil.which("arm-none-eabi-size") is None
ARM_REASON = (
    "arm-none-eabi-g++/arm-none-eabi-size not found: install Debian's gcc-arm-none-eabi and "
    "libnewlib-arm-none-eabi (`make install` does) to compile for Cortex-M"
)
GXX_MISSING = shutil.which("g++") is None


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> Path:
    """A tiny full-int8 CNN (Conv2D, DepthwiseConv2D, pooling, Dense, Softmax) converted with real TFLite."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Input((8, 8, 1)),
            tf_keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            tf_keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            tf_keras.layers.MaxPooling2D(2),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(10),
            tf_keras.layers.Softmax(),
        ]
    )
    path = tmp_path_factory.mktemp("model") / "model_int8.tflite"
    path.write_bytes(to_tflite(model, "int8", samples=32))
    return path


@pytest.fixture(scope="module")
def sources(int8_model, tmp_path_factory):
    data = int8_model.read_bytes()
    artifact = read_artifact(int8_model)
    out = tmp_path_factory.mktemp("c_sources")
    start = time.perf_counter()
    paths = write_c_sources(data, artifact, out, CSourceOptions(symbol="g_digits_model", arena_bytes=16384))
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"generating C sources took {elapsed:.2f} s"
    return artifact, out, paths


def _run(cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


CHECK_PROGRAM = r"""
#include <cstdint>
#include <cstdio>
#include <vector>
#include "model_data.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::FILE* f = std::fopen(argv[1], "rb");
  if (!f) { std::printf("cannot open %s\n", argv[1]); return 2; }
  std::vector<unsigned char> file;
  int c;
  while ((c = std::fgetc(f)) != EOF) file.push_back(static_cast<unsigned char>(c));
  std::fclose(f);
  if (SYMBOL_len != file.size()) { std::printf("length %u != file %zu\n", SYMBOL_len, file.size()); return 1; }
  for (std::size_t i = 0; i < file.size(); ++i) {
    if (SYMBOL[i] != file[i]) { std::printf("byte %zu differs\n", i); return 1; }
  }
  if (reinterpret_cast<std::uintptr_t>(SYMBOL) % 16 != 0) { std::printf("array not 16-byte aligned\n"); return 1; }
  std::printf("OK %u bytes\n", SYMBOL_len);
  return 0;
}
"""


@pytest.mark.skipif(GXX_MISSING, reason="host g++ is not installed")
@pytest.mark.parametrize("xxd_names", [False, True], ids=["const", "xxd"])
def test_host_build_embeds_exact_aligned_bytes(int8_model, tmp_path, xxd_names):
    data = int8_model.read_bytes()
    write_c_sources(data, read_artifact(int8_model), tmp_path, CSourceOptions(symbol="g_model", xxd_names=xxd_names))
    check = tmp_path / "check.cc"
    check.write_text(CHECK_PROGRAM.replace("SYMBOL", "g_model"))
    exe = tmp_path / "check"
    _run(
        [
            "g++",
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            "-I",
            tmp_path,
            check,
            tmp_path / "model_data.cc",
            "-o",
            exe,
        ]
    )
    assert _run([exe, int8_model]).strip() == f"OK {len(data)} bytes"


@pytest.mark.skipif(ARM_MISSING, reason=ARM_REASON)
def test_cortex_m_object_holds_the_model_in_flash(sources, int8_model, tmp_path):
    _, out, _ = sources
    obj = compile_for_cortex_m(out / "model_data.cc", tmp_path)
    assert obj is not None and obj.exists()
    size = int8_model.stat().st_size
    sizes = object_sizes(obj)
    assert sizes is not None and sizes["text"] + sizes["data"] >= size
    # const array: read-only data, counted as text; nothing in RAM
    assert sizes["text"] >= size and sizes["data"] == 0 and sizes["bss"] == 0
    # the direct compiler invocation the pipeline uses, spelled out
    obj2 = tmp_path / "direct.o"
    _run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-Os", "-I", out, "-c", out / "model_data.cc", "-o", obj2])
    direct = object_sizes(obj2)
    assert direct is not None and direct["text"] + direct["data"] >= size


@pytest.mark.skipif(ARM_MISSING, reason=ARM_REASON)
def test_model_settings_compiles_for_cortex_m(sources, tmp_path):
    _, out, _ = sources
    use = tmp_path / "use_settings.cc"
    use.write_text(
        '#include "model_settings.h"\n'
        "EDGEBUILD_TENSOR_ARENA(arena);\n"
        "int8_t q(float x) { return QuantizeInput(x); }\n"
        "float d(int8_t v) { return DequantizeOutput(v); }\n"
        "uint8_t* a() { return arena; }\n"
        'static_assert(kTensorArenaSize == 16384, "arena size");\n'
        'static_assert(kInputElements == 64 && kOutputElements == 10, "elements");\n'
    )
    _run(
        [
            "arm-none-eabi-g++",
            "-mcpu=cortex-m4",
            "-mthumb",
            "-Os",
            "-std=c++17",
            "-Wall",
            "-Werror",
            "-I",
            out,
            "-c",
            use,
            "-o",
            tmp_path / "use_settings.o",
        ]
    )
    assert object_sizes(tmp_path / "use_settings.o")["bss"] >= 16384  # the arena itself


def test_model_ops_lists_exactly_the_models_ops(sources):
    artifact, out, _ = sources
    text = (out / "model_ops.h").read_text()
    op_counts = artifact.op_counts()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(op_counts)
    calls = re.findall(r"resolver\.(Add\w+)\(\)", text)
    assert sorted(calls) == sorted(BUILTIN_METHODS[name] for name in op_counts)
    assert len(calls) == len(set(calls))
    n = int(re.search(r"constexpr int kNumberOperators = (\d+);", text).group(1))
    assert n == len(op_counts)
    assert "tflite::MicroMutableOpResolver<kNumberOperators>" in text


def test_settings_and_main_use_the_models_quantization(sources):
    artifact, out, paths = sources
    assert [p.name for p in paths] == ["model_data.h", "model_data.cc", "model_ops.h", "model_settings.h", "main.cc"]
    settings = (out / "model_settings.h").read_text()
    inp, outp = artifact.inputs[0], artifact.outputs[0]
    assert inp.dtype == outp.dtype == "int8"
    assert "constexpr int kTensorArenaSize = 16384;" in settings
    assert f"constexpr int kInputZeroPoint = {inp.zero_point[0]};" in settings
    assert f"constexpr int kOutputZeroPoint = {outp.zero_point[0]};" in settings
    scale = float(re.search(r"constexpr float kInputScale = ([^f;]+)f;", settings).group(1))
    assert np.float32(scale) == np.float32(inp.scale[0])
    main = (out / "main.cc").read_text()
    for needle in (
        "tflite::GetModel(g_digits_model)",
        "tflite::MicroInterpreter interpreter(",
        "RegisterOps(resolver)",
        "AllocateTensors()",
        "Invoke()",
        "QuantizeInput(",
        "DequantizeOutput(",
    ):
        assert needle in main
    header = (out / "model_data.h").read_text()
    assert artifact.sha256 in header
    assert "extern const unsigned char g_digits_model[];" in header


def test_multi_subgraph_models_use_the_model_wide_operator_codes(sources, int8_model):
    """IF/WHILE bodies live in other subgraphs: their ops come from the operator-code table."""
    import dataclasses

    from edgebuild.codegen.ops import resolver_methods

    artifact, _, _ = sources
    only_codes = dataclasses.replace(artifact, ops=(), subgraph_count=2)
    assert resolver_methods(only_codes) == resolver_methods(artifact)
