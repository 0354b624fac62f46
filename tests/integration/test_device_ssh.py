"""Device benchmarks over real SSH: a real OpenSSH server on 127.0.0.1 plays the device.

No mocks. The session set-up starts Debian's `sshd` (installing `openssh-server` with apt
where that is possible) with its own throwaway host key, user key, AuthorizedKeysFile and
config, and builds a separate "device" virtual environment that holds NumPy and
ai-edge-litert but not TensorFlow, plus a second one with NumPy only. The tests drive the
system `ssh`/`scp` binaries through `edgebuild.device.bench_on_device` and the CLI, with a
temporary known_hosts file, and check the device's temporary folder is always removed
(the server sets TMPDIR for its sessions to a directory the tests watch).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tflite_helpers import seeded_cnn, to_tflite

from edgebuild.device import (
    DeviceArtifactError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceHostKeyError,
    DeviceSetupError,
    DeviceTimeout,
    bench_on_device,
)
from edgebuild.errors import ArtifactError, ExternalToolError, UsageError

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


# ---------------------------------------------------------------------------------------------
# the SSH server


def _find_sshd() -> str | None:
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), shutil.which("sshd"))


def _ensure_sshd() -> str:
    sshd = _find_sshd()
    if sshd:
        return sshd
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(
            "no OpenSSH server (sshd) here, and apt-get is unavailable or we are not root to install "
            "Debian's openssh-server"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "openssh-server"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"could not install openssh-server with apt-get: {proc.stderr.strip()[-300:]}")
    sshd = _find_sshd()
    if not sshd:
        pytest.skip("openssh-server installed but no sshd binary found")
    return sshd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@dataclass(frozen=True)
class SSHServer:
    port: int
    user: str
    key: Path  # authorized
    wrong_key: Path  # a valid key the server does not know
    host_key_line: str  # "[127.0.0.1]:PORT ssh-ed25519 AAAA..." for known_hosts
    remote_tmp: Path  # TMPDIR of the server's sessions: where the device's temp folders go

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.remote_tmp))


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory):
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"the OpenSSH client tool {tool} is not installed")
    sshd = _ensure_sshd()
    root = tmp_path_factory.mktemp("sshd")
    host_key = _keygen(root / "host_ed25519", "edgebuild-test-host")
    key = _keygen(root / "user_ed25519", "edgebuild-test-user")
    wrong = _keygen(root / "wrong_ed25519", "edgebuild-test-wrong")
    (root / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    remote_tmp = root / "device_tmp"
    remote_tmp.mkdir()
    port = _free_port()
    sftp = next(
        (p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server") if os.path.exists(p)),
        "internal-sftp",
    )
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # the pytest temp dirs' permissions are not sshd's business here
                f"Subsystem sftp {sftp}",
                f"SetEnv TMPDIR={remote_tmp}",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory Debian's sshd needs
    log = open(root / "sshd.log", "w")  # noqa: SIM115 - sshd writes to it until the fixture ends
    proc = subprocess.Popen([sshd, "-f", str(config), "-D", "-e"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"sshd exited with {proc.returncode}: {(root / 'sshd.log').read_text()[-1000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sshd did not start listening within 15 s")
            time.sleep(0.05)
    pub = host_key.with_suffix(".pub").read_text().split()
    server = SSHServer(
        port=port,
        user=getpass.getuser(),
        key=key,
        wrong_key=wrong,
        host_key_line=f"[127.0.0.1]:{port} {pub[0]} {pub[1]}",
        remote_tmp=remote_tmp,
    )
    yield server
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def known_hosts(ssh_server: SSHServer, tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(ssh_server.host_key_line + "\n")
    return path


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch):
    """Only the keys a test passes count: an ssh-agent of the developer must not log in for us."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


# ---------------------------------------------------------------------------------------------
# the device's Pythons


