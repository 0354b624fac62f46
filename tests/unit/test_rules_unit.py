"""Rule tables and rule logic, checked on hand-built artifacts (no TensorFlow)."""

from __future__ import annotations

import sys

import pytest

from edgebuild.artifact import OpInfo, TensorInfo, TfliteArtifact
from edgebuild.checks import REGISTRY, RULE_SETS, check_rules, rules_for
from edgebuild.checks.tables import TABLE_FILES, load_table
from edgebuild.errors import ProfileError


def T(index, shape, dtype="int8", const=0, name=None, sig=None):
    return TensorInfo(index, name or f"t{index}", tuple(shape), tuple(sig or shape), dtype, (0.1,), (0,), 0, const)


def A(tensors, ops, inputs=(0,), outputs=None):
    outputs = outputs if outputs is not None else (ops[-1].outputs[0],)
    return TfliteArtifact(0, "", tuple(tensors), tuple(ops), tuple(inputs), tuple(outputs), 1)


def conv_chain(names: list[str], **options) -> TfliteArtifact:
    """A chain of ops on [1,8,8,4] int8 tensors; CONV_2D gets a real [4,3,3,4] filter and bias."""
    tensors = [T(0, (1, 8, 8, 4))]
    ops = []
    for i, name in enumerate(names):
        inp = len(tensors) - 1
        inputs = [inp]
        if name == "CONV_2D":
            tensors += [T(len(tensors), (4, 3, 3, 4), const=144), T(len(tensors) + 1, (4,), "int32", const=16)]
            inputs += [len(tensors) - 2, len(tensors) - 1]
        tensors.append(T(len(tensors), (1, 8, 8, 4)))
        ops.append(OpInfo(i, name, tuple(inputs), (len(tensors) - 1,), dict(options.get(name, {}))))
    return A(tensors, ops)


# ---- tables ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TABLE_FILES))
def test_tables_load_and_name_their_runtime(name):
    table = load_table(name)
    assert table.runtime and table.ops
    assert all(op == op.upper() for op in table.ops)


def test_edgetpu_limits_name_registered_rules():
    for entry in load_table("edgetpu").ops.values():
        for limit in entry.limits:
            assert limit in REGISTRY, f"{entry.name}: {limit}"


def test_every_rule_has_text_and_fix():
    assert {r.id.split(".")[0] for r in REGISTRY.values()} == {"edgetpu", "mcu", "mobile"}
    for r in REGISTRY.values():
        assert r.text.endswith("."), r.id
        assert r.fix.endswith("."), r.id
    assert {r.id for r in rules_for("mcu")} >= {"mcu.kernel", "mcu.int8_tensors", "mcu.static_shape"}


