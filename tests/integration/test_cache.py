"""The build cache: hits restore without TensorFlow, any input change misses, corruption is rebuilt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tflm_tree import tflm_tree
from vela_boards import board_ini

from edgebuild.cache import BuildCache, build_key
from edgebuild.cli.main import main

pytestmark = pytest.mark.tf

FAST = ["--set", "benchmark.enabled=false"]


def _build_args(model: Path, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["build", str(model), "-t", "mcu", "-d", str(data), "-o", str(out), "--cache-dir", str(cache), *FAST, *extra]


def _cache_block(out: Path) -> dict:
    return json.loads((out / "mcu" / "report.json").read_text())["cache"]


def _run_cli_subprocess(args: list[str]) -> subprocess.CompletedProcess:
    code = (
        "import sys; from edgebuild.cli.main import main; rc = main(sys.argv[1:]); "
        "print('TENSORFLOW_IMPORTED', 'tensorflow' in sys.modules); sys.exit(rc)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_identical_build_is_restored_without_tensorflow(keras2_cnn, digits_data, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert main(_build_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / "a", cache)) == 0
    assert _cache_block(tmp_path / "a")["hit"] is False
    result = _run_cli_subprocess(_build_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / "b", cache))
    assert result.returncode == 0, result.stderr
    assert "TENSORFLOW_IMPORTED False" in result.stdout
    assert _cache_block(tmp_path / "b")["hit"] is True
    for name in ("model.tflite", "c/model_data.cc"):
        assert (tmp_path / "a" / "mcu" / name).read_bytes() == (tmp_path / "b" / "mcu" / name).read_bytes()


def test_any_input_change_misses(keras2_cnn, digits_data, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model, data = keras2_cnn.paths["keras"], digits_data.npz
    assert main(_build_args(model, data, tmp_path / "base", cache)) == 0
    other_data = tmp_path / "other.npz"
    np.savez(other_data, x=digits_data.test_x[:300], y=digits_data.test_y[:300])
    changes = {
        "profile key": _build_args(model, data, tmp_path / "p", cache, "--set", "quantization.calibration_samples=50"),
        "data": _build_args(model, other_data, tmp_path / "d", cache),
        "model": _build_args(keras2_cnn.paths["h5"], data, tmp_path / "m", cache),
    }
    for what, args in changes.items():
        assert main(args) == 0
        assert _cache_block(Path(args[args.index("-o") + 1]))["hit"] is False, what
    assert BuildCache(cache).info()["entries"] == 4


def test_versions_are_part_of_the_key() -> None:
    common = dict(model_sha256="m", profile_toml="p", data_sha256={"data": "d"}, flags={})
    assert build_key(**common, versions={"tensorflow": "2.21.0"}) != build_key(
        **common, versions={"tensorflow": "2.22.0"}
    )
    assert build_key(**common, versions={"x": "1"}) == build_key(**common, versions={"x": "1"})


def test_corrupt_entry_is_reported_and_rebuilt(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    args = _build_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / "out", cache)
    assert main(args) == 0
    stored = next((cache / "entries").glob("*/*/files/model.tflite"))
    stored.write_bytes(stored.read_bytes()[:100])  # truncate the cached artifact
    capsys.readouterr()
    assert main(args) == 0
    assert "was corrupt (model.tflite does not match its hash); rebuilt it" in capsys.readouterr().err
    block = _cache_block(tmp_path / "out")
    assert block["hit"] is False
    assert (tmp_path / "out" / "mcu" / "model.tflite").stat().st_size > 1000
    entry, problem = BuildCache(cache).lookup(block["key"])
    assert entry is not None and problem is None  # stored again, intact


def test_concurrent_builds_share_one_valid_entry(keras2_cnn, digits_data, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = "import sys; from edgebuild.cli.main import main; sys.exit(main(sys.argv[1:]))"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                *_build_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / f"o{i}", cache),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    cache_view = BuildCache(cache)
    assert cache_view.info()["entries"] == 1
    key = _cache_block(tmp_path / "o0")["key"]
    entry, problem = cache_view.lookup(key)
    assert entry is not None and problem is None
    assert not list((cache / "entries").glob("*/.*.tmp"))  # no staging leftovers


def test_cache_commands(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    assert main(_build_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / "out", cache)) == 0
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert f"{cache}: 1 entries" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert BuildCache(cache).info()["entries"] == 0


# ---- files a profile points to: their contents are in the key ------------------------------------------------


# A stand-in for Coral's edgetpu_compiler (not installable here): answers --version and writes the
# <stem>_edgetpu.tflite the real one writes. Only its bytes matter to the cache key.
FAKE_COMPILER = """#!/bin/sh
# {comment}
if [ "$1" = "--version" ]; then echo "Edge TPU Compiler version 16.0.384591198"; exit 0; fi
while [ "$#" -gt 1 ]; do
  if [ "$1" = "-o" ]; then out="$2"; shift; fi
  shift
