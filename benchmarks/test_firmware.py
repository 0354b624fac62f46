"""Firmware on QEMU mps2-an386 (Cortex-M4): instructions per inference, CMSIS-NN vs reference kernels, sizes.

Two models: the demo-style digits CNN (Conv-Pool-Conv-Pool-Dense-Softmax on 32x32x1) and a DS-CNN of the
MLPerf Tiny keyword-spotting size (49x10 MFCC input, 64 filters, 4 depthwise-separable blocks; seeded
random weights: the instruction count does not depend on training). Each is built by the firmware stage
twice, with CMSIS-NN and with TFLite Micro's reference kernels, on the same tree and compiler. Recorded
per build (benchmark extra_info and build/firmware_bench.json): instructions per inference (median over
the samples, SysTick under -icount shift=0: instructions on QEMU, not cycles), per-op instructions, the
flash breakdown (model array / TFLM runtime / kernels / application / samples / C and C++ libraries),
RAM, arena used on the device, and the stage's wall time (TFLM library from the cache after the first
run). Asserts: both run and match LiteRT's reference kernels, and CMSIS-NN needs fewer instructions.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "examples"))
from tflm_tree import tflm_tree  # noqa: E402

RESULTS: dict[str, dict] = {}
SAMPLES = 10


def _cache() -> Path:
    return Path(os.environ.get("EDGEBUILD_TFLM_CACHE_DIR") or REPO / "build" / "tflm-cache")


_MISSING = [t for t in ("arm-none-eabi-g++", "qemu-system-arm", "make") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    tflm_tree() is None or bool(_MISSING),
    reason=f"needs the shared TFLM tree, {', '.join(_MISSING) or 'tools'} (make install)",
)


def _digits_cnn(keras):
    import digits

    x, y = digits.load_digits_32(seed=0)
    keras.utils.set_random_seed(0)
    model = digits.train(digits.build_cnn(keras), x[:1200], y[:1200], epochs=3)
    return model, x[:200], x[1200 : 1200 + SAMPLES]


def _ds_cnn(keras):
    import reference_archs

    keras.utils.set_random_seed(0)
    data = reference_archs.spectrogram_data()
    return reference_archs.ds_cnn(keras, filters=64, blocks=4), data.train_x[:200], data.test_x[:SAMPLES]


MODELS = {"digits_cnn": _digits_cnn, "ds_cnn": _ds_cnn}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """name -> (model.tflite, c/, arena, samples): converted to int8 and emitted as the mcu target does."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras
    from tflite_helpers import to_tflite

    from edgebuild.artifact import read_artifact
    from edgebuild.codegen import CSourceOptions, write_c_sources
    from edgebuild.runtime import prove_arena

    built = {}

    def get(name: str):
        if name not in built:
            model, calibration, samples = MODELS[name](tf_keras)
            root = tmp_path_factory.mktemp(name)
            path = root / "model.tflite"
            path.write_bytes(to_tflite(model, "int8", calibration=calibration))
            arena = prove_arena(path, 0.10).recommended_bytes
            write_c_sources(path.read_bytes(), read_artifact(path), root / "c", CSourceOptions(arena_bytes=arena))
            built[name] = (path, root / "c", arena, np.asarray(samples, np.float32), root)
        return built[name]

    return get


def _row(result: dict) -> dict:
    device = result["device"]
    cost = device["instructions_per_inference"]
    return {
        "instructions_per_inference": cost["median"],
        "per_op": cost["per_op"],
        "flash_bytes": result["flash"]["total_bytes"],
        "flash_breakdown": result["flash"]["breakdown"],
        "flash_without_samples": result["flash"]["total_bytes_without_samples"],
        "ram_bytes": result["ram"]["total_bytes"],
        "arena_declared": result["declared_arena_bytes"],
        "arena_used_on_device": device["arena_used_bytes"],
        "stack_used": device["stack_used_bytes"],
        "max_steps_vs_litert_reference": result["comparison"]["max_steps"],
        "top1_agreement": result["comparison"]["top1_agreement"],
        "stage_seconds": result["seconds"],
        "build_seconds": result["build_seconds"],
        "qemu_seconds": device["seconds"],
        "library": result["tflm"]["library"],
    }


@pytest.mark.parametrize("name", list(MODELS))
def test_firmware_cmsis_nn_vs_reference(name: str, emitted, benchmark) -> None:
    from edgebuild.firmware import run_firmware_stage

    model, c_dir, arena, samples, root = emitted(name)

    def stage(kernels: str) -> dict:
        return run_firmware_stage(
            model,
            c_dir,
            root / f"firmware-{kernels}",
            samples,
            "mps2-an386",
            tflm_tree(),
            arena,
            kernels=kernels,
            host_check=False,
            cache_dir=_cache(),
            log=print,
        )

    def from_artifact_alone() -> dict:  # what `bench --device qemu:...` would run: the .tflite, nothing else
        from edgebuild.firmware.stage import firmware_for_artifact

        return firmware_for_artifact(
            model, root / "alone", samples, "mps2-an386", tflm_tree(), host_check=False, cache_dir=_cache(), log=print
        )

    reference = stage("reference")
    cmsis = benchmark.pedantic(from_artifact_alone, rounds=1, iterations=1)
    assert cmsis["declared_arena_bytes"] == arena
    rows = {}
    for kernels, result in (("cmsis-nn", cmsis), ("reference", reference)):
        assert result["status"] == "ok", result.get("error") or result["checks"]
        rows[kernels] = _row(result)
    ratio = rows["cmsis-nn"]["instructions_per_inference"] / rows["reference"]["instructions_per_inference"]
    RESULTS[name] = {
        "cmsis_nn": rows["cmsis-nn"],
        "reference": rows["reference"],
        "cmsis_nn_vs_reference_instructions": round(ratio, 4),
    }
    benchmark.extra_info.update(
        {
            "instructions_cmsis_nn": rows["cmsis-nn"]["instructions_per_inference"],
            "instructions_reference": rows["reference"]["instructions_per_inference"],
            "cmsis_nn_vs_reference": round(ratio, 4),
            "flash_breakdown_cmsis_nn": rows["cmsis-nn"]["flash_breakdown"],
            "flash_breakdown_reference": rows["reference"]["flash_breakdown"],
            "ram_bytes": rows["cmsis-nn"]["ram_bytes"],
            "arena_used_on_device": rows["cmsis-nn"]["arena_used_on_device"],
        }
    )
    out = REPO / "build" / "firmware_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=1))
    print(
        f"\n{name}: instructions/inference CMSIS-NN {rows['cmsis-nn']['instructions_per_inference']:,} vs "
        f"reference {rows['reference']['instructions_per_inference']:,} ({ratio:.3f}x); flash "
        f"{rows['cmsis-nn']['flash_bytes']:,} B {rows['cmsis-nn']['flash_breakdown']}"
    )
    assert ratio < 1.0, "CMSIS-NN kernels should need fewer instructions than the reference kernels"
    for row in rows.values():
        assert row["max_steps_vs_litert_reference"] <= 2
