"""End-to-end builds of real models from every input format, checked from the artifacts themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebuild.artifact import read_artifact
from edgebuild.cli.main import main
from edgebuild.runtime import LiteRTModel

pytestmark = pytest.mark.tf

CASES = [
    ("keras2_cnn", "savedmodel"),
    ("keras2_cnn", "keras"),
    ("keras2_cnn", "h5"),
    ("keras2_residual", "keras"),
    ("keras3_models", "cnn"),
    ("keras3_models", "residual"),
]


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{b}" for a, b in CASES])
def built(request: pytest.FixtureRequest, digits_data, tmp_path_factory) -> tuple[Path, float]:
    fixture, fmt = request.param
    models = request.getfixturevalue(fixture)
    out = tmp_path_factory.mktemp(f"build-{fixture}-{fmt}")
    code = main(
        [
            "--target",
            "all",
            str(models.paths[fmt]),
            "--data",
            str(digits_data.npz),
            "--out",
            str(out),
            "--set",
            "benchmark.runs=5",
        ]
    )
    assert code == 0
    return out, models.accuracy[fmt]


def _litert_accuracy(path: Path, digits_data) -> float:
    probabilities = LiteRTModel(path).predict(digits_data.test_x)[0]
    return float((probabilities.argmax(axis=-1) == digits_data.test_y).mean())


def _report(out: Path, target: str) -> dict:
    return json.loads((out / target / "report.json").read_text())


def test_every_target_has_its_artifacts_and_nothing_partial(built) -> None:
    out, _ = built
    from edgebuild.profiles import builtin_names

    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == builtin_names()  # no hidden .partial folders
    summary = (out / "summary.md").read_text()
    assert all(f"[{name}]({name}/report.md)" in summary for name in builtin_names())
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for target in ("edgetpu", "mcu", "mobile"):
        files = {p.name for p in (out / target).iterdir()}
        assert {"model.tflite", "report.json", "report.md", "profile.resolved.toml"} <= files
    assert {p.name for p in (out / "mcu" / "c").iterdir()} >= {
        "model_data.h",
        "model_data.cc",
        "model_ops.h",
        "model_settings.h",
    }


def test_mobile_is_float16_with_float_io(built, digits_data) -> None:
    out, float_acc = built
    artifact = read_artifact(out / "mobile" / "model.tflite")
    weights = artifact.weight_dtypes()
    assert weights.get("float16", 0) > 0.9 * sum(v for k, v in weights.items() if k != "int32")
    assert artifact.inputs[0].dtype == "float32" and artifact.outputs[0].dtype == "float32"
    report = _report(out, "mobile")
    assert artifact.size_bytes < report["float_reference"]["size_bytes"]
    # weights halve exactly; whole-file ratios of tiny models are dominated by graph structure
    assert 0.45 < sum(weights.values()) / report["float_reference"]["weight_bytes"] < 0.55
    assert abs(_litert_accuracy(out / "mobile" / "model.tflite", digits_data) - float_acc) <= 0.01


@pytest.mark.parametrize(("target", "io"), [("edgetpu", "uint8"), ("mcu", "int8")])
def test_integer_targets_are_fully_integer(built, digits_data, target: str, io: str) -> None:
    out, float_acc = built
    path = out / target / "model.tflite"
    artifact = read_artifact(path)
    assert artifact.inputs[0].dtype == io and artifact.outputs[0].dtype == io
    assert artifact.inputs[0].shape[0] == 1  # batch fixed for edge targets
    for op in artifact.ops:
        for index in op.inputs + op.outputs:
            tensor = artifact.tensor(index)
            if tensor is None:
                continue
            allowed = {"int8", io} | ({"int32"} if tensor.is_constant or op.name in {"RESHAPE"} else set())
            assert tensor.dtype in allowed, f"{op.name} #{op.index} tensor {tensor.name} is {tensor.dtype}"
    report = _report(out, target)
    assert artifact.size_bytes < report["float_reference"]["size_bytes"]
    assert sum(artifact.weight_dtypes().values()) / report["float_reference"]["weight_bytes"] < 0.35
    accuracy = _litert_accuracy(path, digits_data)
    assert float_acc - accuracy <= 0.02, f"{target}: {accuracy:.3f} vs float {float_acc:.3f}"


def test_report_json_contract(built) -> None:
    out, _ = built
    for target in ("edgetpu", "mcu", "mobile"):
        report = _report(out, target)
        tflite = (out / target / "model.tflite").read_bytes()
        assert report["target"] == target
        assert report["profile"]["name"] == target
        assert len(report["model"]["sha256"]) == 64
        assert report["artifact"]["size_bytes"] == len(tflite)
        import hashlib

        assert report["artifact"]["sha256"] == hashlib.sha256(tflite).hexdigest()
        assert report["artifact"]["ops"] and all(count > 0 for count in report["artifact"]["ops"].values())
        for field in ("name", "shape", "dtype", "scale", "zero_point"):
            assert field in report["artifact"]["inputs"][0] and field in report["artifact"]["outputs"][0]
        assert {"edgebuild", "tensorflow", "converter"} <= set(report["versions"])
        assert {"convert", "inspect", "baseline", "validate", "benchmark"} <= set(report["timings_s"])
        assert report["validation"]["passed"] is True
        split = report["data"]["splits"]
        assert (split["validation"] > 0 and split["calibration"] > 0) or target == "mobile"


def test_same_inputs_give_byte_identical_artifacts(keras2_cnn, digits_data, tmp_path: Path) -> None:
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert (
            main(
                [
                    "build",
                    str(keras2_cnn.paths["h5"]),
                    "-t",
                    "edgetpu",
                    "-d",
                    str(digits_data.npz),
                    "-o",
                    str(out),
                    "--no-cache",
                    "--set",
                    "benchmark.enabled=false",
                    "--set",
                    "validation.enabled=false",
                ]
            )
            == 0
        )
        digests.append((out / "edgetpu" / "model.tflite").read_bytes())
    assert digests[0] == digests[1]


def test_failed_rebuild_keeps_previous_result(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    from vela_boards import board_ini

    ini = tmp_path / "board.ini"
    ini.write_text(board_ini("400e6"))
    out = tmp_path / "out"
    args = [
        "build",
        str(keras2_cnn.paths["keras"]),
        "-t",
        "ethos-u55",
        "-d",
        str(digits_data.npz),
        "-o",
        str(out),
        "--set",
        "benchmark.enabled=false",
        "--set",
        f'vela.config_file="{ini}"',
        "--set",
        "vela.system_config=My_Board",
    ]
    assert main(args) == 0
    before = (out / "ethos-u55" / "model.tflite").read_bytes()
    # The board's Vela config turns unreadable: the target fails late, in the compile stage, after conversion.
    ini.write_text(board_ini("fast"))
    code = main([*args, "--set", "quantization.calibration_samples=10"])
    assert code == 10
    assert "Vela could not compile" in " ".join(capsys.readouterr().err.split())
    assert (out / "ethos-u55" / "model.tflite").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ethos-u55"]


def test_random_calibration_is_opt_in_and_reported_loudly(keras2_cnn, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "--calibration",
            "random",
            "-o",
            str(tmp_path),
            "--set",
            "benchmark.enabled=false",
        ]
    )
    assert code == 0
    report = _report(tmp_path, "mcu")
    assert "NOT representative" in report["data"]["calibration"]
    assert any("random noise" in w for w in report["warnings"])
    assert "random noise" in capsys.readouterr().out


def test_image_folder_data_builds(keras2_cnn, digits_data, tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "images"
    for index, (x, y) in enumerate(zip(digits_data.test_x[:300], digits_data.test_y[:300], strict=True)):
        folder = images / f"digit_{y}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[..., 0] * 255).round().astype(np.uint8)).save(folder / f"{index}.png")
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mobile",
            "-t",
            "mcu",
            "-d",
            str(images),
            "-o",
            str(tmp_path / "out"),
            "--set",
            "data.image_range=0-1",
            "--set",
            "benchmark.enabled=false",
        ]
    )
    assert code == 0
    report = _report(tmp_path / "out", "mcu")
    assert report["data"]["samples"] == 300 and report["data"]["labels"] is True
    assert report["validation"]["accuracy"]["reference_top1"] > 0.9  # class folders sorted = label ids
