"""The firmware stage of an mcu build: link, measure and run the generated C on an (emulated) Cortex-M.

`run_firmware_stage` does, in order:

1. write `OUT/mcu/firmware/` (Makefile project, runner, K samples as C arrays, board files): always, even
   when nothing below can run, so a user with the tools can `make` it;
2. build (or take from the cache) the TFLite Micro library for the board's CPU and the model's ops;
3. `make` the firmware against it (the project's own Makefile, with `TFLM_LIB=` the cached library);
4. measure flash and RAM from the ELF (`arm-none-eabi-size -A` + the linker map);
5. run it under QEMU: outputs vs LiteRT's reference kernels, `arena_used_bytes()` with exactly
   kTensorArenaSize, instructions per inference from SysTick under `-icount shift=0`;
6. the host check: the generated main.cc and the runner compiled with g++ against the same tree and run.

Missing parts (no TFLM tree, no cross compiler, no QEMU) make it return `status: "skipped"` with one note
saying how to get them: never an error for users who only want the C arrays. Failures that the model or
the tree cause (an op the tree has no kernel for, a firmware that does not link, run or match) return
`status: "failed"` with `error` and failing `checks`; the caller decides whether that fails the build.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebuild.errors import EdgebuildError, ExternalToolError, UnsupportedError
from edgebuild.firmware import host_check as host
from edgebuild.firmware.boards import Board, load_board
from edgebuild.firmware.elf_size import measure_elf
from edgebuild.firmware.make import APT_HINT, explain_build_failure, run_make
from edgebuild.firmware.outputs import (
    compare_with_reference,
    dequantized,
    quantize_like_litert,
)
from edgebuild.firmware.project import ELF, write_project
from edgebuild.firmware.qemu import (
    DEFAULT_TIMEOUT_S,
    RunnerOutput,
    instructions,
    qemu_missing,
    run_qemu,
)
from edgebuild.firmware.tflm_library import (
    HOST_FLAVOR,
    TREE_HINT,
    LibraryBuilder,
    check_tree,
    default_jobs,
    load_tree,
    missing_tools,
    resolver_registrations,
)

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact

Log = Callable[[str], None]


def resolve_tflm_dir(explicit: Path | str | None) -> Path | None:
    """mcu.tflm_dir, else $EDGEBUILD_TFLM_DIR, else None."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EDGEBUILD_TFLM_DIR")
    return Path(env).expanduser() if env else None


def _ops(artifact: TfliteArtifact) -> list[tuple[str, str]]:
    from edgebuild.codegen.ops import resolver_methods

    return resolver_methods(artifact)


def _skipped(note: str, result: dict[str, Any]) -> dict[str, Any]:
    result.update(status="skipped", note=note)
    return result


