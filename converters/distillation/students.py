"""Students: the structurally pruned model, a user-given model, or a width-scaled copy of the teacher.

`"width:0.5"`: every prunable layer keeps half its channels, freshly initialized (the pruning surgery with
`copy_weights=False`). A student's input and output shapes must equal the teacher's.
"""

from __future__ import annotations

import re
from typing import Any

from edgebuild.errors import ModelError, ProfileError

_WIDTH = re.compile(r"\s*width\s*:\s*([0-9]*\.?[0-9]+)\s*")


def make_student(teacher: Any, spec: Any, pruned: Any = None, round_to: int = 1) -> tuple[Any, str]:
    """(student model, description) for `spec`: a tf_keras model, "pruned", "width:F", or a model path."""
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    if isinstance(spec, keras2.Model):
        student, what = spec, f"given model {spec.name}"
    elif spec in (None, "pruned"):
        if pruned is None:
            raise ProfileError(
                "distillation.student = 'pruned' needs structured pruning ([pruning] kind = "
                "'structured'); set kind, or give a student model or 'width:0.5'."
            )
        student, what = pruned, "the structurally pruned model"
    elif isinstance(spec, str) and (match := _WIDTH.fullmatch(spec)):
        factor = float(match.group(1))
        if not 0.0 < factor <= 1.0:
            raise ProfileError(
                f"distillation.student = {spec!r}: the width factor must be in (0, 1], e.g. "
                "'width:0.5' keeps half the channels of every prunable layer."
            )
        from edgebuild.converters.pruning import PruningOptions, prune_structured

        options = PruningOptions(ratio=min(0.999, 1.0 - factor), round_to=round_to)
        student = prune_structured(teacher, options, copy_weights=False).model
        what = f"a width x{factor:g} copy of the teacher (fresh weights)"
    elif isinstance(spec, str):
        student, what = load_keras(spec), f"student model {spec}"
    else:
        raise ProfileError(
            f"distillation.student = {spec!r} is not understood; use 'pruned', 'width:0.5' or a "
            "path to a .keras/.h5 model."
        )
    check_compatible(teacher, student)
    return student, what


def load_keras(path: Any) -> Any:
    """A tf_keras model from a path (Keras 3 files through the bridge)."""
    from pathlib import Path

    from edgebuild.converters.qat import model_for_training
    from edgebuild.model import load_model

    return model_for_training(load_model(Path(path)))[0]


def check_compatible(teacher: Any, student: Any) -> None:
    """Same input shape and same output shape, else a ModelError naming both."""

    def shape(tensors: Any) -> tuple:
        return tuple(tuple(t.shape[1:]) for t in tensors)

    if len(student.outputs) != 1 or len(teacher.outputs) != 1:
        raise ModelError(
            f"Distillation takes single-output models; the teacher has {len(teacher.outputs)} "
            f"outputs and the student {len(student.outputs)}."
        )
    if shape(student.outputs) != shape(teacher.outputs):
        raise ModelError(
            f"The student's output shape {_text(student.outputs[0].shape)} differs from the teacher's "
            f"{_text(teacher.outputs[0].shape)}: distillation matches the two outputs class by class, so the "
            "student must predict the same classes. Give it the teacher's output layer size."
        )
    if shape(student.inputs) != shape(teacher.inputs):
        raise ModelError(
            f"The student's input shape {_text(student.inputs[0].shape)} differs from the teacher's "
            f"{_text(teacher.inputs[0].shape)}; both must read the same samples."
        )


def _text(shape: Any) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
