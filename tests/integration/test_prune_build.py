"""Structured pruning + distillation as profile switches in a real mcu build, and the two pass commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebuild.artifact import read_artifact
from edgebuild.cli.main import main

pytestmark = pytest.mark.tf


def test_pruned_and_distilled_mcu_build(keras2_cnn, digits_data, tmp_path: Path) -> None:
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(digits_data.npz),
            "-o",
            str(tmp_path),
            "--set",
            "pruning.kind=structured",
            "--set",
            "pruning.ratio=0.5",
            "--set",
            "distillation.enabled=true",
            "--set",
            "training.recovery_epochs=12",
            "--set",
            "benchmark.runs=20",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "mcu" / "report.json").read_text())
    pruning = report["pruning"]
    assert pruning["recovery"] == "distill"
    training = pruning["training"]["training"]  # recovery settings, not QAT's
    assert training["learning_rate"] == 2e-3 and training["schedule"] == "plateau" and training["epochs_limit"] == 12
    assert training["samples"]["early_stopping"] == report["data"]["splits"]["early_stopping"] > 0
    assert pruning["accuracy"]["samples"] == report["validation"]["accuracy"]["samples"]
    assert pruning["after"]["macs"] * 2 <= pruning["before"]["macs"]
    # layer names depend on what the session built first; the two convs go 8 -> 4 and 16 -> 8
    assert sorted(c for c in pruning["channels"].values() if c[0] != c[1]) == [[8, 4], [16, 8]]
    assert report["artifact"]["size_bytes"] < pruning["artifact_before"]["size_bytes"]
    # the artifact really is narrower: the first conv has 4 filters now
    artifact = read_artifact(tmp_path / "mcu" / "model.tflite")
    conv = next(op for op in artifact.ops if op.name == "CONV_2D")
    assert artifact.tensor(conv.inputs[1]).shape[0] == 4
    # still validated against the unpruned float model, and still within the gate
    assert report["validation"]["passed"] is True
    assert report["validation"]["accuracy"]["drop_points"] <= 2.0
    assert "## Structured pruning" in (tmp_path / "mcu" / "report.md").read_text()


def test_prune_command_and_its_errors(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "prune",
                str(keras2_cnn.paths["keras"]),
                "--ratio",
                "0.5",
                "--data",
                str(digits_data.npz),
                "--out",
                str(tmp_path / "pruned"),
                "--epochs",
                "2",
            ]
        )
        == 0
    )
    assert any((tmp_path / "pruned").glob("*.keras"))
    training = json.loads((tmp_path / "pruned" / "pruning.json").read_text())["training"]
    # recovery as a build does it: [training]'s recovery_* settings, the flags over them
    assert training["learning_rate"] == 2e-3 and training["schedule"] == "plateau" and training["epochs_limit"] == 2
    capsys.readouterr()
    assert (
        main(
            [
                "prune",
                str(keras2_cnn.paths["keras"]),
                "--ratio",
                "1.5",
                "--data",
                str(digits_data.npz),
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "ratio" in err and "Traceback" not in err
    assert (
        main(
            [
                "prune",
                str(keras2_cnn.paths["keras"]),
                "--lr",
                "-1",
                "--data",
                str(digits_data.npz),
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "--lr = -1.0: Input should be greater than 0" in capsys.readouterr().err
    assert (
        main(
            [
                "prune",
                str(keras2_cnn.paths["keras"]),
                "--set",
                "data.image_range=0-1",
                "--data",
                str(digits_data.npz),
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "pass --target too" in capsys.readouterr().err


def _image_folder(digits_data, folder: Path, count: int = 200) -> Path:
    """Digits as 8-bit PNGs in class folders (pixel values 0-255; the models take 0-1)."""
    from PIL import Image

    for index, (x, y) in enumerate(zip(digits_data.test_x[:count], digits_data.test_y[:count], strict=True)):
        (folder / f"digit_{y}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[..., 0] * 255).round().astype(np.uint8)).save(folder / f"digit_{y}" / f"{index}.png")
    return folder


def test_prune_command_reads_its_defaults_from_a_target_profile(keras2_cnn, digits_data, tmp_path: Path) -> None:
    """-t/--set: the profile's [pruning], [training] recovery_* and [data] (image_range, as a build loads images)."""
    images = _image_folder(digits_data, tmp_path / "images")
    assert (
        main(
            [
                "prune",
                str(keras2_cnn.paths["keras"]),
                "-d",
                str(images),
                "-o",
                str(tmp_path / "pruned"),
                "-t",
                "mobile",
                "--set",
                "data.image_range=0-1",
                "--set",
                "pruning.ratio=0.25",
                "--set",
                "training.recovery_learning_rate=0.005",
                "--set",
                "training.recovery_epochs=1",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "pruned" / "pruning.json").read_text())
    assert report["ratio"] == 0.25
    assert report["training"]["learning_rate"] == 0.005 and report["training"]["epochs_limit"] == 1
    assert report["accuracy"]["original"] > 90  # scaled to 0-1 like the training data, not fed 0-255


def test_bench_command_loads_image_folders_with_the_profiles_image_range(
    digits_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    import importlib
    from types import SimpleNamespace

    images = _image_folder(digits_data, tmp_path / "images", count=20)
    seen = []
    monkeypatch.setattr(
        importlib.import_module("edgebuild.artifact"),
        "read_artifact",
        lambda path: SimpleNamespace(
            inputs=[SimpleNamespace(shape=(1, 32, 32, 1))], input_signature_names=lambda: ["image"]
        ),
    )
    monkeypatch.setattr(
        importlib.import_module("edgebuild.bench"),
        "benchmark_threads",
        lambda path, threads, runs, warmup, inputs: seen.append(float(inputs.max())) or {},
    )
    assert main(["bench", str(tmp_path / "m.tflite"), "-d", str(images), "--json"]) == 0
    assert (
        main(
            [
                "bench",
                str(tmp_path / "m.tflite"),
                "-d",
                str(images),
                "--json",
                "-t",
                "mobile",
                "--set",
                "data.image_range=0-1",
            ]
        )
        == 0
    )
    assert seen == [255.0, 1.0]


def test_mixed_precision_fine_tuning_converts_and_validates(keras2_cnn, digits_data, tmp_path: Path) -> None:
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(digits_data.npz),
            "-o",
            str(tmp_path),
            "--set",
            "pruning.kind=structured",
            "--set",
            "training.mixed_precision=float16",
            "--set",
            "training.recovery_epochs=2",
            "--set",
            "benchmark.enabled=false",
            "--no-gates",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "mcu" / "report.json").read_text())
    assert report["pruning"]["training"]["mixed_precision"] == "mixed_float16"
    assert report["validation"]["accuracy"]["samples"] > 0  # the float32 rebuild converted and ran
    assert read_artifact(tmp_path / "mcu" / "model.tflite").inputs[0].dtype == "int8"