done
cp "$1" "$out/$(basename "$1" .tflite)_edgetpu.tflite"
echo "Edge TPU Compiler version 16.0.384591198"
echo "Model compiled successfully in 5 ms."
"""


def _hit(args: list[str], target: str) -> bool:
    assert main(args) == 0
    out = Path(args[args.index("-o") + 1])
    return json.loads((out / target / "report.json").read_text())["cache"]["hit"]


def _target_args(model: Path, data: Path, out: Path, cache: Path, target: str, *extra: str) -> list[str]:
    return [
        "build",
        str(model),
        "-t",
        target,
        "-d",
        str(data),
        "-o",
        str(out),
        "--cache-dir",
        str(cache),
        *FAST,
        "--set",
        "validation.enabled=false",
        *extra,
    ]


def test_vela_config_file_content_is_in_the_key(keras2_cnn, digits_data, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative config_file resolves against the working directory, as Vela's stage does
    ini = tmp_path / "board.ini"
    ini.write_text(board_ini("400e6"))
    cache = tmp_path / "cache"
    vela = ["--set", "vela.config_file=board.ini", "--set", "vela.system_config=My_Board"]

    def args(out: str) -> list[str]:
        return _target_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / out, cache, "ethos-u55", *vela)

    assert _hit(args("a"), "ethos-u55") is False
    ini.write_text(board_ini("400e6"))  # rewritten, same content
    assert _hit(args("b"), "ethos-u55") is True
    ini.write_text(board_ini("500e6"))
    assert _hit(args("c"), "ethos-u55") is False
    report = json.loads((tmp_path / "c" / "ethos-u55" / "report.json").read_text())
    assert report["compile"]["vela"]["core_clock_hz"] == 500e6  # the miss really rebuilt with the new file


def test_explicit_edgetpu_compiler_binary_is_in_the_key(keras2_cnn, digits_data, tmp_path: Path) -> None:
    compiler = tmp_path / "bin" / "edgetpu_compiler"
    compiler.parent.mkdir()
    compiler.write_text(FAKE_COMPILER.format(comment="build 1"))
    compiler.chmod(0o755)
    cache = tmp_path / "cache"

    def args(out: str) -> list[str]:
        return _target_args(
            keras2_cnn.paths["keras"],
            digits_data.npz,
            tmp_path / out,
            cache,
            "edgetpu",
            "--set",
            f"edgetpu.compiler={compiler}",
        )

    assert _hit(args("a"), "edgetpu") is False
    assert (tmp_path / "a" / "edgetpu" / "model_edgetpu.tflite").is_file()  # the stand-in compiler ran
    compiler.write_text(FAKE_COMPILER.format(comment="build 1"))
    assert _hit(args("b"), "edgetpu") is True
    compiler.write_text(FAKE_COMPILER.format(comment="build 2"))  # a different binary at the same path
    assert _hit(args("c"), "edgetpu") is False


def _save_scaled(source: Path, dest: Path, scale: float) -> None:
    """Save the tf_keras model at `source` to `dest` with its last layer's weights scaled (new content, same shapes)."""
    import tf_keras

    model = tf_keras.models.load_model(source)
    layer = [layer for layer in model.layers if layer.get_weights()][-1]
    layer.set_weights([w * scale for w in layer.get_weights()])
    model.save(dest)


