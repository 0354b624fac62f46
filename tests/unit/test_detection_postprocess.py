"""The report's word on TFLite_Detection_PostProcess per target, read from the artifact's ops."""

from __future__ import annotations

from edgebuild.artifact import OpInfo, TfliteArtifact
from edgebuild.detection import OP, postprocess_block


def _artifact(*ops: OpInfo) -> TfliteArtifact:
    return TfliteArtifact(
        size_bytes=0, sha256="", tensors=(), ops=ops, input_indices=(), output_indices=(), subgraph_count=1
    )


def test_no_block_without_the_op() -> None:
    assert postprocess_block(_artifact(OpInfo(0, "CONV_2D", (), ())), "mcu") is None
    # a builtin of the same name is not the custom op
    assert postprocess_block(_artifact(OpInfo(0, OP, (), (), custom=False)), "mcu") is None


def test_each_target_says_where_it_runs() -> None:
    artifact = _artifact(OpInfo(0, "CONV_2D", (), ()), OpInfo(1, OP, (), (), custom=True))
    where = {kind: postprocess_block(artifact, kind) for kind in ("mobile", "mcu", "edgetpu", "ethos-u", "other")}
    assert all(block is not None and block["count"] == 1 for block in where.values())
    assert "DETECTION_POSTPROCESS" in where["mcu"]["where"] and "CPU" in where["edgetpu"]["where"]
    assert where["other"]["runs"] is False and where["mobile"]["runs"] is True
