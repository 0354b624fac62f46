"""Build matrices on the local executor and on a real two-node Ray cluster on loopback.

The cluster is started with `ray start` (a head and a second worker node, one CPU each) once for the module
and always stopped at the end, by the process ids of its own processes. One Ray run of 3 models x 2 targets
has a worker process killed in the middle of a task: Ray retries the task and every artifact equals the local
executor's byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]
ray = pytest.importorskip("ray", reason="Ray is the optional extra edgebuild[ray]: pip install 'edgebuild[ray]'")

SETTINGS = ["mcu.firmware=false", "benchmark.enabled=false", "layers.enabled=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_pids(temp_dir: str) -> set[int]:
    """Processes of this cluster: those naming its temp dir, and all their descendants."""
    cmdlines, parents = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdlines[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found = {pid for pid, cmd in cmdlines.items() if temp_dir in cmd}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found


def _stop_cluster(temp_dir: str) -> None:
    pids = _cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)


def _ray_start(command: list[str], env: dict[str, str]) -> None:
    """`ray start`, once more after a failure (a port taken meanwhile on this shared machine); its output on failure."""
    for _attempt in range(2):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        if result.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError(f"{' '.join(command)} failed twice:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[tuple[str, str]]:
    """(address, temp dir) of a head and a worker node started by `ray start`, one CPU each."""
    temp_dir = tempfile.mkdtemp(prefix="ebray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 * 1024**2)]
    ray_bin = str(Path(os.sys.executable).parent / "ray")
    head = [ray_bin, "start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp_dir]
    try:
        _ray_start([*head, "--disable-usage-stats", *common], env)
        _ray_start([ray_bin, "start", "--address", f"127.0.0.1:{port}", *common], env)
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def matrix_file(digits_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small digits models (two CNN seeds and the residual model) and an edgebuild.toml for 3 x 2 cells."""
    import digits
    import tf_keras as keras

    root = tmp_path_factory.mktemp("matrix")
    for i, make in enumerate([digits.build_cnn, digits.build_residual, digits.build_cnn]):
        keras.utils.set_random_seed(i)
        model = make(keras)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(digits_data.train_x[:600], digits_data.train_y[:600], epochs=1, verbose=0)
        model.save(root / f"m{i}.keras")
    shutil.copy(digits_data.npz, root / "digits.npz")
    np.savez(root / "bad.npz", x=np.zeros((20, 8, 8, 1), np.float32), y=np.zeros(20, np.int64))  # wrong shape
    settings = ", ".join(f'"{s}"' for s in SETTINGS)
    (root / "edgebuild.toml").write_text(
        '[matrix]\nmodels = ["m0.keras", "m1.keras", "m2.keras"]\ntargets = ["mobile", "mcu"]\n'
        f'data = "digits.npz"\nset = [{settings}]\n'
    )
    return root / "edgebuild.toml"


def _artifacts(out: Path) -> dict[str, bytes]:
    """Every artifact file of a matrix run (reports hold timings, so they are compared apart)."""
    names = ("model.tflite", ".cc", ".h")
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.name.endswith(names)}


def _kill_first_running_task(temp_dir: str, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker of this cluster seen running a build task (its title is ray::run_task)."""
    while not stop.is_set() and not killed:
        for pid in _cluster_pids(temp_dir):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::run_task"):
                time.sleep(2.0)  # well inside the build (TensorFlow is loaded, conversion under way)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.2)


def test_matrix_on_ray_equals_local_despite_a_killed_worker(ray_cluster, matrix_file, tmp_path):
    from edgebuild.executors import BuildTask, make_executor
    from edgebuild.matrix import load_matrix, run_matrix

    address, temp_dir = ray_cluster
    tasks, _ = load_matrix(matrix_file, use_cache=False)
    assert len(tasks) == 6

    local = make_executor("local", workers=2)
    try:
        started = time.monotonic()
        local_outcomes = run_matrix(local, tasks, tmp_path / "local")
        local_seconds = time.monotonic() - started
    finally:
        local.close()
    assert all(o.error is None for o in local_outcomes), [o.error for o in local_outcomes]

    executor = make_executor("ray", ray_address=address)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_running_task, args=(temp_dir, killed, stop), daemon=True)
    try:
        assert executor.workers == 2
        killer.start()
        started = time.monotonic()
        ray_outcomes = run_matrix(executor, tasks, tmp_path / "ray")
        ray_seconds = time.monotonic() - started
    finally:
        stop.set()
        killer.join()
    print(f"matrix wall time: local {local_seconds:.1f} s, ray {ray_seconds:.1f} s (one worker killed)")

    # The kill happened during a task, that process is gone, and the matrix still completed: Ray retried it.
    assert killed, "no Ray worker was seen running a build task"
    assert not Path(f"/proc/{killed[0]}").exists()
    assert all(o.error is None for o in ray_outcomes), [o.error for o in ray_outcomes]
    assert {o.worker.rsplit(":", 1)[1] for o in ray_outcomes}.isdisjoint({str(killed[0])})

    local_files, ray_files = _artifacts(tmp_path / "local"), _artifacts(tmp_path / "ray")
    assert len(local_files) == 3 * 1 + 3 * 6  # mobile: model.tflite; mcu: model.tflite and five C sources
    assert local_files.keys() == ray_files.keys()
    assert [k for k in local_files if local_files[k] != ray_files[k]] == []
    # Reports name the driver's paths (not a worker's temporary folder) and agree on what was measured.
    for o in ray_outcomes:
        report = (tmp_path / "ray" / o.key / "report.json").read_text()
        assert "edgebuild-task-" not in report and str(matrix_file.parent / o.key.split("/")[0]) in report

    # A user error is returned once, as its own class, and is not retried.
    bad = BuildTask("m0/mobile", tasks[0].model, "mobile", matrix_file.parent / "bad.npz", tuple(SETTINGS))
    (outcome,) = executor.run([bad], tmp_path / "bad")
    executor.close()
    assert outcome.error is not None and outcome.error[0] == "DataError", outcome.error
    assert "bad.npz" in outcome.error[1] and "edgebuild-task-" not in outcome.error[1]
