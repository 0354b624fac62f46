"""Regenerate `mcu_ops.toml`: the ops the installed tflite-micro registers, builtin and custom.

Run `python -m edgebuild.checks.gen_mcu_ops` after changing the pinned
tflite-micro version. The lists are *measured*, not typed by hand: every
candidate op goes into a two-op model (the op under test, then a sentinel op
that no resolver knows) that is loaded in the TFLM interpreter shipped in the
wheel. TFLM looks up every op's kernel before it runs any kernel code, so the
log names the first op it cannot find: if that is the op under test the package
has no kernel for it; if it is the sentinel, it has one. Nothing is ever
initialised or invoked, so bogus tensors and missing custom options are harmless.

- Builtin candidates: every TFLite builtin operator of the schema. Sentinel: a
  custom op with a name nobody registers.
- Custom candidates: the custom names (the `custom_code` stored in a model) that
  `MicroMutableOpResolver` can register, i.e. the keys of codegen's
  `CUSTOM_METHODS` -- the one list of them, so the rule table can never accept a
  custom op the generated firmware could not register. Sentinel: a builtin op
  this wheel was just measured to lack. (A custom sentinel would not do: TFLM's
  message for a missing custom op does not say which one.)
"""

from __future__ import annotations

import contextlib
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

SENTINEL = "EDGEBUILD_NO_SUCH_OP"
OUT = Path(__file__).with_name("mcu_ops.toml")
SKIPPED_BUILTINS = {"CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES"}


class Measured(NamedTuple):
    version: str  # tflite-micro wheel version
    ops: list[str]  # builtin op names with a kernel, sorted
    custom_ops: list[str]  # custom op names with a kernel, sorted


def _builtin_code(schema: Any, code: int) -> Any:
    c = schema.OperatorCodeT()
    c.builtinCode = code
    c.deprecatedBuiltinCode = min(code, 127)
    c.version = 1
    return c


def _custom_code(schema: Any, name: str) -> Any:
    c = schema.OperatorCodeT()
    c.builtinCode = schema.BuiltinOperator.CUSTOM
    c.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    c.customCode = name
    c.version = 1
    return c


def _probe_model(schema: Any, first: Any, second: Any) -> bytes:
    """A model of two ops chained on [1] int8 tensors: `first`, then `second` (OperatorCodeT each)."""
    import flatbuffers

    def tensor(name: str) -> Any:
        t = schema.TensorT()
        t.shape = [1]
        t.type = schema.TensorType.INT8
        t.buffer = 0
        t.name = name
        return t

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.operatorCodes = [first, second]
    sg = schema.SubGraphT()
    sg.tensors = [tensor("a"), tensor("b"), tensor("c")]
    sg.inputs, sg.outputs = [0], [2]
    op0, op1 = schema.OperatorT(), schema.OperatorT()
    op0.opcodeIndex, op0.inputs, op0.outputs = 0, [0], [1]
    if first.builtinCode == schema.BuiltinOperator.VAR_HANDLE:
        # the Python wrapper reads VAR_HANDLE options before TFLM sees the model
        op0.builtinOptionsType = schema.BuiltinOptions.VarHandleOptions
        op0.builtinOptions = schema.VarHandleOptionsT()
        op0.builtinOptions.sharedName = "probe"
    op1.opcodeIndex, op1.inputs, op1.outputs = 1, [1], [2]
    sg.operators = [op0, op1]
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _load_log(runtime: Any, data: bytes) -> str:
    """Load `data` in TFLM and return what it printed on the C-level stderr."""
    from edgebuild.native_output import capture_native

    with capture_native() as log, contextlib.suppress(Exception):  # the failure is expected; the log says why
        runtime.Interpreter.from_bytes(data, arena_size=4096)
    return log[0]


def custom_candidates() -> list[str]:
    """The custom op names to probe: every one codegen can emit a resolver call for."""
    from edgebuild.codegen.ops import CUSTOM_METHODS

    return sorted(CUSTOM_METHODS)


def measure() -> Measured:
    """Probe the installed tflite-micro for every builtin op and every candidate custom op."""
    from ai_edge_litert import schema_py_generated as schema
    from tflite_micro.python.tflite_micro import runtime

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    found: list[str] = []
    missing: list[tuple[int, str]] = []
    custom_sentinel = _custom_code(schema, SENTINEL)
    for code, name in sorted(names.items()):
        if name in SKIPPED_BUILTINS:
            continue
        log = _load_log(runtime, _probe_model(schema, _builtin_code(schema, code), custom_sentinel))
        if "from op code CUSTOM" in log:  # got past our builtin, stopped at the sentinel
            found.append(name)
        elif f"Didn't find op for builtin opcode '{name}'" in log:
            missing.append((code, name))
        else:
            raise RuntimeError(f"unexpected TFLM output while probing {name}: {log.strip()[:300]}")
    if not missing:
        raise RuntimeError("every builtin op has a kernel: no builtin is left to serve as the custom-op sentinel")
    sentinel_code, sentinel_name = missing[0]
    builtin_sentinel = _builtin_code(schema, sentinel_code)

    custom: list[str] = []
    for name in custom_candidates():
        log = _load_log(runtime, _probe_model(schema, _custom_code(schema, name), builtin_sentinel))
        if f"Didn't find op for builtin opcode '{sentinel_name}'" in log:  # past our custom op
            custom.append(name)
        elif "from op code CUSTOM" not in log:
            raise RuntimeError(f"unexpected TFLM output while probing custom op {name}: {log.strip()[:300]}")
    return Measured(metadata.version("tflite-micro"), sorted(found), sorted(custom))


def render(measured: Measured) -> str:
    lines = [
        "# Generated by `python -m edgebuild.checks.gen_mcu_ops`; do not edit by hand.",
        "# Ops with a kernel in the pinned tflite-micro wheel, probed through its interpreter.",
        'rule_set = "mcu"',
        f'runtime = "tflite-micro {measured.version}"',
        'source = "tflite_micro/python/tflite_micro/_runtime.so (op resolver of the installed wheel)"',
        "# Builtin operators.",
        "ops = [",
        *[f'  "{op}",' for op in measured.ops],
        "]",
        "# Custom ops TFLM registers by name (the model's custom_code), out of the names",
        "# codegen's MicroMutableOpResolver table knows (edgebuild.codegen.ops.CUSTOM_METHODS).",
        "custom_ops = [",
        *[f'  "{op}",' for op in measured.custom_ops],
        "]",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    measured = measure()
    text = render(measured)
    args = argv if argv is not None else sys.argv[1:]
    if "--check" in args:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(
                f"{OUT.name} is out of date for tflite-micro {measured.version}; rerun without --check", file=sys.stderr
            )
            return 1
        return 0
    OUT.write_text(text)
    print(
        f"wrote {OUT} ({len(measured.ops)} builtin ops, {len(measured.custom_ops)} custom ops, "
        f"tflite-micro {measured.version})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
