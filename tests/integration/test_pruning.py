"""Structured pruning surgery and TFMOT sparsity on small real models.

Exactness: when the channels to remove contribute nothing (their filters and
BatchNorm parameters are zero, so they output exact zeros), the rebuilt
narrower model must compute the same function as the original.
"""

from __future__ import annotations

import digits
import numpy as np
import pytest

from edgebuild.errors import ProfileError, UnsupportedError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras2():
    from edgebuild._tf import tf_keras

    return tf_keras()


def _sample(n: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 1), dtype=np.float32)


def _randomize_bn(model) -> None:
    """Non-trivial BatchNorm statistics, so the test would notice a misaligned BN parameter."""
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )


def _zero(model, producer: str, channels: list[int], bns: list[str] = ()) -> None:
    """Make `channels` of `producer` output exact zeros: filters, bias and each listed BN's gamma/beta."""
    layer = model.get_layer(producer)
    weights = layer.get_weights()
    weights[0][..., channels] = 0.0
    if len(weights) > 1:
        weights[1][channels] = 0.0
    layer.set_weights(weights)
    for name in bns:
        bn = model.get_layer(name)
        gamma, beta, mean, var = bn.get_weights()
        gamma[channels] = 0.0
        beta[channels] = 0.0
        bn.set_weights([gamma, beta, mean, var])


def _layers(model, kind: str) -> list[str]:
    return [layer.name for layer in model.layers if type(layer).__name__ == kind]


def _convert(model) -> bytes:
    from edgebuild._tf import tf

    return tf().lite.TFLiteConverter.from_keras_model(model).convert()


def test_sequential_cnn_with_flatten_is_exact_when_removed_filters_are_zero(keras2) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured

    keras2.utils.set_random_seed(0)
    model = digits.build_cnn(keras2)
    conv1, conv2 = _layers(model, "Conv2D")
    (dense,) = _layers(model, "Dense")  # layer names depend on what the session built before
    removed1, removed2 = [1, 4, 6, 7], [0, 2, 3, 5, 9, 11, 12, 15]
    _zero(model, conv1, removed1)
    _zero(model, conv2, removed2)
    result = prune_structured(model, PruningOptions(ratio=0.5, criterion="l1"))
    assert result.channels == {conv1: (8, 4), conv2: (16, 8), dense: (10, 10)}
    kept2 = [c for c in range(16) if c not in removed2]
    new_kernel = result.model.get_layer(conv2).get_weights()[0]
    old_kernel = model.get_layer(conv2).get_weights()[0]
    kept1 = [c for c in range(8) if c not in removed1]
    np.testing.assert_array_equal(new_kernel, old_kernel[:, :, kept1][..., kept2])
    # Dense after Flatten: rows are (position, channel) pairs; the kept rows are the kept channels at every position
    dense_old = model.get_layer(dense).get_weights()[0].reshape(6 * 6, 16, 10)
    np.testing.assert_array_equal(
        result.model.get_layer(dense).get_weights()[0], dense_old[:, kept2, :].reshape(-1, 10)
    )
    x = _sample()
    np.testing.assert_allclose(result.model(x).numpy(), model(x).numpy(), atol=1e-5)
    assert result.after["macs"] < result.before["macs"] / 2


def test_residual_model_is_exact_and_its_add_group_shares_one_mask(keras2) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured

    keras2.utils.set_random_seed(0)
    model = digits.build_residual(keras2)
    _randomize_bn(model)
    stem, project, expand1, expand2 = _layers(model, "Conv2D")
    bn = _layers(model, "BatchNormalization")  # order: stem, dw1, project, dw2, expand1, dw3, expand2
    tied = [0, 2, 5, 6, 9, 10, 13, 14]  # the residual Add ties stem and project channel by channel
    _zero(model, stem, tied, [bn[0], bn[1]])
    _zero(model, project, tied, [bn[2], bn[3]])
    removed32 = list(range(0, 32, 2))
    _zero(model, expand1, removed32, [bn[4], bn[5]])
    removed64 = list(range(1, 64, 2))
    _zero(model, expand2, removed64, [bn[6]])
    x = _sample()
    reference = model(x).numpy()
    result = prune_structured(model, PruningOptions(ratio=0.5))
    assert [g.layers for g in result.groups if len(g.layers) > 1] == [(stem, project)]
    assert result.channels[stem] == result.channels[project] == (16, 8)
    keep = [c for c in range(16) if c not in tied]
    old_stem, old_project = model.get_layer(stem).get_weights()[0], model.get_layer(project).get_weights()[0]
    np.testing.assert_array_equal(result.model.get_layer(stem).get_weights()[0], old_stem[..., keep])
    np.testing.assert_array_equal(result.model.get_layer(project).get_weights()[0], old_project[:, :, keep][..., keep])
    dw = result.model.get_layer(_layers(model, "DepthwiseConv2D")[0]).get_weights()[0]
    assert dw.shape[2] == 8
    np.testing.assert_allclose(result.model(x).numpy(), reference, atol=1e-5)
    assert result.mac_reduction >= 2.0
    report = result.report()
    assert report["groups"] == [{"layers": [stem, project], "channels": 16, "kept": 8, "ratio": 0.5}]


