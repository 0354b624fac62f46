"""Per-layer quantization error (issue 15) without TensorFlow: metrics, causes, plan, profile, rendering."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgebuild.errors import UnsupportedError
from edgebuild.plan import make_plan
from edgebuild.profiles import resolve
from edgebuild.quant_debug import diagnose
from edgebuild.quant_debug.metrics import PairStats
from edgebuild.quant_debug.render import layers_markdown, layers_text, short_name


def _quantize(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(x / scale), 0, 255) * scale


def _outlier_tensor(rng: np.random.Generator, outlier: float) -> np.ndarray:
    """8 channels of ReLU-like activations in [0, 1]; channel 0 scaled by `outlier`."""
    x = rng.random((4, 10, 10, 8))
    x[..., 0] *= outlier
    return x


def test_channel_snr_reveals_what_tensor_snr_hides() -> None:
    rng = np.random.default_rng(0)
    x = _outlier_tensor(rng, 3000.0)
    stats = PairStats(scale=x.max() / 255)
    stats.add(x, _quantize(x, x.max() / 255))
    metrics = stats.finish()
    assert metrics["snr_db"] > 35  # the wide channel carries the power: the tensor looks fine
    assert metrics["channel_snr_db"] < 5  # the median channel is rounded to almost nothing
    assert metrics["rmse_steps"] < 0.5  # and each value is still within half a step
    assert metrics["cosine"] > 0.999


def test_exact_pair_reports_no_error() -> None:
    x = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    stats = PairStats(scale=1.0)
    stats.add(x, x.copy())
    metrics = stats.finish()
    assert metrics["snr_db"] is None and metrics["channel_snr_db"] is None and metrics["rmse_steps"] == 0.0


def test_outlier_reason_names_the_channel_and_levels() -> None:
    rng = np.random.default_rng(1)
    x = _outlier_tensor(rng, 3000.0)
    scale = x.max() / 255
    stats = PairStats(scale=scale, qrange=(0.0, x.max()))
    stats.add(x, _quantize(x, scale))
    reasons = diagnose.reasons({"op": "CONV_2D", "scale": scale}, stats.range_facts(), None, 200)
    assert [r["kind"] for r in reasons] == ["outlier_range"]
    assert "channel 0 of 8" in reasons[0]["text"] and "quantization steps" in reasons[0]["text"]


def test_well_behaved_tensor_has_no_reason() -> None:
    x = np.random.default_rng(2).random((4, 10, 10, 8))
    scale = x.max() / 255
    stats = PairStats(scale=scale, qrange=(0.0, x.max()))
    stats.add(x, _quantize(x, scale))
    assert diagnose.reasons({"op": "CONV_2D", "scale": scale}, stats.range_facts(), None, 200) == []


def test_rare_outlier_values_and_clipping_and_per_tensor_weights() -> None:
    x = np.random.default_rng(3).random((8, 1000))
    x[0, 0] = 500.0  # one value sets the range
    scale = x.max() / 255
    stats = PairStats(scale=scale, qrange=(0.0, 0.5))  # half the values above the calibrated range
    stats.add(x, _quantize(x, scale))
    kinds = [
        r["kind"]
        for r in diagnose.reasons(
            {"op": "FULLY_CONNECTED", "scale": scale},
            stats.range_facts(),
            {"per_tensor": True, "channels": 10, "spread": 40.0},
            20,
        )
    ]
    assert kinds == ["outlier_range", "per_tensor_weights", "calibration"]
    weights = np.ones((10, 5))
    weights[3] *= 50
    facts = diagnose.weight_facts("FULLY_CONNECTED", type("T", (), {"scales": (0.1,)})(), weights)
    assert facts == {"per_tensor": True, "channels": 10, "spread": 50.0}


def _block() -> dict:
    row = {
        "rank": 1,
        "op": "CONV_2D",
        "tensor": "seq/conv2d/Relu;seq/conv2d/BiasAdd",
        "shape": [1, 30, 30, 8],
        "scale": 6.23,
        "added_snr_db": 0.0,
        "snr_db": 40.3,
        "channel_snr_db": 0.0,
        "rmse_steps": 0.17,
        "cosine": 1.0,
        "reasons": ["outlier-dominated activation range: channel 0 ..."],
        "reason_kinds": ["outlier_range"],
    }
    return {
        "top": [
            row,
            {**row, "rank": 2, "op": "MAX_POOL_2D", "tensor": "seq/pool", "added_snr_db": None, "reasons": []},
        ],
        "worst": {"tensor": row["tensor"], "op": "CONV_2D", "added_snr_db": 0.0, "reasons": row["reasons"]},
        "samples": 100,
        "calibration_samples": 200,
        "seconds": {"quantize": 0.1, "run": 1.0},
        "per_layer": [
            {
                "layer": short_name(row["tensor"]),
                "tensor": row["tensor"],
                "op": "CONV_2D",
                "snr_db": 40.3,
                "added_snr_db": 0.0,
            }
        ],
    }


def test_markdown_and_text_show_the_ranked_table_with_causes() -> None:
    md = "\n".join(layers_markdown(_block()))
    assert "## Per-layer quantization error" in md
    assert "| 1 | CONV_2D | seq/conv2d/Relu | 1x30x30x8 | 6.23 | 0.0 dB |" in md
    assert "| exact |" in md and "outlier-dominated" in md
    text = layers_text(_block())
    assert text.splitlines()[0].startswith("CONV_2D seq/conv2d/Relu adds the most error")
    assert layers_markdown(None) == [] and short_name("a/b;a/c") == "a/b"


def test_report_html_draws_added_error_from_the_layers_block() -> None:
    from edgebuild.report_html import per_layer_errors

    metric, unit, rows = per_layer_errors({"layers": _block()})
    assert (metric, unit, rows) == ("added_snr_db", " dB", [("seq/conv2d/Relu", 0.0)])


def test_plan_runs_layers_after_validate_for_ptq_int8_with_data() -> None:
    stages = [s.name for s in make_plan(resolve("mcu", []), has_data=True, random_calibration=False).stages]
    assert stages[stages.index("validate") + 1] == "layers"
    for profile, data in (
        (resolve("mobile", []), True),
        (resolve("mcu", ["layers.enabled=false"]), True),
        (resolve("mcu", []), False),
    ):
        assert "layers" not in [s.name for s in make_plan(profile, has_data=data, random_calibration=True).stages]
    auto = resolve("mobile", ["quantization.scheme=int8", "quantization.selective=auto"])
    plan = make_plan(auto, has_data=True, random_calibration=False)
    assert "keep the worst layers" in next(s.what for s in plan.stages if s.name == "layers")
    with pytest.raises(UnsupportedError, match="selective precision"):
        make_plan(resolve("mobile", ["quantization.selective=auto"]), has_data=True, random_calibration=False)


def test_profile_fields() -> None:
    profile = resolve("mcu", ["layers.top=3", "layers.samples=20", 'quantization.keep=["conv2d/"]'])
    assert (profile.layers.enabled, profile.layers.top, profile.layers.samples) == (True, 3, 20)
    assert profile.quantization.keep == ["conv2d/"] and profile.quantization.selective == "off"


def test_debug_quant_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from edgebuild.cli.main import main; main(['debug-quant', '--help']); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--target" in out and out.strip().endswith("False")


def test_calibration_notes_flag_a_set_unlike_the_validation_data() -> None:
    from edgebuild.quant_debug.analysis import calibration_notes

    rows = [{"tensor": "a/conv;a/bias", "range": {"clipped_fraction": 0.04}}, {"tensor": "b", "range": {}}]
    unlike, few = calibration_notes(rows, 20)
    assert "1 layer(s) (up to 4.0% of the values of a/conv)" in unlike and "unlike the validation set" in unlike
    assert "20 samples" in few
    assert calibration_notes([{"tensor": "b", "range": {"clipped_fraction": 0.0}}], 200) == []
