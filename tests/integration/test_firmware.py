"""The mcu firmware, for real: TFLite Micro from the shared tree, arm-none-eabi-g++, QEMU mps2-an386, host g++.

The demo's digits CNN is converted to int8 with the real converter, its arena proven in TFLite Micro and
its C sources written by the project's codegen (as the emit stage does). One module-scoped firmware
stage then builds the TFLM library (cached across tests and runs), links, measures, runs under QEMU and
runs the host C++ check; the tests read its result and rebuild only where they must (a smaller arena, a
library without an op, a tree without a kernel).

The TFLM object cache persists across runs in $EDGEBUILD_TFLM_CACHE_DIR, else <repo>/build/tflm-cache
(content-addressed: safe to share), so only the first run on a machine compiles TFLite Micro.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from tflm_tree import tflm_tree

pytestmark = [pytest.mark.tf, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARM_TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "arm-none-eabi-ar")
INSTALL = (
    "`make install` (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm)"
)


def tflm_cache() -> Path:
    return Path(os.environ.get("EDGEBUILD_TFLM_CACHE_DIR") or REPO / "build" / "tflm-cache")


def _missing() -> str | None:
    if tflm_tree() is None:
        return "no TFLite Micro tree (../shared/tflm/tflm_tree or EDGEBUILD_TFLM_DIR)"
    tools = [t for t in (*ARM_TOOLS, "qemu-system-arm", "g++", "make") if shutil.which(t) is None]
    return f"{', '.join(tools)} not found: {INSTALL}" if tools else None


MISSING = _missing()
needs_tools = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def mcu_build(keras2_cnn, digits_data, tmp_path_factory, monkeypatch_module):
    """`edgebuild build --target mcu` of the demo digits CNN with the tree: the firmware stage runs in the build."""
    from edgebuild.cli.main import main

    if MISSING is not None:
        pytest.skip(MISSING)
    out = tmp_path_factory.mktemp("mcu-build")
    monkeypatch_module.setenv("EDGEBUILD_TFLM_DIR", str(tflm_tree()))
    monkeypatch_module.setenv("EDGEBUILD_TFLM_CACHE_DIR", str(tflm_cache()))
    started = time.perf_counter()
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(digits_data.npz),
            "-o",
            str(out),
            "--set",
            "mcu.firmware_samples=20",
            "--set",
            "benchmark.enabled=false",
        ]
    )
    report = json.loads((out / "mcu/report.json").read_text())
    print(
        f"mcu build with firmware: {time.perf_counter() - started:.1f} s; firmware stage "
        f"{report['timings_s'].get('firmware')} s"
    )
    assert code == 0, report["validation"]["checks"]
    return {"dir": out / "mcu", "report": report}


@pytest.fixture(scope="module")
def digits_mcu(mcu_build, digits_data):
    """The build's model.tflite, c/ and declared arena, and the validation samples its firmware ran."""
    from edgebuild.data import load_dataset, split
    from edgebuild.profiles import resolve

    target = mcu_build["dir"]
    dataset = load_dataset(digits_data.npz)
    profile = resolve("mcu")
    splits = split(len(dataset.x), profile.data, profile.quantization.calibration_samples, hold_out_validation=True)
    return {
        "root": target,
        "model": target / "model.tflite",
        "c": target / "c",
        "arena": mcu_build["report"]["validation"]["arena"]["recommended_bytes"],
        "x": dataset.x[splits.validation][:20],
    }


