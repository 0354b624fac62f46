"""TFLite Micro's signal ops (custom ops such as SignalWindow) against the mcu rules, TFLM and the CLI.

The tflite-micro wheel ships no TensorFlow signal ops (there is no
`tflite_micro/python/tflite_micro/signal` in it), so the converter cannot
produce these ops here. The tests build signal models with the flatbuffers
object API instead, with real flexbuffer custom options, so TFLite Micro runs
them; and they check the upstream micro_speech audio preprocessor, taken from
the TFLM tree shared beside the repository (CI: ../shared), where it is stored
as the C array that TFLM's generate_cc_arrays.py wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgebuild.artifact import parse_artifact
from edgebuild.checks import check_rules
from edgebuild.checks.tables import load_table
from edgebuild.cli.main import main
from edgebuild.codegen.ops import resolver_methods

pytest.importorskip("tflite_micro")

PREPROCESSOR = "tflm/board/mps2-an386/data/audio_preprocessor_int8"


# ---- models ------------------------------------------------------------------------


def _build(ops: list[tuple], tensors: list[tuple], inputs: list[str], outputs: list[str]) -> bytes:
    """A one-subgraph .tflite: ops are (name, inputs, outputs, options), tensors (name, shape, dtype, data).

    An op name that is not a builtin operator is written as a custom op with that
    custom code; a dict of options becomes its flexbuffer custom options.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors, sg.operators, index, codes = [], [], {}, []
    for name, shape, dtype, data in tensors:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), getattr(schema.TensorType, dtype.upper()), 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = list(np.asarray(data).tobytes())
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        index[name] = len(sg.tensors)
        sg.tensors.append(t)
    for name, ins, outs, options in ops:
        if name not in codes:
            codes.append(name)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes.index(name), [index[n] for n in ins], [index[n] for n in outs]
        if isinstance(options, dict):
            op.customOptions = list(flexbuffers.Dumps(options))
            op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        elif options is not None:
            op.builtinOptionsType, op.builtinOptions = options
        sg.operators.append(op)
    model.operatorCodes = []
    for name in codes:
        code = schema.OperatorCodeT()
        code.version = 1
        builtin = getattr(schema.BuiltinOperator, name, None)
        if builtin is not None:
            code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, 127)
        else:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            code.customCode = name
        model.operatorCodes.append(code)
    sg.inputs, sg.outputs = [index[n] for n in inputs], [index[n] for n in outputs]
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _cast(src: str, dst: str) -> tuple:
    from ai_edge_litert import schema_py_generated as schema

    options = schema.CastOptionsT()
    options.inDataType = getattr(schema.TensorType, src.upper())
    options.outDataType = getattr(schema.TensorType, dst.upper())
    return schema.BuiltinOptions.CastOptions, options


WINDOW = (np.arange(16) * 256).astype(np.int16)
SHIFT = 12


def window_energy_model(middle: str = "SignalEnergy") -> bytes:
    """int16 audio [16] -> SignalWindow -> `middle` (uint32 [8]) -> CAST int32 -> CAST int8 features.

    With middle="SignalEnergy" this is a small audio front end TFLM really runs;
    any other name makes an unknown custom op in its place.
    """
    options = {"end_index": 8, "start_index": 0} if middle == "SignalEnergy" else None
    return _build(
        [
            ("SignalWindow", ["audio", "window"], ["windowed"], {"shift": SHIFT}),
            (middle, ["windowed"], ["energy"], options),
            ("CAST", ["energy"], ["energy_i32"], _cast("uint32", "int32")),
            ("CAST", ["energy_i32"], ["features"], _cast("int32", "int8")),
        ],
        [
            ("audio", (16,), "int16", None),
            ("window", (16,), "int16", WINDOW),
            ("windowed", (16,), "int16", None),
            ("energy", (8,), "uint32", None),
            ("energy_i32", (8,), "int32", None),
            ("features", (8,), "int8", None),
        ],
        ["audio"],
        ["features"],
    )


def _reference_features(audio: np.ndarray) -> np.ndarray:
    """What the two signal kernels compute (signal/src/window.cc, energy.cc), then the two casts."""
    windowed = np.clip((audio.astype(np.int32) * WINDOW) >> SHIFT, -32768, 32767)
    re_, im = windowed[0::2], windowed[1::2]
    return (re_ * re_ + im * im).astype(np.uint32).astype(np.int32).astype(np.int8)


def _shared_dirs() -> list[Path]:
    repo = Path(__file__).resolve().parents[2]
    return [repo.parent / "shared", Path("/work/shared")]


