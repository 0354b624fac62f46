"""Rule tables and rule logic, checked on hand-built artifacts (no TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tflm_tree import tflm_tree

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

    code = (
        "import sys, edgebuild.checks, edgebuild.checks.gen_mcu_ops; "
        "bad = [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mcu_table_matches_the_installed_tflite_micro():
    pytest.importorskip("tflite_micro")
    from edgebuild.checks import gen_mcu_ops

    measured = gen_mcu_ops.measure()
    table = load_table("mcu")
    assert table.runtime == f"tflite-micro {measured.version}", "rerun python -m edgebuild.checks.gen_mcu_ops"
    assert sorted(table.ops) == measured.ops, "rerun python -m edgebuild.checks.gen_mcu_ops"
    assert sorted(table.custom_ops) == measured.custom_ops, "rerun python -m edgebuild.checks.gen_mcu_ops"
    assert {"SignalWindow", "SignalRfft", "SignalFilterBank", "CIRCULAR_BUFFER"} <= table.custom_ops
    assert gen_mcu_ops.render(measured) == (Path(gen_mcu_ops.__file__).with_name("mcu_ops.toml")).read_text()


# ---- TFLite Micro custom ops: one list, shared by the rules and the code generator ---


def test_every_custom_op_the_rules_accept_has_a_resolver_method():
    from edgebuild.checks.mcu import CUSTOM_KERNEL_DTYPES
    from edgebuild.codegen.ops import CUSTOM_METHODS, resolver_method

    table = load_table("mcu")
    assert table.custom_ops, "mcu_ops.toml lists no custom ops"
    assert table.custom_ops <= set(CUSTOM_METHODS), "the rules would accept a custom op codegen cannot register"
    for name in table.custom_ops:
        assert resolver_method(name, custom=True).startswith("Add")
    assert set(CUSTOM_KERNEL_DTYPES) <= set(CUSTOM_METHODS)


def test_custom_methods_match_the_tflm_op_resolver_header():
    """Every literal AddCustom("name") of micro_mutable_op_resolver.h is in CUSTOM_METHODS, with its method."""
    import re

    from edgebuild.codegen.ops import CUSTOM_METHODS

    tree = tflm_tree()
    if tree is None:
        pytest.skip("TFLM source tree (../shared/tflm/tflm_tree) not present")
    header = (tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    found: dict[str, str] = {}
    for chunk in header.split("TfLiteStatus ")[1:]:  # one chunk per member function
        method = re.match(r"\w+", chunk).group(0)
        for name in re.findall(r'AddCustom\(\s*"([^"]+)"', chunk):
            found[name] = method
    assert len(found) >= 17, found  # 14 signal ops, CIRCULAR_BUFFER, TFLM_DECODE, detection post-processing
    assert {name: CUSTOM_METHODS.get(name) for name in found} == found
    assert "AddEthosU" in header and CUSTOM_METHODS["ethos-u"] == "AddEthosU"  # name comes from the Ethos-U kernel


def test_custom_kernel_dtypes_match_the_kernel_sources():
    """The tensor types mcu.int8_tensors lets a custom kernel have are the ones its TFLM source handles."""
    import re

    from edgebuild.checks.mcu import CUSTOM_KERNEL_DTYPES

    tree = tflm_tree()
    if tree is None:
        pytest.skip("TFLM source tree (../shared/tflm/tflm_tree) not present")
    signal = tree / "signal/micro/kernels"
    sources = {
        "SignalDelay": ["delay.cc"],
        "SignalEnergy": ["energy.cc"],
        "SignalFftAutoScale": ["fft_auto_scale_common.cc", "fft_auto_scale_kernel.cc"],
        "SignalFilterBank": ["filter_bank.cc"],
        "SignalFilterBankLog": ["filter_bank_log.cc"],
        "SignalFilterBankSpectralSubtraction": ["filter_bank_spectral_subtraction.cc"],
        "SignalFilterBankSquareRoot": ["filter_bank_square_root.cc", "filter_bank_square_root_common.cc"],
        "SignalFramer": ["framer.cc"],
        "SignalIrfft": ["irfft.cc"],
        "SignalOverlapAdd": ["overlap_add.cc"],
        "SignalPCAN": ["pcan.cc"],
        "SignalRfft": ["rfft.cc"],
        "SignalStacker": ["stacker.cc"],
        "SignalWindow": ["window.cc"],
        "TFLite_Detection_PostProcess": ["../../../tensorflow/lite/micro/kernels/detection_postprocess.cc"],
    }
    assert set(sources) == set(CUSTOM_KERNEL_DTYPES)
    for op, files in sources.items():
        text = "".join((signal / f).read_text() for f in files)
        types = {m.lower() for m in re.findall(r"kTfLite((?:U?Int|Float)\d+|Bool)\b", text)}
        assert types == set(CUSTOM_KERNEL_DTYPES[op]), op


# ---- check_rules -------------------------------------------------------------------


def test_unknown_rule_set_is_a_profile_error():
    with pytest.raises(ProfileError, match=r"Unknown rule set 'tpu'.*edgetpu, mcu, mobile, none"):
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


# ---- TFLite Micro custom ops in the rules -------------------------------------------


def signal_front_end() -> TfliteArtifact:
    """The shape of micro_speech's audio preprocessor: int16 audio through TFLM signal ops to int8 features.

    SignalWindow -> SignalEnergy (uint32) -> CAST int32 -> CAST uint32 -> SignalFilterBank (uint64)
    -> SignalFilterBankSquareRoot (uint32, int32 scale) -> SignalFilterBankLog (int16) -> CAST int8.
    """
    tensors = [
        T(0, (16,), "int16", name="audio"),
        T(1, (16,), "int16", const=32, name="window"),
        T(2, (16,), "int16", name="windowed"),
        T(3, (8,), "uint32", name="energy"),
        T(4, (8,), "int32", name="energy_i32"),
        T(5, (8,), "uint32", name="energy_u32"),
        T(6, (10,), "int16", const=20, name="weights"),
        T(7, (4,), "uint64", name="bank"),
        T(8, (), "int32", name="scale"),
        T(9, (4,), "uint32", name="root"),
        T(10, (4,), "int16", name="log"),
        T(11, (4,), "int8", name="features"),
    ]
    ops = [
        OpInfo(0, "SignalWindow", (0, 1), (2,), custom=True),
        OpInfo(1, "SignalEnergy", (2,), (3,), custom=True),
        OpInfo(2, "CAST", (3,), (4,)),
        OpInfo(3, "CAST", (4,), (5,)),
        OpInfo(4, "SignalFilterBank", (5, 6), (7,), custom=True),
        OpInfo(5, "SignalFilterBankSquareRoot", (7, 8), (9,), custom=True),
        OpInfo(6, "SignalFilterBankLog", (9,), (10,), custom=True),
        OpInfo(7, "CAST", (10,), (11,)),
    ]
    return A(tensors, ops, inputs=(0,), outputs=(11,))


def test_mcu_accepts_tflm_signal_ops_and_the_types_their_kernels_use():
    report = check_rules("mcu", signal_front_end())
    assert report.passed
    assert report.findings == []  # no int8 errors and no int16 warnings for the signal kernels' own tensors
    assert report.to_dict()["custom_kernels"] == len(load_table("mcu").custom_ops)


def test_mcu_unknown_custom_op_fails_naming_it():
    art = signal_front_end()
    ops = list(art.ops)
    ops[1] = OpInfo(1, "AcmeEnergy", (2,), (3,), custom=True)  # unknown custom op in place of SignalEnergy
    report = check_rules("mcu", A(art.tensors, ops, inputs=(0,), outputs=(11,)))
    assert not report.passed
    kernel = [f for f in report.errors if f.rule == "mcu.kernel"]
    assert [(f.op, f.op_index) for f in kernel] == [("AcmeEnergy", 1)]
    assert "custom op 'AcmeEnergy'" in kernel[0].message
    # no known kernel reads or writes its uint32 output, so that tensor is an int8 error again
    assert ("mcu.int8_tensors", "energy") in {(f.rule, f.tensor) for f in report.errors}


def test_mcu_kernel_tells_custom_from_builtin_by_the_flag():
    tensors = [T(0, (1, 4)), T(1, (1, 4))]
    as_custom = check_rules("mcu", A(tensors, [OpInfo(0, "RELU", (0,), (1,), custom=True)]))
    assert [f.rule for f in as_custom.errors] == ["mcu.kernel"]  # no custom op is called RELU
    as_builtin = check_rules("mcu", A(tensors, [OpInfo(0, "SignalWindow", (0,), (1,))]))
    assert [f.rule for f in as_builtin.errors] == ["mcu.kernel"]  # nor a builtin SignalWindow


def test_mcu_float_signal_kernel_is_a_warning_and_int16_elsewhere_still_warns():
    tensors = [T(0, (8,), "float32"), T(1, (10,), "float32"), T(2, (8,), "int16"), T(3, (8,), "int16")]
    ops = [OpInfo(0, "SignalRfft", (0,), (1,), custom=True), OpInfo(1, "RELU", (2,), (3,))]
    report = check_rules("mcu", A(tensors, ops, inputs=(0, 2), outputs=(1, 3)))
    assert report.passed
    got = {(f.rule, f.tensor, f.severity) for f in report.findings}
    assert ("mcu.int8_tensors", "t0", "warning") in got
    assert "SignalRfft (op #0) works in float32" in report.findings[0].message
    assert ("mcu.int16_activations", "t2", "warning") in got  # RELU on int16 is not a signal kernel's business
    uint32 = check_rules("mcu", A([T(0, (4,), "uint32"), T(1, (4,), "uint32")], [OpInfo(0, "RELU", (0,), (1,))]))
    assert [(f.rule, f.tensor) for f in uint32.errors] == [("mcu.int8_tensors", "t0")]


def test_tflm_only_custom_ops_are_errors_on_mobile_and_edgetpu():
    art = signal_front_end()
    mobile = check_rules("mobile", art)
    assert not mobile.passed
    errors = {(f.rule, f.op) for f in mobile.errors}
    assert errors == {
        ("mobile.litert_kernel", name)
        for name in (
            "SignalWindow",
            "SignalEnergy",
            "SignalFilterBank",
            "SignalFilterBankSquareRoot",
            "SignalFilterBankLog",
        )
    }
    assert "TensorFlow Lite Micro custom op" in mobile.errors[0].message
    assert not [f for f in mobile.findings if f.rule == "mobile.delegate_op" and f.op.startswith("Signal")]
    # a custom op LiteRT does have stays a delegate warning
    tensors = [T(0, (1, 4)), T(1, (1, 4))]
    post = check_rules("mobile", A(tensors, [OpInfo(0, "TFLite_Detection_PostProcess", (0,), (1,), custom=True)]))
    assert post.passed and [f.rule for f in post.findings] == ["mobile.delegate_op"]

    edgetpu = check_rules("edgetpu", art)
    supported = [f for f in edgetpu.findings if f.rule == "edgetpu.supported_op" and f.op != "CAST"]
    assert {f.op for f in supported} == {
        "SignalWindow",
        "SignalEnergy",
        "SignalFilterBank",
        "SignalFilterBankSquareRoot",
        "SignalFilterBankLog",
    }
    assert all(f.severity == "error" and "TensorFlow Lite Micro custom op" in f.message for f in supported)