def test_bn_scale_criterion_ranks_by_gamma(keras2) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured

    keras2.utils.set_random_seed(0)
    model = digits.build_residual(keras2)
    _randomize_bn(model)
    bn_expand2 = _layers(model, "BatchNormalization")[6]
    gamma, beta, mean, var = model.get_layer(bn_expand2).get_weights()
    gamma[:48] = 1e-3  # the 48 lowest gammas go first
    model.get_layer(bn_expand2).set_weights([gamma, beta, mean, var])
    result = prune_structured(model, PruningOptions(ratio=0.5, criterion="bn_scale"))
    expand2 = _layers(model, "Conv2D")[-1]
    kept_gamma = result.model.get_layer(bn_expand2).get_weights()[0]
    assert result.channels[expand2] == (64, 32)
    assert len(kept_gamma) == 32 and np.isin(gamma[48:], kept_gamma).all()  # every large gamma survives
    assert result.criterion_fallback == []


@pytest.mark.parametrize(
    "ratio, round_to, expected",
    [
        (0.5, 1, {16: 8, 32: 16, 64: 32}),
        (0.3, 1, {16: 12, 32: 23, 64: 45}),
        (0.6, 8, {16: 8, 32: 16, 64: 24}),
        (0.9, 8, {16: 8, 32: 8, 64: 8}),
    ],
)
def test_channel_counts_follow_ratio_and_rounding(keras2, ratio, round_to, expected) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured

    model = digits.build_residual(keras2)
    result = prune_structured(model, PruningOptions(ratio=ratio, round_to=round_to))
    for name, (before, after) in result.channels.items():
        assert after == (10 if before == 10 else expected[before]), name


def test_min_channels_and_layer_ratios(keras2) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured

    model = digits.build_residual(keras2)
    expand1, expand2 = _layers(model, "Conv2D")[2:]
    result = prune_structured(
        model, PruningOptions(ratio=0.9, min_channels=12, layer_ratios={expand1: 0.0, expand2: 0.25})
    )
    assert result.channels[expand1] == (32, 32)
    assert result.channels[expand2] == (64, 48)
    assert result.channels[_layers(model, "Conv2D")[0]] == (16, 12)


def _add_concat_model(keras2):
    layers = keras2.layers
    inputs = keras2.Input((32, 32, 1))
    a = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, strides=2, padding="same")(inputs)))
    b = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    c = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    merged = layers.Concatenate()([layers.Add()([a, b]), c])  # 16 channels: (a+b) then c
    d = layers.Conv2D(16, 1)(merged)
    x = layers.Add()([merged, d])  # ties d[0:8] to a and b, d[8:16] to c: offset masks
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(24, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10)(x)
    return keras2.Model(inputs, outputs)


