"""Multi-input and multi-output models (issue 16), built for real and checked from their artifacts.

One two-input digits model (image 32x32x1 plus a 10-value `hint` with a range four times the image's)
is built once for every target; one detection-style model (class scores plus a 4-value ink box) is built
once for mobile and mcu. The tests read those builds: calibration used each array for its own input (by
name, whatever order the converter lists the inputs in), validation, per-output metrics and gates, the C
helpers compiled with g++, and, where the TFLite Micro tree and QEMU are here, the firmware feeding both
inputs. Bad data (a missing input, a wrong shape) fails before any work with one paragraph and no output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebuild.cli.main import main

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # one all-target build with a firmware run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import multi_io_models  # noqa: E402
from tflm_tree import tree_args  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:  # file name -> path
    """Both models trained once (a few epochs), saved as .keras, with their .npz files."""
    data = multi_io_models.make_data()
    root = tmp_path_factory.mktemp("multi-io")
    two = multi_io_models.train_two_input(data, epochs=3)
    det = multi_io_models.train_detection(data, epochs=3)
    two.save(root / "two.keras")
    det.save(root / "det.keras")
    t = data.test
    np.savez(root / "two.npz", image=data.image[t], hint=data.hint[t], y=data.y[t])
    np.savez(root / "two_swapped.npz", y=data.y[t], hint=data.hint[t], image=data.image[t])
    np.savez(root / "two_numbered.npz", x0=data.image[t], x1=data.hint[t], y=data.y[t])
    np.savez(root / "two_missing.npz", x0=data.image[t], y=data.y[t])
    np.savez(root / "two_bad_shape.npz", image=data.image[t], hint=data.hint[t, :8], y=data.y[t])
    np.savez(root / "det.npz", x=data.image[t], y=data.y[t])
    float_top1 = float((two.predict([data.image[t], data.hint[t]], verbose=0).argmax(-1) == data.y[t]).mean())
    (root / "float_top1.txt").write_text(str(float_top1))
    return {p.name: p for p in root.iterdir()}


def _build(model: Path, data: Path, out: Path, *targets: str, extra: tuple[str, ...] = ()) -> int:
    args = ["build", str(model), "--data", str(data), "--out", str(out), "--set", "benchmark.runs=3", *extra]
    for target in targets:
        args += ["-t", target]
    return main(args)


@pytest.fixture(scope="module")
def two_input_build(models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two-all")
    assert _build(models["two.keras"], models["two.npz"], out, "all", extra=tree_args()) == 0
    return out


@pytest.fixture(scope="module")
def detection_build(models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("det")
    # the firmware runner and main.cc are exercised by the two-input build; here the C output is compiled below
    assert _build(models["det.keras"], models["det.npz"], out, "mobile", "mcu",
                  extra=("--set", "mcu.firmware=false")) == 0  # fmt: skip
    return out


def _compile(c_dir: Path, program: Path, exe: Path) -> None:
    """Host g++ with the generated headers, warnings as errors."""
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(c_dir), str(program), "-o", str(exe)], check=True
    )


def _run(exe: Path) -> str:
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


def _report(out: Path, target: str) -> dict:
    return json.loads((out / target / "report.json").read_text())


def test_every_target_builds_and_validates_close_to_float(two_input_build, models) -> None:
    from edgebuild.profiles import builtin_names

    float_top1 = float(models["float_top1.txt"].read_text())
    for target in builtin_names():
        report = _report(two_input_build, target)
        assert report["validation"]["passed"], (target, report["validation"]["checks"])
        assert [i["name"] for i in report["model"]["inputs"]] == ["image", "hint"]
        accuracy = report["validation"]["accuracy"]
        assert accuracy["reference_top1"] == pytest.approx(float_top1, abs=0.01)
        assert accuracy["drop_points"] <= 2.0, target
        assert len(report["artifact"]["inputs"]) == 2


def test_calibration_fed_each_input_its_own_array(two_input_build, models) -> None:
    """int8 input scales follow each array's range: the hint spans ~4.5, the image 1.0."""
    with np.load(models["two.npz"]) as data:
        hint_range, image_range = float(data["hint"].max()), float(data["image"].max())
    for target in ("mcu", "edgetpu", "ethos-u55"):
        inputs = {
            i["name"].split("_")[-1].split(":")[0]: i for i in _report(two_input_build, target)["artifact"]["inputs"]
        }
        assert inputs["hint"]["scale"] * 255 == pytest.approx(hint_range, rel=0.1), target
        assert inputs["image"]["scale"] * 255 == pytest.approx(image_range, rel=0.05), target