def test_distillation_teacher_and_student_files_are_in_the_key(keras2_cnn, digits_data, tmp_path: Path) -> None:
    teacher, student = tmp_path / "teacher.keras", tmp_path / "student.keras"
    _save_scaled(keras2_cnn.paths["keras"], teacher, 1.0)
    _save_scaled(keras2_cnn.paths["keras"], student, 0.5)
    cache = tmp_path / "cache"
    distill = [
        "--set",
        "distillation.enabled=true",
        "--set",
        f"distillation.teacher={teacher}",
        "--set",
        f"distillation.student={student}",
        "--set",
        "training.recovery_epochs=1",
    ]

    def args(out: str) -> list[str]:
        return _target_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / out, cache, "mobile", *distill)

    assert _hit(args("a"), "mobile") is False
    teacher.write_bytes(teacher.read_bytes())  # rewritten, same content
    assert _hit(args("b"), "mobile") is True
    _save_scaled(keras2_cnn.paths["keras"], teacher, 1.1)
    assert _hit(args("c"), "mobile") is False
    _save_scaled(keras2_cnn.paths["keras"], student, 0.25)
    assert _hit(args("d"), "mobile") is False
    assert _hit(args("e"), "mobile") is True


def test_referenced_files_lists_only_files_the_build_reads(tmp_path: Path, monkeypatch) -> None:
    from edgebuild.cache import referenced_files
    from edgebuild.hashing import hash_path
    from edgebuild.profiles import resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEBUILD_TFLM_DIR", raising=False)
    (tmp_path / "board.ini").write_text("x")
    assert referenced_files(resolve("mcu")) == {"mcu.tflm_dir": None}  # the firmware stage's tree: none here
    assert referenced_files(resolve("mcu", ["mcu.firmware=false"])) == {}
    assert referenced_files(resolve("ethos-u55", ["vela.config_file=board.ini"])) == {
        "vela.config_file": hash_path(tmp_path / "board.ini")
    }
    assert referenced_files(resolve("ethos-u55", ["vela.config_file=Arm/vela.ini"])) == {"vela.config_file": None}
    assert referenced_files(resolve("mcu", ["vela.config_file=board.ini", "mcu.firmware=false"])) == {}  # no Vela
    assert referenced_files(resolve("mobile", ["distillation.enabled=true", "distillation.student=width:0.5"])) == {}
    assert referenced_files(resolve("edgetpu")) == {}  # the default compiler on PATH: its version is in the key
    assert referenced_files(resolve("edgetpu", ["edgetpu.compiler=./nope"])) == {"edgetpu.compiler": None}


def test_the_tflm_tree_is_part_of_the_key_by_content(tmp_path: Path, monkeypatch) -> None:
    """Two copies of a TFLite Micro tree give one key; editing a source file gives another."""
    import shutil

    from edgebuild.cache import referenced_files
    from edgebuild.profiles import resolve

    shared = tflm_tree()
    assert shared is not None, "needs a TensorFlow Lite Micro tree (tests/tflm_tree.py says where it is looked for)"
    tree = tmp_path / "tree"
    for top in ("tensorflow", "third_party", "signal"):
        if (shared / top).is_dir():
            shutil.copytree(shared / top, tree / top)
    monkeypatch.setenv("EDGEBUILD_TFLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEBUILD_TFLM_DIR", str(shared))
    original = referenced_files(resolve("mcu"))["mcu.tflm_dir"]
    monkeypatch.setenv("EDGEBUILD_TFLM_DIR", str(tree))
    assert referenced_files(resolve("mcu"))["mcu.tflm_dir"] == original
    kernel = tree / "tensorflow/lite/micro/kernels/softmax.cc"
    kernel.write_text(kernel.read_text() + "\n// edited\n")
    assert referenced_files(resolve("mcu"))["mcu.tflm_dir"] not in (original, None)
