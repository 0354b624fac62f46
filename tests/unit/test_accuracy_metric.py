"""The accuracy metric fits the model: top-1 for class vectors, closeness to float (SNR) for everything else."""

from __future__ import annotations

import numpy as np

from edgebuild.accuracy import choose_metric, compare, is_probability_vector

rng = np.random.default_rng(0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_probabilities_are_scored_by_top1_without_labels() -> None:
    probs = _softmax(rng.normal(size=(50, 10)))
    assert is_probability_vector(probs)
    assert choose_metric([probs], None) == "top1"
    result = compare([probs], [probs[:, ::-1]], None)
    assert result["metric"] == "top1" and result["agreement"] < 0.5


def test_a_reconstruction_is_not_scored_by_argmax() -> None:
    """The 640-value autoencoder output got 'agreement 67.5%' from an argmax; it must get SNR."""
    recon = rng.normal(size=(40, 640)).astype(np.float32)
    noisy = recon + 0.01 * rng.normal(size=recon.shape)
    result = compare([recon], [noisy], None)
    assert result["metric"] == "snr" and "agreement" not in result
    assert 35 < result["min_snr_db"] < 45
    assert result["outputs"][0]["cosine_similarity"] > 0.999
    assert 0.005 < result["outputs"][0]["relative_error"] < 0.02


def test_labels_make_a_logit_vector_a_classifier_and_regression_stays_snr() -> None:
    logits = rng.normal(size=(30, 5))
    assert choose_metric([logits], None) == "snr"  # logits of unknown meaning, no labels
    assert choose_metric([logits], rng.integers(0, 5, 30)) == "top1"
    sine = rng.normal(size=(30, 1))
    assert choose_metric([sine], rng.normal(size=30)) == "snr"  # one output value is never a class vector
    assert choose_metric([sine], None, "top1") == "top1"  # an explicit choice wins


def test_every_output_is_compared_and_the_worst_decides() -> None:
    boxes, scores = rng.normal(size=(20, 4, 4)), _softmax(rng.normal(size=(20, 3)))
    result = compare([boxes, scores], [boxes + 0.5, scores], None, "snr")
    assert [o["index"] for o in result["outputs"]] == [0, 1]
    assert result["outputs"][1]["snr_db"] is None  # identical
    assert result["min_snr_db"] == result["outputs"][0]["snr_db"] < 10
