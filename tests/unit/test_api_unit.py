"""The Python API without TensorFlow: imports, overrides, in-memory data, result rendering, early errors, docs.

docs/api-reference.md is generated from the docstrings (through pdoc's documentation model); regenerate it
with `EDGEBUILD_UPDATE_GOLDEN=1 pytest tests/unit/test_api_unit.py`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgebuild
from edgebuild.api import BuildResult, Report, TargetBuild, _override_strings
from edgebuild.data import dataset_from_object, load_dataset, write_npz
from edgebuild.errors import DataError, ModelError, ProfileError, UsageError

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api-reference.md"
UPDATE_GOLDEN = os.environ.get("EDGEBUILD_UPDATE_GOLDEN") == "1"


def test_import_is_light_and_bench_stays_the_function() -> None:
    code = (
        "import sys, edgebuild; "
        "api = [edgebuild.build, edgebuild.validate, edgebuild.carray, edgebuild.resolve_profile]; "
        "import edgebuild.bench; from edgebuild.bench import benchmark_threads; "
        "print(callable(edgebuild.bench), edgebuild.bench.__module__, type(edgebuild.keras).__name__, "
        "[m for m in ('tensorflow', 'tf_keras', 'keras', 'IPython') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "edgebuild.api.artifacts", "module", "[]"]


def test_overrides_as_dicts_become_typed_toml_values() -> None:
    assert _override_strings(
        {
            "quantization.io": "uint8",
            "benchmark": {"enabled": False, "threads": [1, 2]},
            "data.seed": 3,
            "budget.flash": "1MiB",
            "x.ratio": 0.5,
        }
    ) == [
        'quantization.io="uint8"',
        "benchmark.enabled=false",
        "benchmark.threads=[\n    1,\n    2,\n]",
        "data.seed=3",
        'budget.flash="1MiB"',
        "x.ratio=0.5",
    ]
    assert _override_strings(["a.b=c"]) == ["a.b=c"] and _override_strings("a.b=c") == ["a.b=c"]
    profile = edgebuild.resolve_profile(
        "mobile", {"benchmark": {"threads": [4], "runs": 7}, "quantization.io": "float32"}
    )
    assert profile.benchmark.threads == [4] and profile.benchmark.runs == 7
    assert edgebuild.resolve_profile("mcu", {"data.seed": "12"}).data.seed == 12  # pydantic still coerces strings
    with pytest.raises(ProfileError, match=r"unknown key 'quantization\.bits'"):
        edgebuild.resolve_profile("mcu", {"quantization.bits": 4})
    with pytest.raises(UsageError, match="not a TOML value"):
        _override_strings({"a.b": object()})


def test_in_memory_data_forms_and_deterministic_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 4, 4, 1), dtype=np.float32), rng.integers(0, 3, 20)
    forms = [(x, y), [x, y], {"x": x, "y": y}, {"input_1": x, "labels": y}, (x, y, np.ones(20))]
    digests = set()
    for form in forms:
        dataset = dataset_from_object(form, "data", input_names=("input_1",))
        path = write_npz(tmp_path / "d.npz", dataset)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
        back = load_dataset(path)
        assert np.array_equal(back.x, x) and np.array_equal(back.y, y)
    assert len(digests) == 1  # same arrays, same bytes: the cache key is stable across calls
    from_lists = dataset_from_object({"x": x.tolist(), "y": y.tolist()}, "data")
    assert np.allclose(from_lists.x, x) and np.array_equal(from_lists.y, y)
    assert dataset_from_object(x, "data").y is None and dataset_from_object((x,), "data").y is None
    one_hot = dataset_from_object((x, np.eye(3)[y]), "data")
    assert np.array_equal(one_hot.y, y)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"x": np.zeros((2, 3)), "y": np.zeros(2, int), "label": np.zeros(2, int)}, DataError, "several label entries"),
        ({"image": np.zeros((2, 3))}, DataError, "names an input 'image', but the model's input is 'input_1'"),
        (
            {"a": np.zeros((2, 3)), "b": np.zeros((2, 3))},
            DataError,
            "has arrays for 2 inputs (a, b) but the model takes 1",
        ),
        ({"x": np.zeros((2, 3)), "z": np.zeros((2, 3))}, DataError, "has 'x' and also z"),
        ((np.zeros((2, 3)),) * 4, DataError, "sequence of 4 items"),
        (np.array(["a", "b"]), DataError, "not numbers"),
        ((np.zeros((2, 3)), np.zeros(3, int)), DataError, "'x' has 2 samples but 'y' has 3"),
        ((np.zeros((2, 3)), np.array([0.5, 1.5])), DataError, "labels must be integer class ids"),
        (np.zeros((0, 3)), DataError, "holds no samples"),
    ],
)
def test_bad_in_memory_data(data, error, message: str) -> None:
    with pytest.raises(error, match=None) as caught:
        dataset_from_object(data, "data=test", input_names=("input_1",))
    assert message in str(caught.value) and str(caught.value).startswith("data=test")


def test_early_errors_are_typed_and_need_no_tensorflow(tmp_path: Path) -> None:
    code = f"""
