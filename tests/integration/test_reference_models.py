"""Models of the published reference architectures build for every built-in target, and every claim holds.

ResNet-8, DS-CNN keyword spotting, MobileNetV1-0.25 visual wake words, the 640-input FC autoencoder and
hello_world (tests/reference_archs.py), trained here on digits reshaped to their inputs. Each must build
cleanly for every target with the default parallelism; its mcu arena must run in TFLite Micro at exactly
the size model_settings.h declares; non-classifiers are scored by closeness to float, not by an argmax;
host latency of device targets is labelled as such and raises no "slower than float32" alarm.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgebuild.cli.main import main
from edgebuild.runtime import arena_is_sufficient

pytestmark = pytest.mark.tf

ALL = ("mcu", "edgetpu", "mobile", "ethos-u55")
CLASSIFIERS = {"resnet8", "ds_cnn", "vww_mobilenet"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8", "ds_cnn", "vww_mobilenet", "fc_autoencoder", "hello_world"])
def test_reference_architecture_builds_for_every_target(name: str, reference_model, tmp_path: Path, capsys) -> None:
    model = reference_model(name)
    code = main(
        [
            "build",
            str(model.path),
            *[a for t in ALL for a in ("-t", t)],
            "-d",
            str(model.npz),
            "-o",
            str(tmp_path),
            "--no-cache",
            "--set",
            "benchmark.runs=20",
            "--set",
            "mcu.firmware=false",  # the model array's budgets are checked here; test_firmware checks the linked image
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "slower than the plain float32" not in err or "warning (mobile)" in err  # only mobile may warn
    reports = {t: json.loads((tmp_path / t / "report.json").read_text()) for t in ALL}
    for target, report in reports.items():
        accuracy = report["validation"]["accuracy"]
        assert accuracy["metric"] == ("top1" if name in CLASSIFIERS else "snr"), target
        if name not in CLASSIFIERS:
            assert "agreement" not in accuracy and accuracy["min_snr_db"] > 15, (target, accuracy)
        benchmark = report["benchmark"]
        host_representative = target == "mobile"
        assert benchmark["vs_float32"]["applies"] is host_representative
        assert (benchmark["scope"] == "host") is host_representative
    for target in ("mcu", "ethos-u55"):
        arena = reports[target]["validation"]["arena"]
        settings = (tmp_path / target / "c" / "model_settings.h").read_text()
        declared = int(re.search(r"kTensorArenaSize\s*=\s*(\d+)", settings).group(1))
        assert declared == arena["recommended_bytes"], target  # the report's arena is the one the firmware declares
        budgets = next(c for c in reports[target]["validation"]["checks"] if c["name"] == "budgets")
        assert budgets["ram"]["used_bytes"] == declared
        assert budgets["flash"]["used_bytes"] == reports[target]["flash"]["model_array_bytes"]
        assert budgets["flash"]["scope"] == "model array" and "not included" in budgets["summary"]
        if target == "mcu":
            assert arena_is_sufficient(tmp_path / target / "model.tflite", declared)
    if name == "fc_autoencoder":  # per-tensor dense weights: fits the reference firmware's 10 KiB arena
        assert reports["mcu"]["validation"]["arena"]["recommended_bytes"] <= 10 * 1024


def test_an_snr_gate_can_fail_and_says_why(reference_model, tmp_path: Path, capsys) -> None:
    model = reference_model("hello_world")
    code = main(
        [
            "build",
            str(model.path),
            "-t",
            "mcu",
            "-d",
            str(model.npz),
            "-o",
            str(tmp_path),
            "--no-cache",
            "--set",
            "validation.min_snr_db=90",
            "--set",
            "benchmark.enabled=false",
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == 8, err
    assert "SNR" in err and "below 90 dB" in err
    report = json.loads((tmp_path / "mcu" / "report.json").read_text())
    check = next(c for c in report["validation"]["checks"] if c["name"] == "accuracy vs float")
    assert check["passed"] is False and check["metric"] == "snr"


def test_a_classifier_without_labels_is_gated_on_agreement(reference_model, tmp_path: Path, capsys) -> None:
    """No labels: top-1 agreement with the float model decides (default 95%), and it fails a bad calibration."""
    import numpy as np

    model = reference_model("ds_cnn")
    unlabelled = tmp_path / "x.npz"
    np.savez(unlabelled, x=np.load(model.npz)["x"])
    common = ["-t", "mcu", "-d", str(unlabelled), "--no-cache", "--set", "benchmark.enabled=false"]
    assert main(["build", str(model.path), *common, "-o", str(tmp_path / "good")]) == 0
    good = json.loads((tmp_path / "good" / "mcu" / "report.json").read_text())["validation"]["accuracy"]
    assert good["metric"] == "top1" and "artifact_top1" not in good and good["agreement"] >= 0.95
    capsys.readouterr()
    # MFCC-like inputs span about ±20; calibrating on a 40x smaller range clips them: predictions diverge
    squeezed = tmp_path / "squeezed.npz"
    np.savez(squeezed, x=np.load(model.npz)["x"] / 40.0)
    code = main(
        [
            "build",
            str(model.path),
            "-t",
            "mcu",
            "-d",
            str(squeezed),
            "--val-data",
            str(unlabelled),
            "--no-cache",
            "--set",
            "benchmark.enabled=false",
            "-o",
            str(tmp_path / "bad"),
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == 8 and "top-1 agreement with the float model" in err, err


def test_budgets_name_what_they_measure_and_can_fail(reference_model, tmp_path: Path, capsys) -> None:
    model = reference_model("hello_world")
    code = main(
        [
            "build",
            str(model.path),
            "-t",
            "mcu",
            "-d",
            str(model.npz),
            "-o",
            str(tmp_path),
            "--no-cache",
            "--set",
            "budget.ram=1KiB",
            "--set",
            "budget.flash=1KiB",
            "--set",
            "benchmark.enabled=false",
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == 8
    assert "the tensor arena alone needs" in err and "the model array alone takes" in err