@pytest.fixture(scope="module")
def firmware(mcu_build):
    """The build's firmware block, with its project folder made absolute."""
    block = dict(mcu_build["report"]["firmware"])
    block["project_dir"] = str(mcu_build["dir"] / block["project_dir"])
    return block


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@needs_tools
def test_the_build_ran_the_firmware_and_reports_its_numbers(mcu_build, firmware) -> None:
    """The firmware stage is part of the build: planned, timed, its checks in validation, its sizes in budgets."""
    report, target = mcu_build["report"], mcu_build["dir"]
    assert "firmware" in report["timings_s"]
    names = [c["name"] for c in report["validation"]["checks"]]
    assert {
        "firmware: firmware runs on QEMU",
        "firmware: device outputs vs LiteRT reference",
        "firmware: host C++ check",
    } <= set(names)
    assert names.index("firmware: firmware runs on QEMU") < names.index("budgets")
    flash = report["flash"]
    assert flash["measured"] and flash["total_bytes"] == firmware["flash"]["total_bytes_without_samples"]
    assert flash["model_array_bytes"] == firmware["flash"]["breakdown"]["model_array"]
    assert "validation_samples" not in flash["breakdown"]
    budget = next(c for c in report["validation"]["checks"] if c["name"] == "budgets")
    assert budget["flash"]["used_bytes"] == flash["total_bytes"] and budget["flash"]["scope"] == "firmware image"
    assert budget["ram"]["used_bytes"] == firmware["ram"]["total_bytes"] and budget["ram"]["scope"] == "firmware RAM"
    on_device = report["validation"]["arena"]["on_device"]
    assert on_device["used_bytes"] == firmware["device"]["arena_used_bytes"] <= on_device["declared_bytes"]
    assert (target / firmware["elf"]).is_file()
    markdown = (target / "report.md").read_text()
    assert "## Firmware" in markdown and f"{flash['total_bytes']:,} bytes" in markdown
    assert "instructions per inference" in markdown


@needs_tools
def test_a_rebuild_restores_the_firmware_from_the_build_cache(
    mcu_build, keras2_cnn, digits_data, tmp_path, monkeypatch
) -> None:
    from edgebuild.cli.main import main

    monkeypatch.setenv("EDGEBUILD_TFLM_DIR", str(tflm_tree()))
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-d",
            str(digits_data.npz),
            "-o",
            str(tmp_path),
            "--set",
            "mcu.firmware_samples=20",
            "--set",
            "benchmark.enabled=false",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "mcu/report.json").read_text())
    assert report["cache"]["hit"] and report["firmware"] == mcu_build["report"]["firmware"]
    assert (tmp_path / "mcu" / report["firmware"]["elf"]).is_file()


@needs_tools
def test_firmware_runs_on_qemu_and_matches_litert_reference(firmware, digits_mcu) -> None:
    assert firmware["status"] == "ok", firmware.get("error") or firmware["checks"]
    device = firmware["device"]
    assert device["exit_code"] == 0
    assert len(device["outputs"]) == 1 and len(device["outputs"][0]) == len(digits_mcu["x"])
    comparison = firmware["comparison"]
    assert comparison["samples"] == len(digits_mcu["x"])
    # CMSIS-NN on the Cortex-M4 vs LiteRT's reference kernels: same top-1, within a step
    assert comparison["top1_agreement"] == 1.0
    assert comparison["max_steps"] <= 1, comparison
    cost = device["instructions_per_inference"]
    assert cost["instructions_per_tick"] == pytest.approx(40.0, abs=0.01)  # -icount shift=0, 25 MHz SysTick
    assert 100_000 < cost["median"] < 50_000_000
    assert {o["op"] for o in cost["per_op"]} == {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}
    assert "not cycles" in cost["unit"]


