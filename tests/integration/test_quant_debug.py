"""Issue 15 on real builds: which layer breaks int8, and selective precision that fixes it where the target can.

The broken model is the benchmarks' outlier model (benchmarks/test_qat_recovers.py): the digits CNN with
one filter of its first convolution scaled up 3000x (bias too) and the matching input weights of the
second convolution scaled down as much. ReLU is positively homogeneous, so the float model computes
exactly what it did, but that channel's activations are 3000x wider than the other seven, and one int8
scale per activation tensor leaves those seven a fraction of a quantization step: PTQ int8 falls from
about 91% to about 12% top-1.

One build makes mobile (int8 for the test), mcu and edgetpu with `quantization.selective = "auto"`:
the per-layer table must rank the first convolution first with the outlier cause; mobile must pass with
at most 2 layers with weights in float and at most 1.3x the int8 size; mcu must pass with 16x8 layers
that TFLite Micro runs (its validation check); edgetpu must refuse, naming the CPU fallback. The
unbroken model keeps full int8 (auto selects nothing), and `edgebuild debug-quant` prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

OUTLIER = 3000.0


@pytest.fixture(scope="module")
def outlier_model(keras2_cnn, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tf_keras

    model = tf_keras.models.load_model(keras2_cnn.paths["h5"])
    conv1, conv2 = (layer for layer in model.layers if type(layer).__name__ == "Conv2D")
    k1, b1 = conv1.get_weights()
    k2, b2 = conv2.get_weights()
    k1[..., 0] *= OUTLIER
    b1[0] *= OUTLIER
    k2[:, :, 0, :] /= OUTLIER
    conv1.set_weights([k1, b1])
    conv2.set_weights([k2, b2])
    path = tmp_path_factory.mktemp("outlier") / "outlier.h5"  # loads in a fraction of a SavedModel's time
    model.save(path)
    return path


@pytest.fixture(scope="module")
def selective_build(outlier_model: Path, digits_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgebuild.cli.main import main

    out = tmp_path_factory.mktemp("selective") / "out"
    code = main(
        [
            "build",
            str(outlier_model),
            "--target",
            "mobile",
            "--target",
            "mcu",
            "--target",
            "edgetpu",
            "--data",
            str(digits_data.npz),
            "--out",
            str(out),
            "--set",
            "quantization.scheme=int8",
            "--set",
            "quantization.selective=auto",
            "--set",
            "benchmark.runs=10",
            "--set",
            "mcu.firmware=false",
            "-j",
            "1",
        ]
    )
    assert code == 8, "edgetpu cannot keep layers at higher precision, so its gate must still fail"
    return out


def _report(out: Path, target: str) -> dict:
    return json.loads((out / target / "report.json").read_text())


@pytest.mark.parametrize("target", ["mobile", "mcu", "edgetpu"])
def test_planted_layer_ranked_first_with_its_cause(selective_build: Path, target: str) -> None:
    layers = _report(selective_build, target)["layers"]
    first = layers["top"][0]
    assert first["tensor"].startswith("sequential/conv2d/") and first["op"] == "CONV_2D"
    assert "outlier_range" in first["reason_kinds"] and "channel 0 of 8" in first["reasons"][0]
    assert layers["reproduces_artifact"] is True
    assert first["added_snr_db"] < 3.0 < layers["top"][2]["added_snr_db"]
    markdown = (selective_build / target / "report.md").read_text()
    assert "## Per-layer quantization error" in markdown and "outlier-dominated activation range" in markdown


def test_mobile_keeps_two_layers_in_float16_and_passes(selective_build: Path) -> None:
    from edgebuild.artifact import read_artifact

    report = _report(selective_build, "mobile")
    sel = report["layers"]["selective"]
    assert sel["applied"] and sel["target_kind"] == "mobile" and report["validation"]["passed"]
    assert report["validation"]["accuracy"]["drop_points"] <= 1.0
    assert sel["weighted_layers"] <= 2 and sel["cost"]["size_ratio"] <= 1.3
    assert sel["before"].startswith("top-1 ") and "drop" in sel["before"]
    assert {k["precision"] for k in sel["kept"] if k["op"] == "CONV_2D"} == {"float (float16 weights)"}
    artifact = read_artifact(selective_build / "mobile" / "model.tflite")
    assert artifact.weight_dtypes().get("float16", 0) > 0 and "int8" in artifact.weight_dtypes()
    assert (selective_build / "mobile" / "model_int8.tflite").exists()


def test_mcu_keeps_16x8_layers_that_tflite_micro_runs(selective_build: Path) -> None:
    from edgebuild.artifact import read_artifact

    report = _report(selective_build, "mcu")
    sel = report["layers"]["selective"]
    assert sel["applied"] and sel["precision"] == "int16 activations, int8 weights"
    assert report["validation"]["passed"] and report["validation"]["accuracy"]["drop_points"] <= 2.0
    tflm = next(c for c in report["validation"]["checks"] if c["name"] == "TFLite Micro")
    assert tflm["passed"]
    assert sel["attempts"][-1]["tflite_micro"] == "runs"
    assert sel["cost"]["arena_bytes"] > sel["cost"]["int8_arena_bytes"]  # int16 activations take more arena
    dtypes = {t.dtype for t in read_artifact(selective_build / "mcu" / "model.tflite").tensors}
    assert {"int16", "int8"} <= dtypes and "float32" not in dtypes
    assert "model_data.cc" in report["files"] or any("model_data" in f for f in report["files"])


def test_edgetpu_refuses_and_names_the_cpu_fallback(selective_build: Path) -> None:
    report = _report(selective_build, "edgetpu")
    sel = report["layers"]["selective"]
    assert sel["applied"] is False and not report["validation"]["passed"]
    fallback = sel["cpu_fallback"]
    assert fallback["first_op"] == "CONV_2D" and fallback["macs"] > 0 and fallback["ops"]
    assert "quantization-aware training" in sel["note"]
    assert not (selective_build / "edgetpu" / "model_int8.tflite").exists()


def test_unbroken_model_keeps_full_int8(keras2_cnn, digits_data, tmp_path: Path) -> None:
    from edgebuild.cli.main import main

    out = tmp_path / "out"
    code = main(
        [
            "build",
            str(keras2_cnn.paths["h5"]),
            "--target",
            "mcu",
            "--data",
            str(digits_data.npz),
            "--out",
            str(out),
            "--set",
            "quantization.selective=auto",
            "--set",
            "benchmark.runs=10",
            "--set",
            "mcu.firmware=false",
        ]
    )
    assert code == 0
    report = _report(out, "mcu")
    layers = report["layers"]
    assert layers["selective"] == {
        "mode": "auto",
        "target_kind": "mcu",
        "applied": False,
        "kept": [],
        "note": "the int8 artifact passes the accuracy gate: every layer stays int8",
    }
    assert all("outlier_range" not in row["reason_kinds"] for row in layers["top"])
    assert layers["worst"]["added_snr_db"] > 25.0
    assert "No layer stands out" in (out / "mcu" / "report.md").read_text()
    assert report["timings_s"]["layers"] > 0 and report["timings_s"]["validate"] > 0


def test_debug_quant_prints_the_table(outlier_model: Path, digits_data, tmp_path: Path, capsys) -> None:
    from edgebuild.cli.main import main

    block_path = tmp_path / "layers.json"
    code = main(
        [
            "debug-quant",
            str(outlier_model),
            "--target",
            "mcu",
            "--data",
            str(digits_data.npz),
            "--samples",
            "50",
            "--json",
            str(block_path),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("CONV_2D sequential/conv2d/Relu adds the most error")
    header = next(i for i, line in enumerate(lines) if line.startswith("#  "))
    assert lines[header + 1].split()[:3] == ["1", "CONV_2D", "sequential/conv2d/Relu"]
    assert "outlier-dominated activation range" in lines[header + 1]
    assert "Calibration samples:" in text and "more calibration data is unlikely to help" in text
    block = json.loads(block_path.read_text())
    assert block["samples"] == 50 and len(block["calibration_sweep"]["points"]) >= 3
    assert np.isclose(block["top"][0]["scale"], block["top"][0]["scale"])  # JSON numbers, not strings
