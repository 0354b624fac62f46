"""The rule registry: each constraint is a small function whose docstring is the rule text.

Following Arm Vela: a constraint takes the artifact and one op and yields a
`Violation` for each thing it finds wrong (nothing when the op is fine). The
docstring's first paragraph is what users read (findings, `edgebuild targets
show`, generated docs); `fix` says what to change. Rule ids are
`<rule set>.<name>` and are stable: report.json and tests refer to them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from edgebuild.artifact import OpInfo, TensorInfo, TfliteArtifact

from .findings import Finding, RuleReport, Severity


@dataclass(frozen=True)
class Violation:
    """A constraint's evidence: the tensor at fault (if any) and a detail sentence."""

    detail: str
    tensor: TensorInfo | None = None


Check = Callable[[TfliteArtifact, OpInfo], Iterable[Violation]]


@dataclass(frozen=True)
class Rule:
    id: str
    check: Check
    fix: str

    @property
    def text(self) -> str:
        """The user-facing rule: the check function's docstring, first paragraph."""
        return inspect.cleandoc(self.check.__doc__ or "").split("\n\n")[0].replace("\n", " ")

    def run(self, artifact: TfliteArtifact, op: OpInfo) -> list[Violation]:
        return list(self.check(artifact, op))

    def finding(self, op: OpInfo | None, violation: Violation, severity: Severity) -> Finding:
        return Finding(
            op_index=op.index if op is not None else None,
            op=op.name if op is not None else None,
            tensor=violation.tensor.name if violation.tensor is not None else None,
            rule=self.id,
            message=f"{self.text} {violation.detail}".strip(),
            fix=self.fix,
            severity=severity,
        )


REGISTRY: dict[str, Rule] = {}


CheckT = TypeVar("CheckT", bound=Check)


def rule(rule_id: str, fix: str) -> Callable[[CheckT], CheckT]:
    """Register a constraint under `rule_id`; its docstring becomes the rule text."""

    def register(func: CheckT) -> CheckT:
        if not (func.__doc__ or "").strip():
            raise TypeError(f"rule {rule_id} needs a docstring: it is the user-facing rule text")
        if rule_id in REGISTRY:
            raise ValueError(f"rule {rule_id} registered twice")
        REGISTRY[rule_id] = Rule(rule_id, func, fix)
        return func

    return register


def get(rule_id: str) -> Rule:
    return REGISTRY[rule_id]


# ---- helpers shared by the rule sets -------------------------------------------------


def op_tensors(artifact: TfliteArtifact, op: OpInfo) -> Iterator[TensorInfo]:
    """The op's present input and output tensors, each once, inputs first."""
    seen: set[int] = set()
    for index in (*op.inputs, *op.outputs):
        if index >= 0 and index not in seen:
            seen.add(index)
            yield artifact.tensors[index]


def first_output(artifact: TfliteArtifact, op: OpInfo) -> TensorInfo | None:
    return artifact.tensor(op.outputs[0]) if op.outputs else None


def first_input(artifact: TfliteArtifact, op: OpInfo) -> TensorInfo | None:
    return artifact.tensor(op.inputs[0]) if op.inputs else None


def is_boundary_quantize(artifact: TfliteArtifact, op: OpInfo) -> bool:
    """QUANTIZE of a float model input or DEQUANTIZE into a float model output.

    These are the float I/O wrappers the converter adds around an integer model;
    accelerators leave them on the CPU without stopping the rest from mapping.
    """
    if op.name == "QUANTIZE" and op.inputs and op.inputs[0] in artifact.input_indices:
        return artifact.tensors[op.inputs[0]].dtype.startswith("float")
    if op.name == "DEQUANTIZE" and op.outputs and op.outputs[0] in artifact.output_indices:
        return artifact.tensors[op.outputs[0]].dtype.startswith("float")
    return False


def dynamic_roots(artifact: TfliteArtifact) -> dict[int, TensorInfo]:
    """Tensors where a dynamic (-1) dimension starts (see TfliteArtifact.dynamic_roots)."""
    return artifact.dynamic_roots


def dynamic_shape_violations(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """The first tensor of `op` where a dynamic shape starts (one finding per op)."""
    roots = dynamic_roots(artifact)
    for t in op_tensors(artifact, op):
        if t.index in roots:
            yield Violation(f"Tensor '{t.name}' has shape {shape_str(t)}.", t)
            return


def only_batch_dynamic(tensor: TensorInfo) -> bool:
    """True when the only unknown dimension is a leading batch that the file fixes to 1."""
    sig = tensor.shape_signature
    return bool(sig) and sig[0] < 0 and all(d >= 0 for d in sig[1:]) and tensor.shape[:1] == (1,)


def shape_str(tensor: TensorInfo) -> str:
    return "[" + ", ".join(str(d) for d in tensor.shape_signature) + "]"


def keras_layer(artifact: TfliteArtifact, op: OpInfo) -> str | None:
    """The Keras layer an op came from, read from its tensors' names (`model/layer/...`), when they say.

    The converter names an op's output after the TensorFlow ops it fused (`model_6/dense_6/Tensordot;...`),
    whose second path component is the Keras layer; tensors it made up itself (`tfl.quantize`) say nothing.
    """
    for index in (*op.outputs, *op.inputs):
        if index < 0:
            continue
        parts = artifact.tensors[index].name.split(";")[0].split("/")
        if len(parts) >= 3 and not parts[0].startswith("tfl."):
            return parts[1]
    return None


def with_layers(report: RuleReport, artifact: TfliteArtifact) -> RuleReport:
    """Name the Keras layer behind every op finding, in the finding and at the end of its message."""
    findings = []
    for f in report.findings:
        layer = keras_layer(artifact, artifact.ops[f.op_index]) if f.op_index is not None else None
        if layer is not None:
            f = dataclasses.replace(f, layer=layer, message=f"{f.message} (Keras layer '{layer}')")
        findings.append(f)
    return dataclasses.replace(report, findings=findings)
