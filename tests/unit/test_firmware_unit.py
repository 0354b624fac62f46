"""Firmware helpers without TensorFlow or native tools: board profiles, output parsing, map parsing, messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebuild.errors import ProfileError
from edgebuild.firmware.boards import builtin_boards, load_board
from edgebuild.firmware.elf_size import _attributed, classify, parse_map
from edgebuild.firmware.project import makefile_text, samples_sources
from edgebuild.firmware.qemu import instructions, parse_runner_output
from edgebuild.firmware.stage import explain_build_failure
from edgebuild.firmware.tflm_library import _definition_pattern, _parse_depfile


def test_builtin_board_profile() -> None:
    assert "mps2-an386" in builtin_boards()
    board = load_board("mps2-an386")
    assert board.cpu == "cortex-m4" and board.qemu_machine == "mps2-an386"
    assert board.flash_length == 4 * 1024 * 1024 and board.ram_origin == 0x20000000
    assert "-icount" in board.qemu_args and "-semihosting" in board.qemu_args
    script = board.linker_script()
    assert "ORIGIN = 0x20000000" in script and "@" not in script
    assert (board.support_dir / "startup.c").is_file()
    flavor = board.flavor("reference")
    assert "-DCMSIS_NN" not in flavor.defines and flavor.name == "cortex-m4-reference"
    assert "-DCMSIS_NN" in board.flavor().defines


def test_board_profile_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "targets/boards/mps2-an386.toml").read_text()
    bad = tmp_path / "b.toml"
    bad.write_text(text.replace("[memory]", "[memory]\nflsh = 1"))
    with pytest.raises(ProfileError, match=r"b\.toml: unknown key 'memory\.flsh'"):
        load_board(bad)
    with pytest.raises(ProfileError, match="Unknown board 'nope'"):
        load_board("nope")


RUN = """\
EDGEBUILD_FW start board=mps2-an386 kernels=cmsis-nn arena_size=12576 samples=2 inputs=1
EDGEBUILD_FW calibration instructions=2000000 ticks=50000
EDGEBUILD_FW outputs=2
EDGEBUILD_FW sample=0 ticks=1000
EDGEBUILD_FW out sample=0 index=0 dtype=int8 offset=0 values= -128 5
EDGEBUILD_FW out sample=0 index=1 dtype=float32 offset=0 values= 0x3f800000
EDGEBUILD_FW sample=1 ticks=1002
EDGEBUILD_FW out sample=1 index=0 dtype=int8 offset=0 values= 7 -1
EDGEBUILD_FW out sample=1 index=1 dtype=float32 offset=0 values= 0xbf000000
some TFLM log line
EDGEBUILD_FW arena_used=10516
EDGEBUILD_FW op name=CONV_2D count=2 ticks=900
EDGEBUILD_FW memory stack_used=5536 heap_used=0
EDGEBUILD_FW done status=0
"""


def test_runner_output_parsed() -> None:
    out = parse_runner_output(RUN, 0)
    assert out.done and out.arena_used == 10516 and out.memory == {"stack_used": 5536, "heap_used": 0}
    ints, floats = out.output_arrays()
    assert ints.dtype == np.int8 and ints.tolist() == [[-128, 5], [7, -1]]
    assert floats.dtype == np.float32 and floats.tolist() == [[1.0], [-0.5]]
    assert out.log == ["some TFLM log line"]
    cost = instructions(out)
    assert cost["median"] == 40040 and cost["instructions_per_tick"] == 40.0
    assert cost["per_op"] == [{"op": "CONV_2D", "count": 2, "instructions": 36000}]


def test_allocation_failure_parsed() -> None:
    text = (
        "EDGEBUILD_FW start board=x kernels=cmsis-nn arena_size=1024 samples=1 inputs=1\n"
        "Failed to allocate memory. Requested: 4, available 0, missing: 4\n"
        "EDGEBUILD_FW error kind=allocate_tensors arena_size=1024\nEDGEBUILD_FW done status=2\n"
    )
    out = parse_runner_output(text, 2)
    assert out.error == {"kind": "allocate_tensors", "arena_size": "1024"}
    assert "AllocateTensors() failed" in out.failure_summary() and "Requested: 4" in out.failure_summary()


MAP = """\
Linker script and memory map

