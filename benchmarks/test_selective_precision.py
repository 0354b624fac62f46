"""Issue 15: per-layer analysis cost, and plain int8 vs auto-selective vs QAT on the outlier model.

The model is test_qat_recovers's: the digits CNN trained in float, one filter of its first convolution
scaled up 3000x and the matching input weights of the second scaled down as much (same float function,
one activation channel 3000x wider than the others).

1. The per-layer analysis (`edgebuild.quant_debug.analysis.analyze`, timed by pytest-benchmark) against
   the plain accuracy validation (LiteRT on the same samples, compared with the float model) in the same
   run: the ratio is what the `layers` stage adds to a build.
2. Real builds of mobile (int8) and mcu: plain PTQ int8, `quantization.selective = "auto"`, and QAT:
   top-1 drop, artifact size and host latency of each, recorded in extra_info and printed.

Run: `make bench` or `pytest benchmarks/test_selective_precision.py -s`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import digits

pytestmark = pytest.mark.tf

OUTLIER = 3000.0
SAMPLES = 100


@pytest.fixture(scope="module")
def outlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the outlier CNN saved as .h5, which QAT needs, and .npz of the held-out digits with labels)."""
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    x, y = digits.load_digits_32(seed=0)
    keras2.utils.set_random_seed(0)
    model = digits.train(digits.build_cnn(keras2), x[:1000], y[:1000], epochs=5)
    conv1, conv2 = (layer for layer in model.layers if type(layer).__name__ == "Conv2D")
    k1, b1 = conv1.get_weights()
    k2, b2 = conv2.get_weights()
    k1[..., 0] *= OUTLIER
    b1[0] *= OUTLIER
    k2[:, :, 0, :] /= OUTLIER
    conv1.set_weights([k1, b1])
    conv2.set_weights([k2, b2])
    root = tmp_path_factory.mktemp("outlier")
    model.save(root / "outlier.h5")
    np.savez(root / "digits.npz", x=x[1000:], y=y[1000:])
    return root / "outlier.h5", root / "digits.npz"


def test_analysis_vs_validation_time(outlier: tuple[Path, Path], benchmark) -> None:
    from edgebuild.accuracy import compare
    from edgebuild.converters import convert
    from edgebuild.model import load_model
    from edgebuild.profiles.schema import QuantizationSection
    from edgebuild.quant_debug.analysis import analyze
    from edgebuild.runtime import LiteRTModel

    path, data = outlier
    model = load_model(path).export(1)
    arrays = np.load(data)
    x, y = arrays["x"], arrays["y"]
    calibration, val, labels = x[:200], x[200 : 200 + SAMPLES], y[200 : 200 + SAMPLES]
    float_blob = convert(model, None, QuantizationSection(scheme="none"), None)
    int8_blob = convert(model, None, QuantizationSection(scheme="int8", io="int8"), calibration)
    reference = LiteRTModel(float_blob).predict(val)

    def validation() -> dict:
        return compare(reference, LiteRTModel(int8_blob).predict(val), labels)

    validation()  # warm
    started = time.perf_counter()
    for _ in range(5):
        accuracy = validation()
    validation_s = (time.perf_counter() - started) / 5
    result = benchmark.pedantic(
        lambda: analyze(int8_blob, float_blob, calibration, val, io="int8", samples=SAMPLES),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    analysis_s = benchmark.stats.stats.median
    benchmark.extra_info.update(
        samples=SAMPLES,
        analysis_s=round(analysis_s, 3),
        validation_s=round(validation_s, 4),
        ratio=round(analysis_s / validation_s, 1),
        phases=result.seconds,
        int8_top1=accuracy["artifact_top1"],
    )
    print(
        f"\nper-layer analysis {analysis_s:.3f} s ({result.seconds}) vs plain validation {validation_s:.4f} s "
        f"on {SAMPLES} samples: {analysis_s / validation_s:.0f}x"
    )
    assert result.ranked[0]["tensor"].startswith("sequential/conv2d/")


def _build(model: Path, data: Path, out: Path, *overrides: str) -> dict[str, dict]:
    from edgebuild.cli.main import main

    main(
        [
            "build",
            str(model),
            "--target",
            "mobile",
            "--target",
            "mcu",
            "--data",
            str(data),
            "--out",
            str(out),
            "--no-gates",
            "--set",
            "quantization.scheme=int8",
            "--set",
            "mcu.firmware=false",
            "--set",
            "benchmark.runs=200",
            *[a for o in overrides for a in ("--set", o)],
        ]
    )
    return {t: json.loads((out / t / "report.json").read_text()) for t in ("mobile", "mcu")}


def _row(report: dict) -> dict:
    threads = report["benchmark"]["threads"]
    return {
        "drop_points": report["validation"]["accuracy"]["drop_points"],
        "size_bytes": report["artifact"]["size_bytes"],
        "p50_ms": threads[next(iter(threads))]["p50_ms"],
        "passed": report["validation"]["passed"],
        "arena_bytes": (report["validation"].get("arena") or {}).get("recommended_bytes"),
    }


def test_plain_vs_selective_vs_qat(outlier: tuple[Path, Path], tmp_path: Path, benchmark) -> None:
    model, data = outlier
    runs = {
        "int8": _build(model, data, tmp_path / "int8"),
        "selective": _build(model, data, tmp_path / "selective", "quantization.selective=auto"),
        "qat": _build(
            model,
            data,
            tmp_path / "qat",
            "quantization.method=qat",
            "training.epochs=4",
            "training.learning_rate=3e-4",
            "training.early_stopping=2",
        ),
    }
    table = {f"{kind}/{target}": _row(reports[target]) for kind, reports in runs.items() for target in reports}
    selective = runs["selective"]
    layers = {t: selective[t]["layers"] for t in selective}
    times = {
        t: {
            "layers_s": selective[t]["timings_s"]["layers"],
            "validate_s": selective[t]["timings_s"]["validate"],
            "analysis_s": sum(layers[t]["seconds"].values()),
        }
        for t in selective
    }
    from edgebuild.runtime import LiteRTModel

    interpreter = LiteRTModel(tmp_path / "selective" / "mobile" / "model.tflite").interpreter
    benchmark.pedantic(interpreter.invoke, rounds=200, iterations=10, warmup_rounds=10)  # the mixed model's invoke()
    benchmark.extra_info.update(
        table=table,
        stage_times=times,
        kept={t: [k["tensor"].split(";")[0] for k in layers[t]["selective"]["kept"]] for t in layers},
    )
    print()
    for key, row in table.items():
        print(
            f"{key:<18} drop {row['drop_points']:7.2f} points  {row['size_bytes']:>7,} bytes  "
            f"p50 {row['p50_ms']:.4f} ms"
            f"  arena {row['arena_bytes'] or '-'}  {'passed' if row['passed'] else 'FAILED'}"
        )
    print(f"stage times (selective build): {times}")
    for target in ("mobile", "mcu"):
        assert not table[f"int8/{target}"]["passed"], "the outlier model should fail plain int8; the benchmark is void"
        assert table[f"selective/{target}"]["passed"]
        assert layers[target]["top"][0]["tensor"].startswith("sequential/conv2d/")
    assert layers["mobile"]["selective"]["weighted_layers"] <= 2
    assert table["selective/mobile"]["size_bytes"] <= 1.3 * table["int8/mobile"]["size_bytes"]
