"""`edgebuild doctor`: versions of the stack and the external compilers found."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

PACKAGES = (
    "tensorflow",
    "tensorflow-cpu",
    "tf-keras",
    "keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "tflite-runtime",
    "tflite-micro",
    "ethos-u-vela",
    "pyocd",
    "numpy",
)
TOOLS = {
    "edgetpu_compiler": "Coral Edge TPU compiler (Coral's apt repository, or the Dockerfile)",
    "vela": "Arm Vela (pip install ethos-u-vela)",
    "arm-none-eabi-gcc": "Cortex-M cross compiler (apt-get install gcc-arm-none-eabi)",
    "g++": "host C++ compiler",
    "qemu-system-arm": "runs mcu firmware on an emulated Cortex-M (apt-get install qemu-system-arm)",
    "pyocd": "flashes real boards: edgebuild flash (pip install 'edgebuild[flash]')",
}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor() -> None:
    """Show what edgebuild can use on this machine (no TensorFlow import)."""
    from edgebuild import __version__
    from edgebuild.versions import package_versions

    typer.echo(f"edgebuild {__version__}")
    for package, version in package_versions(PACKAGES, "not installed").items():
        typer.echo(f"  {package:<32} {version}")
    beside_python = str(Path(sys.executable).parent)  # console scripts of this environment, e.g. vela
    for tool, what in TOOLS.items():
        found = shutil.which(tool) or shutil.which(tool, path=beside_python)
        typer.echo(f"  {tool:<32} {found or 'not found'}  ({what})")
    _tflm_tree()


def _tflm_tree() -> None:
    """The TensorFlow Lite Micro tree the firmware stage would use, and whether it is one."""
    from edgebuild.firmware.stage import resolve_tflm_dir
    from edgebuild.firmware.tflm_library import TREE_HINT, check_tree, tflm_cache_dir

    tree = resolve_tflm_dir(None)
    if tree is None:
        state = f"not set: mcu firmware stages are skipped. {TREE_HINT}"
    else:
        problem = check_tree(tree)
        state = f"{tree}" + (f"  (unusable: {problem})" if problem else "")
    typer.echo(f"  {'EDGEBUILD_TFLM_DIR':<32} {state}")
    typer.echo(f"  {'TFLite Micro library cache':<32} {tflm_cache_dir()}")
