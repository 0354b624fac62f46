"""Knowledge distillation; the code lives in `edgebuild.converters.distillation` (this name stays for imports)."""

from .distillation import *  # noqa: F403
from .distillation import __all__  # noqa: F401
