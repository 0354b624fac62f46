"""The script a user writes by following the TensorFlow Lite docs: the baseline edgebuild must beat.

One TFLiteConverter per target, a representative-dataset generator, files written. No validation,
no benchmark, no cache. Usage: python peer_recipe.py MODEL.keras DATA.npz OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(model_path: str, data_path: str, out_dir: str) -> None:
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(model_path, compile=False)
    x = np.load(data_path)["x"].astype(np.float32)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def representative_dataset():
        for sample in x[:200]:
            yield [sample[None, ...]]

    # mobile: float16 weights
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    (out / "mobile.tflite").write_bytes(converter.convert())

    # Edge TPU and microcontroller: full integer with uint8 / int8 I/O
    for name, io_type in (("edgetpu", tf.uint8), ("mcu", tf.int8)):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        (out / f"{name}.tflite").write_bytes(converter.convert())


if __name__ == "__main__":
    main(*sys.argv[1:4])
