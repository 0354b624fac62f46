"""Issue 16's architectures: recurrent, 1-D and separable/dilated convolutions, attention, modern activations.

Small tf_keras models trained for a few epochs on scikit-learn's digits read as 8 steps of 8 features (or
8x8x1 images), each built once for every built-in target. Asserted from the artifacts and reports: the ops
each target got, accuracy against the float model, which targets refuse which layer before converting (exit
code, message naming the layer and the fix, no artifact), and what the Edge TPU and Ethos-U reports say about
ops they cannot map.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tflm_tree import tflm_tree, tree_args

from edgebuild.artifact import read_artifact
from edgebuild.cli.main import main

pytestmark = pytest.mark.tf

ALL = ("mobile", "edgetpu", "mcu", "ethos-u55")
QUICK = ["--no-cache", "--set", "benchmark.enabled=false", "--set", "layers.enabled=false"]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    return (digits.images[order] / 16.0).astype(np.float32), digits.target[order].astype(np.int64)


def _lstm(keras: Any) -> Any:
    layers = keras.layers
    inputs = keras.Input((8, 8))
    x = layers.LSTM(24, name="lstm")(inputs)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="head")(x))


def _convolutions(keras: Any) -> Any:
    """Conv1D (swish), a dilated Conv1D, GlobalAveragePooling1D; SeparableConv2D (hard-swish), a dilated Conv2D."""
    layers = keras.layers
    inputs = keras.Input((8, 8))
    a = layers.Conv1D(16, 3, padding="same", activation="swish", name="conv1d")(inputs)
    a = layers.Conv1D(16, 3, padding="same", dilation_rate=2, activation="relu", name="dilated_conv1d")(a)
    a = layers.GlobalAveragePooling1D(name="gap1d")(a)
    b = layers.Reshape((8, 8, 1))(inputs)
    b = layers.SeparableConv2D(16, 3, padding="same", name="separable")(b)
    b = layers.Multiply(name="hard_swish")([b, layers.ReLU(6.0)(layers.Rescaling(1.0, offset=3.0)(b)) * (1 / 6)])
    b = layers.Conv2D(16, 3, padding="same", dilation_rate=2, activation="relu", name="dilated_conv2d")(b)
    b = layers.GlobalAveragePooling2D()(b)
    x = layers.Concatenate()([a, b])
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="head")(x))


def _attention(keras: Any) -> Any:
    """A transformer block: MultiHeadAttention, LayerNormalization, a GELU feed-forward layer."""
    layers = keras.layers
    inputs = keras.Input((8, 8))
    x = layers.Dense(16, name="tokens")(inputs)
    x = layers.LayerNormalization(name="norm1")(layers.Add()([x, layers.MultiHeadAttention(2, 8, name="mha")(x, x)]))
    x = layers.LayerNormalization(name="norm2")(layers.Add()([x, layers.Dense(16, activation="gelu", name="ffn")(x)]))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="head")(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three trained models saved as .h5, their validation data, and two models refused before converting."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras

    root = tmp_path_factory.mktemp("archs")
    x, y = _digits()
    np.savez(root / "data.npz", x=x, y=y)  # all of it: ~360 validation samples make a 2-point gate meaningful
    paths = {"data": root / "data.npz"}
    for name, build, epochs in (("lstm", _lstm, 8), ("conv", _convolutions, 8), ("attention", _attention, 8)):
        keras.utils.set_random_seed(0)
        model = build(keras)
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(x[:1400], y[:1400], epochs=epochs, batch_size=64, verbose=0)
        paths[name] = root / f"{name}.h5"
        model.save(paths[name])
    layers = keras.layers
    gru_in = keras.Input((8, 8))  # refused before converting: untrained is enough
    gru = keras.Model(gru_in, layers.Dense(10)(layers.GRU(8, name="gru")(gru_in)))
    gru.save(root / "gru.h5")
    state_in = keras.Input((8, 8), batch_size=1)
    stateful = keras.Model(state_in, layers.Dense(10)(layers.LSTM(8, stateful=True, name="streaming")(state_in)))
    stateful.save(root / "stateful.h5")
    paths["gru"], paths["stateful"] = root / "gru.h5", root / "stateful.h5"
    return paths


def _build(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["build", str(model), "--target", "all", "--data", str(data), "--out", str(out), *QUICK, *extra])


def _report(out: Path, target: str) -> dict[str, Any]:
    return json.loads((out / target / "report.json").read_text())


def _check(report: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(c for c in report["validation"]["checks"] if c["name"].startswith(prefix))


def _within_float(report: dict[str, Any]) -> None:
    accuracy = report["validation"]["accuracy"]
    assert accuracy["reference_top1"] > 0.5, accuracy  # the float model learned something (chance: 0.1)
    assert accuracy["drop_points"] <= 2.0, (report["target"], accuracy)


def test_lstm_fuses_and_builds_for_every_target(models: dict[str, Path], tmp_path: Path, capsys) -> None:
    """One fused UNIDIRECTIONAL_SEQUENCE_LSTM everywhere; its state is reset between independent samples.

    Before the reset, LiteRT and TFLite Micro carried the LSTM state from one validation sample to the next
    and top-1 fell 60 points on every target; the firmware did not link (sigmoid_table_uint16).
    """
    code = _build(models["lstm"], models["data"], tmp_path, "--set", "mcu.firmware_host_check=false", *tree_args())
    assert code == 0, capsys.readouterr().err
    for target in ALL:
        report = _report(tmp_path, target)
        ops = read_artifact(tmp_path / target / "model.tflite").op_counts()
        assert ops.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1, (target, ops)
        _within_float(report)
    edgetpu = _check(_report(tmp_path, "edgetpu"), "op rules")
    assert edgetpu["passed"] and edgetpu["details"]["mapped_ops_fraction"] == 1.0  # int16 cell state is the op's
    mcu = _report(tmp_path, "mcu")
    assert _check(mcu, "TFLite Micro")["passed"]
    assert not [f for f in _check(mcu, "op rules")["findings"] if f["rule"] == "mcu.int16_activations"]
    if tflm_tree() is not None:  # with a TFLite Micro tree: linked and run on QEMU, outputs match LiteRT
        assert _check(mcu, "firmware: device outputs")["passed"]


def test_convolutions_build_and_the_edge_tpu_refuses_unequal_dilation_early(
    models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    code = _build(models["conv"], models["data"], tmp_path, "--set", "mcu.firmware=false")
    err = " ".join(capsys.readouterr().err.split())
    assert code == 6, err  # UnsupportedError: the Edge TPU target, refused from the layers
    assert "Target 'edgetpu'" in err and "layer 'dilated_conv1d' (Conv1D)" in err and "dilation_rate=(d, d)" in err
    assert "before converting" in err and "Traceback" not in err
    assert not (tmp_path / "edgetpu").exists()  # refused before any work: no artifact
    for target in ("mobile", "mcu", "ethos-u55"):
        report = _report(tmp_path, target)
        assert report["validation"]["passed"], target
        _within_float(report)
    ops = read_artifact(tmp_path / "mcu" / "model.tflite")
    counts = ops.op_counts()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "LOGISTIC", "MEAN"} <= set(counts), counts
    dilations = {(op.options.get("dilationHFactor"), op.options.get("dilationWFactor")) for op in ops.ops}
    assert (1, 2) in dilations and (2, 2) in dilations  # Conv1D dilates width only; Conv2D both
    # Accepting a CPU tail, the Edge TPU builds; its report names the Keras layer where mapping stops
    capsys.readouterr()
    edgetpu_out = tmp_path / "tail"
    args = ["build", str(models["conv"]), "-t", "edgetpu", "-d", str(models["data"]), "-o", str(edgetpu_out), *QUICK]
    assert main([*args, "--set", "edgetpu.min_mapped_fraction=0"]) == 0, capsys.readouterr().err
    rules = _check(_report(edgetpu_out, "edgetpu"), "op rules")
    first = next(f for f in rules["findings"] if f["rule"] == "edgetpu.equal_dilation")
    assert first["layer"] == "dilated_conv1d" and "Keras layer 'dilated_conv1d'" in first["message"]
    assert 0 < rules["details"]["mapped_ops_fraction"] < 1


def test_attention_builds_where_its_ops_run_and_is_refused_early_elsewhere(
    models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    code = _build(models["attention"], models["data"], tmp_path)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 6, err
    assert not (tmp_path / "mcu").exists() and not (tmp_path / "edgetpu").exists()
    mobile, ethos = _report(tmp_path, "mobile"), _report(tmp_path, "ethos-u55")
    for report in (mobile, ethos):
        assert report["validation"]["passed"], report["target"]
        _within_float(report)
    ops = set(read_artifact(tmp_path / "mobile" / "model.tflite").op_counts())
    assert {"BATCH_MATMUL", "GELU", "RSQRT", "SQUARED_DIFFERENCE", "MEAN", "SOFTMAX"} <= ops, ops
    # Ethos-U: Vela maps GELU to the NPU, so TFLite Micro's missing GELU kernel is a warning, not a failure
    gelu = [f for f in _check(ethos, "op rules")["findings"] if f["op"] == "GELU"]
    assert gelu and all(f["severity"] == "warning" and "Vela maps every GELU" in f["message"] for f in gelu)
    assert ethos["compile"]["vela"]["cpu_ops"] == 0
    # The refusals name the layer, the missing kernel or mapping, and the fix
    assert "layer 'tokens' (Dense) becomes FULLY_CONNECTED" in err and "Conv1D with kernel size 1" in err
    capsys.readouterr()
    args = ["build", str(models["attention"]), "-t", "mcu", "-d", str(models["data"]), "-o", str(tmp_path / "m")]
    assert main([*args, *QUICK]) == 6
    err = " ".join(capsys.readouterr().err.split())
    assert "layer 'ffn' (Dense) becomes GELU, which tflite-micro" in err and "has no kernel" in err, err
    assert "activation='swish'" in err


def test_refusals_name_the_layer_before_any_conversion(models: dict[str, Path], tmp_path: Path, capsys) -> None:
    code = main(["build", str(models["gru"]), "-t", "mcu", "-d", str(models["data"]), "-o", str(tmp_path), *QUICK])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 6, err
    assert "layer 'gru' (GRU)" in err and "WHILE loop" in err and "set unroll=True" in err and "8 time steps" in err
    assert not (tmp_path / "mcu").exists() and "convert" not in err.split("edgebuild:")[0]
    # float16 runs the loop: the same model builds for mobile
    assert main(["build", str(models["gru"]), "-t", "mobile", "-o", str(tmp_path / "m"), *QUICK]) == 0
    capsys.readouterr()
    code = main(["build", str(models["stateful"]), "-t", "mobile", "-o", str(tmp_path / "s"), *QUICK])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 6 and "layer 'streaming' (LSTM): it is stateful" in err and "stateful=False" in err, err