.text           0x00000000      0x30
 *(.text .text.*)
 .text.a        0x00000000       0x10 build/app/edgebuild_runner.cc.o
 .text._ZN6tflite16MicroInterpreter6InvokeEv
                0x00000010       0x10 /c/libtflm.a(tensorflow__lite__micro__micro_interpreter.cc.o)
 *fill*         0x00000020        0x4
 .text.k        0x00000024        0x8 /c/libtflm.a(tensorflow__lite__micro__kernels__cmsis_nn__conv.cc.o)
.rodata         0x00000030      0x20
 .rodata.g_model
                0x00000030       0x18 build/app/model_data.cc.o
 .rodata.s.str1.4
                0x00000048        0x8 /usr/lib/libc.a(lib_a-vfprintf.o)
 .rodata.t.str1.4
                0x00000048        0x6 /usr/lib/libc.a(lib_a-svfprintf.o)
"""


def test_map_attribution_counts_each_address_once() -> None:
    entries = parse_map(MAP)
    text = _attributed(entries, ".text", 0x0, 0x30)
    assert sum(size for size, _, _ in text) == 0x2C  # 4 bytes of the section are the trailing alignment
    assert [classify(o, n) for _, n, o in text] == ["application", "tflm_runtime", "padding", "tflm_kernels"]
    rodata = _attributed(entries, ".rodata", 0x30, 0x20)
    assert sum(size for size, _, _ in rodata) == 0x20  # overlapping merged strings counted once
    assert classify(rodata[0][2], rodata[0][1]) == "model_array"
    assert classify(rodata[1][2], rodata[1][1]) == "c_cpp_libraries"


def test_symbol_definition_patterns() -> None:
    assert _definition_pattern("arm_convolve_s8") == ("stem", "arm_convolve_s8")
    kind, pattern = _definition_pattern(
        "tflite::ConvParamsQuantized(TfLiteConvParams const&, tflite::OpDataConv const&)"
    )
    assert kind == "regex" and "ConvParamsQuantized" in pattern and "tflite" not in pattern
    kind, pattern = _definition_pattern("tflite::MicroInterpreter::AllocateTensors()")
    assert "MicroInterpreter::" in pattern
    assert _definition_pattern("vtable for tflite::MicroInterpreterGraph")[1].startswith(r"\bMicroInterpreterGraph::")
    assert _definition_pattern("typeinfo for foo") is None
    assert _parse_depfile("a.o: a.cc b.h \\\n  /usr/include/c.h\n") == ["a.cc", "b.h", "/usr/include/c.h"]


def test_link_failure_names_the_op() -> None:
    output = (
        "ld: build/app/edgebuild_runner.cc.o: in function `main':\n"
        "edgebuild_runner.cc:(.text+0x1c): undefined reference to `tflite::Register_SOFTMAX()'\n"
    )
    message = explain_build_failure(
        output,
        [("SOFTMAX", "AddSoftmax"), ("CONV_2D", "AddConv2D")],
        {"AddSoftmax": ["Register_SOFTMAX"], "AddConv2D": ["Register_CONV_2D"]},
        "Linking the firmware",
    )
    assert message.startswith("Linking the firmware failed: the TensorFlow Lite Micro build has no kernel for SOFTMAX")
    old_tree = "model_ops.h:14:16: error: 'class tflite::MicroMutableOpResolver<2>' has no member named 'AddGelu'"
    assert "no kernel for GELU" in explain_build_failure(old_tree, [("GELU", "AddGelu")], {}, "Compiling")


def test_samples_and_makefile_text() -> None:
    header, source = samples_sources([np.arange(-2, 4, dtype=np.int8).reshape(2, 3)])
    assert "kSampleCount = 2" in header and "kSampleInputs = 1" in header
    assert "0xfe, 0xff, 0x00, 0x01, 0x02, 0x03" in source and "g_sample_input_bytes[kSampleInputs] = {3}" in source
    board = load_board("mps2-an386")
    text = makefile_text(
        board=board,
        flavor=board.flavor(),
        tree=None,
        c_dir_rel="../c",
        symbol="g_digits",
        device_sources=None,
        host_sources=["tensorflow/lite/micro/micro_log.cc"],
    )
    assert "TFLM_DIR ?= $(error" in text and "-DEDGEBUILD_MODEL_SYMBOL=g_digits" in text
    assert "find third_party/cmsis_nn/Source" in text  # no resolved list: every library source
    assert "  tensorflow/lite/micro/micro_log.cc" in text


def test_flash_overflow_explained() -> None:
    output = (
        "ld: build/firmware.elf section `.rodata' will not fit in region `FLASH'\n"
        "ld: region `FLASH' overflowed by 1234 bytes\n"
    )
    message = explain_build_failure(output, [], {}, "Linking the firmware")
    assert "does not fit the board's FLASH by 1,234 bytes" in message


def test_report_section_and_note() -> None:
    from edgebuild.firmware.render import markdown_lines, stage_note

    firmware = {
        "status": "ok",
        "board": {"name": "mps2-an386", "cpu": "cortex-m4"},
        "kernels": "cmsis-nn",
        "declared_arena_bytes": 12576,
        "flash": {
            "total_bytes": 1000,
            "total_bytes_without_samples": 900,
            "breakdown": {"model_array": 500, "validation_samples": 100, "padding": 400},
        },
        "ram": {
            "total_bytes": 300,
            "data_bytes": 10,
            "bss_bytes": 90,
            "arena_bytes": 64,
            "heap_bytes": 100,
            "stack_bytes": 100,
        },
        "device": {
            "arena_size_bytes": 12576,
            "arena_used_bytes": 10516,
            "stack_used_bytes": 5536,
            "heap_used_bytes": 0,
            "instructions_per_inference": {
                "median": 1607608,
                "min": 1607568,
                "max": 1607648,
                "per_op": [{"op": "CONV_2D", "count": 2, "instructions": 1471251}],
            },
        },
        "comparison": {"samples": 10, "max_steps": 0, "mean_steps": 0.0, "top1_agreement": 1.0},
        "host_check": {"status": "passed", "summary": "generated main.cc ran"},
    }
    text = "\n".join(markdown_lines(firmware))
    assert "## Firmware" in text and "| model array (model_data.cc) | 500 |" in text
    assert "1,607,608" in text and "not cycles or time" in text and "top-1 agreement 100.0%" in text
    assert (
        stage_note(firmware)
        == "flash 0.9 KiB, arena 10,516/12,576 B on device, 1,607,608 instructions/inference on QEMU"
    )
    skipped = {"status": "skipped", "note": "no tree", "project_dir": "firmware"}
    assert stage_note(skipped) == "skipped: no tree" and "Not built: no tree" in "\n".join(markdown_lines(skipped))


def test_report_flash_block() -> None:
    from edgebuild.firmware.render import report_flash

    assert report_flash({"status": "skipped", "note": "x"}) is None
    firmware = {
        "board": {"name": "mps2-an386"},
        "size_tool": "size",
        "flash": {
            "total_bytes": 1000,
            "total_bytes_without_samples": 900,
            "breakdown": {"model_array": 500, "validation_samples": 100, "padding": 400},
        },
        "ram": {"total_bytes": 300, "breakdown": {"heap": 100}},
    }
    block = report_flash(firmware)
    assert block["total_bytes"] == 900 and block["image_bytes"] == 1000 and block["model_array_bytes"] == 500
    assert "validation_samples" not in block["breakdown"] and block["ram_bytes"] == 300


def test_top1_agreement_only_for_class_vectors() -> None:
    """An autoencoder's 640 outputs have an argmax too; the comparison must not call it top-1 agreement."""
    from types import SimpleNamespace

    from edgebuild.firmware.stage import compare_with_reference

    out = SimpleNamespace(dtype="int8", scale=[0.5], zero_point=[0])
    artifact = SimpleNamespace(outputs=[out], function_output_order=lambda: [0])
    device = [np.array([[1, 5, 2], [4, 0, 0]], np.int8)]
    reference = [np.array([[0.5, 2.0, 1.5], [0.0, 2.0, 0.0]])]  # integers [1, 4, 3] and [0, 4, 0]
    guessed = compare_with_reference(device, reference, artifact, max_steps=16)
    assert guessed["top1_agreement"] == 0.5 and guessed["max_steps"] == 4 and guessed["passed"]
    not_classifier = compare_with_reference(device, reference, artifact, max_steps=3, classifier=False)
    assert not_classifier["top1_agreement"] is None
    assert not_classifier["max_steps"] == 4 and not not_classifier["passed"]
