"""Parallel builds of real-model architectures never hang, and an interrupted build never leaves partial folders.

The streaming wake-word DS-CNN (Keras 2 .h5, Conv2D/DepthwiseConv2D/Dense with BatchNorm) hung with the
default -j: two targets converted one shared Keras model at once, and the converter saves its owner to a
SavedModel on every conversion (which swaps the layers' call functions while tracing). Now the shared model
is exported once, before any worker starts, and every conversion reads those files.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebuild.errors import StageTimeout
from edgebuild.pipeline import BuildRequest, build, clean_stale_partials

pytestmark = pytest.mark.tf

ALL = ("mcu", "edgetpu", "mobile", "ethos-u55")


def _request(model, out: Path, **kwargs) -> BuildRequest:
    return BuildRequest(
        model=model.path,
        targets=kwargs.pop("targets", ALL),
        data=model.npz,
        out=out,
        use_cache=False,
        overrides=kwargs.pop("overrides", ("benchmark.runs=5",)),
        **kwargs,
    )


def test_streaming_wake_word_builds_every_target_in_parallel_and_serially(reference_model, tmp_path: Path) -> None:
    model = reference_model("streaming_kws")
    timings = {}
    for jobs in (None, 1):
        started = time.perf_counter()
        results = build(_request(model, tmp_path / str(jobs), jobs=jobs, stage_timeout=300))
        timings[jobs] = time.perf_counter() - started
        assert [r.error for r in results] == [None] * len(ALL), [str(r.error) for r in results]
    for target in ALL:
        assert (tmp_path / "None" / target / "model.tflite").read_bytes() == (
            tmp_path / "1" / target / "model.tflite"
        ).read_bytes(), target
    assert timings[None] < 1.5 * timings[1] + 5, timings  # parallel is never a slow path


def test_no_worker_saves_or_traces_the_shared_model(reference_model, tmp_path: Path, monkeypatch) -> None:
    """The only SavedModel export of the user's model happens once, in the build thread, before the workers."""
    import tensorflow as tf

    model = reference_model("streaming_kws")
    saves: list[str] = []
    real_save = tf.saved_model.save

    def counting_save(obj, export_dir, *args, **kwargs):
        saves.append(threading.current_thread().name)
        return real_save(obj, export_dir, *args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", counting_save)
    results = build(_request(model, tmp_path, jobs=2, targets=("mcu", "edgetpu", "mobile")))
    assert [r.error for r in results] == [None, None, None]
    assert saves == ["edgebuild-build"], saves  # once, not once per target (and never in a target thread)


def test_a_stuck_stage_becomes_an_error_naming_it(reference_model, tmp_path: Path, monkeypatch) -> None:
    from edgebuild.stages import measure

    model = reference_model("hello_world")
    release = threading.Event()

    def stuck_validate(*args, **kwargs):
        release.wait(60)  # a stage that never returns on its own
        raise RuntimeError("released")

    monkeypatch.setattr(measure, "validate", stuck_validate)
    started = time.monotonic()
    try:
        with pytest.raises(StageTimeout) as info:
            build(_request(model, tmp_path, targets=("mcu",), stage_timeout=8.0))
    finally:
        release.set()
    assert time.monotonic() - started < 45
    message = str(info.value)
    assert "'mcu'" in message and "'validate'" in message and "EDGEBUILD_STAGE_TIMEOUT" in message
    stacks = Path(message.split("Thread stacks are in ")[1].split(":")[0])
    assert "stuck_validate" in stacks.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_partial_folders_of_dead_builds_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".mcu.partial").mkdir()  # left by an older version
    (tmp_path / f".edgetpu.partial-{dead.stdout.strip()}").mkdir()  # its process is gone
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f".mobile.partial-{live.pid}").mkdir()  # another build still writing here
        (tmp_path / ".ethos-u55.previous").mkdir()  # killed mid-swap: the old result
        removed = sorted(p.name for p in clean_stale_partials(tmp_path))
    finally:
        live.kill()
    assert removed == [".edgetpu.partial-" + dead.stdout.strip(), ".ethos-u55.previous", ".mcu.partial"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".mobile.partial-{live.pid}", "ethos-u55"]


def test_sigterm_stops_the_build_and_leaves_no_partial_folder(reference_model, tmp_path: Path) -> None:
    model = reference_model("ds_cnn")
    out = tmp_path / "out"
    (out / ".mcu.partial-1").mkdir(parents=True)  # pid 1 is alive but never ours: a live, foreign build is kept...
    (out / ".mobile.partial").mkdir()  # ...a stale one of an older version is removed at start
    code = "import sys; from edgebuild.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "build",
            str(model.path),
            *[a for t in ALL for a in ("-t", t)],
            "-d",
            str(model.npz),
            "-o",
            str(out),
            "-j",
            "2",
            "--no-cache",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # terminate while the workers are converting
        if " convert " in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 143), err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".mcu.partial-1"]
    for folder in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert (folder / "report.json").exists()  # whatever finished is complete
