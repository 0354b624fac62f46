"""The only door to TensorFlow, tf_keras and Keras 3.

TFMOT needs Keras 2 (`tf_keras`), so `TF_USE_LEGACY_KERAS=1` must be set before
TensorFlow is first imported; doing every import here guarantees that, and
keeps the rest of the package importable (and the CLI fast) without TF.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from types import ModuleType


def _prepare_environment() -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", module="tensorflow")
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tf_keras")


def tf() -> ModuleType:
    import sys

    _prepare_environment()
    if "tensorflow" not in sys.modules:
        from edgebuild.native_output import capture_native

        # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) goes straight to fd 2.
        with capture_native() as startup_log:
            try:
                import tensorflow

                tensorflow.config.list_physical_devices()  # device probing logs CUDA errors on CPU-only hosts
            except BaseException:
                failed = True
            else:
                failed = False
        if failed:
            sys.stderr.write(startup_log[0])
    tensorflow = importlib.import_module("tensorflow")
    tensorflow.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tensorflow


def tf_keras() -> ModuleType:
    tf()
    return importlib.import_module("tf_keras")


def keras3() -> ModuleType:
    tf()
    return importlib.import_module("keras")


def tfmot() -> ModuleType:
    """TensorFlow Model Optimization Toolkit; it works only with Keras 2, so tf_keras comes first."""
    tf_keras()
    return importlib.import_module("tensorflow_model_optimization")
