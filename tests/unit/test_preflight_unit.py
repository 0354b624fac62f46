"""The preflight's per-target decisions, on stand-in layers (no TensorFlow): who is refused, and who is not."""

from __future__ import annotations

from typing import Any

from edgebuild.checks.preflight import check
from edgebuild.profiles import resolve


def _layer(kind: str, **attrs: Any) -> Any:
    """An object whose class is named like the Keras layer, with the attributes the rules read."""
    return type(kind, (), {"name": attrs.pop("name", kind.lower()), **attrs})()


def gelu() -> Any:
    return "gelu"


gelu.__name__ = "gelu"


class _Model:
    def __init__(self, *layers: Any) -> None:
        self.layers = list(layers)


def _refused(model: Any, *overrides: str) -> dict[str, str]:
    profiles = [resolve(t, list(overrides)) for t in ("mobile", "edgetpu", "mcu", "ethos-u55")]
    return {t: str(e) for t, e in check(model, profiles, "m.h5").items()}


def test_a_gru_loop_is_refused_only_where_int8_calibration_runs() -> None:
    refused = _refused(_Model(_layer("GRU", unroll=False, input_shape=(None, 12, 4))))
    assert set(refused) == {"edgetpu", "mcu", "ethos-u55"}  # float16 mobile runs the WHILE loop
    assert "layer 'gru' (GRU)" in refused["mcu"] and "set unroll=True on the layer (12 time steps" in refused["mcu"]


def test_an_unrolled_gru_is_refused_only_by_an_edge_tpu_that_demands_every_op() -> None:
    model = _Model(_layer("GRU", unroll=True, input_shape=(None, 8, 8)))
    assert set(_refused(model)) == {"edgetpu"}
    assert _refused(model, "edgetpu.min_mapped_fraction=0.5") == {}  # a CPU tail accepted: built and reported


def test_gelu_is_refused_by_tflite_micro_but_not_on_ethos_u_where_vela_may_map_it() -> None:
    refused = _refused(_Model(_layer("Dense", activation=gelu, input_shape=(None, 16))))
    assert set(refused) == {"edgetpu", "mcu"}
    assert "becomes GELU" in refused["mcu"] and "has no kernel" in refused["mcu"]


def test_a_standard_lstm_fuses_and_passes_everywhere_but_a_stateful_one_nowhere() -> None:
    tanh, sigmoid = type("f", (), {})(), type("f", (), {})()
    tanh.__name__, sigmoid.__name__ = "tanh", "sigmoid"
    attrs = {"activation": tanh, "recurrent_activation": sigmoid, "recurrent_dropout": 0, "use_bias": True}
    assert _refused(_Model(_layer("LSTM", unroll=False, **attrs))) == {}
    refused = _refused(_Model(_layer("LSTM", unroll=False, stateful=True, name="streaming", **attrs)))
    assert set(refused) == {"mobile", "edgetpu", "mcu", "ethos-u55"}
    assert all("layer 'streaming' (LSTM): it is stateful" in text for text in refused.values())


def test_nested_models_are_walked_and_a_model_without_keras_layers_is_left_to_the_artifact_checks() -> None:
    inner = _Model(_layer("Conv1D", dilation_rate=(2,), name="dilated"))
    inner.name = "block"
    assert "layer 'dilated' (Conv1D)" in _refused(_Model(inner))["edgetpu"]
    assert check(None, [resolve("mcu", [])], "saved_model/") == {}
