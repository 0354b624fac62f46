"""QAT recovers what PTQ loses on a model with wide activation ranges.

The model: the digits CNN trained in float, then made hostile to per-tensor
int8 activations without changing its float function. One filter of the first
convolution is scaled up by OUTLIER (its bias too) and the matching input
weights of the second convolution are scaled down by the same factor; ReLU is
positively homogeneous, so the float outputs are unchanged, but that channel's
activations are OUTLIER times wider than the others. PTQ must pick one int8
scale for the whole tensor, so the other 7 channels are left with a handful of
levels. QAT fine-tunes with the quantizers in the loop and learns weights that
live with them.

Reports float / PTQ / QAT accuracy on the same held-out digits and asserts
QAT > PTQ and that QAT recovers most of PTQ's loss. Early stopping watches
its own 200 digits; accuracy is measured on the remaining held-out digits.
It takes the `benchmark` fixture (timing the QAT artifact's invoke()) so
`make bench` (`--benchmark-only`) runs it. Run: `make bench` or
`pytest benchmarks/test_qat_recovers.py -s`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import digits

pytestmark = pytest.mark.tf

OUTLIER = 3000.0


def _hostile_cnn(keras2, x, y):
    keras2.utils.set_random_seed(0)
    model = digits.train(digits.build_cnn(keras2), x, y, epochs=5)
    conv1, conv2 = (layer for layer in model.layers if type(layer).__name__ == "Conv2D")
    k1, b1 = conv1.get_weights()
    k2, b2 = conv2.get_weights()
    k1[..., 0] *= OUTLIER
    b1[0] *= OUTLIER
    k2[:, :, 0, :] /= OUTLIER
    conv1.set_weights([k1, b1])
    conv2.set_weights([k2, b2])
    return model


def test_qat_recovers_ptq_loss(benchmark) -> None:
    from edgebuild._tf import tf, tf_keras
    from edgebuild.converters.ptq import convert
    from edgebuild.converters.qat import run_qat
    from edgebuild.profiles.schema import QuantizationSection, TrainingSection
    from edgebuild.runtime import LiteRTModel

    keras2, tensorflow = tf_keras(), tf()
    x, y = digits.load_digits_32(seed=0)
    train, cal, val, test = slice(0, 1000), slice(1000, 1200), slice(1200, 1400), slice(1400, None)
    model = _hostile_cnn(keras2, x[train], y[train])
    float_acc = digits.accuracy(model.predict(x[test], verbose=0), y[test])

    quant = QuantizationSection(scheme="int8", io="int8", calibration_samples=200)
    spec = tensorflow.TensorSpec((1, 32, 32, 1), tensorflow.float32)
    fn = tensorflow.function(lambda t: model(t, training=False), input_signature=[spec]).get_concrete_function()
    started = time.perf_counter()
    ptq_blob = convert(fn, model, quant, x[cal])
    ptq_seconds = time.perf_counter() - started
    ptq_acc = digits.accuracy(LiteRTModel(ptq_blob).predict(x[test])[0], y[test])

    started = time.perf_counter()
    outcome = run_qat(
        model,
        (x[train], y[train]),
        (x[val], y[val]),
        TrainingSection(epochs=4, learning_rate=3e-4, early_stopping=2),
        quant,
        batch=1,
    )
    qat_seconds = time.perf_counter() - started
    qat_acc = digits.accuracy(LiteRTModel(outcome.blob).predict(x[test])[0], y[test])

    interpreter = LiteRTModel(outcome.blob).interpreter
    benchmark.pedantic(interpreter.invoke, rounds=200, iterations=10, warmup_rounds=10)  # the QAT artifact's invoke()
    benchmark.extra_info.update(
        float_top1=float_acc,
        ptq_top1=ptq_acc,
        qat_top1=qat_acc,
        qat_epochs=outcome.training.epochs_run,
        qat_seconds=round(qat_seconds, 1),
    )
    print(
        f"\nfloat {float_acc:.3f}  PTQ {ptq_acc:.3f} ({ptq_seconds:.1f} s)  QAT {qat_acc:.3f} "
        f"({qat_seconds:.1f} s, {outcome.training.epochs_run} epochs)  on {len(x[test])} held-out digits"
    )
    assert ptq_acc < float_acc - 0.03, "the hostile model should cost PTQ accuracy; the benchmark is void"
    assert qat_acc > ptq_acc
    assert float_acc - qat_acc < 0.5 * (float_acc - ptq_acc), "QAT should recover most of PTQ's loss"