@pytest.fixture(scope="module")
def preprocessor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """micro_speech's audio_preprocessor_int8.tflite (upstream TFLM example), from ../shared."""
    for root in _shared_dirs():
        tflite = root / f"{PREPROCESSOR}.tflite"
        if tflite.is_file():
            return tflite
        array = root / f"{PREPROCESSOR}_model_data.cc"
        if array.is_file():
            text = array.read_text()
            data = bytes(int(x, 16) for x in re.findall(r"0x[0-9a-fA-F]+", text[text.index("{") : text.rindex("}")]))
            path = tmp_path_factory.mktemp("tflm") / "audio_preprocessor_int8.tflite"
            path.write_bytes(data)
            return path
    pytest.skip(f"upstream audio preprocessor not found under {' or '.join(str(d) for d in _shared_dirs())}")


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(path), "--target", "mcu"])
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert "Traceback" not in text
    return code, text


# ---- a signal model built here -------------------------------------------------------


def test_self_built_signal_model_runs_in_tflm_and_passes_the_mcu_rules(tmp_path, capsys):
    from tflite_micro.python.tflite_micro import runtime

    data = window_energy_model()
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=4096)
    audio = (np.arange(16) * 37 - 200).astype(np.int16)
    interpreter.set_input(audio, 0)
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_output(0), _reference_features(audio))

    artifact = parse_artifact(data)
    assert [(op.name, op.custom) for op in artifact.ops] == [
        ("SignalWindow", True),
        ("SignalEnergy", True),
        ("CAST", False),
        ("CAST", False),
    ]
    report = check_rules("mcu", artifact)
    assert report.passed and report.findings == []  # int16 and uint32 are what these kernels use
    assert resolver_methods(artifact) == [
        ("CAST", "AddCast"),
        ("SignalEnergy", "AddEnergy"),
        ("SignalWindow", "AddWindow"),
    ]

    path = tmp_path / "window_energy.tflite"
    path.write_bytes(data)
    code, out = _validate(path, capsys)
    assert code == 0, out
    assert "op rules (mcu) │ pass" in out and "0 error(s), 0 warning(s)" in out


def test_unknown_custom_op_still_fails_naming_it(tmp_path, capsys):
    data = window_energy_model(middle="AcmeSpectrogram")
    report = check_rules("mcu", parse_artifact(data))
    assert not report.passed
    kernel = [f for f in report.errors if f.rule == "mcu.kernel"]
    assert [(f.op_index, f.op) for f in kernel] == [(1, "AcmeSpectrogram")]  # SignalWindow is fine

    path = tmp_path / "unknown_custom.tflite"
    path.write_bytes(data)
    code, out = _validate(path, capsys)
    assert code != 0
    assert "TFLite Micro has no kernel for the custom op 'AcmeSpectrogram'" in out
    assert "no kernel for the custom op 'SignalWindow'" not in out


# ---- the upstream micro_speech audio preprocessor --------------------------------------


def test_upstream_preprocessor_passes_the_mcu_rules(preprocessor):
    artifact = parse_artifact(preprocessor.read_bytes())
    custom = {op.name for op in artifact.ops if op.custom}
    assert {"SignalWindow", "SignalRfft", "SignalFilterBank", "SignalPCAN"} <= custom
    assert custom <= load_table("mcu").custom_ops
    report = check_rules("mcu", artifact)
    assert report.passed, [f.message for f in report.errors]
    assert report.findings == []
    assert len(resolver_methods(artifact)) == 18  # what `edgebuild carray` registers


def test_upstream_preprocessor_validates_for_mcu_from_the_cli(preprocessor, capsys):
    code, out = _validate(preprocessor, capsys)
    assert code == 0, out
    assert "op rules (mcu) │ pass" in out and "TFLite Micro │ pass" in out


def test_upstream_preprocessor_is_an_error_where_litert_must_run_it(preprocessor):
    """LiteRT has no signal kernels: the mobile and Edge TPU rules say so, and LiteRT agrees."""
    from ai_edge_litert.interpreter import Interpreter

    artifact = parse_artifact(preprocessor.read_bytes())
    mobile = check_rules("mobile", artifact)
    assert not mobile.passed
    assert mobile.errors[0].rule == "mobile.litert_kernel" and mobile.errors[0].op == "SignalWindow"
    edgetpu = check_rules("edgetpu", artifact)
    assert any(
        f.rule == "edgetpu.supported_op" and f.op == "SignalRfft" and f.severity == "error" for f in edgetpu.findings
    )
    with pytest.raises(RuntimeError, match="unresolved custom op: SignalWindow"):
        interpreter = Interpreter(model_content=preprocessor.read_bytes())
        interpreter.allocate_tensors()