def test_add_and_concatenate_rebuild_exactly_and_convert(keras2) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured
    from edgebuild.runtime import LiteRTModel

    keras2.utils.set_random_seed(0)
    model = _add_concat_model(keras2)
    _randomize_bn(model)
    conv_a, conv_b, conv_c, conv_d, conv_e = _layers(model, "Conv2D")
    gone_ab, gone_c = [1, 2, 5, 7], [0, 3, 4, 6]
    _zero(model, conv_a, gone_ab, [_layers(model, "BatchNormalization")[0]])
    _zero(model, conv_b, gone_ab)
    _zero(model, conv_c, gone_c)
    _zero(model, conv_d, gone_ab + [8 + c for c in gone_c])
    _zero(model, conv_e, list(range(12)))
    x = _sample()
    result = prune_structured(model, PruningOptions(ratio=0.5))
    groups = [set(g.layers) for g in result.groups if len(g.layers) > 1]
    assert groups == [{conv_a, conv_b, conv_c, conv_d}]
    assert [result.channels[n] for n in (conv_a, conv_b, conv_c, conv_d, conv_e)] == [
        (8, 4),
        (8, 4),
        (8, 4),
        (16, 8),
        (24, 12),
    ]
    np.testing.assert_allclose(result.model(x).numpy(), model(x).numpy(), atol=1e-5)
    blob = _convert(result.model)
    lite = LiteRTModel(blob).predict(x)[0]
    np.testing.assert_allclose(lite, model(x).numpy(), atol=1e-4)


def test_pruned_cnn_fine_tunes_with_early_stopping(trained_cnn, digits_data) -> None:
    from edgebuild.converters.pruning import run_structured_pruning
    from edgebuild.profiles.schema import PruningSection, TrainingSection

    d, model = digits_data, trained_cnn
    outcome = run_structured_pruning(
        model,
        (d.train_x[:900], d.train_y[:900]),
        (d.train_x[900:1200], d.train_y[900:1200]),
        PruningSection(kind="structured", ratio=0.5, recovery="fine-tune"),
        TrainingSection(epochs=6, learning_rate=2e-3, early_stopping=2),
    )
    report = outcome.report()
    assert report["recovery"] == "fine-tune" and "distillation_fallback" not in report
    assert report["after"]["macs"] * 2 <= report["before"]["macs"]
    assert report["accuracy"]["recovered"] >= report["accuracy"]["pruned"]
    assert report["accuracy"]["recovered"] >= report["accuracy"]["original"] - 10
    assert report["training"]["epochs_run"] >= 1


def test_auto_recovery_distills_when_fine_tuning_falls_short(trained_cnn, digits_data) -> None:
    """ "auto": fine-tuning that leaves a gap on the early-stopping split is followed by distillation from the
    unpruned model; whichever scores higher there is kept. Report accuracy is on separate evaluation samples."""
    from edgebuild.converters.pruning import AUTO_DISTILL_GAP, run_structured_pruning, top1
    from edgebuild.profiles.schema import PruningSection, TrainingSection

    d, model = digits_data, trained_cnn
    held_out, evaluation = (d.train_x[900:1200], d.train_y[900:1200]), (d.test_x, d.test_y)
    outcome = run_structured_pruning(  # one epoch at a tiny rate: fine-tuning cannot close the gap
        model,
        (d.train_x[:900], d.train_y[:900]),
        held_out,
        PruningSection(kind="structured", ratio=0.5),
        TrainingSection(epochs=1, learning_rate=1e-6),
        evaluation=evaluation,
    )
    report = outcome.report()
    fallback = report["distillation_fallback"]
    scores = fallback["early_stopping_top1"]
    assert scores["original"] - scores["fine-tune"] > AUTO_DISTILL_GAP
    assert fallback["kept"] == ("distill" if scores["distill"] > scores["fine-tune"] else "fine-tune")
    assert report["recovery"] == ("fine-tune + distill" if fallback["kept"] == "distill" else "fine-tune")
    assert top1(outcome.model, held_out) == max(scores["fine-tune"], scores["distill"])  # the kept weights
    assert fallback["training"]["epochs_run"] == 1 and fallback["temperature"] == 4.0
    assert report["accuracy"]["samples"] == len(d.test_x)
    assert report["accuracy"]["recovered"] == top1(outcome.model, evaluation)


def test_keras3_model_prunes_through_the_bridge(keras3_models, digits_data) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured
    from edgebuild.converters.qat import model_for_training
    from edgebuild.model import load_model

    tf_model, _ = model_for_training(load_model(keras3_models.paths["residual"]), digits_data.test_x[:8])
    result = prune_structured(tf_model, PruningOptions(ratio=0.5, round_to=8))
    assert result.mac_reduction >= 2.0
    assert set(result.channels.values()) == {(16, 8), (32, 16), (64, 32), (10, 10)}


