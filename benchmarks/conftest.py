"""Models for the benchmark suites, built once per session (random weights, no training)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# the conversion recipes the test suite shares (appended, so nothing here is shadowed)
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from tflite_helpers import to_tflite


@pytest.fixture(scope="session")
def conv_model(tmp_path_factory) -> Path:
    """A float32 CNN on 96x96x3 with seeded random weights; invoke() takes about a millisecond.

    Large enough that timer and harness overhead would show if it were there.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras

    init = keras.initializers.GlorotUniform
    layers = keras.layers
    model = keras.Sequential(
        [
            layers.Input((96, 96, 3)),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(seed=1)),
            layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(seed=2)),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(seed=3)),
            layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer=init(seed=4)),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, kernel_initializer=init(seed=5)),
        ]
    )
    path = tmp_path_factory.mktemp("bench_models") / "conv96_float32.tflite"
    path.write_bytes(to_tflite(model))
    return path


@pytest.fixture(scope="session")
def conv_samples() -> np.ndarray:
    return np.random.default_rng(7).random((16, 96, 96, 3), dtype=np.float32)


def pytest_terminal_summary(terminalreporter) -> None:
    """A short table of the speed ratios measured by test_build_speed (machine speed cancels out), against the goals."""
    module = sys.modules.get("test_build_speed")
    results = getattr(module, "RESULTS", None)
    if not results:
        return
    goals = getattr(module, "GOALS", {})
    write = terminalreporter.write_line
    write("")
    write("edgebuild vs the hand-written recipe (ratios < 1 mean edgebuild is faster/smaller)")
    columns = [
        "recipe_s",
        "cold_conversion_only_vs_recipe",
        "jobs2_vs_jobs1",
        "full_build_vs_recipe",
        "warm_vs_cold",
        "peak_rss_vs_recipe",
    ]
    write(f"{'model':<12}" + "".join(f"{c:>32}" for c in columns))
    for name, row in results.items():
        if name == "--help":
            continue
        write(f"{name:<12}" + "".join(f"{row[c]:>32.3f}" for c in columns))
    write(f"{'goal':<12}" + "".join(f"{'<= ' + str(goals[c]) if c in goals else '-':>32}" for c in columns))
    if "--help" in results:
        seconds, cpu = results["--help"]["seconds"], results["--help"].get("cpu_seconds")
        goal = goals.get("help_seconds")
        write(
            f"edgebuild --help: {seconds:.3f} s wall"
            + (f", {cpu:.3f} s CPU" if cpu is not None else "")
            + (f" (goal < {goal} s wall)" if goal is not None else "")
        )
