"""Structured pruning + distillation as profile switches in a real mcu build, and the two pass commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebuild.artifact import read_artifact
from edgebuild.cli.main import main

pytestmark = pytest.mark.tf


def test_pruned_and_distilled_mcu_build(keras2_cnn, digits_data, tmp_path: Path) -> None:
    code = main(["build", str(keras2_cnn.paths["keras"]), "-t", "mcu", "-d", str(digits_data.npz), "-o", str(tmp_path),
                 "--set", "pruning.kind=structured", "--set", "pruning.ratio=0.5", "--set", "distillation.enabled=true",
                 "--set", "training.epochs=12", "--set", "training.learning_rate=0.002", "--set", "benchmark.runs=20"])
    assert code == 0
    report = json.loads((tmp_path / "mcu" / "report.json").read_text())
    pruning = report["pruning"]
    assert pruning["recovery"] == "distill"
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
    assert main(["prune", str(keras2_cnn.paths["keras"]), "--ratio", "0.5", "--data", str(digits_data.npz),
                 "--out", str(tmp_path / "pruned")]) == 0
    assert any((tmp_path / "pruned").glob("*.keras"))
    capsys.readouterr()
    assert main(["prune", str(keras2_cnn.paths["keras"]), "--ratio", "1.5", "--data", str(digits_data.npz),
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "ratio" in err and "Traceback" not in err


def test_mixed_precision_fine_tuning_converts_and_validates(keras2_cnn, digits_data, tmp_path: Path) -> None:
    code = main(["build", str(keras2_cnn.paths["keras"]), "-t", "mcu", "-d", str(digits_data.npz), "-o", str(tmp_path),
                 "--set", "pruning.kind=structured", "--set", "training.mixed_precision=float16",
                 "--set", "training.epochs=2", "--set", "benchmark.enabled=false", "--no-gates"])
    assert code == 0
    report = json.loads((tmp_path / "mcu" / "report.json").read_text())
    assert report["pruning"]["training"]["mixed_precision"] == "mixed_float16"
    assert report["validation"]["accuracy"]["samples"] > 0  # the float32 rebuild converted and ran
    assert read_artifact(tmp_path / "mcu" / "model.tflite").inputs[0].dtype == "int8"
