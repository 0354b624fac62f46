"""C source generation from a fixed byte blob: no TensorFlow, host compilers where present.

Golden files live in tests/golden/codegen/; regenerate them with
`EDGEBUILD_UPDATE_GOLDEN=1 pytest tests/unit/test_codegen_unit.py`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgebuild
from edgebuild.artifact import OpInfo, TensorInfo, TfliteArtifact
from edgebuild.codegen import CSourceOptions, write_c_sources
from edgebuild.codegen.flash import compile_for_cortex_m, object_sizes
from edgebuild.codegen.identifiers import validate_symbol
from edgebuild.codegen.ops import BUILTIN_METHODS, resolver_methods
from edgebuild.codegen.render import c_float
from edgebuild.errors import UnsupportedError, UsageError

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "codegen"
UPDATE_GOLDEN = os.environ.get("EDGEBUILD_UPDATE_GOLDEN") == "1"

# A fixed blob: every byte value, a partial last line, and a recognisable tail.
BLOB = bytes(range(256)) + b"edgebuild golden blob\n"
IN_SCALE, IN_ZP = 0.003921568859368563, -128
OUT_SCALE, OUT_ZP = 0.00390625, -128


def make_artifact(
    blob: bytes = BLOB,
    op_names: tuple[str, ...] = ("CONV_2D", "FULLY_CONNECTED", "CONV_2D", "SOFTMAX"),
    custom: tuple[str, ...] = (),
) -> TfliteArtifact:
    tensors = (
        TensorInfo(0, "serving_default_input:0", (1, 8, 8, 1), (-1, 8, 8, 1), "int8", (IN_SCALE,), (IN_ZP,), 0, 0),
        TensorInfo(1, "StatefulPartitionedCall:0", (1, 10), (-1, 10), "int8", (OUT_SCALE,), (OUT_ZP,), 0, 0),
    )
    ops = tuple(OpInfo(i, name, (0,), (1,)) for i, name in enumerate(op_names))
    ops += tuple(OpInfo(len(ops) + i, name, (0,), (1,), custom=True) for i, name in enumerate(custom))
    return TfliteArtifact(
        size_bytes=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        tensors=tensors,
        ops=ops,
        input_indices=(0,),
        output_indices=(1,),
        subgraph_count=1,
    )


def normalized(text: str) -> str:
    """The golden files do not change with every release: the version becomes a placeholder."""
    return text.replace(f"edgebuild {edgebuild.__version__}.", "edgebuild <VERSION>.")


@pytest.mark.parametrize("name", ["model_data.cc", "model_data.h", "model_ops.h", "model_settings.h", "main.cc"])
def test_golden_sources(tmp_path, name):
    write_c_sources(BLOB, make_artifact(), tmp_path, CSourceOptions(symbol="g_model", arena_bytes=24576))
    actual = normalized((tmp_path / name).read_text(encoding="utf-8"))
    golden = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8", newline="\n")
    assert golden.exists(), f"{golden} is missing: run pytest with EDGEBUILD_UPDATE_GOLDEN=1 to create it"
    assert actual == golden.read_text(encoding="utf-8"), (
        f"{name} differs from {golden}; if the change is intended, regenerate with EDGEBUILD_UPDATE_GOLDEN=1"
    )


def test_output_is_deterministic_and_complete(tmp_path):
    a = write_c_sources(BLOB, make_artifact(), tmp_path / "a", CSourceOptions(arena_bytes=1000))
    b = write_c_sources(BLOB, make_artifact(), tmp_path / "b", CSourceOptions(arena_bytes=1000))
    assert [p.name for p in a] == ["model_data.h", "model_data.cc", "model_ops.h", "model_settings.h", "main.cc"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in a)  # no temp files left


def test_without_arena_size_settings_and_main_are_skipped(tmp_path):
    paths = write_c_sources(BLOB, make_artifact(), tmp_path, CSourceOptions())
    assert [p.name for p in paths] == ["model_data.h", "model_data.cc", "model_ops.h"]
    assert not (tmp_path / "model_settings.h").exists()
    assert not (tmp_path / "main.cc").exists()


def test_banner_names_sha_version_and_io(tmp_path):
    write_c_sources(BLOB, make_artifact(), tmp_path, CSourceOptions())
    header = (tmp_path / "model_data.h").read_text()
    assert hashlib.sha256(BLOB).hexdigest() in header
    assert f"edgebuild {edgebuild.__version__}" in header
    assert '// Input 0: "serving_default_input:0" int8[1,8,8,1] scale 0.00392156886 zero_point -128' in header
    assert '// Output 0: "StatefulPartitionedCall:0" int8[1,10] scale 0.00390625 zero_point -128' in header
    assert "extern const unsigned char g_model[];" in header
    assert "extern const unsigned int g_model_len;" in header
    source = (tmp_path / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model[] = {" in source
    assert f"const unsigned int g_model_len = {len(BLOB)};" in source


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("", "is empty"),
        ("1model", "'1model' is not a valid C identifier: it starts with a digit"),
        ("g-model", "'g-model' is not a valid C identifier: it contains '-'"),
        ("my model.v2", "it contains ' ', '.'"),
        ("modèle", "it contains 'è'"),
        ("int", "'int' is a C/C++ keyword"),
        ("class", "'class' is a C/C++ keyword"),
        ("constexpr", "is a C/C++ keyword"),
        ("_Bool", "is a C/C++ keyword"),
        ("__model", "is reserved for the compiler"),
        ("_Model", "is reserved for the compiler"),
    ],
)
def test_bad_symbols_are_usage_errors(symbol, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        CSourceOptions(symbol=symbol)


@pytest.mark.parametrize("symbol", ["g_model", "model", "_model", "digits_cnn_int8", "M2"])
def test_good_symbols_pass(symbol):
    assert validate_symbol(symbol) == symbol
    assert CSourceOptions(symbol=symbol).symbol == symbol


def test_the_profile_schema_can_import_the_symbol_rules_without_tensorflow():
    import sys

    code = (
        "import sys; from edgebuild.codegen.identifiers import C_CPP_KEYWORDS, symbol_problem; "
        "from edgebuild.profiles.schema import McuSection; McuSection(symbol='g_model'); "
        "print('HEAVY', [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout


@pytest.mark.parametrize("arena", [0, -5, 1.5, True, "100"])
def test_bad_arena_size_is_a_usage_error(arena):
    with pytest.raises(UsageError, match="tensor arena size must be a positive number of bytes"):
        CSourceOptions(arena_bytes=arena)


def test_xxd_names_match_real_xxd(tmp_path):
    symbol = "digits_model"
    write_c_sources(BLOB, make_artifact(), tmp_path / "gen", CSourceOptions(symbol=symbol, xxd_names=True))
    source = (tmp_path / "gen" / "model_data.cc").read_text()
    header = (tmp_path / "gen" / "model_data.h").read_text()
    assert "extern unsigned char digits_model[];" in header
    assert "extern unsigned int digits_model_len;" in header
    generated = source.split('#include "model_data.h"\n\n', 1)[1].replace("alignas(16) ", "", 1)
    xxd = shutil.which("xxd")
    if xxd is None:
        assert generated.startswith("unsigned char digits_model[] = {\n")
        assert generated.endswith(f"}};\nunsigned int digits_model_len = {len(BLOB)};\n")
        pytest.skip("xxd is not installed: checked the names only, not the byte layout against xxd -i")
    # xxd -i names the array after the file, so give the file the symbol's name.
    (tmp_path / symbol).write_bytes(BLOB)
    expected = subprocess.run([xxd, "-i", symbol], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert generated == expected


def test_resolver_mapping_follows_tflm():
    assert BUILTIN_METHODS["CONV_2D"] == "AddConv2D"
    assert BUILTIN_METHODS["DEPTHWISE_CONV_2D"] == "AddDepthwiseConv2D"
    assert BUILTIN_METHODS["FULLY_CONNECTED"] == "AddFullyConnected"
    assert BUILTIN_METHODS["BATCH_MATMUL"] == "AddBatchMatMul"
    assert BUILTIN_METHODS["UNIDIRECTIONAL_SEQUENCE_LSTM"] == "AddUnidirectionalSequenceLSTM"
    art = make_artifact(op_names=("SOFTMAX", "CONV_2D", "CONV_2D", "AVERAGE_POOL_2D"), custom=("ethos-u",))
    assert resolver_methods(art) == [
        ("AVERAGE_POOL_2D", "AddAveragePool2D"),
        ("CONV_2D", "AddConv2D"),
        ("SOFTMAX", "AddSoftmax"),
        ("ethos-u", "AddEthosU"),
    ]


@pytest.mark.parametrize(("op", "custom"), [("NON_MAX_SUPPRESSION_V5", False), ("MyCustomOp", True)])
def test_unknown_op_is_unsupported_and_writes_nothing(tmp_path, op, custom):
    art = make_artifact(op_names=("CONV_2D",) if custom else ("CONV_2D", op), custom=(op,) if custom else ())
    with pytest.raises(UnsupportedError, match=re.escape(op)):
        write_c_sources(BLOB, art, tmp_path / "out", CSourceOptions(arena_bytes=100))
    assert not (tmp_path / "out").exists()


def test_mismatched_artifact_is_a_bug(tmp_path):
    with pytest.raises(ValueError, match="not read from these model bytes"):
        write_c_sources(BLOB + b"x", make_artifact(), tmp_path, CSourceOptions())


@pytest.mark.parametrize("value", [IN_SCALE, OUT_SCALE, 1.0, 2.0, 1e-9, 0.1, 123456.789, 3.4e38])
def test_float_literals_round_trip_as_float32(value):
    literal = c_float(value)
    assert literal.endswith("f") and re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?f", literal)
    assert np.float32(float(literal[:-1])) == np.float32(value)


@pytest.mark.skipif(shutil.which("g++") is None, reason="host g++ is not installed")
def test_quantize_helpers_compile_and_match_tflite_rounding(tmp_path):
    write_c_sources(BLOB, make_artifact(), tmp_path, CSourceOptions(arena_bytes=4096))
    inputs = [-1.0, -0.6, -0.5, 0.0, 0.00196, 0.5, 0.998, 1.0, 2.5, float("nan")]
    prog = tmp_path / "q.cc"
    prog.write_text(
        '#include <cstdio>\n#include <cmath>\n#include "model_settings.h"\n'
        "EDGEBUILD_TENSOR_ARENA(arena);\n"
        "int main() {\n"
        f"  const float xs[] = {{{', '.join('NAN' if np.isnan(x) else c_float(x) for x in inputs)}}};\n"
        '  for (float x : xs) std::printf("%d\\n", static_cast<int>(QuantizeInput(x)));\n'
        '  for (int q = -128; q <= 127; q += 51) std::printf("%.9g\\n", DequantizeOutput(static_cast<int8_t>(q)));\n'
        '  std::printf("%d %d\\n", static_cast<int>(sizeof(arena)),'
        " static_cast<int>(reinterpret_cast<unsigned long>(arena) % 16));\n"
        "}\n"
    )
    exe = tmp_path / "q"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(tmp_path), str(prog), "-o", str(exe)],
        check=True,
        capture_output=True,
        text=True,
    )
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    scale = np.float32(IN_SCALE)
    expected_q = []
    for x in inputs:
        if np.isnan(x):
            expected_q.append(-128)
            continue
        v = np.float32(x) / scale
        r = np.floor(np.abs(v) + np.float32(0.5)) * np.sign(v)  # round half away from zero, like TfLiteRound
        expected_q.append(int(np.clip(r + IN_ZP, -128, 127)))
    assert [int(s) for s in lines[: len(inputs)]] == expected_q
    deq = [float(s) for s in lines[len(inputs) : -2]]
    assert deq == [(q - OUT_ZP) * OUT_SCALE for q in range(-128, 128, 51)]
    assert lines[-2:] == ["4096", "0"]


def test_flash_helpers_return_none_without_the_arm_toolchain(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no arm-none-eabi-* on PATH
    (tmp_path / "model_data.cc").write_text("")
    assert compile_for_cortex_m(tmp_path / "model_data.cc", tmp_path / "obj") is None
    assert object_sizes(tmp_path / "model_data.o") is None
