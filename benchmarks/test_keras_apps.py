"""Keras applications coverage: every application builds for every built-in target, or says which op stops it.

Each application is built with `weights=None` (nothing downloads; random weights, so accuracy numbers are
float-vs-int8 agreement of an untrained network, not task accuracy) at a reduced input size (96x96x3 by
default) with a 10-class head, calibrated and validated on scikit-learn's digits upsampled to the input size,
repeated to 3 channels, scaled to 0-255 and passed through the application's own `preprocess_input`; BatchNorm
statistics are set from one forward pass over 64 of those images (see `_estimate_batchnorm`). One
`edgebuild build --target all --no-gates` per application, in a subprocess (its peak RSS is its own), with
the TFLite Micro firmware stage off (QEMU would spend minutes per large model; the host TFLite Micro run still
proves the arena). Writes `build/keras_apps/coverage.md` and `coverage.json`.

Environment: EDGEBUILD_APPS (comma list; default all), EDGEBUILD_APPS_SIZE (default 96),
EDGEBUILD_APPS_TIMEOUT (seconds per application, default 1800). Applications not run are listed as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tf

# (name, tf_keras.applications module holding preprocess_input), cheapest first
APPS = (
    ("MobileNetV3Small", "mobilenet_v3"),
    ("MobileNet", "mobilenet"),
    ("MobileNetV2", "mobilenet_v2"),
    ("EfficientNetB0", "efficientnet"),
    ("MobileNetV3Large", "mobilenet_v3"),
    ("EfficientNetV2B0", "efficientnet_v2"),
    ("NASNetMobile", "nasnet"),
    ("DenseNet121", "densenet"),
    ("ResNet50", "resnet50"),
)
TARGETS = ("mobile", "edgetpu", "mcu", "ethos-u55")
OUT = Path(__file__).resolve().parents[1] / "build" / "keras_apps"
SIZE = int(os.environ.get("EDGEBUILD_APPS_SIZE", "96"))
TIMEOUT = float(os.environ.get("EDGEBUILD_APPS_TIMEOUT", "1800"))
SELECTED = [a for a in os.environ.get("EDGEBUILD_APPS", ",".join(n for n, _ in APPS)).split(",") if a]
RESULTS: dict[str, dict[str, Any]] = {}

RUNNER = (
    "import resource, sys\n"
    "from edgebuild.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print('EDGEBUILD_PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _digits(size: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.arange(size) * 8 // size
    images = digits.images[:n][:, rows][:, :, rows] * (255.0 / 16.0)
    return np.repeat(images[..., None], 3, axis=-1).astype(np.float32), digits.target[:n]


def _save_app(name: str, module: str, root: Path) -> tuple[Path, Path, int]:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = getattr(tf_keras.applications, name)(weights=None, input_shape=(SIZE, SIZE, 3), classes=10)
    x, _ = _digits(SIZE)
    x = getattr(tf_keras.applications, module).preprocess_input(x.copy())
    _estimate_batchnorm(model, np.asarray(x[:64], np.float32))
    path = root / f"{name}.h5"
    model.save(path)
    npz = root / f"{name}.npz"
    np.savez(npz, x=np.asarray(x, np.float32))
    params = int(model.count_params())
    tf_keras.backend.clear_session()
    return path, npz, params


def _estimate_batchnorm(model: Any, x: np.ndarray) -> None:
    """Set every BatchNorm's statistics from one forward pass over `x` (no gradient step).

    With weights=None the statistics are the initial 0/1, and activations shrink layer after layer: the
    logits of a random MobileNet reach a scale of 1e-8, below what TFLite Micro's int8 Softmax accepts (it
    aborts in Prepare). Real trained models never look like that; estimated statistics keep every layer's
    output at unit scale, as training would.
    """
    import tf_keras

    norms = [layer for layer in model.submodules if isinstance(layer, tf_keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99


def _target_row(report: dict[str, Any]) -> dict[str, Any]:
    """What the coverage table shows for one target, read from its report.json."""
    validation = report.get("validation", {})
    failed = [c["name"] for c in validation.get("checks", []) if not c.get("passed", True)]
    row: dict[str, Any] = {
        "status": "ok" if not failed else "gate failed: " + ", ".join(failed),
        "failed_checks": {
            c["name"]: c.get("summary", "")[:200] for c in validation.get("checks", []) if not c.get("passed", True)
        },
        "size_bytes": report["artifact"]["size_bytes"],
        "float32_bytes": (report.get("float_reference") or {}).get("size_bytes"),
        "ops": report["artifact"].get("op_count"),
        "agreement": (validation.get("accuracy") or {}).get("agreement"),
    }
    rules = next((c for c in validation.get("checks", []) if c["name"].startswith("op rules")), None)
    errors = [f for f in (rules or {}).get("findings", []) if f["severity"] == "error"]
    row["unsupported_ops"] = sorted({f["op"] for f in errors if f.get("op")})
    details = (rules or {}).get("details", {})
    if report["target"] == "edgetpu":
        row["edgetpu_mapped_ops"] = details.get("mapped_ops_fraction")
        row["edgetpu_mapped_macs"] = details.get("mapped_macs_fraction")
        row["edgetpu_first_cpu_op"] = (details.get("first_unsupported") or {}).get("op")
    arena = validation.get("arena") or {}
    row["arena_bytes"] = arena.get("recommended_bytes")
    vela = (report.get("compile") or {}).get("vela")
    if vela:
        row["vela_npu_fraction"] = vela.get("npu_fraction")
        row["vela_cpu_ops"] = sorted(r["op"] for r in vela.get("per_op", []) if r.get("cpu"))
    return row


def _run(name: str, module: str, root: Path) -> dict[str, Any]:
    path, npz, params = _save_app(name, module, root)
    out = root / f"{name}-out"
    args = [
        "build", str(path), "--target", "all", "--data", str(npz), "--out", str(out), "--no-cache", "--no-gates",
        "--set", "benchmark.runs=5", "--set", "layers.enabled=false", "--set", "mcu.firmware=false",
        "--set", "data.max_validation_samples=24",
    ]  # fmt: skip
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return {"params": params, "result": f"timed out after {TIMEOUT:.0f} s", "targets": {}}
    seconds = time.perf_counter() - started
    peak = next((int(line.split()[1]) for line in proc.stderr.splitlines() if "EDGEBUILD_PEAK_RSS_KB" in line), None)
    targets = {}
    for target in TARGETS:
        report_path = out / target / "report.json"
        if report_path.is_file():
            targets[target] = _target_row(json.loads(report_path.read_text()))
    errors = " ".join(line for line in proc.stderr.splitlines() if line.startswith("edgebuild:") or "Target '" in line)
    for target in TARGETS:
        if target not in targets:
            targets[target] = {"status": "error", "error": _error_for(target, proc.stderr) or errors[:300]}
    return {
        "params": params,
        "build_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak / 1024, 1) if peak else None,
        "exit_code": proc.returncode,
        "targets": targets,
    }


def _error_for(target: str, stderr: str) -> str | None:
    text = " ".join(stderr.split())
    marker = f"Target '{target}'"
    at = text.find(marker)
    return text[at : at + 400] if at >= 0 else None


@pytest.mark.slow
@pytest.mark.parametrize("name,module", APPS, ids=[n for n, _ in APPS])
def test_keras_application_builds_or_names_the_op(name: str, module: str, tmp_path: Path) -> None:
    if name not in SELECTED:
        RESULTS[name] = {"result": "not run (not in EDGEBUILD_APPS)", "targets": {}}
        pytest.skip(f"{name} not selected (EDGEBUILD_APPS)")
    result = _run(name, module, tmp_path)
    RESULTS[name] = result
    _write()
    assert "timed out" not in result.get("result", ""), result["result"]
    for target, row in result["targets"].items():
        # every target either produced a report or failed with a message that names the target
        assert row["status"] != "error" or row.get("error"), (name, target)
    mobile = result["targets"]["mobile"]
    assert mobile["status"] != "error", (name, mobile)  # float16 runs every op these applications use
    assert mobile["size_bytes"] < 0.6 * mobile["float32_bytes"], mobile  # float16 weights halve the file


def _write() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, _ in APPS:
        RESULTS.setdefault(name, {"result": "not run", "targets": {}})
    ordered = {name: RESULTS[name] for name, _ in APPS}
    (OUT / "coverage.json").write_text(json.dumps({"input": [SIZE, SIZE, 3], "apps": ordered}, indent=1))
    (OUT / "coverage.md").write_text(render(ordered))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _ratio(row: dict[str, Any]) -> str:
    return f"{row['size_bytes'] / row['float32_bytes']:.3f}x" if row.get("float32_bytes") else "-"


def _failed(result: dict[str, Any]) -> str:
    """Per target, the checks that failed (gates are off: reported, not enforced) or the error."""
    parts = []
    for target in TARGETS:
        row = result["targets"][target]
        if row.get("status") == "error":
            parts.append(f"{target}: error: {(row.get('error') or '')[:160]}")
        elif row.get("failed_checks"):
            names = [n + (" (TFLite Micro aborted)" if "crashed" in t else "") for n, t in row["failed_checks"].items()]
            parts.append(f"{target}: {', '.join(names)}")
    return "; ".join(parts).replace("|", "/") or "none"


def render(apps: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"Keras applications, weights=None (random weights, BatchNorm statistics from one forward pass), "
        f"{SIZE}x{SIZE}x3, 10 classes; one `edgebuild build --target all --no-gates` each (firmware stage off), "
        "calibrated and validated on digits through each application's preprocess_input; measured by `make bench` "
        "(benchmarks/test_keras_apps.py) on a shared, loaded 2-core machine. Agreement is int8 top-1 against the "
        "float model of an untrained network (near-equal logits flip easily), not task accuracy.",
        "",
        "| application | params | float16 size (mobile) | int8 size (mcu) | Edge TPU by its rules: ops / MACs mapped, "
        "CPU from | mcu: tensor arena, budgets (1 MiB flash, 256 KiB RAM) | Ethos-U55: NPU ops, Vela arena "
        "| int8 agreement (mcu) | checks failed | build s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in apps.items():
        if not result.get("targets"):
            lines.append(f"| {name} | - | {result.get('result', 'not run')} | | | | | | | | |")
            continue
        rows = result["targets"]
        mobile, edgetpu, mcu, ethos = (rows[t] for t in TARGETS)
        tpu = "-"
        if edgetpu.get("edgetpu_mapped_ops") is not None:
            first = edgetpu.get("edgetpu_first_cpu_op")
            tpu = f"{_pct(edgetpu['edgetpu_mapped_ops'])} / {_pct(edgetpu.get('edgetpu_mapped_macs'))}" + (
                f", CPU from {first}" if first else ""
            )
        arena = f"{mcu['arena_bytes'] / 1024:.0f} KiB" if mcu.get("arena_bytes") else "-"
        budget = mcu.get("failed_checks", {}).get("budgets", "")
        over = ("flash " if "flash" in budget else "") + ("over budget" if budget else "within budgets")
        npu = _pct(ethos.get("vela_npu_fraction")) + (
            f", {ethos['arena_bytes'] / 1024:.0f} KiB" if ethos.get("arena_bytes") else ""
        )
        lines.append(
            f"| {name} | {result['params'] / 1e6:.2f} M | {_ratio(mobile)} | {_ratio(mcu)} | {tpu} | "
            f"{arena}, {over} | {npu} | {_pct(mcu.get('agreement'))} | {_failed(result)} "
            f"| {result.get('build_seconds', '-')} | {result.get('peak_rss_mib', '-')} |"
        )
    return "\n".join(lines) + "\n"