def _tagged(x: np.ndarray) -> np.ndarray:
    """Each sample's index written into its corner pixel (exact in float32; that pixel is 0 in every digit)."""
    x = x.copy()
    x[:, 0, 0, 0] = (np.arange(len(x)) + 1) / 1024.0
    return x


def _tags(x: np.ndarray) -> set[int]:
    return set((np.rint(np.asarray(x)[:, 0, 0, 0] * 1024.0) - 1).astype(int).tolist())


@pytest.mark.parametrize(
    "settings",
    [
        # structured pruning recovered by distillation, then QAT: two training passes
        ["pruning.kind=structured", "distillation.enabled=true", "quantization.method=qat", "training.epochs=1"],
        # "auto" recovery: fine-tuning falls short after one epoch at a tiny rate, so distillation runs too
        ["pruning.kind=structured", "training.recovery_learning_rate=1e-7"],
        ["pruning.kind=unstructured"],  # TFMOT sparsity fine-tuning
        ["distillation.enabled=true", "distillation.student=width:0.5"],  # distillation into a fresh student
    ],
)
def test_gate_validation_samples_never_reach_training_or_early_stopping(
    keras2_cnn, digits_data, tmp_path: Path, monkeypatch, settings: list[str]
) -> None:
    """Every call of the one training loop is recorded: the samples it trained on and the ones it stopped on."""
    import edgebuild.converters.train as train_module
    from edgebuild.data import split
    from edgebuild.profiles import resolve

    real_fit = train_module.fit
    calls: list[dict[str, set[int]]] = []

    def recording_fit(model, train, val, *args, **kwargs):
        calls.append({"train": _tags(train[0]), "early_stopping": _tags(val[0]) if val is not None else set()})
        return real_fit(model, train, val, *args, **kwargs)

    monkeypatch.setattr(train_module, "fit", recording_fit)
    with np.load(digits_data.npz) as data:
        x, y = _tagged(data["x"]), data["y"]
    npz = tmp_path / "tagged.npz"
    np.savez(npz, x=x, y=y)
    overrides = [*settings, "training.recovery_epochs=1", "benchmark.enabled=false", "validation.tflm=false"]
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(npz),
            "-o",
            str(tmp_path / "out"),
            "--no-cache",
            "--no-gates",
            *[a for o in overrides for a in ("--set", o)],
        ]
    )
    assert code == 0
    profile = resolve("mcu", overrides)
    splits = split(len(x), profile.data, profile.quantization.calibration_samples)
    gate = set(splits.validation.tolist())
    report = json.loads((tmp_path / "out" / "mcu" / "report.json").read_text())
    assert report["validation"]["accuracy"]["samples"] == len(gate) > 0  # the gate scored exactly these
    assert report["data"]["splits"]["early_stopping"] == len(splits.early_stopping) > 0
    expected_calls = 2 if "quantization.method=qat" in settings or "1e-7" in settings[-1] else 1
    assert len(calls) == expected_calls
    for call in calls:
        assert not call["train"] & gate and not call["early_stopping"] & gate
        assert call["train"] == set(splits.training.tolist())
        assert call["early_stopping"] == set(splits.early_stopping.tolist())