import sys, edgebuild
from edgebuild.errors import EdgebuildError
calls = [
    lambda: edgebuild.build({str(tmp_path / "missing.keras")!r}, 'mobile', progress=False),
    lambda: edgebuild.build(object(), 'mobile'),
    lambda: edgebuild.build({str(tmp_path)!r}, [], progress=False),
    lambda: edgebuild.build({str(tmp_path)!r}, 'mcu', calibration='nope'),
    lambda: edgebuild.build({str(tmp_path)!r}, 'mobile', progress='loud'),
    lambda: edgebuild.build({str(tmp_path)!r}, 'mobile', device_options={{'identity': 'k'}}),
    lambda: edgebuild.validate(b'not a model', 'mcu'),
    lambda: edgebuild.carray({str(tmp_path / "none.tflite")!r}, {str(tmp_path / "c")!r}),
    lambda: edgebuild.resolve_profile('tpu'),
]
for call in calls:
    try:
        call()
    except EdgebuildError as exc:
        print(type(exc).__name__, '|', str(exc)[:60])
print('TF', 'tensorflow' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split(" | ")[0] for line in out] == [
        "ModelError",
        "UsageError",
        "UsageError",
        "UsageError",
        "UsageError",
        "UsageError",
        "ArtifactError",
        "ArtifactError",
        "ProfileError",
        "TF False",
    ]
    assert "| tflite bytes (11 bytes) is not a TensorFlow Lite model" in out[6]
    assert not (tmp_path / "c").exists()


def _report(target: str, passed: bool = True) -> dict:
    checks = [
        {"name": "op rules (mcu)", "passed": True, "summary": "0 error(s)"},
        {"name": "budgets", "passed": passed, "summary": "flash 10 / 20 bytes" if passed else "over <budget>"},
    ]
    return {
        "target": target,
        "artifact": {
            "path": "model.tflite",
            "size_bytes": 2048,
            "sha256": "ab",
            "inputs": [{"name": "in", "shape": [1, 8, 8, 1], "dtype": "int8", "scale": 0.5, "zero_point": -1}],
            "outputs": [],
            "ops": {"CONV_2D": 1},
            "macs": 10,
        },
        "float_reference": {"size_bytes": 4096},
        "validation": {
            "passed": passed,
            "checks": checks,
            "accuracy": {
                "metric": "top1",
                "samples": 10,
                "agreement": 0.9,
                "reference_top1": 0.8,
                "artifact_top1": 0.7,
                "drop_points": 10.0,
            },
            "arena": {"proven_bytes": 1000, "recommended_bytes": 1104},
        },
        "benchmark": {"threads": {"1": {"p50_ms": 0.25, "runs": 5, "load_ms": 1.0}}, "best_threads": 1},
    }


def test_results_render_as_text_and_html(tmp_path: Path) -> None:
    ok = TargetBuild("mcu", tmp_path / "mcu", Report(_report("mcu"), tmp_path / "mcu"))
    bad = TargetBuild("tiny", tmp_path / "tiny", Report(_report("tiny", passed=False), tmp_path / "tiny"))
    broken = TargetBuild("edgetpu", tmp_path / "edgetpu", None, error=ModelError("It broke. Really."))
    result = BuildResult([ok, bad, broken], tmp_path)
    assert result["mcu"] is ok and result[1] is bad and len(result) == 3 and result.keys() == ["mcu", "tiny", "edgetpu"]
    assert not result.passed and ok.passed and not bad.passed and not broken.passed
    assert list(result.failed_checks) == ["tiny"] and list(result.errors) == ["edgetpu"]
    assert ok.report["artifact"]["macs"] == 10 and ok.report.artifact.inputs[0].scale == 0.5  # mapping and typed
    assert ok.report.validation.arena.recommended_bytes == 1104 and ok.report.benchmark.p50_ms == 0.25
    text = str(result)
    assert text.splitlines()[2].split() == [
        "mcu",
        "2.0",
        "KiB",
        "0.50x",
        "int8",
        "70.0%",
        "(-10.0)",
        "90.0%",
        "0.250",
        "ms",
        "1.1",
        "KiB",
        "ok",
        str(tmp_path / "mcu" / "model.tflite"),
    ]
    assert (
        "edgetpu" in text and "ERROR" in text and "It broke" in text and "tiny: budgets failed: over <budget>" in text
    )
    page = result._repr_html_()
    assert page.count("<tr>") == 4 and "over &lt;budget&gt;" in page and "<img" not in page  # no chart written
    (tmp_path / "summary.png").write_bytes(b"\x89PNG")
    assert "data:image/png;base64," in result._repr_html_()
    with pytest.raises(KeyError, match="No target 'mobile'"):
        result["mobile"]
    with pytest.raises(ModelError) as caught:
        result.raise_for_errors()  # a real error outranks a gate failure, and carries the result
    assert caught.value.result is result