@needs_tools
def test_runs_with_exactly_the_declared_arena_and_fails_cleanly_with_a_much_smaller_one(firmware, digits_mcu) -> None:
    from edgebuild.firmware.boards import load_board
    from edgebuild.firmware.qemu import run_qemu
    from edgebuild.firmware.stage import run_make

    settings = (digits_mcu["c"] / "model_settings.h").read_text()
    declared = int(re.search(r"kTensorArenaSize = (\d+);", settings).group(1))
    device = firmware["device"]
    assert device["arena_size_bytes"] == declared == firmware["declared_arena_bytes"]
    assert 0 < device["arena_used_bytes"] <= declared

    project = Path(firmware["project_dir"])
    small = declared // 8
    code, output, _ = run_make(
        project,
        ["fw"],
        {"TFLM_LIB": firmware["tflm"]["library"]["path"], "ARENA_BYTES": str(small), "BUILD": "build-small"},
        2,
    )
    assert code == 0, output
    run = run_qemu(load_board("mps2-an386"), project / "build-small/firmware.elf", timeout_s=60)
    assert run.exit_code == 2, run.failure_summary()  # the runner's "AllocateTensors() failed" status, not a fault
    assert run.error == {"kind": "allocate_tensors", "arena_size": str(small)}
    assert run.done and not run.outputs
    assert "failed to allocate" in " ".join(run.log).lower()  # TFLite Micro's own message about the shortage


@needs_tools
def test_flash_in_the_report_equals_the_elf_sections(firmware, digits_mcu) -> None:
    project = Path(firmware["project_dir"])
    elf = project / "build/firmware.elf"
    listing = subprocess.run(
        ["arm-none-eabi-size", "-A", "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sections = {
        p[0]: (int(p[1]), int(p[2]))
        for p in (line.split() for line in listing.splitlines())
        if len(p) == 3 and p[1].isdigit() and p[2].isdigit()
    }
    in_flash = sum(
        size
        for name, (size, addr) in sections.items()
        if addr < 0x00400000 and size and not name.startswith((".debug", ".comment", ".ARM.attributes"))
    )
    flash = firmware["flash"]
    assert flash["total_bytes"] == in_flash + sections[".data"][0]
    berkeley = (
        subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True)
        .stdout.splitlines()[1]
        .split()
    )
    assert flash["total_bytes"] == int(berkeley[0]) + int(berkeley[1])  # text + data
    assert sum(flash["breakdown"].values()) == flash["total_bytes"]
    assert 0 <= flash["breakdown"]["padding"] < 0.02 * flash["total_bytes"]
    model_size = digits_mcu["model"].stat().st_size
    assert model_size <= flash["breakdown"]["model_array"] <= model_size + 16
    assert flash["breakdown"]["validation_samples"] >= len(digits_mcu["x"]) * 32 * 32
    for part in ("tflm_runtime", "tflm_kernels", "application", "c_cpp_libraries"):
        assert flash["breakdown"][part] > 0, part
    ram = firmware["ram"]
    assert ram["total_bytes"] == sum(ram["sections"].values())
    assert ram["arena_bytes"] == firmware["declared_arena_bytes"]
    assert sum(ram["breakdown"].values()) == ram["total_bytes"]
    assert 0 < firmware["device"]["stack_used_bytes"] < ram["stack_bytes"]


@needs_tools
def test_host_cpp_check_passes(firmware) -> None:
    check = firmware["host_check"]
    assert check["status"] == "passed", check
    assert check["example_main"]["exit_code"] == 0
    assert check["example_main"]["difference_steps"] <= 1
    assert check["runner"]["vs_device"]["comparable"]
    assert check["runner"]["vs_device"]["max"] <= 1


