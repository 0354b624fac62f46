"""Vendor compilers that turn an int8 `.tflite` into an accelerator-specific one.

- `edgetpu`: Coral's `edgetpu_compiler` (a closed binary from Coral's apt repository; optional).
- `vela`: Arm's Vela for the Ethos-U microNPUs (PyPI `ethos-u-vela`, a real dependency).

Both run the real tool as a subprocess, keep its own output files, and parse them
into plain dicts for the report. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from edgebuild.compilers.edgetpu import compile_edgetpu, edgetpu_status, find_compiler, parse_compiler_output
from edgebuild.compilers.vela import compile_vela, find_vela, parse_summary_csv

__all__ = [
    "compile_edgetpu",
    "compile_vela",
    "edgetpu_status",
    "find_compiler",
    "find_vela",
    "parse_compiler_output",
    "parse_summary_csv",
]
