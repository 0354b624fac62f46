"""Android (adb) device benchmarks: command construction and the benchmark_model parser.

No Android device and no benchmark_model binary are available here, so this tests only
what can be checked without one: the exact adb / benchmark_model command lines, and the
parser on output in the format benchmark_model documents (tests/fixtures/benchmark_model,
see its README: format samples, not captures from a device). No TensorFlow.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from edgebuild.device import DeviceArtifactError, DeviceError, DeviceSetupError, _shape, bench_on_device
from edgebuild.device.adb import (
    AdbDevice,
    benchmark_model_args,
    check_run_output,
    parse_benchmark_output,
    parse_device_info,
    plan_commands,
    thread_result,
)
from edgebuild.errors import UsageError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"
HOST_FIELDS = {
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "load_ms",
    "peak_rss_bytes",
    "threads",
    "runs",
    "warmup",
    "input_source",
    "model_bytes",
    "xnnpack",
    "cpu",
    "runtime",
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# ---------------------------------------------------------------------------------------------
# device URLs


@pytest.mark.parametrize(
    "url, serial",
    [
        ("adb:emulator-5554", "emulator-5554"),
        ("adb:R58M123ABC", "R58M123ABC"),
        ("adb:192.168.1.20:5555", "192.168.1.20:5555"),
        ("adb://emulator-5554", "emulator-5554"),
    ],
)
def test_adb_urls(url, serial):
    assert AdbDevice.parse(url).serial == serial


@pytest.mark.parametrize("url", ["adb:", "adb:has space", "adb:a;rm -rf /", "adb:$(reboot)"])
def test_bad_adb_urls(url):
    with pytest.raises(UsageError, match="adb:SERIAL"):
        AdbDevice.parse(url)


# ---------------------------------------------------------------------------------------------
# command construction


def test_benchmark_model_arguments():
    assert benchmark_model_args("/data/local/tmp/benchmark_model", "/data/local/tmp/d/m.tflite", 4, 100, 10, 300) == [
        "/data/local/tmp/benchmark_model",
        "--graph=/data/local/tmp/d/m.tflite",
        "--num_threads=4",
        "--num_runs=100",
        "--warmup_runs=10",
        "--min_secs=0",
        "--warmup_min_secs=0",
        "--max_secs=300",
    ]


def test_plan_with_a_device_side_binary():
    plan = plan_commands(
        "emulator-5554",
        Path("/host/out/model.tflite"),
        "/data/local/tmp/edgebuild-bench.Ab12Cd",
        "/data/local/tmp/benchmark_model",
        threads=[1, 4],
        runs=50,
        warmup=5,
        timeout=120,
        host_binary=False,
    )
    d = "/data/local/tmp/edgebuild-bench.Ab12Cd"
    assert plan["push"] == [["adb", "-s", "emulator-5554", "push", "/host/out/model.tflite", f"{d}/model.tflite"]]
    assert list(plan["run"]) == [1, 4]
    assert plan["run"][4] == [
        "adb",
        "-s",
        "emulator-5554",
        "shell",
        f"/data/local/tmp/benchmark_model --graph={d}/model.tflite --num_threads=4 --num_runs=50 --warmup_runs=5 "
        "--min_secs=0 --warmup_min_secs=0 --max_secs=120",
    ]
    assert plan["cleanup"] == ["adb", "-s", "emulator-5554", "shell", f"rm -rf {d}"]


def test_plan_pushes_a_host_binary_and_quotes_paths():
    d = "/data/local/tmp/edgebuild-bench.Zz99Yy"
    plan = plan_commands(
        "R58M123ABC",
        Path("/my models/int8 model.tflite"),
        d,
        "/opt/tflite/benchmark_model",
        threads=[2],
        runs=10,
        warmup=1,
        timeout=60,
        host_binary=True,
    )
    assert plan["push"] == [
        ["adb", "-s", "R58M123ABC", "push", "/my models/int8 model.tflite", f"{d}/int8 model.tflite"],
        ["adb", "-s", "R58M123ABC", "push", "/opt/tflite/benchmark_model", f"{d}/benchmark_model"],
        ["adb", "-s", "R58M123ABC", "shell", f"chmod 755 {d}/benchmark_model"],
    ]
    remote = plan["run"][2][-1]
    assert shlex.split(remote)[:2] == [f"{d}/benchmark_model", f"--graph={d}/int8 model.tflite"]


# ---------------------------------------------------------------------------------------------
# the parser


def test_parse_current_format():
    r = parse_benchmark_output(fixture("current.txt"))
    assert r["init_ms"] == pytest.approx(31.406)
    assert r["first_inference_ms"] == pytest.approx(4.512)
    assert r["warmup_avg_ms"] == pytest.approx(3.3114)
    assert r["mean_ms"] == pytest.approx(3.14122)
    # the timed runs' statistics, not the warm-up's (which come first)
    assert r["count"] == 50
    assert r["std_ms"] == pytest.approx(0.131)
    assert (r["min_ms"], r["max_ms"]) == (pytest.approx(3.021), pytest.approx(3.874))
    assert r["p50_ms"] == pytest.approx(3.112)
    assert r["memory_init_bytes"] == int(9.54688 * 2**20)
    assert r["memory_overall_bytes"] == int(14.2539 * 2**20)
    assert r["peak_memory_bytes"] == int(21.0312 * 2**20)


def test_parse_legacy_format():
    r = parse_benchmark_output(fixture("legacy.txt"))
    assert r["init_ms"] == pytest.approx(5.811)
    assert r["first_inference_ms"] == pytest.approx(86.117)
    assert r["warmup_avg_ms"] == pytest.approx(74.3861)
    assert r["mean_ms"] == pytest.approx(72.5895)
    assert r["count"] == 50 and r["std_ms"] == pytest.approx(1.014)
    assert r["p50_ms"] is None  # older builds print no median; none is invented
    assert r["memory_overall_bytes"] == int(9.87891 * 2**20) and r["peak_memory_bytes"] is None


def test_parse_logcat_prefix_and_exponents():
    r = parse_benchmark_output(fixture("logcat.txt"))
    assert r["first_inference_ms"] == pytest.approx(1251.1)
    assert r["mean_ms"] == pytest.approx(995.12)
    assert r["max_ms"] == pytest.approx(1041.2)
    assert r["count"] == 25 and r["p50_ms"] == pytest.approx(991.006)
    assert r["memory_init_bytes"] == int(3.98438 * 2**20)


def test_parse_without_summary_raises():
    with pytest.raises(ValueError, match="Inference timings"):
        parse_benchmark_output(fixture("load_failure.txt"))


def test_thread_result_has_every_host_field():
    parsed = parse_benchmark_output(fixture("current.txt"))
    r = thread_result(parsed, threads=4, runs=50, warmup=10, model_bytes=2792448, cpu="Tensor G3")
    assert set(r) >= HOST_FIELDS
    assert r["p90_ms"] is None and r["p99_ms"] is None  # benchmark_model has no such percentiles
    assert r["load_ms"] == pytest.approx(31.406) and r["warmup_avg_ms"] == pytest.approx(3.3114)
    assert r["peak_rss_bytes"] == int(21.0312 * 2**20) and r["memory_source"] == "benchmark_model periodic peak"
    legacy = thread_result(
        parse_benchmark_output(fixture("legacy.txt")), threads=1, runs=50, warmup=1, model_bytes=1, cpu="x"
    )
    assert legacy["peak_rss_bytes"] == int(9.87891 * 2**20) and "delta" in legacy["memory_source"]


def test_result_shape_uses_mean_when_a_build_has_no_median():
    results = [
        thread_result(parse_benchmark_output(fixture(name)), threads=n, runs=50, warmup=1, model_bytes=1, cpu="x")
        for name, n in (("legacy.txt", 1), ("current.txt", 4))
    ]
    payload = {
        "ok": True,
        "device": parse_device_info(""),
        "runtime": {"name": "benchmark_model", "version": "unknown"},
        "results": results,
        "cleanup": {"removed": True, "remote_dir": "/data/local/tmp/edgebuild-bench.x"},
    }
    shaped = _shape(payload, "adb:emulator-5554", "adb", [1, 4], 50, 1)
    assert shaped["speedup_metric"] == "mean_ms" and shaped["best_threads"] == 4
    assert shaped["speedup"]["4"] == pytest.approx(72.5895 / 3.14122)
    assert shaped["device"]["transport"] == "adb" and set(shaped["threads"]) == {"1", "4"}


# ---------------------------------------------------------------------------------------------
# failures recognised in a run's output


def test_run_output_load_failure():
    with pytest.raises(DeviceArtifactError) as info:
        check_run_output(fixture("load_failure.txt"), 1, "emulator-5554", "flex.tflite", "/data/local/tmp/bm")
    assert "cannot load flex.tflite" in str(info.value) and "Select TensorFlow op" in str(info.value)
    assert info.value.exit_code == 9


def test_run_output_missing_binary():
    with pytest.raises(DeviceSetupError, match="benchmark_model does not run on emulator-5554"):
        check_run_output(
            fixture("not_found.txt"), 127, "emulator-5554", "m.tflite", "/data/local/tmp/benchmark_model", "arm64-v8a"
        )


def test_run_output_without_summary():
    with pytest.raises(DeviceError, match="printed no summary"):
        check_run_output("Segmentation fault\n", 139, "emulator-5554", "m.tflite", "/data/local/tmp/bm")


def test_run_output_ok():
    assert check_run_output(fixture("current.txt"), 0, "s", "m.tflite", "bm")["count"] == 50


def test_device_info_from_getprop():
    info = parse_device_info(
        "model=Pixel 8\nmanufacturer=Google\nandroid=15\nsdk=35\nabi=arm64-v8a\n"
        "soc=Tensor G3\nhardware=shiba\ncores=9\n"
    )
    assert info == {
        "cpu": "Tensor G3",
        "machine": "arm64-v8a",
        "cores": 9,
        "os": "Android 15 (SDK 35)",
        "hostname": "Google Pixel 8",
        "python": None,
        "numpy": None,
        "runtime": {"name": "benchmark_model", "version": "unknown"},
    }


def test_adb_needs_benchmark_model_path(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    with pytest.raises(UsageError, match="--benchmark-model"):
        bench_on_device(model, "adb:emulator-5554", threads=[1], runs=1, warmup=0)


def test_edgetpu_artifact_is_refused_on_android(tmp_path):
    model = tmp_path / "m_edgetpu.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    with pytest.raises(UsageError, match="Edge TPU"):
        bench_on_device(model, "adb:emulator-5554", threads=[1], runs=1, warmup=0, benchmark_model="bm")