def test_arrays_are_matched_by_name_not_position(two_input_build, models, tmp_path) -> None:
    """Saved in another order: the same artifact, byte for byte; numbered x0/x1 (model order): the same arrays."""
    from edgebuild.model import InputSpec
    from edgebuild.named_data import load_model_data

    expected = (two_input_build / "edgetpu" / "model.tflite").read_bytes()
    out = tmp_path / "swapped"
    assert _build(models["two.keras"], models["two_swapped.npz"], out, "edgetpu") == 0
    assert (out / "edgetpu" / "model.tflite").read_bytes() == expected
    specs = [InputSpec("image", (None, 32, 32, 1), "float32"), InputSpec("hint", (None, 10), "float32")]
    named, numbered = (load_model_data(models[f], specs, "0-1", "the model") for f in ("two.npz", "two_numbered.npz"))
    assert named.named is not None and numbered.named is not None and list(numbered.named) == ["image", "hint"]
    for name in ("image", "hint"):
        np.testing.assert_array_equal(named.named[name], numbered.named[name])


def test_firmware_runs_both_inputs_and_matches_litert(two_input_build) -> None:
    firmware = _report(two_input_build, "mcu")["firmware"]
    if firmware.get("status") == "skipped":
        pytest.skip(firmware.get("note", "firmware skipped"))
    checks = {c["name"]: c for c in firmware["checks"]}
    assert all(c["passed"] for c in checks.values()), checks
    assert "host C++ check" in checks  # the generated main.cc, built with host g++, filled both inputs
    assert firmware["samples"] >= 1
    runner = (two_input_build / "mcu" / "firmware").rglob("samples.h")
    assert any("kSampleInputs = 2" in p.read_text() for p in runner)


def test_c_helpers_are_named_after_the_inputs_and_quantize_like_litert(two_input_build, tmp_path) -> None:
    c_dir = two_input_build / "mcu" / "c"
    settings = (c_dir / "model_settings.h").read_text()
    assert "QuantizeImage(float x)" in settings and "QuantizeHint(float x)" in settings
    report = _report(two_input_build, "mcu")
    hint = next(i for i in report["artifact"]["inputs"] if "hint" in i["name"])
    image = next(i for i in report["artifact"]["inputs"] if "image" in i["name"])
    program = tmp_path / "use.cc"
    program.write_text(
        '#include <cstdio>\n#include "model_settings.h"\n'
        'int main() { std::printf("%d %d %d\\n", QuantizeHint(2.5f), QuantizeImage(0.5f), '
        "kHintElements + kImageElements); return 0; }\n"
    )
    exe = tmp_path / "use"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(c_dir), str(program), "-o", str(exe)], check=True
    )
    hint_q, image_q, elements = map(
        int, subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    )
    assert hint_q == int(np.clip(np.round(2.5 / hint["scale"]) + hint["zero_point"], -128, 127))
    assert image_q == int(np.clip(np.round(0.5 / image["scale"]) + image["zero_point"], -128, 127))
    assert elements == 10 + 32 * 32


def test_detection_outputs_each_get_their_metric_and_gate(detection_build) -> None:
    for target in ("mobile", "mcu"):
        report = _report(detection_build, target)
        outputs = report["validation"]["accuracy"]["outputs"]
        assert [(o["name"], o["metric"]) for o in outputs] == [("scores", "top1"), ("box", "snr")]
        assert outputs[0]["agreement"] >= 0.95 and outputs[1]["snr_db"] > 25
        names = [c["name"] for c in report["validation"]["checks"]]
        assert "accuracy vs float" in names and "accuracy vs float, output 1 'box'" in names
        assert "output 1 'box'" in (detection_build / target / "report.md").read_text()


