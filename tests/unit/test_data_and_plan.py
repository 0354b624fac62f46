"""Data loading, the seeded non-overlapping split, and plan-time refusals (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebuild.data import check_fits, load_dataset, split
from edgebuild.errors import DataError, ProfileError, UnsupportedError
from edgebuild.plan import make_plan
from edgebuild.profiles import resolve
from edgebuild.profiles.schema import DataSection


def test_split_is_seeded_disjoint_and_complete() -> None:
    section = DataSection(seed=3, validation_fraction=0.25)
    a, b = split(400, section, 100), split(400, section, 100)
    assert np.array_equal(a.validation, b.validation) and np.array_equal(a.calibration, b.calibration)
    sets = [set(a.validation), set(a.calibration), set(a.training), set(a.early_stopping)]
    assert sum(len(s) for s in sets) == 400
    assert len(set().union(*sets)) == 400  # pairwise disjoint and complete
    assert (len(a.validation), len(a.calibration)) == (100, 100)
    assert not np.array_equal(split(400, DataSection(seed=4), 100).validation, a.validation)


def test_split_caps_validation_and_needs_two_samples() -> None:
    assert len(split(10_000, DataSection(max_validation_samples=50), 10).validation) == 50
    with pytest.raises(DataError, match="at least 2"):
        split(1, DataSection(), 10)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((2, 4))}, "has no array named 'x' (it has: images)"),
        ({"x": np.zeros((0, 4))}, "holds no samples"),
        ({"x": np.array([[np.nan, 1.0], [0.0, 1.0]])}, "1 sample(s) of 'x' contain NaN"),
        ({"x": np.zeros((3, 4)), "y": np.zeros(2, dtype=int)}, "'x' has 3 samples but 'y' has 2"),
        ({"x": np.array([["a"], ["b"]])}, "not numbers"),
        ({"x": np.zeros((2, 4)), "y": np.array([-1, 0])}, "negative class ids"),
    ],
)
def test_bad_npz_gives_clear_error(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_shape_mismatch_hints_at_the_channel_axis(tmp_path: Path) -> None:
    path = tmp_path / "d.npy"
    np.save(path, np.zeros((5, 32, 32), dtype=np.float32))
    with pytest.raises(
        DataError, match=r"samples have shape \(32, 32\) but model.keras takes \(32, 32, 1\).*x\[\.\.\., None\]"
    ):
        check_fits(load_dataset(path), (None, 32, 32, 1), "model.keras")


def test_image_folder_loads_labels_and_resizes(tmp_path: Path) -> None:
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12), 50 * i, dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    data = load_dataset(tmp_path, (None, 8, 8, 1), "0-1")
    assert data.x.shape == (6, 8, 8, 1)
    assert list(data.y) == [0, 0, 0, 1, 1, 1]
    assert data.x.min() >= 0.0 and data.x.max() <= 100 / 255 + 1e-6


def test_plan_refuses_impossible_training_pass_combinations() -> None:
    with pytest.raises(ProfileError, match=r"distillation.student = \"pruned\" needs pruning.kind = \"structured\""):
        make_plan(resolve("mcu", ["distillation.enabled=true"]), has_data=True, random_calibration=False)
    with pytest.raises(UnsupportedError, match="would refill the zeroed weights"):
        make_plan(
            resolve("mcu", ["distillation.enabled=true", "pruning.kind=m_by_n", "distillation.student=width:0.5"]),
            has_data=True,
            random_calibration=False,
        )
    with pytest.raises(DataError, match="prunes or distills the model, which trains it"):
        make_plan(resolve("mobile", ["pruning.kind=structured"]), has_data=False, random_calibration=False)
    stages = [
        s.name
        for s in make_plan(
            resolve("mcu", ["pruning.kind=structured", "distillation.enabled=true", "quantization.method=qat"]),
            True,
            False,
        ).stages
    ]
    assert stages[:3] == ["prune", "train", "convert"]


def test_plan_needs_calibration_data_for_integer_targets() -> None:
    with pytest.raises(DataError, match="needs calibration data: pass --data"):
        make_plan(resolve("edgetpu"), has_data=False, random_calibration=False)
    plan = make_plan(resolve("mobile"), has_data=False, random_calibration=False)
    assert [s.name for s in plan.stages][:2] == ["convert", "inspect"]


def test_mcu_plan_emits_c_sources_then_links_and_runs_a_firmware() -> None:
    names = [s.name for s in make_plan(resolve("mcu"), True, False).stages]
    assert names == "convert inspect baseline validate layers benchmark emit firmware budgets report".split()
    without = [s.name for s in make_plan(resolve("mcu", ["mcu.firmware=false"]), True, False).stages]
    assert "firmware" not in without and "emit" in without
    assert "firmware" not in [s.name for s in make_plan(resolve("ethos-u55"), True, False).stages]


def test_an_unknown_board_is_refused_before_tensorflow() -> None:
    with pytest.raises(ProfileError, match=r"Unknown board 'nope'.*mps2-an386"):
        resolve("mcu", ["mcu.board=nope"])


def test_slower_than_float32_is_a_warning() -> None:
    from edgebuild.report import _warnings

    report = {
        "data": {"source": "d.npz"},
        "benchmark": {"vs_float32": {"threads": 1, "float32_p50_ms": 1.0, "ratio": 1.8, "slower": True}},
    }
    (warning,) = _warnings(report)
    assert warning.startswith("This artifact runs 1.80x slower than the plain float32 model on this host")
    report["benchmark"]["vs_float32"].update(ratio=0.5, slower=False)
    assert _warnings(report) == []


def test_cpu_gate_gives_benchmarks_the_cpu_alone() -> None:
    import threading
    import time

    from edgebuild.stages.context import CpuGate

    gate, events = CpuGate(), []
    release_shared = threading.Event()

    def stage(name: str) -> None:
        with gate.shared():
            events.append(f"{name} start")
            release_shared.wait(2)
            events.append(f"{name} end")

    def bench() -> None:
        with gate.exclusive():
            events.append("bench start")
            events.append("bench end")

    first = threading.Thread(target=stage, args=("convert",))
    first.start()
    time.sleep(0.05)
    waiting_bench = threading.Thread(target=bench)
    waiting_bench.start()
    time.sleep(0.05)
    late = threading.Thread(target=stage, args=("late",))  # must not start while the benchmark waits
    late.start()
    time.sleep(0.05)
    release_shared.set()
    for thread in (first, waiting_bench, late):
        thread.join(5)
    assert events.index("bench start") > events.index("convert end")
    assert events.index("late start") > events.index("bench end")
