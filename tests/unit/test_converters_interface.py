"""The converters <-> core boundary (README "Architecture"): the core calls the passes only through
`edgebuild.converters`' interface, and the passes use only the core's lower layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the passes may import from the core: errors, profiles, data, model, and three leaf helpers that
# themselves import nothing but errors (_tf: the one TensorFlow import; native_output: fd capture;
# artifact: the flatbuffer reader).
LOWER_LAYERS = {"errors", "profiles", "data", "model", "_tf", "native_output", "artifact"}


def _edgebuild_imports(path: Path) -> list[str]:
    """Every `edgebuild.*` module a file imports (relative imports inside converters/ resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # inside converters/: relative to the package
                names.append("edgebuild.converters")
            elif node.module:
                names.extend(
                    f"{node.module}.{a.name}" if node.module in ("edgebuild", "edgebuild.converters") else node.module
                    for a in node.names
                )
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return [n for n in names if n == "edgebuild" or n.startswith("edgebuild.")]


def test_interface_lists_every_name_once() -> None:
    import edgebuild.converters as converters

    assert converters.__all__ == sorted(converters._INTERFACE)
    for name in converters.__all__:
        assert callable(getattr(converters, name)), name


def test_importing_the_interface_loads_no_pass_and_no_tensorflow() -> None:
    code = (
        "import sys, edgebuild.converters as c; "
        "print(sorted(m for m in sys.modules if m.startswith('edgebuild.converters.')), 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] False"


def test_the_core_calls_the_passes_only_through_the_interface() -> None:
    offenders = []
    for path in sorted((ROOT / "src" / "edgebuild").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for name in _edgebuild_imports(path):
            if name.startswith("edgebuild.converters.") and name.split(".")[2] not in _interface_names():
                offenders.append(f"{rel}: {name}")
    assert offenders == [], "import these from edgebuild.converters (add them to its interface if new)"


def test_the_passes_use_only_the_lower_layers() -> None:
    offenders = []
    for path in sorted((ROOT / "converters").rglob("*.py")):
        for name in _edgebuild_imports(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] != "converters" and parts[1] not in LOWER_LAYERS:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def _interface_names() -> set[str]:
    import edgebuild.converters as converters

    return set(converters.__all__)