@dataclass(frozen=True)
class DevicePythons:
    litert: str  # NumPy + ai-edge-litert, no TensorFlow
    numpy_only: str  # NumPy and no interpreter package at all


@pytest.fixture(scope="session")
def device_pythons(tmp_path_factory: pytest.TempPathFactory) -> DevicePythons:
    """Two minimal virtual environments, built once per session (pip reuses its cache / local mirror)."""
    root = tmp_path_factory.mktemp("device_venvs")
    base = getattr(sys, "_base_executable", sys.executable)
    envs = {"litert": ["numpy", "ai-edge-litert"], "numpy_only": ["numpy"]}
    procs = {}
    for name, packages in envs.items():
        venv = root / name
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        procs[name] = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"pip install into the {name} device venv failed: {out[-1500:]}")
    pythons = {name: str(root / name / "bin" / "python3") for name in envs}
    check = subprocess.run([pythons["litert"], "-c", "import tensorflow"], capture_output=True)
    assert check.returncode != 0, "the device venv must not hold TensorFlow"
    return DevicePythons(**pythons)


# ---------------------------------------------------------------------------------------------
# artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras

    out = tmp_path_factory.mktemp("device_artifacts")
    float32 = out / "cnn.tflite"
    float32.write_bytes(to_tflite(seeded_cnn(keras, (32, 32, 1))))

    # a real artifact the device's LiteRT cannot load: it needs the Flex (Select TF ops) delegate
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4], tf.float32)])
    def det(x):
        return tf.linalg.det(x)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([det.get_concrete_function()], det)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    flex = out / "flex.tflite"
    flex.write_bytes(conv.convert())

    # named like edgetpu_compiler's output; this device has no libedgetpu.so.1
    edgetpu = out / "cnn_edgetpu.tflite"
    shutil.copy(float32, edgetpu)
    return {"float32": float32, "flex": flex, "edgetpu": edgetpu}


pytestmark = pytest.mark.tf  # the artifacts fixture converts with TensorFlow


def _bench(server: SSHServer, artifact: Path, python: str, known_hosts: Path | None, **kw):
    kw.setdefault("threads", [1])
    kw.setdefault("runs", 20)
    kw.setdefault("warmup", 3)
    kw.setdefault("identity", server.key)
    kw.setdefault("connect_timeout", 5)
    return bench_on_device(artifact, kw.pop("url", server.url), device_python=python, known_hosts=known_hosts, **kw)


# ---------------------------------------------------------------------------------------------
# end to end


def test_benchmark_over_ssh_mirrors_the_host_fields(ssh_server, device_pythons, artifacts, known_hosts):
    from edgebuild.bench import benchmark_threads

    assert ssh_server.leftovers() == []
    result = _bench(
        ssh_server, artifacts["float32"], device_pythons.litert, known_hosts, threads=[1, 2], runs=50, warmup=5
    )
    host = benchmark_threads(artifacts["float32"], [1, 2], runs=50, warmup=5)

    assert set(result["threads"]) == {"1", "2"}
    for n in ("1", "2"):
        r, h = result["threads"][n], host["threads"][n]
        assert set(h) <= set(r), f"device result lacks host fields {set(h) - set(r)}"
        assert r["threads"] == int(n) and r["runs"] == 50 and r["warmup"] == 5
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"] and r["std_ms"] >= 0
        assert r["load_ms"] > 0
        assert r["model_bytes"] == artifacts["float32"].stat().st_size
        assert r["input_source"] == "random" and r["xnnpack"] is True
        assert r["runtime"]["name"] == "ai-edge-litert" and r["runtime"]["version"] == host["runtime"]["version"]
        # the runner process holds Python + NumPy + LiteRT, not TensorFlow: far below the host process
        assert 5 * 2**20 < r["peak_rss_bytes"] < 400 * 2**20
        assert r["peak_rss_bytes"] < h["peak_rss_bytes"]
        assert 0.1 < r["p50_ms"] / h["p50_ms"] < 10  # same CPU, same runtime: same order of magnitude
    assert result["best_threads"] in (1, 2) and result["speedup"]["1"] == 1.0
    device = result["device"]
    assert device["url"] == ssh_server.url and device["transport"] == "ssh"
    assert device["cpu"] == host["host"]["cpu"] and device["machine"] == host["host"]["machine"]
    assert device["cores"] == os.cpu_count()
    assert device["python"] == ".".join(str(v) for v in sys.version_info[:3])
    assert device["python_executable"].startswith(str(Path(device_pythons.litert).parent.parent))
    assert device["numpy"] == np.__version__ and device["os"]
    assert device["runtime"] == {"name": "ai-edge-litert", "version": host["runtime"]["version"]}
    assert "edgetpu" not in result
    assert result["cleanup"]["removed"] is True
    assert ssh_server.leftovers() == []
    json.dumps(result)  # JSON-ready, like the host result