@needs_tools
def test_an_op_the_tflm_build_lacks_fails_naming_it(firmware, digits_mcu, tmp_path) -> None:
    from edgebuild.firmware import run_firmware_stage
    from edgebuild.firmware.boards import load_board
    from edgebuild.firmware.stage import explain_build_failure, run_make
    from edgebuild.firmware.tflm_library import (
        LibraryBuilder,
        load_tree,
        resolver_registrations,
    )

    tree = tflm_tree()
    ops = [
        ("CONV_2D", "AddConv2D"),
        ("FULLY_CONNECTED", "AddFullyConnected"),
        ("MAX_POOL_2D", "AddMaxPool2D"),
        ("RESHAPE", "AddReshape"),
        ("SOFTMAX", "AddSoftmax"),
    ]
    flavor = load_board("mps2-an386").flavor()

    # link time: a library without SOFTMAX's kernel, linked with the model's resolver
    lib = LibraryBuilder(tree, flavor, cache_dir=tflm_cache()).build([o for o in ops if o[0] != "SOFTMAX"])
    project = Path(firmware["project_dir"])
    code, output, _ = run_make(project, ["fw"], {"TFLM_LIB": str(lib.path), "BUILD": "build-nosoftmax"}, 2)
    assert code != 0
    message = explain_build_failure(output, ops, resolver_registrations(load_tree(tree)), "Linking")
    assert "no kernel for SOFTMAX" in message, message

    # resolver time, before compiling anything: a tree whose sources lack the SOFTMAX kernel
    farm = tmp_path / "tree"
    for path in tree.rglob("*"):
        rel = path.relative_to(tree)
        if path.is_file() and not str(rel).endswith("kernels/softmax.cc") and "cmsis_nn/softmax.cc" not in str(rel):
            (farm / rel).parent.mkdir(parents=True, exist_ok=True)
            (farm / rel).symlink_to(path)
    result = run_firmware_stage(
        digits_mcu["model"],
        digits_mcu["c"],
        tmp_path / "firmware",
        digits_mcu["x"][:2],
        "mps2-an386",
        farm,
        digits_mcu["arena"],
        host_check=False,
        cache_dir=tflm_cache(),
    )
    assert result["status"] == "failed"
    assert result["error"]["type"] == "UnsupportedError"
    assert "SOFTMAX" in result["error"]["message"] and "Register_SOFTMAX" in result["error"]["message"]
    assert (tmp_path / "firmware" / "Makefile").is_file()  # the project is still written for the user


@needs_tools
def test_the_library_comes_from_the_cache_after_the_first_build(firmware) -> None:
    from edgebuild.firmware.boards import load_board
    from edgebuild.firmware.tflm_library import LibraryBuilder

    ops = [
        ("CONV_2D", "AddConv2D"),
        ("FULLY_CONNECTED", "AddFullyConnected"),
        ("MAX_POOL_2D", "AddMaxPool2D"),
        ("RESHAPE", "AddReshape"),
        ("SOFTMAX", "AddSoftmax"),
    ]
    started = time.perf_counter()
    lib = LibraryBuilder(tflm_tree(), load_board("mps2-an386").flavor(), cache_dir=tflm_cache()).build(ops)
    assert lib.cache_hit and lib.compiled == 0
    assert str(lib.path) == firmware["tflm"]["library"]["path"]
    assert time.perf_counter() - started < 10