def test_detection_c_output_dequantizes_every_output(detection_build, tmp_path) -> None:
    c_dir = detection_build / "mcu" / "c"
    program = tmp_path / "use.cc"
    program.write_text(
        '#include <cstdio>\n#include "model_settings.h"\n'
        'int main() { std::printf("%d %d %d %d\\n", kModelOutput0Index, kModelOutput1Index, '
        'kOutputElements, kOutput1Elements); std::printf("%f %f\\n", DequantizeOutput(0), DequantizeOutput1(0));'
        " return 0; }\n"
    )
    exe = tmp_path / "use"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(c_dir), str(program), "-o", str(exe)], check=True
    )
    first, second = _run(exe).splitlines()
    scores_at, box_at, *elements = map(int, first.split())
    outputs = _report(detection_build, "mcu")["artifact"]["outputs"]
    assert sorted(elements) == [4, 10] and {scores_at, box_at} == {0, 1}
    assert outputs[scores_at]["shape"][-1] == 10 and outputs[box_at]["shape"][-1] == 4
    for value, tensor in zip(map(float, second.split()), outputs, strict=True):
        assert value == pytest.approx(-tensor["zero_point"] * tensor["scale"], abs=1e-6)


@pytest.mark.parametrize(
    ("variant", "needle"),
    [("two_missing", "no array 'x1' for input 'hint'"), ("two_bad_shape", "input 'hint' has samples of shape (8,)")],
)
def test_bad_inputs_fail_early_with_one_paragraph(models, tmp_path, capsys, variant, needle) -> None:
    out = tmp_path / "out"
    code = _build(models["two.keras"], models[variant + ".npz"], out, "mcu")
    err = " ".join(capsys.readouterr().err.split())  # the terminal wraps the paragraph
    assert code == 5, err  # DataError
    assert needle in err and str(models[variant + ".npz"]) in err
    assert "np.savez" in err or "Reshape" in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_python_api_takes_the_arrays_in_keras_order_or_by_name(models, tmp_path) -> None:
    """In-memory data as Keras' fit takes it ([image, hint], y) or a dict by name: the .npz a build reads.

    The API writes in-memory data to an .npz and builds from it as the CLI does, so the same arrays in that
    file mean the same artifact (the swapped-order test above shows the build itself).
    """
    from edgebuild.data import dataset_from_object, write_npz
    from edgebuild.model import InputSpec
    from edgebuild.named_data import load_model_data

    with np.load(models["two.npz"]) as data:
        image, hint, y = data["image"], data["hint"], data["y"]
    names = ("image", "hint")
    specs = [InputSpec("image", (None, 32, 32, 1), "float32"), InputSpec("hint", (None, 10), "float32")]
    for i, given in enumerate((([image, hint], y), {"y": y, "hint": hint, "image": image})):
        written = write_npz(tmp_path / f"{i}.npz", dataset_from_object(given, "data=", names))
        loaded = load_model_data(written, specs, "0-1", "the model")
        assert loaded.named is not None and list(loaded.named) == list(names), i
        np.testing.assert_array_equal(loaded.named["image"], image)
        np.testing.assert_array_equal(loaded.named["hint"], hint)
        np.testing.assert_array_equal(loaded.y, y)


def test_validate_and_bench_a_built_multi_input_artifact(two_input_build, models, capsys) -> None:
    """`edgebuild validate` / `bench` of the .tflite: arrays matched to the artifact's signature names."""
    artifact = str(two_input_build / "mcu" / "model.tflite")
    args = ["--data", str(models["two_swapped.npz"])]
    reference = ["--reference", str(models["two.keras"])]
    capsys.readouterr()
    assert main(["validate", artifact, "--target", "mcu", *args, *reference, "--json"]) == 0
    validation = json.loads(capsys.readouterr().out)
    assert validation["passed"] and validation["accuracy"]["drop_points"] <= 2.0
    assert validation["arena"]["samples"] == validation["accuracy"]["samples"] > 0
    assert main(["bench", artifact, *args, "--runs", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"]
    # numbered arrays are refused for a converted model: its input order is the converter's
    assert main(["validate", artifact, "--target", "mcu", "--data", str(models["two_numbered.npz"])]) == 5
    assert "Name each array after its input" in " ".join(capsys.readouterr().err.split())