def test_bad_inputs_are_clear_errors(keras2) -> None:
    from edgebuild.converters.pruning import PruningOptions, prune_structured

    for ratio in (1.0, -0.1, 1.5):
        with pytest.raises(ProfileError, match=r"pruning.ratio = .* out of range.*0 \(keep all\)"):
            PruningOptions(ratio=ratio)
    layers = keras2.layers
    inputs = keras2.Input((32, 32, 1))
    x = layers.Conv2D(8, 3)(inputs)
    x = layers.LayerNormalization(name="odd_norm")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras2.Model(inputs, layers.Dense(10)(x))
    with pytest.raises(UnsupportedError, match=r"does not know layer 'odd_norm' of type LayerNormalization"):
        prune_structured(model)
    grouped = keras2.Sequential(
        [keras2.Input((8, 8, 4)), layers.Conv2D(8, 3, groups=2, name="g"), layers.Flatten(), layers.Dense(2)]
    )
    with pytest.raises(UnsupportedError, match=r"'g'.*grouped convolution"):
        prune_structured(grouped)


# --------------------------------------------------------------------------- sparsity (TFMOT)


@pytest.fixture(scope="module")
def trained_cnn(keras2, digits_data):
    keras2.utils.set_random_seed(0)
    d = digits_data
    return digits.train(digits.build_cnn(keras2), d.train_x[:900], d.train_y[:900], epochs=4)


def _sparse(model, digits_data, **options):
    from edgebuild.converters.sparsity import SparsityOptions, run_sparsity
    from edgebuild.profiles.schema import TrainingSection

    d = digits_data
    return run_sparsity(
        model,
        (d.train_x[:600], d.train_y[:600]),
        (d.train_x[900:1100], d.train_y[900:1100]),
        SparsityOptions(**options),
        TrainingSection(epochs=2, learning_rate=5e-4),
    )


def test_unstructured_sparsity_reaches_its_target_and_compresses(trained_cnn, digits_data) -> None:
    before = [w.copy() for w in trained_cnn.get_weights()]
    outcome = _sparse(trained_cnn, digits_data, kind="unstructured", target_sparsity=0.7, schedule="polynomial")
    report = outcome.report()
    assert report["layers"] == ["conv2d", "conv2d_1", "dense"] or len(report["layers"]) == 3
    for name in report["layers"]:
        assert report["sparsity"][f"{name}/kernel"] == pytest.approx(0.7, abs=0.01)
    sizes = report["sizes"]
    assert sizes["sparse_tflite_bytes"] == pytest.approx(sizes["dense_tflite_bytes"], rel=0.01)  # same shapes
    assert sizes["sparse_gzip_bytes"] < 0.8 * sizes["dense_gzip_bytes"]
    assert "not claimed" in report["speedup"]
    assert all(
        (a == b).all() for a, b in zip(before, trained_cnn.get_weights(), strict=True)
    )  # the original is untouched
    assert not any("prune_low_magnitude" in layer.name for layer in outcome.model.layers)  # stripped


def m_by_n_holds(kernel: np.ndarray, m: int = 2, n: int = 4) -> bool:
    """True when every block of N consecutive input weights (per output) has at most M non-zeros."""
    k = np.moveaxis(np.asarray(kernel), -1, 0).reshape(kernel.shape[-1], -1)  # outputs x inputs
    if k.shape[1] % n:
        return False
    return bool(((k.reshape(k.shape[0], -1, n) != 0).sum(axis=-1) <= m).all())


def test_two_by_four_sparsity_holds_the_pattern(trained_cnn, digits_data) -> None:
    outcome = _sparse(trained_cnn, digits_data, kind="m_by_n")
    assert outcome.skipped == [trained_cnn.layers[0].name]  # 3x3x1 = 9 inputs per filter: not a multiple of 4
    for layer in outcome.model.layers:
        if layer.name in outcome.layers:
            kernel = layer.get_weights()[0]
            assert m_by_n_holds(kernel, 2, 4), layer.name
            assert (kernel == 0).mean() == pytest.approx(0.5, abs=0.01)


def test_sparsity_options_are_checked() -> None:
    from edgebuild.converters.sparsity import SparsityOptions

    with pytest.raises(ProfileError, match=r"target_sparsity = 1.0 is out of range"):
        SparsityOptions(target_sparsity=1.0)
    with pytest.raises(ProfileError, match=r"m_by_n = 4:4"):
        SparsityOptions(kind="m_by_n", m=4, n=4)
