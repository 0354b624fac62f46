"""The generated C++ compiled with the host's g++ against the same TFLite Micro tree, and run.

Two programs, both from the firmware project's Makefile (`make host`), linked with a host library of
the same tree (reference kernels, built and cached like the device one):

- `example_main`: the emit stage's `main.cc` with `model_ops.h`, `model_settings.h` and `model_data.cc`,
  unchanged. It must exit 0 and print output 0's first value for an all-zero input, which must match
  LiteRT's reference kernels on the same input: the generated code is valid TFLite Micro code.
- `firmware_host`: the firmware runner on the same embedded samples. Its outputs are compared with the
  device's (CMSIS-NN on the board vs reference kernels here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebuild.firmware.make import explain_build_failure, run_make
from edgebuild.firmware.outputs import reference_first_output
from edgebuild.firmware.project import HOST_EXAMPLE, HOST_RUNNER
from edgebuild.firmware.qemu import RunnerOutput, parse_runner_output
from edgebuild.process import run_tool, tail

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact
    from edgebuild.firmware.tflm_library import Library

RUN_TIMEOUT_S = 120.0
_FIRST_VALUE = re.compile(r"Output 0, first (value|byte): (\S+)")
_ARENA = re.compile(r"Arena used: (\d+) of (\d+) bytes")


def run_host_runner(project_dir: Path) -> RunnerOutput:
    exe = Path(project_dir) / HOST_RUNNER
    res = run_tool([str(exe)], RUN_TIMEOUT_S, "firmware_host (host build of the firmware runner)")
    out = parse_runner_output(res.stdout + "\n" + res.stderr, res.returncode)
    out.seconds = res.seconds
    return out


def run_example_main(project_dir: Path) -> dict[str, Any]:
    """Run the unchanged generated main.cc; what it printed and its exit status."""
    exe = Path(project_dir) / HOST_EXAMPLE
    res = run_tool([str(exe)], RUN_TIMEOUT_S, "example_main (the generated main.cc built for the host)")
    text = res.stdout + "\n" + res.stderr
    result: dict[str, Any] = {"exit_code": res.returncode, "seconds": res.seconds}
    value = _FIRST_VALUE.search(text)
    if value:
        try:
            result["first_output"] = float(value.group(2))
        except ValueError:
            result["first_output"] = value.group(2)
        result["first_output_kind"] = value.group(1)
    arena = _ARENA.search(text)
    if arena:
        result["arena_used_bytes"], result["arena_bytes"] = int(arena.group(1)), int(arena.group(2))
    if res.returncode != 0 or value is None:
        result["log"] = tail(text, 12)
    return result


def compare_example(
    result: dict[str, Any], reference_first: float | None, output_scale: float | None, max_steps: float
) -> tuple[bool, str]:
    """Does the example's printed first output match LiteRT's reference kernels on the same (zero) input?"""
    if result.get("exit_code") != 0:
        return False, (
            f"the generated main.cc built for the host exited with status {result.get('exit_code')}"
            + (f":\n{result['log']}" if result.get("log") else "")
        )
    value = result.get("first_output")
    if not isinstance(value, float):
        return False, "the generated main.cc did not print 'Output 0, first value'"
    if reference_first is None:
        return True, f"generated main.cc ran on the host (output 0 first value {value:g})"
    diff = abs(value - reference_first)
    if output_scale:
        steps = diff / output_scale
        result["difference_steps"] = round(steps, 3)
        ok = steps <= max_steps + 1e-3  # %f prints 6 decimals
        return ok, (
            f"generated main.cc on the host: output 0 = {value:g}, LiteRT reference {reference_first:g} "
            f"({steps:.2f} quantization step(s){'' if ok else f', limit {max_steps:g}'})"
        )
    ok = diff <= max(1e-5, 1e-3 * abs(reference_first))
    result["difference"] = diff
    return ok, f"generated main.cc on the host: output 0 = {value:g}, LiteRT reference {reference_first:g}"


def step_difference(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, Any]:
    """Largest and mean difference between two runs' raw outputs (integer outputs: in quantization steps)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return {"comparable": False}
    diffs = [np.abs(x.astype(np.float64) - y.astype(np.float64)).reshape(-1) for x, y in zip(a, b, strict=True)]
    flat = np.concatenate(diffs) if diffs else np.zeros(0)
    identical = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    return {
        "comparable": True,
        "identical": identical,
        "max": float(flat.max()) if flat.size else 0.0,
        "mean": round(float(flat.mean()), 4) if flat.size else 0.0,
    }


def check_generated_cpp(
    project_dir: Path,
    host_lib: Library,
    jobs: int,
    device: RunnerOutput | None,
    artifact: TfliteArtifact,
    artifact_path: Path,
    max_steps: float,
    ops: list[tuple[str, str]],
    registrations: dict[str, list[str]],
) -> dict[str, Any]:
    """`make host`, then both programs run: the runner against the device's outputs, main.cc against LiteRT."""
    code, output, seconds = run_make(project_dir, ["host"], {"TFLM_HOST_LIB": str(host_lib.path)}, jobs)
    if code != 0:
        return {
            "status": "failed",
            "summary": explain_build_failure(output, ops, registrations, "Building the generated C++ with host g++"),
        }
    check: dict[str, Any] = {"status": "passed", "compiler": "g++", "build_seconds": round(seconds, 2)}
    problems = []
    runner = run_host_runner(project_dir)
    check["runner"] = {"exit_code": runner.exit_code, "arena_used_bytes": runner.arena_used}
    if runner.exit_code != 0 or not runner.done:
        problems.append(f"the firmware runner built for the host failed: {runner.failure_summary()}")
    elif device is not None and device.done:
        diff = step_difference(runner.output_arrays(), device.output_arrays())
        check["runner"]["vs_device"] = diff
        if not diff.get("comparable") or diff["max"] > max_steps:
            problems.append(f"host (reference kernels) and device outputs differ: {diff}")
    example = run_example_main(project_dir)
    check["example_main"] = example
    reference_first, scale = reference_first_output(artifact_path, artifact)
    ok, summary = compare_example(example, reference_first, scale, max_steps)
    if not ok:
        problems.append(summary)
    if problems:
        check.update(status="failed", summary="; ".join(problems))
    else:
        vs = check["runner"].get("vs_device")
        same = (
            ""
            if not vs
            else "; runner outputs identical to the device's"
            if vs["identical"]
            else f"; runner outputs within {vs['max']:g} step(s) of the device's"
        )
        check["summary"] = f"{summary}{same}"
    return check
