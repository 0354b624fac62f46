"""Vela for real on a real int8 model; edgetpu_compiler for real wherever it is installed.

The model is a tiny tf_keras CNN (Conv2D, DepthwiseConv2D, MaxPool, Dense, Softmax) converted to
full int8 with random calibration data: enough for Vela, whose numbers do not depend on the weights'
values. Every number the parser returns is checked against the CSV Vela wrote, read here
independently with the csv module.

Not run here: `edgetpu_compiler` (Coral's apt repository is unreachable from these machines). The
Edge TPU test below skips with that reason and runs the real compiler where it is on PATH; the
parser is covered on recorded real logs in tests/unit/test_compilers_unit.py.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from tflite_helpers import to_tflite

from edgebuild.artifact import read_artifact
from edgebuild.compilers import compile_edgetpu, compile_vela, find_compiler
from edgebuild.errors import ExternalToolError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def int8_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    layers = tf_keras.layers
    model = tf_keras.Sequential(
        [
            layers.Input((32, 32, 3), batch_size=1),
            layers.Conv2D(8, 3, activation="relu"),
            layers.DepthwiseConv2D(3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )
    path = tmp_path_factory.mktemp("int8_cnn") / "model.tflite"
    path.write_bytes(to_tflite(model, "int8", samples=16))
    return path


def _csv_row(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    return rows[0]


def test_vela_compiles_and_the_parsed_numbers_are_the_csvs(int8_cnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "ethos-u55"
    result = compile_vela(
        int8_cnn,
        out,
        accelerator="ethos-u55-128",
        system_config="Ethos_U55_High_End_Embedded",
        memory_mode="Shared_Sram",
    )

    assert sorted(p.name for p in out.iterdir()) == ["model_vela.log", "model_vela.tflite", "model_vela_summary.csv"]
    row = _csv_row(out / "model_vela_summary.csv")
    assert result["accelerator"] == row["accelerator_configuration"] == "Ethos_U55_128"
    assert result["system_config"] == row["system_config"] == "Ethos_U55_High_End_Embedded"
    assert result["memory_mode"] == row["memory_mode"] == "Shared_Sram"
    assert result["sram_bytes"] == round(float(row["sram_memory_used"]) * 1024)  # Vela writes KiB
    assert result["off_chip_flash_bytes"] == round(float(row["off_chip_flash_memory_used"]) * 1024)
    assert result["dram_bytes"] == 0 and float(row["dram_memory_used"]) == 0.0  # U55: no DRAM port
    assert result["macs"] == int(row["nn_macs"])
    assert result["cycles_total"] == int(row["cycles_total"])
    assert result["inference_time_ms"] == pytest.approx(float(row["inference_time"]) * 1000)
    assert result["core_clock_hz"] == float(row["core_clock"])
    # and the numbers are plausible for this model: weights streamed from flash, arena in SRAM
    assert result["sram_bytes"] > 0 and result["off_chip_flash_bytes"] > 0 and result["cycles_total"] > 0
    assert result["inference_time_ms"] == pytest.approx(
        result["cycles_total"] / result["core_clock_hz"] * 1000, rel=1e-3
    )

    compiled = read_artifact(out / "model_vela.tflite")
    assert compiled.op_counts() == {"ethos-u": 1}  # the whole graph became one NPU custom op
    assert next(op for op in compiled.ops if op.name == "ethos-u").custom
    assert result["npu_ops"] == 6 and result["cpu_ops"] == 0 and result["npu_fraction"] == 1.0
    assert result["vela_npu_operators"] > 0 and result["vela_cpu_operators"] == 0
    assert {row["op"] for row in result["per_op"]} == {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "MAX_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
    }
    assert result["warnings"] == [w for w in result["warnings"] if "configuration file" in w]  # only "no --config"
    assert result["vela_version"] == "5.2.0"


def test_vela_leaves_ignored_ops_on_the_cpu(int8_cnn: Path, tmp_path: Path) -> None:
    result = compile_vela(int8_cnn, tmp_path / "out", ignore_ops=["FULLY_CONNECTED", "SOFTMAX"])
    compiled = read_artifact(tmp_path / "out" / "model_vela.tflite")
    assert compiled.op_counts() == {"FULLY_CONNECTED": 1, "SOFTMAX": 1, "ethos-u": 1}
    assert (result["npu_ops"], result["cpu_ops"]) == (4, 2)
    assert result["vela_cpu_operators"] == 2
    by_op = {row["op"]: (row["npu"], row["cpu"]) for row in result["per_op"]}
    assert by_op["SOFTMAX"] == (0, 1) and by_op["CONV_2D"] == (1, 0)
    # Vela's defaults when none are given, recorded from the CSV
    assert (result["system_config"], result["memory_mode"]) == ("Ethos_U55_High_End_Embedded", "Shared_Sram")
    row = _csv_row(tmp_path / "out" / "model_vela_summary.csv")
    assert result["off_chip_flash_bytes"] == round(float(row["off_chip_flash_memory_used"]) * 1024)


def test_vela_u65_puts_weights_in_dram(int8_cnn: Path, tmp_path: Path) -> None:
    result = compile_vela(
        int8_cnn,
        tmp_path / "u65",
        accelerator="ethos-u65-256",
        system_config="Ethos_U65_High_End",
        memory_mode="Dedicated_Sram",
    )
    row = _csv_row(tmp_path / "u65" / "model_vela_summary.csv")
    assert result["accelerator"] == "Ethos_U65_256"
    assert result["dram_bytes"] == round(float(row["dram_memory_used"]) * 1024) > 0
    assert result["off_chip_flash_bytes"] == 0


def test_vela_errors_quote_vela(int8_cnn: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ExternalToolError, match=r"(?s)Section System_Config.Nope not found.*Ethos_U55_High_End_Embedded"
    ):
        compile_vela(int8_cnn, tmp_path / "bad", system_config="Nope")
    with pytest.raises(ExternalToolError, match=r"(?s)arena_mem_area.*Ethos-U55 has no DRAM"):
        compile_vela(int8_cnn, tmp_path / "bad", memory_mode="Dedicated_Sram")
    assert (tmp_path / "bad" / "model_vela.log").read_text().strip()  # Vela's full output is kept
    assert not (tmp_path / "bad" / ".vela-work").exists()


@pytest.mark.skipif(
    find_compiler("edgetpu_compiler") is None,
    reason="edgetpu_compiler is not installed: Coral's apt repository "
    "(packages.cloud.google.com/apt coral-edgetpu-stable) is unreachable here",
)
def test_edgetpu_compiler_for_real(int8_cnn: Path, tmp_path: Path) -> None:
    result = compile_edgetpu(int8_cnn, tmp_path / "edgetpu", "edgetpu_compiler", 14)
    assert (tmp_path / "edgetpu" / "model_edgetpu.tflite").is_file()
    assert (tmp_path / "edgetpu" / "model_edgetpu.log").is_file()
    assert result["ops_mapped_edgetpu"] > 0 and result["per_op_complete"]
    assert "edgetpu-custom-op" in read_artifact(tmp_path / "edgetpu" / "model_edgetpu.tflite").op_counts()


# ---- edgetpu.min_mapped_fraction without the compiler: the rules' own mapped fraction is the gate ----------------


@pytest.fixture(scope="module")
def leaky_cnn(digits_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained digits CNN whose second op (LeakyReLU) is not an Edge TPU op: mapping stops there."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    layers = tf_keras.layers
    model = tf_keras.Sequential(
        [
            layers.Input((32, 32, 1)),
            layers.Conv2D(8, 3, strides=2),
            layers.LeakyReLU(0.1),
            layers.Conv2D(16, 3, strides=2, activation="relu"),
            layers.Conv2D(16, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits_data.train_x, digits_data.train_y, epochs=8, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("leaky_cnn") / "leaky.keras"
    model.save(path)
    return path


def _edgetpu_build(model: Path, data: Path, out: Path, *extra: str) -> tuple[int, dict]:
    import json

    from edgebuild.cli.main import main

    code = main(
        [
            "build",
            str(model),
            "-t",
            "edgetpu",
            "-d",
            str(data),
            "-o",
            str(out),
            "--no-cache",
            "--set",
            "benchmark.enabled=false",
            "--set",
            f"edgetpu.compiler={out.parent / 'absent' / 'edgetpu_compiler'}",
            *extra,
        ]
    )
    report = json.loads((out / "edgetpu" / "report.json").read_text())
    return code, report


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["validation"]["checks"] if c["name"] == name)


def test_min_mapped_fraction_gates_on_the_rules_without_the_compiler(leaky_cnn, digits_data, tmp_path: Path) -> None:
    # op rules on (the default): the first unsupported op is an error of its own; the fraction gate adds its verdict
    code, report = _edgetpu_build(
        leaky_cnn, digits_data.npz, tmp_path / "strict", "--set", "edgetpu.min_mapped_fraction=0.9"
    )
    assert code == 8
    rules = report["compile"]["edgetpu"]["rules"]
    assert report["compile"]["edgetpu"]["available"] is False
    assert rules["first_unsupported"]["op"] == "LEAKY_RELU" and rules["first_unsupported"]["index"] <= 2
    assert rules["mapped_ops_fraction"] < 0.5
    gate = _check(report, "edgetpu mapped fraction")
    assert gate["passed"] is False and gate["source"] == "edgebuild rules"
    assert gate["mapped_fraction"] == rules["mapped_ops_fraction"]
    assert "edgebuild's own rules" in gate["summary"] and "edgetpu_compiler not installed" in gate["summary"]
    assert "required 90.0%" in gate["summary"] and "LEAKY_RELU" in gate["summary"]
    # the same number as the op-rules check reports
    assert _check(report, "op rules (edgetpu)")["details"]["mapped_ops_fraction"] == rules["mapped_ops_fraction"]

    # a fraction below 1 accepts a CPU tail: the first unsupported op becomes a warning, the fraction gate decides
    code, report = _edgetpu_build(
        leaky_cnn, digits_data.npz, tmp_path / "zero", "--set", "edgetpu.min_mapped_fraction=0"
    )
    assert code == 0, report["validation"]["checks"]
    rules_check = _check(report, "op rules (edgetpu)")
    assert rules_check["passed"] is True
    assert any(
        f["op"] == "LEAKY_RELU" and f["severity"] == "warning" and "accepted" in f["message"]
        for f in rules_check["findings"]
    )
    assert _check(report, "edgetpu mapped fraction")["passed"] is True
    code, report = _edgetpu_build(
        leaky_cnn, digits_data.npz, tmp_path / "ninety", "--set", "edgetpu.min_mapped_fraction=0.5"
    )
    assert code == 8
    assert [c["name"] for c in report["validation"]["checks"] if not c["passed"]] == ["edgetpu mapped fraction"]
    # the built-in edgetpu profile expects every op on the Edge TPU (1.0): the default gate can fail
    code, report = _edgetpu_build(leaky_cnn, digits_data.npz, tmp_path / "default")
    assert code == 8 and _check(report, "edgetpu mapped fraction")["passed"] is False


def test_min_mapped_fraction_uses_the_compilers_count_when_it_ran() -> None:
    from types import SimpleNamespace

    from edgebuild.stages.compile import Compilation, add_compiler_checks

    profile = SimpleNamespace(edgetpu=SimpleNamespace(min_mapped_fraction=0.9))
    compiled = Compilation(
        edgetpu={
            "available": True,
            "compiler_version": "16.0",
            "ops_mapped_edgetpu": 8,
            "total_ops": 10,
            "mapped_fraction": 0.8,
        }
    )
    validation = {"checks": [{"name": "op rules (edgetpu)", "passed": True}], "passed": True}
    add_compiler_checks(validation, compiled, profile)
    gate = validation["checks"][-1]
    assert (gate["name"], gate["source"], gate["passed"], validation["passed"]) == (
        "edgetpu_compiler",
        "edgetpu_compiler",
        False,
        False,
    )
    assert "by edgetpu_compiler 16.0 (80.0%, required 90.0%)" in gate["summary"]
