"""Validation gates on real artifacts: Edge TPU mapping, TFLM arena, accuracy gate, budgets, bench, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebuild.cli.main import main
from edgebuild.runtime import arena_is_sufficient

pytestmark = pytest.mark.tf

NO_BENCH = ["--set", "benchmark.enabled=false"]


def _report(out: Path, target: str) -> dict:
    return json.loads((out / target / "report.json").read_text())


@pytest.fixture(scope="module")
def leaky_model(tmp_path_factory) -> Path:
    """A model that breaks the Edge TPU rules right after the input: LeakyReLU has no Edge TPU kernel."""
    import tf_keras

    tf_keras.utils.set_random_seed(1)
    layers = tf_keras.layers
    model = tf_keras.Sequential(
        [
            tf_keras.Input(shape=(32, 32, 1)),
            layers.LeakyReLU(0.1),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("leaky") / "leaky.keras"
    model.save(path)
    return path


def test_edgetpu_reports_first_unsupported_op_and_fails(leaky_model: Path, digits_data, tmp_path: Path, capsys) -> None:
    code = main(
        ["build", str(leaky_model), "-t", "edgetpu", "-d", str(digits_data.npz), "-o", str(tmp_path), *NO_BENCH]
    )
    assert code == 8
    err = capsys.readouterr().err
    assert "Target 'edgetpu' failed validation" in err and "LEAKY_RELU" in err
    report = _report(tmp_path, "edgetpu")
    assert report["validation"]["passed"] is False
    rules = next(c for c in report["validation"]["checks"] if c["name"] == "op rules (edgetpu)")
    ops = [name for name, _ in sorted((op, 0) for op in report["artifact"]["ops"])]
    assert "LEAKY_RELU" in ops
    details = rules["details"]
    # uint8 input -> QUANTIZE (#0, a CPU boundary that does not stop mapping), then LEAKY_RELU (#1)
    assert details["first_unsupported"] == {"index": 1, "op": "LEAKY_RELU"}
    assert details["mapped_ops_fraction"] < 0.5
    assert details["mapped_macs_fraction"] == 0.0
    first_error = next(f for f in rules["findings"] if f["severity"] == "error")
    assert first_error["op_index"] == 1 and first_error["op"] == "LEAKY_RELU" and first_error["fix"]
    # the artifact and the readable report are kept for inspection
    assert (tmp_path / "edgetpu" / "model.tflite").exists()
    assert "**FAIL**" in (tmp_path / "edgetpu" / "report.md").read_text()


def test_no_gates_reports_without_failing(leaky_model: Path, digits_data, tmp_path: Path) -> None:
    code = main(
        [
            "build",
            str(leaky_model),
            "-t",
            "edgetpu",
            "-d",
            str(digits_data.npz),
            "-o",
            str(tmp_path),
            "--no-gates",
            *NO_BENCH,
        ]
    )
    assert code == 0
    assert _report(tmp_path, "edgetpu")["validation"]["passed"] is False


def test_mcu_arena_is_exact_and_sufficient(keras2_cnn, digits_data, tmp_path: Path) -> None:
    assert (
        main(
            [
                "build",
                str(keras2_cnn.paths["keras"]),
                "-t",
                "mcu",
                "-d",
                str(digits_data.npz),
                "-o",
                str(tmp_path),
                *NO_BENCH,
            ]
        )
        == 0
    )
    report = _report(tmp_path, "mcu")
    arena = report["validation"]["arena"]
    model = tmp_path / "mcu" / "model.tflite"
    proven = arena["proven_bytes"]
    assert proven > 0 and arena["measured_bytes"] == proven and arena["verified"] is True
    assert arena["recommended_bytes"] >= proven * 1.1
    assert arena_is_sufficient(model, arena["recommended_bytes"])
    assert arena_is_sufficient(model, proven)
    assert not arena_is_sufficient(model, proven - 16)
    assert abs(arena["recorded_bytes"] - proven) <= 16  # a convolutional model: TFLM's record holds
    assert arena["compared_with"] == "LiteRT reference kernels (BUILTIN_REF)"
    assert arena["litert_agreement"] >= 0.99
    assert arena["litert_error_steps"]["max"] <= 16 and arena["litert_error_steps"]["mean"] <= 1.0
    settings = (tmp_path / "mcu" / "c" / "model_settings.h").read_text()
    assert f"kTensorArenaSize = {arena['recommended_bytes']}" in settings


def test_accuracy_gate_fails_on_wrong_calibration(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=digits_data.train_x[:300] * 255.0, y=digits_data.train_y[:300])
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(wrong),
            "--val-data",
            str(digits_data.npz),
            "-o",
            str(tmp_path / "out"),
            *NO_BENCH,
        ]
    )
    assert code == 8
    assert "top-1 dropped" in capsys.readouterr().err
    accuracy = _report(tmp_path / "out", "mcu")["validation"]["accuracy"]
    assert accuracy["drop_points"] > 2.0
    assert accuracy["reference_top1"] > 0.9


def test_flash_budget_failure_names_both_numbers(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
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
            'budget.flash="4KiB"',
            "--set",
            "mcu.firmware=false",  # the model array's budget; test_firmware checks the linked image's
            *NO_BENCH,
        ]
    )
    assert code == 8
    report = _report(tmp_path, "mcu")
    budget = next(c for c in report["validation"]["checks"] if c["name"] == "budgets")
    size = (tmp_path / "mcu" / "model.tflite").stat().st_size
    if report["flash"].get("measured"):  # the compiled array: the model bytes plus alignment and the length constant
        size = report["flash"]["model_array_bytes"]
        assert size == report["flash"]["text_bytes"] + report["flash"]["data_bytes"]
        assert size >= (tmp_path / "mcu" / "model.tflite").stat().st_size
    assert budget["flash"]["used_bytes"] == size
    assert budget["passed"] is False
    assert (
        f"the model array alone takes {size:,} bytes of flash, over the budget 4,096 by {size - 4096:,}"
        in budget["summary"]
    )


def test_validate_command_with_reference(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "build",
                str(keras2_cnn.paths["keras"]),
                "-t",
                "mobile",
                "-d",
                str(digits_data.npz),
                "-o",
                str(tmp_path),
                *NO_BENCH,
            ]
        )
        == 0
    )
    capsys.readouterr()
    code = main(
        [
            "validate",
            str(tmp_path / "mobile" / "model.tflite"),
            "-t",
            "mobile",
            "-d",
            str(digits_data.npz),
            "--reference",
            str(keras2_cnn.paths["keras"]),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True
    assert result["accuracy"]["agreement"] > 0.98
    assert result["accuracy"]["samples"] == min(len(digits_data.test_x), 500)  # data.max_validation_samples


def test_bench_command_fields_are_sane(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "build",
                str(keras2_cnn.paths["keras"]),
                "-t",
                "mcu",
                "-d",
                str(digits_data.npz),
                "-o",
                str(tmp_path),
                *NO_BENCH,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "bench",
                str(tmp_path / "mcu" / "model.tflite"),
                "--threads",
                "1",
                "--threads",
                "2",
                "--runs",
                "30",
                "--json",
                "-d",
                str(digits_data.npz),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    for threads in ("1", "2"):
        r = result["threads"][threads]
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["runs"] == 30 and r["load_ms"] > 0 and r["peak_rss_bytes"] > 0
        assert r["input_source"] == "data"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model at all", "is not a TensorFlow Lite model"),
        (None, "is corrupt or truncated"),
    ],
)
def test_bad_tflite_files_give_clear_errors(keras2_cnn, digits_data, tmp_path: Path, capsys, content, message) -> None:
    bad = tmp_path / "bad.tflite"
    if content is None:  # a real model cut in half
        assert (
            main(
                [
                    "build",
                    str(keras2_cnn.paths["keras"]),
                    "-t",
                    "mobile",
                    "-o",
                    str(tmp_path / "b"),
                    "--set",
                    "validation.enabled=false",
                    *NO_BENCH,
                ]
            )
            == 0
        )
        data = (tmp_path / "b" / "mobile" / "model.tflite").read_bytes()
        content = data[: len(data) // 2]
    bad.write_bytes(content)
    capsys.readouterr()
    for command in (
        ["validate", str(bad), "-t", "mcu"],
        ["bench", str(bad)],
        ["carray", str(bad), "-o", str(tmp_path / "c")],
    ):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 9, command
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_validation_data_of_wrong_shape(keras2_cnn, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "build",
                str(keras2_cnn.paths["keras"]),
                "-t",
                "mobile",
                "-o",
                str(tmp_path),
                "--set",
                "validation.enabled=false",
                *NO_BENCH,
            ]
        )
        == 0
    )
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 28, 28, 1), dtype=np.float32))
    capsys.readouterr()
    code = main(["validate", str(tmp_path / "mobile" / "model.tflite"), "-t", "mobile", "-d", str(wrong)])
    assert code == 5
    assert "samples have shape (28, 28, 1)" in capsys.readouterr().err


def test_never_slower_guard_compares_with_float32(keras2_cnn, digits_data, tmp_path: Path) -> None:
    assert (
        main(
            [
                "build",
                str(keras2_cnn.paths["keras"]),
                "-t",
                "mobile",
                "-d",
                str(digits_data.npz),
                "-o",
                str(tmp_path),
                "--set",
                "benchmark.runs=20",
            ]
        )
        == 0
    )
    benchmark = _report(tmp_path, "mobile")["benchmark"]
    guard = benchmark["vs_float32"]
    assert guard["float32_p50_ms"] > 0
    assert guard["ratio"] == pytest.approx(benchmark["threads"]["1"]["p50_ms"] / guard["float32_p50_ms"])
    slow_down_ms = benchmark["threads"]["1"]["p50_ms"] - guard["float32_p50_ms"]
    assert guard["slower"] == (guard["ratio"] > 1.1 and slow_down_ms > 0.02)
