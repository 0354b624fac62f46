"""Mixed-precision training, and getting back to a float32 model the converter accepts.

`training.mixed_precision`: "auto" turns on `mixed_float16` only when a GPU is
visible (on a CPU it is slower, so it stays off); "float16" / "bfloat16" force
`mixed_float16` / `mixed_bfloat16`; "off" trains in float32.

A model whose layers compute in float16 does not convert to TFLite (the
converter fails with "'tf.Conv2D' op is neither a custom op nor a flex op").
So training runs on a mixed twin (`to_policy`) and the trained weights go back
into a float32 model (`to_float32`) before conversion. Variables stay float32
under a mixed policy, so weights copy across exactly.
"""

from __future__ import annotations

from typing import Any

from edgebuild.errors import UnsupportedError

POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def gpu_visible() -> bool:
    from edgebuild._tf import tf

    return bool(tf().config.list_physical_devices("GPU"))


def policy_for(setting: str) -> str | None:
    """The Keras dtype policy name for a `training.mixed_precision` setting, or None for float32."""
    if setting == "off":
        return None
    if setting == "auto":
        return "mixed_float16" if gpu_visible() else None
    if setting in POLICIES:
        return POLICIES[setting]
    raise ValueError(f"mixed_precision must be auto, float16, bfloat16 or off, not {setting!r}")


def to_policy(model: Any, policy: str) -> Any:
    """A copy of `model` whose layers compute under `policy` (the last layer stays float32), same weights."""
    return _rebuild(model, policy)


def to_float32(model: Any) -> Any:
    """A float32 copy of `model` with its trained weights: what the TFLite converter needs."""
    if _is_float32(model):
        return model
    return _rebuild(model, "float32")


def _is_float32(model: Any) -> bool:
    return all(_policy_name(layer) in ("float32", None) for layer in model.layers)


def _policy_name(layer: Any) -> str | None:
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "name", None)


def _rebuild(model: Any, policy: str) -> Any:
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    last = model.layers[-1].name

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if not isinstance(layer, keras2.layers.InputLayer):
            config["dtype"] = "float32" if layer.name == last else policy
        return layer.__class__.from_config(config)

    try:
        rebuilt = keras2.models.clone_model(model, clone_function=clone)
    except Exception as exc:  # clone_model needs a functional or Sequential model of configurable layers
        raise UnsupportedError(
            f"Cannot rebuild model '{model.name}' under the {policy} policy ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Use --set training.mixed_precision=off."
        ) from None
    rebuilt.set_weights(model.get_weights())
    return rebuilt
