"""The build cache: hits restore without TensorFlow, any input change misses, corruption is rebuilt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebuild.cache import BuildCache, build_key
from edgebuild.cli.main import main

pytestmark = pytest.mark.tf

FAST = ["--set", "benchmark.enabled=false"]


def _build_args(model: Path, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["build", str(model), "-t", "mcu", "-d", str(data), "-o", str(out), "--cache-dir", str(cache), *FAST, *extra]


def _cache_block(out: Path) -> dict:
    return json.loads((out / "mcu" / "report.json").read_text())["cache"]


def _run_cli_subprocess(args: list[str]) -> subprocess.CompletedProcess:
    code = ("import sys; from edgebuild.cli.main import main; rc = main(sys.argv[1:]); "
            "print('TENSORFLOW_IMPORTED', 'tensorflow' in sys.modules); sys.exit(rc)")
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
    assert build_key(**common, versions={"tensorflow": "2.21.0"}) != build_key(**common, versions={"tensorflow": "2.22.0"})
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
    procs = [subprocess.Popen([sys.executable, "-c", code,
                               *_build_args(keras2_cnn.paths["keras"], digits_data.npz, tmp_path / f"o{i}", cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
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