def run_firmware_stage(
    artifact_path: Path,
    c_dir: Path,
    out_dir: Path,
    samples: np.ndarray | list[np.ndarray] | None,
    board: str | Board,
    tflm_dir: Path | str | None,
    arena_bytes: int,
    *,
    kernels: str = "cmsis-nn",
    host_check: bool = True,
    max_steps: float = 16.0,
    qemu_timeout: float = DEFAULT_TIMEOUT_S,
    jobs: int | None = None,
    symbol: str = "g_model",
    labels: np.ndarray | None = None,
    classifier: bool | None = None,
    cache_dir: Path | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Build, measure and run the firmware for one mcu artifact; a JSON-able dict for report.json.

    artifact_path: the .tflite the C sources in `c_dir` embed; out_dir: OUT/mcu/firmware (created);
    samples: float validation inputs (samples first; one array per input for multi-input models), None for
    one all-zero sample; arena_bytes: the kTensorArenaSize model_settings.h declares; labels: class labels of
    `samples` (optional) for the device's own top-1 accuracy; classifier: see `compare_with_reference`;
    kernels: "cmsis-nn" or "reference".
    """
    from edgebuild.artifact import parse_artifact

    started = time.perf_counter()
    log = log or (lambda text: None)
    jobs = jobs or default_jobs()
    artifact_path, c_dir, out_dir = Path(artifact_path), Path(c_dir), Path(out_dir)
    board_obj = board if isinstance(board, Board) else load_board(board)
    flavor = board_obj.flavor(kernels)
    blob = artifact_path.read_bytes()
    artifact = parse_artifact(blob, source=str(artifact_path))
    result: dict[str, Any] = {
        "status": "ok",
        "board": board_obj.describe(),
        "kernels": kernels,
        "project_dir": str(out_dir),
        "declared_arena_bytes": arena_bytes,
        "checks": [],
    }
    embedded = (
        re.search(r"sha256 ([0-9a-f]{64})", (c_dir / "model_data.h").read_text(errors="replace"))
        if (c_dir / "model_data.h").is_file()
        else None
    )
    if embedded is None or not (c_dir / "model_settings.h").is_file():
        return _skipped(
            f"firmware not built: {c_dir} has no model_data.h/model_settings.h (the emit stage writes "
            "model_settings.h only when the tensor arena was measured)",
            result,
        )
    if embedded.group(1) != artifact.sha256:
        return _skipped(
            f"firmware not built: {c_dir}/model_data.cc embeds another model than {artifact_path.name} "
            f"(sha256 {embedded.group(1)[:12]} vs {artifact.sha256[:12]})",
            result,
        )
    ops = _ops(artifact)  # UnsupportedError here means codegen could not write model_ops.h either
    if any(op == "ethos-u" for op, _ in ops):
        return _skipped(
            "firmware not run: the model's Ethos-U subgraph needs an Arm Ethos-U NPU (e.g. the Corstone-300 "
            "FVP); QEMU's Cortex-M boards have none",
            result,
        )
    tree = resolve_tflm_dir(tflm_dir)
    tree_problem = check_tree(tree) if tree is not None else None
    inputs, reference, _ = quantize_like_litert(artifact_path, samples, artifact)
    per_sample = sum(int(a[0].nbytes) for a in inputs) if inputs and inputs[0].shape[0] else 0
    fits = max(1, (board_obj.flash_length // 4) // per_sample) if per_sample else 1
    if inputs and inputs[0].shape[0] > fits:  # the embedded samples take at most a quarter of the flash
        inputs, reference = [a[:fits] for a in inputs], [r[:fits] for r in reference]
        result["samples_note"] = (
            f"{fits} sample(s) embedded (at most a quarter of {board_obj.name}'s {board_obj.flash_length:,}-byte flash)"
        )
    result["samples"] = int(inputs[0].shape[0]) if inputs else 0

    usable_tree = tree if tree is not None and tree_problem is None else None
    write = functools.partial(
        write_project,
        out_dir,
        c_dir=c_dir,
        board=board_obj,
        flavor=flavor,
        tree=usable_tree,
        symbol=symbol,
        samples=inputs,
    )
    write()
    if tree is None:
        return _skipped(f"firmware not built: no TensorFlow Lite Micro tree. {TREE_HINT}", result)
    if tree_problem is not None:
        return _skipped(f"firmware not built: {tree_problem}. {TREE_HINT}", result)
    missing = missing_tools(flavor) + ([] if shutil.which("make") else ["make"])
    if missing:
        return _skipped(f"firmware not built: {', '.join(missing)} not found ({APT_HINT}).", result)

    # ---- libraries (cached per tree x compiler x flags x op set)
    tree_obj = load_tree(tree)
    registrations = resolver_registrations(tree_obj)
    try:
        device_lib = LibraryBuilder(tree, flavor, cache_dir=cache_dir, jobs=jobs, log=log).build(ops)
    except (UnsupportedError, ExternalToolError) as exc:
        return _failed(result, "TFLite Micro library", exc)
    result["tflm"] = {"tree": str(tree_obj.root), "tree_sha256": tree_obj.fingerprint, "library": device_lib.describe()}
    host_lib = None
    want_host = host_check and not missing_tools(HOST_FLAVOR)
    if want_host:
        try:
            host_lib = LibraryBuilder(tree, HOST_FLAVOR, cache_dir=cache_dir, jobs=jobs, log=log).build(ops)
            result["tflm"]["host_library"] = host_lib.describe()
        except (UnsupportedError, ExternalToolError) as exc:
            result["host_check"] = {"status": "failed", "summary": str(exc)}
            result["checks"].append({"name": "host C++ check", "passed": False, "summary": str(exc)})
    write(device_sources=device_lib.sources, host_sources=host_lib.sources if host_lib else None)

    # ---- link
    shutil.rmtree(out_dir / "build", ignore_errors=True)
    code, output, seconds = run_make(out_dir, ["fw"], {"TFLM_LIB": str(device_lib.path)}, jobs)
    if code != 0 and "undefined reference" in output and "Register_" not in output:
        # a helper the closure missed: resolve the linker's undefined symbols into the library, link again
        undefined = set(re.findall(r"undefined reference to [`'](.+?)'", output))
        device_lib = LibraryBuilder(tree, flavor, cache_dir=cache_dir, jobs=jobs, log=log).build(
            ops, extra_undefined=undefined
        )
        code, output, seconds = run_make(out_dir, ["fw"], {"TFLM_LIB": str(device_lib.path)}, jobs)
    if code != 0:
        message = explain_build_failure(output, ops, registrations, f"Linking the firmware for {board_obj.name}")
        return _failed(result, "firmware build", ExternalToolError(message))
    elf = out_dir / ELF
    result["elf"] = str(elf.relative_to(out_dir.parent)) if out_dir.parent in elf.parents else str(elf)
    result["build_seconds"] = round(seconds, 2)

    # ---- sizes
    sizes = measure_elf(elf, board_obj, out_dir / "build/firmware.map")
    result["flash"], result["ram"] = sizes["flash"], sizes["ram"]
    result["size_tool"] = sizes["tool"]

    # ---- QEMU
    why_not = qemu_missing(board_obj)
    device: RunnerOutput | None = None
    if why_not is not None:
        result["device"] = {"status": "skipped", "note": f"firmware built and measured, not run: {why_not}"}
        result["status"] = "skipped"
        result["note"] = result["device"]["note"]
    else:
        try:
            device = run_qemu(board_obj, elf, qemu_timeout)
        except ExternalToolError as exc:
            return _failed(result, "QEMU run", exc)
        result["device"] = _device_block(device, board_obj, arena_bytes)
        ran = device.exit_code == 0 and device.done
        result["checks"].append(
            {
                "name": "firmware runs on QEMU",
                "passed": ran,
                "summary": (
                    f"ran {result['samples']} sample(s) on {board_obj.qemu_machine} with exactly kTensorArenaSize "
                    f"= {arena_bytes:,} bytes; arena_used_bytes() = {device.arena_used:,}"
                    if ran and device.arena_used is not None
                    else f"firmware failed on QEMU: {device.failure_summary()}"
                ),
            }
        )
        if ran:
            raw = device.output_arrays()
            comparison = compare_with_reference(raw, reference, artifact, max_steps, classifier)
            if labels is not None and classifier is not False and raw and raw[0].ndim == 2 and raw[0].shape[1] > 1:
                y = np.asarray(labels).reshape(-1)[: raw[0].shape[0]]
                if y.size == raw[0].shape[0]:
                    comparison["device_top1_accuracy"] = float(np.mean(raw[0].argmax(axis=-1) == y))
            result["comparison"] = comparison
            result["device"]["outputs_dequantized"] = dequantized(raw, artifact)
            parts = [
                f"max {comparison['max_steps']} step(s), mean {comparison['mean_steps']}"
                if comparison["max_steps"] is not None
                else "float outputs"
            ]
            if comparison["top1_agreement"] is not None:
                parts.append(f"top-1 agreement {100 * comparison['top1_agreement']:.1f}%")
            result["checks"].append(
                {
                    "name": "device outputs vs LiteRT reference",
                    "passed": comparison["passed"],
                    "summary": f"{board_obj.qemu_machine} ({kernels}) vs LiteRT reference kernels on "
                    f"{comparison['samples']} sample(s): "
                    + ", ".join(parts)
                    + ("" if comparison["passed"] else f" (limit {max_steps:g} steps)"),
                }
            )

    # ---- host check
    if host_lib is not None:
        result["host_check"] = host.check_generated_cpp(
            out_dir, host_lib, jobs, device, artifact, artifact_path, max_steps, ops, registrations
        )
        result["checks"].append(
            {
                "name": "host C++ check",
                "passed": result["host_check"]["status"] == "passed",
                "summary": result["host_check"]["summary"],
            }
        )
    elif host_check and "host_check" not in result:
        result["host_check"] = {"status": "skipped", "summary": "g++ not found: host C++ check not run"}
    if any(not c["passed"] for c in result["checks"]):
        result["status"] = "failed"
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _failed(result: dict[str, Any], where: str, exc: EdgebuildError) -> dict[str, Any]:
    result["status"] = "failed"
    result["error"] = {"stage": where, "type": type(exc).__name__, "message": str(exc)}
    result["checks"].append({"name": where, "passed": False, "summary": str(exc)})
    return result


def _device_block(device: RunnerOutput, board: Board, arena_bytes: int) -> dict[str, Any]:
    block: dict[str, Any] = {
        "machine": board.qemu_machine,
        "command": f"qemu-system-arm -M {board.qemu_machine} {' '.join(board.qemu_args)} -kernel firmware.elf",
        "exit_code": device.exit_code,
        "seconds": device.seconds,
        "arena_size_bytes": arena_bytes,
        "arena_used_bytes": device.arena_used,
        "stack_used_bytes": device.memory.get("stack_used"),
        "heap_used_bytes": device.memory.get("heap_used"),
    }
    if device.error:
        block["error"] = device.error
        block["log"] = device.log[-12:]
    cost = instructions(device)
    if cost is not None:
        block["instructions_per_inference"] = cost
    raw = device.output_arrays()
    block["outputs"] = [a.tolist() for a in raw]
    return block


def firmware_for_artifact(
    artifact_path: Path,
    work_dir: Path,
    samples: np.ndarray | list[np.ndarray] | None,
    board: str | Board = "mps2-an386",
    tflm_dir: Path | str | None = None,
    *,
    arena_margin: float = 0.10,
    symbol: str = "g_model",
    **kwargs: Any,
) -> dict[str, Any]:
    """A .tflite alone (no build folder) on the board: prove the arena, emit the C sources, run the stage.

    What `edgebuild bench ART --device qemu:mps2-an386` needs: `work_dir/c/` and `work_dir/firmware/` are
    written; the rest is `run_firmware_stage` (kwargs pass through: kernels, host_check, max_steps, ...).
    """
    from edgebuild.artifact import parse_artifact
    from edgebuild.codegen import CSourceOptions, write_c_sources
    from edgebuild.runtime import prove_arena

    artifact_path, work_dir = Path(artifact_path), Path(work_dir)
    blob = artifact_path.read_bytes()
    arena = prove_arena(artifact_path, arena_margin).recommended_bytes
    write_c_sources(
        blob,
        parse_artifact(blob, source=str(artifact_path)),
        work_dir / "c",
        CSourceOptions(symbol=symbol, arena_bytes=arena),
    )
    return run_firmware_stage(
        artifact_path, work_dir / "c", work_dir / "firmware", samples, board, tflm_dir, arena, symbol=symbol, **kwargs
    )
