"""QAT as a profile switch in a real build: trained, converted, compared with PTQ in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebuild.artifact import read_artifact
from edgebuild.cli.main import main

pytestmark = pytest.mark.tf


def test_qat_build_reports_float_ptq_and_qat(keras2_cnn, digits_data, tmp_path: Path) -> None:
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
            "quantization.method=qat",
            "--set",
            "training.epochs=2",
            "--set",
            "benchmark.enabled=false",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "mcu" / "report.json").read_text())
    training = report["training"]
    assert training["pass"] == "qat" and training["epochs_run"] == 2
    comparison = training["comparison"]
    assert {"ptq", "qat"} <= set(comparison)
    assert comparison["qat"]["samples"] == report["validation"]["accuracy"]["samples"]
    assert (
        comparison["qat"]["artifact_top1"] >= comparison["ptq"]["artifact_top1"] - 0.03
    )  # at least as good, within noise
    artifact = read_artifact(tmp_path / "mcu" / "model.tflite")
    assert artifact.inputs[0].dtype == "int8"
    assert "QAT int8" in (tmp_path / "mcu" / "report.md").read_text()
    splits = report["data"]["splits"]
    assert splits["training"] > 0 and splits["early_stopping"] > 0
    # early stopping watched its own split; the comparison (like the gate) scored the validation samples
    assert training["samples"] == {"training": splits["training"], "early_stopping": splits["early_stopping"]}
    assert comparison["qat"]["samples"] == splits["validation"]
    assert training["learning_rate"] == 1e-4 and training["schedule"] == "constant"  # QAT's own defaults


def test_qat_needs_labels_before_training(keras2_cnn, tmp_path: Path, capsys) -> None:
    unlabelled = tmp_path / "x.npy"
    np.save(unlabelled, np.zeros((100, 32, 32, 1), dtype=np.float32))
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(unlabelled),
            "-o",
            str(tmp_path / "o"),
            "--set",
            "quantization.method=qat",
        ]
    )
    assert code == 5
    assert "pass labelled data with --data" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "o" / "mcu").exists()


def test_qat_refuses_non_integer_scheme_at_plan_time(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.h5"  # never loaded: the plan refuses first
    model.write_bytes(b"")
    code = main(["build", str(model), "-t", "mobile", "--set", "quantization.method=qat"])
    assert code == 6
    assert 'quantization.scheme = "float16"' in " ".join(capsys.readouterr().err.split())


def test_early_stopping_is_visible_in_the_report(keras2_cnn, digits_data, tmp_path: Path) -> None:
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
            "quantization.method=qat",
            "--set",
            "training.epochs=12",
            "--set",
            "training.learning_rate=1e-9",
            "--set",
            "training.early_stopping=1",
            "--set",
            "benchmark.enabled=false",
            "--set",
            "validation.tflm=false",
        ]
    )
    assert code == 0
    training = json.loads((tmp_path / "mcu" / "report.json").read_text())["training"]
    assert training["stopped_early"] is True
    assert training["epochs_run"] < 12
    assert "stopped early" in (tmp_path / "mcu" / "report.md").read_text()
