"""edgebuild against the hand-written recipe, in one run: wall time, warm rebuilds, --jobs, memory, --help.

Every measurement runs a fresh process (both sides pay `import tensorflow`), and each result is a ratio
against a baseline measured in the same run, so machine speed cancels out. Goals (issue: build performance),
each asserted as stated (GOALS): cold conversion-only build <= 1.1x the recipe, warm rebuild <= 0.02x cold,
peak memory <= 1.2x the recipe, --help < 0.3 s. Goals not met today are listed with their measured values in
docs/bench-status.md, never hidden by a looser assert. `-j 2` vs `-j 1` and the full build are recorded, not gated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

RECIPE = Path(__file__).with_name("peer_recipe.py")
TARGETS = ["-t", "mobile", "-t", "edgetpu", "-t", "mcu"]
RESULTS: dict[str, dict[str, float]] = {}
# ratio or seconds -> the stated upper bound (exclusive for --help, inclusive for the ratios)
GOALS: dict[str, float] = {
    "cold_conversion_only_vs_recipe": 1.1,
    "warm_vs_cold": 0.02,
    "peak_rss_vs_recipe": 1.2,
    "help_seconds": 0.3,
}


def _run(argv: list[str], env: dict | None = None) -> tuple[float, int, float]:
    """(wall seconds, peak RSS bytes, CPU seconds user + system) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError(f"{argv} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one child process."""
    seconds, rss, _ = _run(argv, env)
    return seconds, rss


def _edgebuild(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edgebuild.cli.main",
        "build",
        str(model),
        *TARGETS,
        "-d",
        str(data),
        "-o",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module", params=["small", "mobilenetv2", "mobilenetv2_224"])
def model_and_data(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """A digits-sized CNN, a MobileNetV2 (96x96, alpha 0.35) and the full MobileNetV2 (224x224, alpha 1.0, 3.5 M
    parameters: issue 16's size), random weights: timing only."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    root = tmp_path_factory.mktemp(request.param)
    tf_keras.utils.set_random_seed(0)
    if request.param == "small":
        sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
        import digits

        model, shape = digits.build_cnn(tf_keras), (32, 32, 1)
    elif request.param == "mobilenetv2":
        model, shape = tf_keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None), (96, 96, 3)
    else:
        model, shape = tf_keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None), (224, 224, 3)
    path = root / "model.keras"
    model.save(path)
    data = root / "data.npz"
    np.savez(data, x=np.random.default_rng(0).random((300, *shape), dtype=np.float32))
    return request.param, path, data


def test_cold_build_vs_recipe(model_and_data, tmp_path: Path, benchmark) -> None:
    name, model, data = model_and_data
    recipe_s, recipe_rss = _timed([sys.executable, str(RECIPE), str(model), str(data), str(tmp_path / "recipe")])
    off = ["--no-cache", "--set", "validation.enabled=false", "--set", "benchmark.enabled=false", "-j", "1"]
    serial_s, serial_rss = _timed(_edgebuild(model, data, tmp_path / "serial", *off))
    parallel_s, _ = _timed(_edgebuild(model, data, tmp_path / "parallel", *off[:-2], "-j", "2"))
    full_s, _ = _timed(
        _edgebuild(model, data, tmp_path / "full", "--no-cache", "--no-gates")
    )  # random data: timing only
    cache_env = {**os.environ, "EDGEBUILD_CACHE_DIR": str(tmp_path / "cache")}
    cached = ["--set", "benchmark.enabled=false", "--no-gates"]  # random weights and data: gates would fail
    cold_s, _ = _timed(_edgebuild(model, data, tmp_path / "warm", *cached), cache_env)
    warm_s, _ = _timed(_edgebuild(model, data, tmp_path / "warm", *cached), cache_env)
    ratios = {
        "recipe_s": recipe_s,
        "cold_conversion_only_vs_recipe": serial_s / recipe_s,
        "jobs2_vs_jobs1": parallel_s / serial_s,
        "full_build_vs_recipe": full_s / recipe_s,
        "warm_vs_cold": warm_s / cold_s,
        "peak_rss_vs_recipe": serial_rss / recipe_rss,
    }
    ratios["warm_s"], ratios["cold_s"] = warm_s, cold_s
    RESULTS[name] = ratios
    benchmark.extra_info.update(ratios)
    benchmark.pedantic(lambda: None, rounds=1)
    missed = [
        f"{goal} = {ratios[goal]:.3f} > {GOALS[goal]}"
        for goal in ("cold_conversion_only_vs_recipe", "warm_vs_cold", "peak_rss_vs_recipe")
        if ratios[goal] > GOALS[goal]
    ]
    assert not missed, f"{name}: goals not met: {'; '.join(missed)} (all: {ratios})"


def test_help_is_fast(benchmark) -> None:
    runs = [_run([sys.executable, "-m", "edgebuild.cli.main", "--help"]) for _ in range(3)]
    seconds = min(wall for wall, _, _ in runs)  # best of 3: other processes on the machine only add time
    cpu = min(cpu for _, _, cpu in runs)  # recorded beside it: what --help itself costs, whatever the load
    RESULTS["--help"] = {"seconds": seconds, "cpu_seconds": cpu}
    benchmark.extra_info.update(seconds=seconds, cpu_seconds=cpu)
    benchmark.pedantic(lambda: None, rounds=1)
    assert seconds < GOALS["help_seconds"], (
        f"edgebuild --help took {seconds:.3f} s wall, {cpu:.3f} s CPU (goal < {GOALS['help_seconds']} s wall)"
    )