def test_cli_bench_device_json(ssh_server, device_pythons, artifacts, known_hosts, capsys):
    from edgebuild.cli.main import main

    code = main(
        [
            "bench",
            str(artifacts["float32"]),
            "--device",
            ssh_server.url,
            "--identity",
            str(ssh_server.key),
            "--known-hosts",
            str(known_hosts),
            "--device-python",
            device_pythons.litert,
            "--runs",
            "10",
            "--warmup",
            "2",
            "--threads",
            "1",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["threads"]["1"]["runs"] == 10 and result["device"]["transport"] == "ssh"
    assert ssh_server.leftovers() == []


def test_cli_bench_device_table(ssh_server, device_pythons, artifacts, known_hosts, capsys):
    from edgebuild.cli.main import main

    code = main(
        [
            "bench",
            str(artifacts["float32"]),
            "--device",
            ssh_server.url,
            "--identity",
            str(ssh_server.key),
            "--known-hosts",
            str(known_hosts),
            "--device-python",
            device_pythons.litert,
            "--runs",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "p50 ms" in out and "ai-edge-litert" in out
    assert f"device: {ssh_server.url}" in out


# ---------------------------------------------------------------------------------------------
# host keys


def test_unknown_host_key_is_refused_then_accepted_with_the_flag(ssh_server, device_pythons, artifacts, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(DeviceHostKeyError) as info:
        _bench(ssh_server, artifacts["float32"], device_pythons.litert, known)
    message = str(info.value)
    assert f"[127.0.0.1]:{ssh_server.port}" in message
    assert "--accept-new-host-key" in message and f"ssh-keyscan -p {ssh_server.port} 127.0.0.1" in message
    assert info.value.exit_code == 10 and isinstance(info.value, ExternalToolError)
    assert known.read_text() == ""  # nothing recorded without the flag
    assert ssh_server.leftovers() == []

    result = _bench(ssh_server, artifacts["float32"], device_pythons.litert, known, accept_new_host_key=True)
    assert result["threads"]["1"]["p50_ms"] > 0
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{ssh_server.port}", "-f", str(known)], capture_output=True, text=True
    )  # ssh may hash the names it records
    assert found.returncode == 0 and ssh_server.host_key_line.split()[2] in found.stdout
    assert ssh_server.leftovers() == []


def test_changed_host_key_is_refused_even_with_accept_new(ssh_server, device_pythons, artifacts, tmp_path):
    other = _keygen(tmp_path / "other_host", "impostor").with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_server.port} {other[0]} {other[1]}\n")
    with pytest.raises(DeviceHostKeyError) as info:
        _bench(ssh_server, artifacts["float32"], device_pythons.litert, known, accept_new_host_key=True)
    assert "CHANGED" in str(info.value) and "ssh-keygen -R" in str(info.value)
    assert ssh_server.leftovers() == []


def test_cli_unknown_host_key_message_and_exit_code(ssh_server, artifacts, tmp_path, capsys):
    from edgebuild.cli.main import main

    known = tmp_path / "known_hosts"
    known.write_text("")
    code = main(
        [
            "bench",
            str(artifacts["float32"]),
            "--device",
            ssh_server.url,
            "--identity",
            str(ssh_server.key),
            "--known-hosts",
            str(known),
        ]
    )
    err = capsys.readouterr().err
    assert code == 10
    assert err.startswith("edgebuild: device host key not trusted: The SSH host key of")
    assert "--accept-new-host-key" in err


# ---------------------------------------------------------------------------------------------
# connection and login failures


def test_closed_port(ssh_server, device_pythons, artifacts, known_hosts):
    port = _free_port()
    with pytest.raises(DeviceConnectionError) as info:
        _bench(
            ssh_server,
            artifacts["float32"],
            device_pythons.litert,
            known_hosts,
            url=f"ssh://{ssh_server.user}@127.0.0.1:{port}",
        )
    message = str(info.value)
    assert f"127.0.0.1 port {port}" in message and "refused" in message
    assert info.value.exit_code == 10
    assert ssh_server.leftovers() == []


def test_wrong_key(ssh_server, device_pythons, artifacts, known_hosts):
    with pytest.raises(DeviceAuthError) as info:
        _bench(ssh_server, artifacts["float32"], device_pythons.litert, known_hosts, identity=ssh_server.wrong_key)
    message = str(info.value)
    assert "refused the SSH login" in message and str(ssh_server.wrong_key) in message
    assert "--identity" in message and "ssh-copy-id" in message
    assert ssh_server.leftovers() == []


def test_missing_identity_file_is_a_usage_error(ssh_server, artifacts, known_hosts, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        _bench(ssh_server, artifacts["float32"], "python3", known_hosts, identity=tmp_path / "nope")


@pytest.mark.parametrize("url", ["ssh://", "ssh://user:secret@host", "http://host", "ssh://host/path", "adb:"])
def test_bad_urls(url, artifacts):
    with pytest.raises(UsageError):
        bench_on_device(artifacts["float32"], url, threads=[1], runs=1, warmup=0)


def test_not_a_tflite_file(tmp_path, ssh_server):
    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ArtifactError, match="TFL3"):
        bench_on_device(junk, ssh_server.url, threads=[1], runs=1, warmup=0)


# ---------------------------------------------------------------------------------------------
# what the device lacks


def test_no_python_on_the_device(ssh_server, artifacts, known_hosts):
    with pytest.raises(DeviceSetupError) as info:
        _bench(ssh_server, artifacts["float32"], "/nonexistent/bin/python3", known_hosts)
    assert "/nonexistent/bin/python3" in str(info.value) and "--device-python" in str(info.value)
    assert ssh_server.leftovers() == []


def test_no_interpreter_package_on_the_device(ssh_server, device_pythons, artifacts, known_hosts):
    with pytest.raises(DeviceSetupError) as info:
        _bench(ssh_server, artifacts["float32"], device_pythons.numpy_only, known_hosts)
    message = str(info.value)
    assert "No TensorFlow Lite interpreter" in message
    assert f"{device_pythons.numpy_only} -m pip install ai-edge-litert" in message
    assert "tflite-runtime" in message and "NumPy 1" in message
    assert info.value.exit_code == 10
    assert ssh_server.leftovers() == []  # the folder was made and the files copied: clean-up ran


def test_artifact_the_device_runtime_cannot_load(ssh_server, device_pythons, artifacts, known_hosts):
    with pytest.raises(DeviceArtifactError) as info:
        _bench(ssh_server, artifacts["flex"], device_pythons.litert, known_hosts)
    message = str(info.value)
    assert "cannot load flex.tflite" in message and "Select TensorFlow op" in message
    assert isinstance(info.value, ArtifactError) and info.value.exit_code == 9
    assert ssh_server.leftovers() == []


def test_edgetpu_artifact_without_the_edgetpu_runtime(ssh_server, device_pythons, artifacts, known_hosts):
    with pytest.raises(DeviceSetupError) as info:
        _bench(ssh_server, artifacts["edgetpu"], device_pythons.litert, known_hosts)
    message = str(info.value)
    assert "compiled for the Edge TPU" in message and "libedgetpu.so.1" in message
    assert "does not time a CPU fallback" in message
    assert ssh_server.leftovers() == []


def test_timeout_stops_the_runner_and_cleans_up(ssh_server, artifacts, known_hosts, tmp_path):
    # a "python" that never answers: the host gives up, stops it on the device and removes the folder
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\necho $$ > runner.pid\nexec sleep 60\n")  # keeps the runner's pid-file contract
    slow.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        _bench(ssh_server, artifacts["float32"], str(slow), known_hosts, timeout=1, connect_timeout=1)
    assert time.monotonic() - started < 15
    assert "did not finish within 1 s" in str(info.value)
    assert ssh_server.leftovers() == []


def test_all_device_errors_are_external_tool_errors():
    for cls in (DeviceConnectionError, DeviceAuthError, DeviceHostKeyError, DeviceSetupError, DeviceTimeout):
        assert issubclass(cls, DeviceError) and issubclass(cls, ExternalToolError) and cls.exit_code == 10
    assert issubclass(DeviceArtifactError, ArtifactError) and DeviceArtifactError.exit_code == 9


def test_ssh_command_lines_keep_host_key_checking_on(tmp_path):
    from edgebuild.device.ssh import SSHDevice, SSHOptions, scp_command, ssh_command

    dev = SSHDevice.parse("ssh://pi@raspberrypi.local:2200")
    strict = ssh_command(dev, SSHOptions(), "true")
    assert strict == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        "2200",
        "--",
        "pi@raspberrypi.local",
        "true",
    ]
    opts = SSHOptions(
        identity=tmp_path / "id", accept_new_host_key=True, known_hosts=tmp_path / "kh", connect_timeout=2.5
    )
    assert ssh_command(dev, opts, "true") == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={tmp_path / 'kh'}",
        "-i",
        str(tmp_path / "id"),
        "-p",
        "2200",
        "--",
        "pi@raspberrypi.local",
        "true",
    ]
    copy = scp_command(SSHDevice.parse("ssh://root@[::1]"), opts, [Path("/a/m.tflite")], "/tmp/edgebuild-bench.x")
    assert copy[-2:] == ["/a/m.tflite", "root@[::1]:/tmp/edgebuild-bench.x/"] and "-P" not in copy
    for argv in (strict, ssh_command(dev, opts, "x"), copy):
        assert not any("StrictHostKeyChecking=no" in a or "/dev/null" in a for a in argv)


def test_build_with_bench_device_reports_host_and_device(
    ssh_server, device_pythons, known_hosts, keras2_cnn, digits_data, tmp_path, capsys
):
    from edgebuild.cli.main import main

    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mobile",
            "-t",
            "mcu",
            "-d",
            str(digits_data.npz),
            "-o",
            str(tmp_path),
            "--bench-device",
            ssh_server.url,
            "--identity",
            str(ssh_server.key),
            "--known-hosts",
            str(known_hosts),
            "--device-python",
            device_pythons.litert,
            "--set",
            "benchmark.runs=10",
        ]
    )
    assert code == 0, capsys.readouterr().err
    for target in ("mobile", "mcu"):
        report = json.loads((tmp_path / target / "report.json").read_text())
        host, device = report["benchmark"]["threads"], report["benchmark"]["device"]
        assert set(device["threads"]) == set(host)
        first = next(iter(device["threads"].values()))
        assert 0 < first["p50_ms"] <= first["p99_ms"]
        assert device["device"]["transport"] == "ssh" and device["artifact"] == "model.tflite"
        assert "## Latency on the device" in (tmp_path / target / "report.md").read_text()
    assert ssh_server.leftovers() == []
