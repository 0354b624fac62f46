"""Knowledge distillation (Hinton et al. 2015): train a student on the teacher's softened outputs.

Modules: `loss` (the loss with T^2 scaling, NumPy reference and TF; the logits of softmax models),
`students` (width:F copies, pruned or given students, shape checks), `oracle` (augmented views and
unlabelled inputs labelled by the teacher), `core` (the pass, `distill`) and `command` (`edgebuild
distill`: splits, labels-only baseline, gap closure, files). The core reaches it through
`edgebuild.converters`' interface. See docs/distillation.md for the defaults and the grid that chose them.
"""

from .command import BASELINES, distill_files, gap_closure, labels_only_baseline, load_splits
from .core import (
    DEFAULT_ALPHA,
    DEFAULT_AUGMENT,
    DEFAULT_TEMPERATURE,
    DistillationOutcome,
    augmentation_of,
    distill,
)
from .loss import (
    LOG_EPSILON,
    distillation_loss,
    distillation_loss_reference,
    logits_view,
    masked_distillation_loss,
)
from .oracle import AUGMENT_KINDS, Augmentation, load_unlabelled
from .students import check_compatible, load_keras, make_student

__all__ = [
    "AUGMENT_KINDS",
    "BASELINES",
    "DEFAULT_ALPHA",
    "DEFAULT_AUGMENT",
    "DEFAULT_TEMPERATURE",
    "LOG_EPSILON",
    "Augmentation",
    "DistillationOutcome",
    "augmentation_of",
    "check_compatible",
    "distill",
    "distill_files",
    "distillation_loss",
    "distillation_loss_reference",
    "gap_closure",
    "labels_only_baseline",
    "load_keras",
    "load_splits",
    "load_unlabelled",
    "logits_view",
    "make_student",
    "masked_distillation_loss",
]
