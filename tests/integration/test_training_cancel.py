"""Stopping training: Ctrl-C (the build's cancel event) within a batch, the time budget, learning-rate schedules.

The build-level tests run the real build driver (its build thread and Ctrl-C handler), press Ctrl-C while a
training pass (pruning recovery, QAT, distillation) is mid-epoch, and time how long the build takes to stop.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

STOP_WITHIN_S = 5.0  # "within a few seconds": one batch, one pass over the early-stopping split, clean-up


@pytest.fixture(scope="module")
def keras2():
    from edgebuild._tf import tf_keras

    return tf_keras()


def _tiny_model(keras2):
    keras2.utils.set_random_seed(0)
    layers = keras2.layers
    return keras2.Sequential(
        [
            keras2.Input((32, 32, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ]
    )


def _long_epochs(digits_data, copies: int = 4):
    """Enough samples that one epoch at batch size 1 takes several seconds."""
    d = digits_data
    return (np.concatenate([d.train_x] * copies), np.concatenate([d.train_y] * copies)), (d.test_x[:64], d.test_y[:64])


def test_fit_stops_within_a_batch_when_cancelled(keras2, digits_data) -> None:
    from edgebuild.converters.train import fit
    from edgebuild.profiles.schema import TrainingSection

    train, held_out = _long_epochs(digits_data)
    cancel = threading.Event()
    timer = threading.Timer(1.5, cancel.set)
    started = time.perf_counter()
    timer.start()
    try:
        result = fit(
            _tiny_model(keras2),
            train,
            held_out,
            TrainingSection(epochs=1000, batch_size=1, time_budget=0),
            cancel=cancel,
        )
    finally:
        timer.cancel()
    stopped_after = time.perf_counter() - started - 1.5
    assert result.stopped_by == "cancelled" and result.cancelled and "cancelled" in result.stop_reason
    assert result.epochs_run <= 1  # stopped inside the first epoch (4,800 batches), not at its end
    assert stopped_after < STOP_WITHIN_S


def test_fit_stops_at_the_time_budget_and_keeps_the_best_weights(keras2, digits_data) -> None:
    from edgebuild.converters.train import MIN_DELTA, fit
    from edgebuild.profiles.schema import TrainingSection

    d = digits_data
    model = _tiny_model(keras2)
    started = time.perf_counter()
    result = fit(
        model,
        (d.train_x[:900], d.train_y[:900]),
        (d.test_x[:100], d.test_y[:100]),
        TrainingSection(epochs=10_000, batch_size=8, learning_rate=1e-3, time_budget=3.0),
    )
    seconds = time.perf_counter() - started
    assert result.stopped_by == "time_budget" and not result.stopped_early
    assert "time budget of 3 s exceeded" in result.stop_reason and result.time_budget_s == 3.0
    assert 3.0 <= result.seconds < 3.0 + STOP_WITHIN_S and seconds < 3.0 + 2 * STOP_WITHIN_S
    assert 1 <= result.best_epoch <= result.epochs_run < 10_000
    lowest = min(h["val_loss"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_loss"] <= lowest + MIN_DELTA  # the best epoch's weights kept
    assert result.to_dict()["stopped_by"] == "time_budget"


def test_plateau_lowers_the_learning_rate_before_early_stopping(keras2, digits_data) -> None:
    from edgebuild.converters.train import MIN_LR_FACTOR, PLATEAU_FACTOR, fit, plateau_patience
    from edgebuild.profiles.schema import TrainingSection

    d = digits_data
    section = TrainingSection(epochs=40, learning_rate=1e-9, early_stopping=6, schedule="plateau", batch_size=64)
    result = fit(_tiny_model(keras2), (d.train_x[:300], d.train_y[:300]), (d.test_x[:100], d.test_y[:100]), section)
    assert result.stopped_by == "early_stopping" and result.epochs_run < 40
    rates = [h["lr"] for h in result.history]
    assert rates[0] == pytest.approx(1e-9)
    assert min(rates) == pytest.approx(1e-9 * PLATEAU_FACTOR**2, rel=1e-3)  # two reductions before stopping at 6
    assert plateau_patience(6) == 2 and min(rates) >= 1e-9 * MIN_LR_FACTOR
    assert result.final_learning_rate == pytest.approx(rates[-1], rel=1e-3)

    cosine = fit(
        _tiny_model(keras2),
        (d.train_x[:300], d.train_y[:300]),
        None,
        TrainingSection(epochs=4, learning_rate=1e-3, schedule="cosine", batch_size=64),
    )
    rates = [h["lr"] for h in cosine.history]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-3 * MIN_LR_FACTOR, rel=1e-2)
    assert rates == sorted(rates, reverse=True) and cosine.monitor == "loss"


class _CtrlCMidTraining:
    """Progress that presses Ctrl-C (a real SIGINT to this process) `delay` s after the first epoch ends.

    The build's own SIGINT handler sets its cancel event; the training pass is then inside its second epoch.
    """

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.pressed_at: float | None = None
        self.epochs: list[str] = []
        self.stages: list[str] = []

    def _press(self) -> None:
        self.pressed_at = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    def message(self, text: str) -> None:
        if " epoch " in text:
            self.epochs.append(text)
            if len(self.epochs) == 1:
                threading.Timer(self.delay, self._press).start()

    def stage_started(self, target: str, stage: str) -> None:
        self.stages.append(stage)

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        pass


@pytest.mark.parametrize(
    ("stage", "settings"),
    [
        ("prune", ["pruning.kind=structured", "pruning.recovery=fine-tune"]),
        ("train", ["quantization.method=qat", "training.epochs=500"]),
        ("distill", ["distillation.enabled=true", "distillation.student=width:0.5"]),
    ],
)
def test_ctrl_c_during_training_stops_the_stage_within_seconds(
    keras2_cnn, digits_data, tmp_path: Path, stage: str, settings: list[str]
) -> None:
    """The real driver (`pipeline.build`, its build thread and SIGINT handler); training would run for minutes."""
    from edgebuild.pipeline import BuildRequest, build

    overrides = (
        *settings,
        "training.batch_size=1",
        "quantization.calibration_samples=50",
        "training.recovery_epochs=500",
        "training.recovery_early_stopping=0",
        "training.time_budget=0",
        "benchmark.enabled=false",
    )
    request = BuildRequest(
        model=keras2_cnn.paths["keras"],
        targets=("mcu",),
        data=digits_data.npz,
        out=tmp_path,
        overrides=overrides,
        use_cache=False,
    )
    progress = _CtrlCMidTraining()
    with pytest.raises(KeyboardInterrupt):
        build(request, progress)
    ended_at = time.perf_counter()
    assert progress.pressed_at is not None, "training never reached its second epoch"
    latency = ended_at - progress.pressed_at
    assert latency < STOP_WITHIN_S, f"stopped {latency:.1f} s after Ctrl-C"
    assert stage in progress.stages and progress.stages[-1] == stage  # no later stage started
    assert len(progress.epochs) <= 2  # the second epoch never completed (at batch size 1 it takes seconds)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the partial folder is gone
    assert not (tmp_path / "mcu").exists()