def test_checks_do_not_import_tensorflow():
    import subprocess

    code = ("import sys, edgebuild.checks, edgebuild.checks.gen_mcu_ops; "
            "bad = [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mcu_table_matches_the_installed_tflite_micro():
    pytest.importorskip("tflite_micro")
    from edgebuild.checks import gen_mcu_ops

    version, ops = gen_mcu_ops.measure()
    table = load_table("mcu")
    assert table.runtime == f"tflite-micro {version}", "rerun python -m edgebuild.checks.gen_mcu_ops"
    assert sorted(table.ops) == ops, "rerun python -m edgebuild.checks.gen_mcu_ops"


# ---- check_rules -------------------------------------------------------------------

def test_unknown_rule_set_is_a_profile_error():
    with pytest.raises(ProfileError, match="Unknown rule set 'tpu'.*edgetpu, mcu, mobile, none"):
        check_rules("tpu", conv_chain(["RELU"]))


def test_none_rule_set_passes():
    report = check_rules("none", conv_chain(["SIN"]))
    assert report.passed and report.to_dict()["findings"] == []
    assert set(RULE_SETS) == {"edgetpu", "mcu", "mobile", "none"}


def test_edgetpu_mapping_stops_at_first_unsupported_op():
    art = conv_chain(["CONV_2D", "SIN", "CONV_2D", "EXP"])
    report = check_rules("edgetpu", art)
    d = report.to_dict()
    assert d["first_unsupported"] == {"index": 1, "op": "SIN"}
    assert (d["mapped_ops"], d["total_ops"], d["mapped_ops_fraction"]) == (1, 4, 0.25)
    assert d["mapped_macs_fraction"] == 0.5  # two equal convs, one before the break
    by_rule = {(f.rule, f.op_index): f.severity for f in report.findings}
    assert by_rule[("edgetpu.supported_op", 1)] == "error"
    assert by_rule[("edgetpu.supported_op", 3)] == "warning"
    assert by_rule[("edgetpu.cpu_fallback", 1)] == "warning"
    assert not report.passed


def test_edgetpu_runtime_version_gates_newer_ops():
    art = conv_chain(["TRANSPOSE"])
    assert check_rules("edgetpu", art).passed
    old = check_rules("edgetpu", art, edgetpu_runtime=13)
    assert old.first_unsupported == {"index": 0, "op": "TRANSPOSE"}
    assert "needs Edge TPU runtime 14" in old.errors[0].message


@pytest.mark.parametrize(
    ("op", "options", "rule"),
    [
        ("MAX_POOL_2D", {"fusedActivationFunction": "RELU"}, "edgetpu.no_fused_activation"),
        ("AVERAGE_POOL_2D", {"fusedActivationFunction": "RELU6"}, "edgetpu.no_fused_activation"),
        ("CONV_2D", {"dilationHFactor": 2, "dilationWFactor": 1}, "edgetpu.equal_dilation"),
        ("SOFTMAX", {}, "edgetpu.softmax_1d"),  # [1,8,8,4] is not 1-D
        ("STRIDED_SLICE", {"newAxisMask": 1}, "edgetpu.strided_slice_masks"),
    ],
)
def test_edgetpu_per_op_limits(op, options, rule):
    report = check_rules("edgetpu", conv_chain([op], **{op: options}))
    assert [f.rule for f in report.errors] == [rule]
    assert report.first_unsupported == {"index": 0, "op": op}
    assert report.errors[0].fix


def test_edgetpu_fc_output_must_be_one_row():
    tensors = [T(0, (4, 16)), T(1, (10, 16), const=160), T(2, (4, 10))]
    art = A(tensors, [OpInfo(0, "FULLY_CONNECTED", (0, 1), (2,), {"weightsFormat": 0})])
    assert [f.rule for f in check_rules("edgetpu", art).errors] == ["edgetpu.fc_output_1d"]


def test_edgetpu_batch_above_one_breaks_inner_dims():
    tensors = [T(0, (2, 8, 8, 4)), T(1, (2, 8, 8, 4))]
    art = A(tensors, [OpInfo(0, "RELU", (0,), (1,))])
    (err,) = check_rules("edgetpu", art).errors
    assert err.rule == "edgetpu.inner_dims" and err.tensor == "t0"


def test_edgetpu_dynamic_shape_reported_once_at_its_root():
    tensors = [T(i, (1, 8), sig=(-1, 8)) for i in range(4)]
    ops = [OpInfo(i, "RELU", (i,), (i + 1,)) for i in range(3)]
    report = check_rules("edgetpu", A(tensors, ops))
    assert [(f.rule, f.tensor) for f in report.errors] == [("edgetpu.static_shape", "t0")]
    mcu = check_rules("mcu", A(tensors, ops))
    assert mcu.passed and [f.severity for f in mcu.findings] == ["warning"]  # -1 batch, file shape 1


def test_mcu_missing_kernel_and_float_tensor():
    art = conv_chain(["RELU", "CUSTOM_THING"])
    report = check_rules("mcu", art)
    assert [(f.rule, f.op) for f in report.errors] == [("mcu.kernel", "CUSTOM_THING")]
    tensors = [T(0, (1, 4), "float32"), T(1, (1, 4), "float32")]
    report = check_rules("mcu", A(tensors, [OpInfo(0, "RELU", (0,), (1,))]))
    assert [(f.rule, f.tensor) for f in report.errors] == [("mcu.int8_tensors", "t0")]


def test_mobile_unsupported_op_is_only_a_warning():
    report = check_rules("mobile", conv_chain(["CONV_2D", "SVDF"]))
    assert report.passed
    assert [(f.rule, f.op_index, f.severity) for f in report.findings] == [("mobile.delegate_op", 1, "warning")]
