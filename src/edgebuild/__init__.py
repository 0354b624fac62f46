"""edgebuild: turn a trained TensorFlow/Keras model into validated artifacts for edge hardware.

The Python API (see `edgebuild.api`): `edgebuild.build`, `edgebuild.validate`, `edgebuild.bench`,
`edgebuild.carray`, `edgebuild.resolve_profile`, and `edgebuild.keras.BudgetCallback`. Everything is
imported on first use, so `import edgebuild` stays fast and never imports TensorFlow.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("build", "validate", "bench", "carray", "resolve_profile", "BuildResult", "TargetBuild", "Report")
__all__ = [
    "BuildResult",
    "Report",
    "TargetBuild",
    "__version__",
    "bench",
    "build",
    "carray",
    "keras",
    "resolve_profile",
    "validate",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from edgebuild import keras
    from edgebuild.api import BuildResult, Report, TargetBuild, bench, build, carray, resolve_profile, validate


def __getattr__(name: str) -> Any:
    if name in _API:
        from edgebuild import api

        return getattr(api, name)
    if name == "keras":
        import importlib

        return importlib.import_module("edgebuild.keras")
    raise AttributeError(f"module 'edgebuild' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """`edgebuild.bench` is the API function, although a submodule `edgebuild/bench.py` exists.

    Importing a submodule sets it as an attribute of its package; that would replace the function. The
    submodule stays importable (`from edgebuild.bench import benchmark` reads sys.modules); only the
    package attribute keeps meaning the API.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
