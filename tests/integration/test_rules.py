"""Rule sets checked on real models converted by the real TFLite converter."""

from __future__ import annotations

import os

import pytest
from tflite_helpers import to_tflite

from edgebuild.artifact import parse_artifact
from edgebuild.checks import check_rules

pytestmark = pytest.mark.tf

SHAPE = (16, 16, 1)


@pytest.fixture(scope="module")
def keras():
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    return tf_keras


def _cnn(keras, seed: int = 0):
    """Conv2D, DepthwiseConv2D, MaxPool, Dense, Softmax; batch fixed to 1."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = L.Input(shape=SHAPE, batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    out = L.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def cnn_int8(keras):
    return parse_artifact(to_tflite(_cnn(keras), "int8", io="int8", samples=8), "cnn_int8")


@pytest.fixture(scope="module")
def cnn_float_io(keras):
    return parse_artifact(to_tflite(_cnn(keras), "int8", io="float32", samples=8), "cnn_float_io")


@pytest.fixture(scope="module")
def cnn_float32(keras):
    return parse_artifact(to_tflite(_cnn(keras)), "cnn_float32")


@pytest.fixture(scope="module")
def cnn_float16(keras):
    return parse_artifact(to_tflite(_cnn(keras), "float16"), "cnn_float16")


@pytest.fixture(scope="module")
def early_break(keras):
    """LeakyReLU straight after the input: int8 in TFLite and TFLM, but not on the Edge TPU list."""
    keras.utils.set_random_seed(1)
    L = keras.layers
    inp = L.Input(shape=SHAPE, batch_size=1)
    x = L.LeakyReLU(0.1)(inp)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    out = L.Dense(10)(x)
    return parse_artifact(to_tflite(keras.Model(inp, out), "int8", io="int8", samples=8), "early_break")


def test_small_cnn_fully_maps_on_edgetpu(cnn_int8):
    report = check_rules("edgetpu", cnn_int8)
    assert [op.name for op in cnn_int8.ops] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "MAX_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
    ]
    assert report.passed, [f.to_dict() for f in report.findings]
    assert report.findings == []
    d = report.to_dict()
    assert d["first_unsupported"] is None
    assert d["mapped_ops_fraction"] == 1.0
    assert d["mapped_macs_fraction"] == 1.0
    assert d["mapped_ops"] == d["total_ops"] == 6
    assert "runtime 14" in d["runtime_version"]


def test_small_cnn_passes_mcu(cnn_int8):
    report = check_rules("mcu", cnn_int8)
    assert report.passed and report.findings == []
    assert report.runtime_version.startswith("tflite-micro ")


def test_first_unsupported_op_is_named_with_its_position(early_break):
    assert [op.name for op in early_break.ops][:2] == ["LEAKY_RELU", "CONV_2D"]
    report = check_rules("edgetpu", early_break)
    d = report.to_dict()
    assert d["first_unsupported"] == {"index": 0, "op": "LEAKY_RELU"}
    assert d["mapped_ops"] == 0 and d["mapped_ops_fraction"] == 0.0 and d["mapped_macs_fraction"] == 0.0
    assert not report.passed
    (err,) = report.errors
    assert (err.rule, err.op_index, err.op) == ("edgetpu.supported_op", 0, "LEAKY_RELU")
    assert err.fix
    fallback = [f for f in report.findings if f.rule == "edgetpu.cpu_fallback"]
    assert len(fallback) == 1 and fallback[0].severity == "warning"
    # TFLite Micro has a LEAKY_RELU kernel: the same model is fine on an MCU
    assert check_rules("mcu", early_break).passed


def test_float_io_quantize_stays_on_cpu_without_stopping_the_mapping(cnn_float_io):
    names = [op.name for op in cnn_float_io.ops]
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE"
    report = check_rules("edgetpu", cnn_float_io)
    assert report.passed
    assert report.first_unsupported is None
    assert report.mapped_ops == len(names) - 2
    assert report.mapped_macs_fraction == 1.0
    assert {f.rule for f in report.findings} == {"edgetpu.cpu_boundary"}
    mcu = check_rules("mcu", cnn_float_io)
    assert mcu.passed and {f.severity for f in mcu.findings} == {"warning"}


@pytest.mark.parametrize("rules", ["edgetpu", "mcu"])
def test_float32_model_fails_the_8bit_rule(cnn_float32, rules):
    report = check_rules(rules, cnn_float32)
    assert not report.passed
    errors = report.errors
    assert errors and all(f.rule == f"{rules}.int8_tensors" for f in errors)
    first = errors[0]
    assert first.op_index == 0 and first.op == "CONV_2D" and "float32" in first.message
    assert first.tensor
    if rules == "edgetpu":
        assert report.first_unsupported == {"index": 0, "op": "CONV_2D"}
        assert report.mapped_ops_fraction == 0.0


def test_float16_model_passes_mobile(cnn_float16):
    assert cnn_float16.weight_dtypes().get("float16")
    report = check_rules("mobile", cnn_float16)
    assert report.passed and report.findings == []
    assert report.to_dict()["xnnpack_ops_fraction"] == 1.0


def test_float32_model_gets_the_float16_warning(cnn_float32):
    report = check_rules("mobile", cnn_float32)
    assert report.passed
    (warning,) = report.findings
    assert warning.rule == "mobile.float16_weights" and warning.severity == "warning"
    assert warning.op_index is None and warning.tensor and "float16" in warning.fix


def test_report_is_json_serialisable(cnn_int8, early_break):
    import json

    for rules in ("edgetpu", "mcu", "mobile", "none"):
        for artifact in (cnn_int8, early_break):
            d = json.loads(json.dumps(check_rules(rules, artifact).to_dict()))
            assert {"passed", "rule_set", "runtime_version", "findings"} <= d.keys()