@needs_tools
def test_the_project_builds_with_one_make(firmware) -> None:
    """What a user runs: `make` in OUT/mcu/firmware with the cached library (the TFLM sources are listed too)."""
    project = Path(firmware["project_dir"])
    makefile = (project / "Makefile").read_text()
    assert "tensorflow/lite/micro/micro_interpreter.cc" in makefile
    assert "third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c" in makefile
    assert (project / "board/board.ld").is_file() and (project / "samples.cc").is_file()
    result = subprocess.run(
        ["make", "-C", str(project), "-q", "fw", f"TFLM_LIB={firmware['tflm']['library']['path']}"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, "the firmware is up to date after the stage built it with the same Makefile"


def test_without_a_tree_the_stage_is_skipped_with_a_note(digits_mcu, tmp_path, monkeypatch) -> None:
    from edgebuild.firmware import run_firmware_stage

    monkeypatch.delenv("EDGEBUILD_TFLM_DIR", raising=False)
    result = run_firmware_stage(
        digits_mcu["model"],
        digits_mcu["c"],
        tmp_path / "firmware",
        digits_mcu["x"][:2],
        "mps2-an386",
        None,
        digits_mcu["arena"],
    )
    assert result["status"] == "skipped"
    assert "EDGEBUILD_TFLM_DIR" in result["note"] and "create_tflm_tree.py" in result["note"]
    assert (tmp_path / "firmware" / "Makefile").is_file() and (tmp_path / "firmware" / "samples.cc").is_file()
    assert "checks" in result and not any(not c["passed"] for c in result["checks"])


def test_c_sources_of_another_model_are_not_linked(digits_mcu, tmp_path) -> None:
    from edgebuild.firmware import run_firmware_stage

    other = tmp_path / "other.tflite"
    other.write_bytes(digits_mcu["model"].read_bytes() + bytes(16))  # another file: another sha256
    result = run_firmware_stage(
        other, digits_mcu["c"], tmp_path / "fw", digits_mcu["x"][:1], "mps2-an386", tflm_tree(), digits_mcu["arena"]
    )
    assert result["status"] == "skipped" and "embeds another model" in result["note"]


def test_samples_embedded_as_c_arrays_are_the_quantized_inputs(digits_mcu, tmp_path) -> None:
    from edgebuild.firmware import run_firmware_stage
    from edgebuild.runtime import LiteRTModel

    run_firmware_stage(
        digits_mcu["model"],
        digits_mcu["c"],
        tmp_path / "fw",
        digits_mcu["x"][:3],
        "mps2-an386",
        None,
        digits_mcu["arena"],
    )
    text = (tmp_path / "fw" / "samples.cc").read_text()
    body = text.split("= {", 1)[1].split("};", 1)[0]
    values = np.array([int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body)], np.uint8).view(np.int8)
    expected = LiteRTModel(digits_mcu["model"]).prepare_inputs(digits_mcu["x"][:3])[0]
    assert np.array_equal(values, expected.reshape(-1))
    assert "constexpr int kSampleCount = 3;" in (tmp_path / "fw" / "samples.h").read_text()


@needs_tools
def test_bench_on_qemu_reports_instructions_not_milliseconds(digits_mcu, monkeypatch, capsys) -> None:
    from edgebuild.cli.main import main

    monkeypatch.setenv("EDGEBUILD_TFLM_DIR", str(tflm_tree()))
    code = main(["bench", str(digits_mcu["model"]), "--device", "qemu:mps2-an386", "--runs", "3", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"]["transport"] == "qemu" and result["device"]["cpu"] == "cortex-m4"
    assert result["runs"] == 3 and "not cycles or time" in result["unit"]
    cost = result["instructions_per_inference"]
    assert 100_000 < cost["min"] <= cost["median"] <= cost["max"] < 50_000_000
    assert 0 < result["arena"]["used_bytes"] <= result["arena"]["declared_bytes"]
    assert result["flash_bytes"] == sum(result["flash_breakdown"].values())
    assert result["vs_litert_reference"]["max_steps"] <= 1

    assert main(["bench", str(digits_mcu["model"]), "--device", "qemu:mps2-an386", "--runs", "1"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "instructions per inference" in text and "tensor arena used" in text and " ms" not in text


def test_bench_on_qemu_without_a_tree_exits_10_saying_how_to_get_one(digits_mcu, monkeypatch, capsys) -> None:
    from edgebuild.cli.main import main

    monkeypatch.delenv("EDGEBUILD_TFLM_DIR", raising=False)
    code = main(["bench", str(digits_mcu["model"]), "--device", "qemu:mps2-an386", "--runs", "1"])
    assert code == 10
    err = capsys.readouterr().err
    assert "qemu:mps2-an386" in err and "EDGEBUILD_TFLM_DIR" in err and "Traceback" not in err


@needs_tools
def test_flash_builds_for_a_real_board_then_exits_10_without_a_probe(mcu_build, monkeypatch, capsys) -> None:
    """What is testable without hardware: the board's own firmware is built and measured, pyOCD finds no probe."""
    from edgebuild.cli.main import main
    from edgebuild.firmware.boards import load_board

    monkeypatch.setenv("EDGEBUILD_TFLM_DIR", str(tflm_tree()))
    code = main(["flash", str(mcu_build["dir"]), "--board", "cortex-m4-generic"])
    err = capsys.readouterr().err
    assert code == 10, err
    elf = mcu_build["dir"] / "firmware-cortex-m4-generic/build/firmware.elf"
    assert "no debug probe is connected" in err and str(elf) in " ".join(err.split()).replace("\n", "")
    assert "Traceback" not in err
    header = subprocess.run(
        ["arm-none-eabi-readelf", "-l", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    board = load_board("cortex-m4-generic")
    loads = [int(line.split()[2], 16) for line in header.splitlines() if line.strip().startswith("LOAD")]
    assert min(loads) == board.flash_origin  # linked for the board's memory map, not QEMU's

    code = main(["flash", str(mcu_build["dir"])])  # the build's own board is emulated: no probe target
    assert code == 2 and "qemu:mps2-an386" in capsys.readouterr().err


@needs_tools
def test_a_stateful_streaming_model_keeps_its_resource_variables_on_the_device(tmp_path, monkeypatch) -> None:
    """A streaming model that keeps a ring buffer in a tf.Variable converts to VAR_HANDLE / READ_VARIABLE /
    ASSIGN_VARIABLE: the generated main.cc and the firmware must create TFLite Micro's resource variables,
    and the device, which runs the samples in order, must carry the state exactly as LiteRT does."""
    import tensorflow as tf

    from edgebuild.cli.main import main

    class Stream(tf.Module):
        def __init__(self) -> None:
            self.state = tf.Variable(tf.zeros((1, 4, 8)), trainable=False)
            self.w = tf.Variable(tf.random.stateless_normal((32, 3), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec((1, 1, 8), tf.float32)])
        def __call__(self, x):
            window = tf.concat([self.state[:, 1:, :], x], axis=1)
            self.state.assign(window)
            return tf.nn.softmax(tf.reshape(window, (1, 32)) @ self.w)

    module = Stream()
    tf.saved_model.save(module, str(tmp_path / "stream"), signatures=module.__call__.get_concrete_function())
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "frames.npz", x=rng.uniform(-1, 1, (60, 1, 8)).astype(np.float32))
    monkeypatch.setenv("EDGEBUILD_TFLM_DIR", str(tflm_tree()))
    out = tmp_path / "out"
    main(
        [
            "build",
            str(tmp_path / "stream"),
            "-t",
            "mcu",
            "-d",
            str(tmp_path / "frames.npz"),
            "-o",
            str(out),
            "--set",
            "benchmark.enabled=false",
            "--set",
            "mcu.firmware_samples=6",
            "--no-gates",
        ]
    )
    report = json.loads((out / "mcu/report.json").read_text())
    assert "VAR_HANDLE" in report["artifact"]["ops"]
    assert "kNumResourceVariables = 1;" in (out / "mcu/c/model_settings.h").read_text()
    assert "MicroResourceVariables::Create" in (out / "mcu/c/main.cc").read_text()
    firmware = report["firmware"]
    assert firmware["status"] == "ok", firmware.get("error") or firmware["checks"]
    assert firmware["comparison"]["samples"] == 6 and firmware["comparison"]["max_steps"] <= 1
    assert firmware["host_check"]["status"] == "passed"
    rules = next(c for c in report["validation"]["checks"] if c["name"].startswith("op rules"))
    assert not any("is resource" in f["message"] for f in rules["findings"])  # the handle is not a float tensor
    # the state itself is int8 (variable quantization): no QUANTIZE/DEQUANTIZE around it, every check passes
    assert "DEQUANTIZE" not in report["artifact"]["ops"] and rules["passed"], rules["findings"]
    assert report["validation"]["passed"], [c["summary"] for c in report["validation"]["checks"] if not c["passed"]]
    # the resource handle has no values: no NaN in report.json's per-layer rows, and report.html is written
    assert "NaN" not in (out / "mcu/report.json").read_text() and (out / "report.html").is_file()
