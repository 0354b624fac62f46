"""Conversion and optimization passes (installed as `edgebuild.converters`).

Each pass takes a traced model and profile section and returns a new model or a `.tflite` flatbuffer.
This module is the passes' interface to the core: the stages and CLI commands import what they call
from here (`from edgebuild.converters import convert`), never from the modules behind it. The passes
themselves use only the core's lower layers (errors, profiles, data, model and the leaf helpers _tf,
native_output and artifact); see the README's "Architecture" section.

The names load on first use, so importing the package stays cheap and never imports TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> (module, attribute in that module)
_INTERFACE = {
    # post-training quantization (convert)
    "convert": ("ptq", "convert"),
    "trace_keras": ("ptq", "trace_keras"),
    "dense_quantization_note": ("ptq", "dense_quantization_note"),
    # quantization-aware training (train)
    "model_for_training": ("qat", "model_for_training"),
    "run_qat": ("qat", "run_qat"),
    # the shared fit loop's settings and result
    "recovery_settings": ("train", "recovery_settings"),
    "TrainingResult": ("train", "TrainingResult"),
    # structured pruning and sparsity (prune)
    "run_structured_pruning": ("pruning", "run_structured_pruning"),
    "PruningOptions": ("pruning", "PruningOptions"),
    "prune_file": ("pruning", "prune_file"),
    "run_sparsity": ("sparsity", "run_sparsity"),
    # distillation (distill); exported as run_distillation, the name of the pass rather than its verb
    "run_distillation": ("distillation", "distill"),
    "make_student": ("distillation", "make_student"),
    "load_keras": ("distillation", "load_keras"),
    "distill_files": ("distillation", "distill_files"),
    "Augmentation": ("distillation", "Augmentation"),
}

__all__ = [
    "Augmentation",
    "PruningOptions",
    "TrainingResult",
    "convert",
    "dense_quantization_note",
    "distill_files",
    "load_keras",
    "make_student",
    "model_for_training",
    "prune_file",
    "recovery_settings",
    "run_distillation",
    "run_qat",
    "run_sparsity",
    "run_structured_pruning",
    "trace_keras",
]  # the keys of _INTERFACE (tests/unit/test_converters_interface.py checks)

if TYPE_CHECKING:
    from .distillation import Augmentation, distill_files, load_keras, make_student
    from .distillation import distill as run_distillation
    from .pruning import PruningOptions, prune_file, run_structured_pruning
    from .ptq import convert, dense_quantization_note, trace_keras
    from .qat import model_for_training, run_qat
    from .sparsity import run_sparsity
    from .train import TrainingResult, recovery_settings


def __getattr__(name: str) -> Any:
    if name in _INTERFACE:
        module, attribute = _INTERFACE[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