def _reference_markdown() -> str:
    """docs/api-reference.md from the docstrings and signatures, through pdoc's documentation model."""
    import pdoc.doc

    import edgebuild.api
    import edgebuild.keras

    lines = [
        "# Python API reference",
        "",
        "Generated from the docstrings by `tests/unit/test_api_unit.py` (pdoc's documentation model); "
        "do not edit. For browsable HTML: `pdoc edgebuild.api edgebuild.keras` (`pip install -e '.[docs]'`).",
        "See [api.md](api.md) for the guide.",
        "",
    ]
    for module in (edgebuild.api, edgebuild.keras):
        doc = pdoc.doc.Module(module)
        lines += [f"## `{doc.name}`", "", doc.docstring.strip(), ""]
        for name in module.__all__:
            member = doc.get(name)
            if isinstance(member, pdoc.doc.Function):
                lines += [f"### `{name}{_signature(member)}`", "", _markdown(member.docstring), ""]
            elif isinstance(member, pdoc.doc.Class):
                bases = ", ".join(b[2] for b in member.bases if b[2] not in {"object"})
                lines += [f"### class `{name}`" + (f" ({bases})" if bases else ""), "", _markdown(member.docstring), ""]
                for sub in member.own_members:
                    if sub.name.startswith("_") or not sub.docstring:
                        continue
                    if isinstance(sub, pdoc.doc.Function):
                        lines.append(f"- `{sub.name}{_signature(sub, method=True)}`: {_one_paragraph(sub.docstring)}")
                    elif isinstance(sub, pdoc.doc.Variable):
                        annotation = sub.annotation_str.removeprefix(": ") if sub.annotation_str else ""
                        lines.append(
                            f"- `{sub.name}: {annotation}`: {_one_paragraph(sub.docstring)}"
                            if annotation
                            else f"- `{sub.name}`: {_one_paragraph(sub.docstring)}"
                        )
                lines.append("")
            else:
                lines += [
                    f"### `{name}`",
                    "",
                    f"`{_short(member.default_value_str)}`",
                    "",
                    member.docstring.strip(),
                    "",
                ]
    return _public_paths("\n".join(lines).rstrip() + "\n")


def _public_paths(text: str) -> str:
    """edgebuild.api.reports.Report -> edgebuild.api.Report: the names as they are imported (the package re-exports)."""
    return re.sub(r"\bedgebuild\.api\.[a-z_]+\.(?=[A-Z_a-z])", "edgebuild.api.", text)


def _signature(function, method: bool = False) -> str:
    signature = function.signature_without_self if method else function.signature
    text = " ".join(str(signature).split()).replace("( ", "(").replace(" )", ")")
    return _public_paths(text).replace("edgebuild.api.", "")


def _markdown(docstring: str) -> str:
    """Google-style sections (Args, Returns, Raises) as markdown, as pdoc renders them."""
    import pdoc.docstrings

    return pdoc.docstrings.google(docstring).strip()


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())


def _short(text: str) -> str:
    return _public_paths(text).replace("edgebuild.api.", "")


def test_every_public_name_is_typed_and_documented() -> None:
    import edgebuild.api
    import edgebuild.keras

    for module in (edgebuild.api, edgebuild.keras):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                assert obj.__doc__, name
                signature = inspect.signature(obj)
                assert signature.return_annotation is not inspect.Signature.empty, name
                assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name
            elif inspect.isclass(obj):
                assert obj.__doc__, name
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                        assert (member.__doc__ or "").strip(), f"{name}.{attr}"
    text = _reference_markdown()
    if UPDATE_GOLDEN:
        REFERENCE.write_text(text)
    assert REFERENCE.exists(), f"{REFERENCE} is missing: run pytest with EDGEBUILD_UPDATE_GOLDEN=1 to create it"
    assert REFERENCE.read_text() == text, "docs/api-reference.md is stale: EDGEBUILD_UPDATE_GOLDEN=1 pytest " + __file__
