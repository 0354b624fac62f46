"""Compiler integrations without TensorFlow: the edgetpu_compiler log parser on recorded real output,
and the subprocess/timeout handling with real processes.

What cannot run here: Coral's `edgetpu_compiler` itself. It is a closed x86-64 binary from Coral's apt
repository (packages.cloud.google.com/apt coral-edgetpu-stable), which these machines cannot reach.
So (1) the parser is tested on output that real users published, reproduced line for line in
tests/fixtures/edgetpu_compiler/ (README.md there names the source of each file); (2) compiler
discovery and the "not installed" path are tested for real with a PATH that lacks it; (3) the
process handling (timeout, killing the compiler's child processes, non-zero exit, exit 0 without
output) is tested with real system binaries (`sleep`, `sh`, `false`, `true`) in the compiler's
place. No script impersonates the compiler: a successful compile is never simulated, and
`compile_edgetpu`'s happy path only runs where the real compiler is installed (see
tests/integration/test_compilers.py, which skips there with this reason).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import tomllib

from edgebuild.compilers import vela
from edgebuild.compilers.edgetpu import (
    compile_edgetpu,
    compiler_command,
    edgetpu_status,
    failure_message,
    find_compiler,
    parse_compiler_output,
    size_to_bytes,
)
from edgebuild.errors import ExternalToolError
from edgebuild.process import run_tool

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edgetpu_compiler"
ROOT = Path(__file__).resolve().parents[2]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# ---------------------------------------------------------------------------------------------------------
# The log parser, on recorded real output


def test_sizes_in_the_compilers_units() -> None:
    assert size_to_bytes("0.00", "B") == 0
    assert size_to_bytes("3.00", "KiB") == 3072
    assert size_to_bytes("41.75", "KiB") == 42752
    assert size_to_bytes("1.70", "MiB") == round(1.70 * 1024 * 1024)


def test_fully_mapped_stdout_without_table_lane_navigation() -> None:
    """v16 co-compile output, no -s: everything mapped, so no 'will run on CPU' lines and no table."""
    r = parse_compiler_output(fixture("v16_fully_mapped_lane_navigation.stdout.txt"))
    assert r["compiler_version"] == "16.0.384591198"
    assert r["compile_ms"] == 1717
    assert r["on_chip_memory_bytes"] == size_to_bytes("322.25", "KiB") == 329984
    assert r["on_chip_memory_remaining_bytes"] == size_to_bytes("2.98", "MiB")
    assert r["off_chip_memory_bytes"] == 0
    assert r["input_size_bytes"] == size_to_bytes("258.55", "KiB")
    assert (r["edgetpu_subgraphs"], r["total_ops"]) == (1, 12)
    assert (r["ops_mapped_edgetpu"], r["ops_cpu"], r["mapped_fraction"]) == (12, 0, 1.0)
    assert r["per_op"] == [] and r["per_op_complete"] is False
    assert r["operation_log"] == "co_compiled_model/lane_navigation_w_pretrain_final_edgetpu.log"


def test_fully_mapped_operation_log_mnist7() -> None:
    """The .log file alone (v15): the full table, every op mapped."""
    r = parse_compiler_output("", fixture("v15_fully_mapped_mnist7.log"))
    assert r["compiler_version"] == "15.0.340273435"
    assert r["per_op_complete"] is True
    assert [(row["op"], row["count"], row["mapped"]) for row in r["per_op"]] == [
        ("SOFTMAX", 1, True),
        ("FULLY_CONNECTED", 2, True),
        ("RESHAPE", 1, True),
        ("CONV_2D", 2, True),
        ("MAX_POOL_2D", 2, True),
    ]
    assert all(row["status"] == "Mapped to Edge TPU" and row["reason"] is None for row in r["per_op"])
    assert (r["total_ops"], r["ops_mapped_edgetpu"], r["ops_cpu"], r["mapped_fraction"]) == (8, 8, 0, 1.0)
    assert r["on_chip_memory_bytes"] is None  # memory is only in stdout, never in the .log


def test_partially_mapped_first_op_on_cpu_mnist4_log() -> None:
    """The input QUANTIZE stays on the CPU ('otherwise supported, but not mapped'), and the output DEQUANTIZE."""
    r = parse_compiler_output("", fixture("v15_first_op_on_cpu_mnist4.log"))
    cpu = [row for row in r["per_op"] if not row["mapped"]]
    assert [(row["op"], row["count"], row["reason"]) for row in cpu] == [
        ("QUANTIZE", 1, "Operation is otherwise supported, but not mapped due to some unspecified limitation"),
        ("DEQUANTIZE", 1, "Operation is working on an unsupported data type"),
    ]
    assert (r["total_ops"], r["ops_mapped_edgetpu"], r["ops_cpu"]) == (10, 8, 2)
    assert r["mapped_fraction"] == 0.8
    assert r["by_op"]["QUANTIZE"] == {"edgetpu": 0, "cpu": 1}
    assert r["by_op"]["CONV_2D"] == {"edgetpu": 2, "cpu": 0}


def test_partially_mapped_first_op_on_cpu_old_compiler_motion_blur() -> None:
    """Compiler 2.x wording ('On-chip memory available ...'); counts from the 'will run on' lines."""
    r = parse_compiler_output(fixture("v2_first_op_on_cpu_motion_blur.stdout.txt"))
    assert r["on_chip_memory_remaining_bytes"] == size_to_bytes("1.73", "MiB")
    assert r["on_chip_memory_bytes"] == 10 * 1024
    assert r["off_chip_memory_bytes"] == 0
    assert (r["total_ops"], r["ops_mapped_edgetpu"], r["ops_cpu"]) == (3, 1, 2)
    assert r["per_op_complete"] is True
    assert r["by_op"] == {
        "DEPTHWISE_CONV_2D": {"edgetpu": 1, "cpu": 0},
        "DEQUANTIZE": {"edgetpu": 0, "cpu": 1},
        "QUANTIZE": {"edgetpu": 0, "cpu": 1},
    }
    assert r["compiler_version"] is None  # the published excerpt starts at "Output model:"


def test_multiple_subgraphs_message_yolov3_tiny() -> None:
    """Once one op falls back, later ops report 'More than one subgraph is not supported' (v15, -s table)."""
    r = parse_compiler_output(fixture("v15_multiple_subgraphs_yolov3_tiny.stdout.txt"))
    assert r["compiler_version"] == "15.0.340273435"
    assert (r["total_ops"], r["ops_mapped_edgetpu"], r["ops_cpu"]) == (36, 2, 34)
    assert r["mapped_fraction"] == round(2 / 36, 4)
    assert r["per_op_complete"] is True
    assert sum(row["count"] for row in r["per_op"]) == 36  # the table agrees with the totals
    assert sum(row["count"] for row in r["per_op"] if row["mapped"]) == 2
    assert r["cpu_reasons"] == {
        "More than one subgraph is not supported": 6 + 1 + 12 + 1,
        "Operation is otherwise supported, but not mapped due to some unspecified limitation": 2,
        "Operation version not supported": 1,
        "Operation not supported": 11,
    }
    assert r["by_op"]["CONV_2D"] == {"edgetpu": 1, "cpu": 12}
    assert r["by_op"]["QUANTIZE"] == {"edgetpu": 1, "cpu": 3}
    assert (r["on_chip_memory_bytes"], r["off_chip_memory_bytes"]) == (3072, 0)
    assert r["input_model"] == "/home/yolo/yolov3-tiny_int8.tflite"


def test_two_edgetpu_subgraphs_and_table_running_into_trailer_yolov5s() -> None:
    """v16 -sa output: 2 subgraphs, off-chip streaming, and 'Compilation child process ...' right after the table."""
    r = parse_compiler_output(fixture("v16_two_subgraphs_yolov5s_224.stdout.txt"))
    assert (r["edgetpu_subgraphs"], r["total_ops"], r["ops_mapped_edgetpu"], r["ops_cpu"]) == (2, 294, 289, 5)
    assert r["off_chip_memory_bytes"] == size_to_bytes("1.70", "MiB")
    assert r["on_chip_memory_remaining_bytes"] == 0
    assert len(r["per_op"]) == 17 and r["per_op"][-1]["op"] == "CONV_2D"
    assert sum(row["count"] for row in r["per_op"]) == 294
    assert sum(row["count"] for row in r["per_op"] if not row["mapped"]) == 5
    assert r["compile_ms"] == 3173


def test_stdout_without_s_lists_only_unmapped_ops_frc_model() -> None:
    r = parse_compiler_output(fixture("partial_table_without_s_frc_model.stdout.txt"))
    assert (r["total_ops"], r["ops_mapped_edgetpu"], r["ops_cpu"]) == (141, 138, 3)
    assert r["per_op_complete"] is False  # "... All other operators were mapped successfully"
    assert [row["op"] for row in r["per_op"]] == ["RESHAPE", "CONCATENATION", "QUANTIZE"]
    assert r["off_chip_memory_bytes"] == size_to_bytes("6.63", "MiB")
    assert r["on_chip_memory_remaining_bytes"] == size_to_bytes("1.75", "KiB")


def test_log_file_table_wins_over_stdout_counts() -> None:
    """With both, per-op rows come from the .log; totals from stdout (they agree for one model)."""
    r = parse_compiler_output(
        fixture("v16_fully_mapped_lane_navigation.stdout.txt"), fixture("v15_fully_mapped_mnist7.log")
    )
    assert r["per_op_complete"] is True and len(r["per_op"]) == 5
    assert r["compiler_version"] == "16.0.384591198"  # stdout first


@pytest.mark.parametrize(
    "name, expected",
    [
        ("v15_error_model_not_quantized.stdout.txt", ["Model not quantized", "fully int8-quantized"]),
        ("v16_error_dynamic_tensors.stdout.txt", ["dynamic-sized tensors", "Compilation failed!", "model.batch = 1"]),
    ],
)
def test_failure_messages_quote_the_compiler(name: str, expected: list[str]) -> None:
    message = failure_message(Path("m.tflite"), 1, fixture(name), ["edgetpu_compiler", "-s", "m.tflite"])
    for text in expected:
        assert text in message
    assert message.startswith("edgetpu_compiler could not compile m.tflite (exit 1).")
    assert message.endswith("Command: edgetpu_compiler -s m.tflite")


# ---------------------------------------------------------------------------------------------------------
# Discovery and absence, for real


def test_compiler_command_is_what_the_issue_specifies(tmp_path: Path) -> None:
    argv = compiler_command("/usr/bin/edgetpu_compiler", tmp_path / "model.tflite", tmp_path / "out", 14)
    assert argv == [
        "/usr/bin/edgetpu_compiler",
        "-s",
        "-m",
        "14",
        "-o",
        str(tmp_path / "out"),
        str(tmp_path / "model.tflite"),
    ]


def test_find_compiler_on_path_and_by_explicit_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH without the compiler
    assert find_compiler("edgetpu_compiler") is None
    assert find_compiler(str(tmp_path / "edgetpu_compiler")) is None
    assert find_compiler("") is None
    sleep = shutil.which("sleep", path=os.defpath) or "/bin/sleep"
    assert find_compiler(sleep) == str(Path(sleep).resolve())  # explicit paths need only be executable files
    not_executable = tmp_path / "edgetpu_compiler"
    not_executable.write_text("")
    assert find_compiler(str(not_executable)) is None


def test_status_without_the_compiler_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    status = edgetpu_status()
    assert status["available"] is False and status["compiler"] is None
    assert "coral-edgetpu-stable" in status["message"] and "edgetpu-compiler" in status["message"]
    assert "x86-64" in status["message"] and "Dockerfile" in status["message"]
    assert any("apt-get install edgetpu-compiler" in line for line in status["install"]["apt"])


def test_compile_without_the_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExternalToolError, match=r"edgetpu_compiler not found.*coral-edgetpu-stable"):
        compile_edgetpu(tmp_path / "model.tflite", tmp_path / "out", "edgetpu_compiler", 14)


# ---------------------------------------------------------------------------------------------------------
# Process handling, with real processes standing where the compiler would


def test_timeout_fires_and_names_the_tool() -> None:
    started = time.perf_counter()
    with pytest.raises(ExternalToolError, match=r"edgetpu_compiler did not finish within 0.5 s and was stopped"):
        run_tool(["sleep", "30"], 0.5, "edgetpu_compiler")
    assert time.perf_counter() - started < 5


def test_timeout_also_kills_the_tools_children(tmp_path: Path) -> None:
    """edgetpu_compiler forks a compilation child; a timeout must not leave it running."""
    pid_file = tmp_path / "child.pid"
    with pytest.raises(ExternalToolError):
        run_tool(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], 0.5, "edgetpu_compiler")
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while time.time() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")  # a zombie is dead


def test_nonzero_exit_is_an_error_with_the_command(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\0" * 8)
    with pytest.raises(
        ExternalToolError,
        match=r"(?s)could not compile .*\(exit 1\)\. It printed nothing\.\nCommand: .*false -s -m 13 -o",
    ):
        compile_edgetpu(model, tmp_path / "out", shutil.which("false") or "/bin/false", 13)
    assert (tmp_path / "out" / "edgetpu_compiler.txt").exists()  # the output is kept for inspection


def test_exit_zero_without_a_model_is_an_error(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\0" * 8)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model_edgetpu.tflite").write_bytes(b"stale")  # from an earlier run: must not count
    with pytest.raises(ExternalToolError, match=r"exit 0 but no model_edgetpu.tflite"):
        compile_edgetpu(model, tmp_path / "out", shutil.which("true") or "/bin/true", 14)
    assert not (tmp_path / "out" / "model_edgetpu.tflite").exists()


def test_tool_that_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(ExternalToolError, match="was not found"):
        run_tool([str(tmp_path / "nope")], 5, "Vela")


# ---------------------------------------------------------------------------------------------------------
# Vela pieces that need no model


def test_vela_found_beside_the_interpreter_or_not_at_all(tmp_path: Path) -> None:
    assert vela.find_vela() is not None  # installed in this venv: ethos-u-vela is a dependency
    assert vela.find_vela(python=tmp_path / "python", path=str(tmp_path)) is None


def test_vela_accelerator_list_matches_vela_help() -> None:
    """The Literal choices proposed for the profile schema are exactly what this Vela accepts."""
    run = run_tool([vela.find_vela(), "--help"], 60, "Vela")
    choices = run.stdout.split("--accelerator-config {", 1)[1].split("}", 1)[0].split(",")
    assert tuple(choices) == vela.ACCELERATORS


def test_vela_builtin_configs_match_its_ini() -> None:
    run = run_tool([vela.find_vela(), "--list-configs", "Arm/vela.ini"], 60, "Vela")
    systems = [line.split(".", 1)[1] for line in run.stdout.split() if line.startswith("System_Config.")]
    modes = [line.split(".", 1)[1] for line in run.stdout.split() if line.startswith("Memory_Mode.")]
    assert tuple(systems) == vela.BUILTIN_SYSTEM_CONFIGS
    assert tuple(modes) == vela.BUILTIN_MEMORY_MODES


def test_ethos_u55_target_file() -> None:
    """targets/ethos-u55.toml: int8 like mcu, and a [vela] table with values Vela accepts."""
    data = tomllib.loads((ROOT / "targets" / "ethos-u55.toml").read_text())
    assert data["extends"] == "mcu"
    assert data["vela"]["accelerator"] in vela.ACCELERATORS
    assert data["vela"]["system_config"] in vela.BUILTIN_SYSTEM_CONFIGS
    assert data["vela"]["memory_mode"] in vela.BUILTIN_MEMORY_MODES
    assert set(data["vela"]) <= {"accelerator", "system_config", "memory_mode", "config_file", "timeout_s"}


def test_vela_stdout_counts_and_warnings() -> None:
    text = (
        "Warning: No memory mode specified. Using a default of Shared_Sram.\n\nNetwork summary for model\n"
        "CPU operators = 2 (28.6%)\nNPU operators = 5 (71.4%)\n"
    )
    parsed = vela.parse_vela_stdout(text)
    assert (parsed["vela_cpu_operators"], parsed["vela_npu_operators"]) == (2, 5)
    assert parsed["warnings"] == ["No memory mode specified. Using a default of Shared_Sram."]


def test_compilers_import_no_tensorflow() -> None:
    code = "import sys, edgebuild.compilers; sys.exit('tensorflow' in sys.modules)"
    run = run_tool([sys.executable, "-c", code], 60, "python")
    assert run.returncode == 0, run.output
