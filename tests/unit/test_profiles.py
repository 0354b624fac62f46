"""Profiles: built-ins, extends, --set, and the exact errors for bad keys (no TensorFlow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgebuild.errors import ProfileError
from edgebuild.profiles import builtin_names, resolve, to_toml


def test_builtin_targets_are_the_documented_ones() -> None:
    assert builtin_names() == ["edgetpu", "ethos-u55", "mcu", "mobile"]


def test_builtin_profiles_match_the_issue() -> None:
    mobile, edgetpu, mcu = resolve("mobile"), resolve("edgetpu"), resolve("mcu")
    assert (mobile.quantization.scheme, mobile.quantization.io) == ("float16", "float32")
    assert (edgetpu.quantization.scheme, edgetpu.quantization.io, edgetpu.model.batch) == ("int8", "uint8", 1)
    assert (mcu.quantization.scheme, mcu.quantization.io) == ("int8", "int8")
    assert (mcu.budget.flash, mcu.budget.ram) == (1024 * 1024, 256 * 1024)
    assert mcu.mcu.c_array


def test_user_profile_extends_builtin_and_deep_merges(tmp_path: Path) -> None:
    board = tmp_path / "myboard.toml"
    board.write_text('extends = "mcu"\n[budget]\nram = "128KiB"\n[benchmark]\nthreads = [2]\n')
    profile = resolve(str(board))
    assert profile.name == "myboard"
    assert profile.budget.ram == 128 * 1024
    assert profile.budget.flash == 1024 * 1024  # kept from mcu: tables deep-merge
    assert profile.benchmark.threads == [2]  # arrays replace
    assert profile.quantization.io == "int8"


def test_set_overrides_apply_last_and_parse_toml_values() -> None:
    profile = resolve("mcu", ["quantization.io=uint8", "benchmark.threads=[1, 2]", 'budget.flash="2MiB"'])
    assert profile.quantization.io == "uint8"
    assert profile.benchmark.threads == [1, 2]
    assert profile.budget.flash == 2 * 1024 * 1024


def test_unknown_key_names_the_file_key_and_valid_keys(tmp_path: Path) -> None:
    board = tmp_path / "board.toml"
    board.write_text('extends = "mcu"\n[quantization]\nshceme = "int8"\n')
    with pytest.raises(ProfileError) as err:
        resolve(str(board))
    message = str(err.value)
    assert str(board) in message
    assert "unknown key 'quantization.shceme'" in message
    assert "calibration_samples, dense_per_channel, io, keep, method, scheme, selective" in message


def test_wrong_value_lists_the_choices() -> None:
    with pytest.raises(ProfileError) as err:
        resolve("mcu", ["quantization.scheme=int4"])
    assert "--set quantization.scheme=int4" in str(err.value)
    assert "'float16', 'int8', 'int16x8', 'dynamic' or 'none'" in str(err.value)


def test_wrong_type_is_reported() -> None:
    with pytest.raises(ProfileError, match=re.escape("'quantization.calibration_samples' = 'many'")):
        resolve("mcu", ["quantization.calibration_samples=many"])


def test_io_must_fit_scheme() -> None:
    with pytest.raises(ProfileError, match="io = 'int8' does not fit scheme = 'float16'"):
        resolve("mobile", ["quantization.io=int8"])


def test_unknown_target_lists_builtins() -> None:
    with pytest.raises(
        ProfileError, match=re.escape("Unknown target 'tpu'. Built-in targets: edgetpu, ethos-u55, mcu, mobile")
    ):
        resolve("tpu")


def test_extends_cycle_is_detected(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nname = "a"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nname = "b"\n')
    with pytest.raises(ProfileError, match="cycle"):
        resolve(str(tmp_path / "a.toml"))


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[quantization\n")
    with pytest.raises(ProfileError, match=f"{bad} is not valid TOML"):
        resolve(str(bad))


def test_bad_c_symbol_is_rejected() -> None:
    with pytest.raises(ProfileError, match=re.escape("'mcu.symbol' = '1model': not a C identifier")):
        resolve("mcu", ["mcu.symbol=1model"])


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("class", "a C/C++ keyword"),
        ("int", "a C/C++ keyword"),
        ("constexpr", "a C/C++ keyword"),
        ("_Bool", "a C/C++ keyword"),
        ("__model", "reserved for the compiler"),
        ("_Model", "reserved for the compiler"),
    ],
)
def test_symbols_the_code_generator_refuses_are_refused_by_the_profile(symbol: str, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(f"'mcu.symbol' = '{symbol}': {message}")):
        resolve("mcu", [f"mcu.symbol={symbol}"])


def test_profile_and_code_generator_share_one_keyword_list() -> None:
    from edgebuild.codegen.identifiers import C_CPP_KEYWORDS, validate_symbol
    from edgebuild.errors import UsageError
    from edgebuild.profiles.schema import McuSection

    for keyword in sorted(C_CPP_KEYWORDS):
        with pytest.raises(ValueError, match="C/C\\+\\+ keyword"):
            McuSection(symbol=keyword)
        with pytest.raises(UsageError):
            validate_symbol(keyword)
    assert McuSection(symbol="g_class_model").symbol == "g_class_model"


def test_resolved_profile_round_trips_through_toml(tmp_path: Path) -> None:
    profile = resolve("edgetpu", ["quantization.io=int8"])
    copy = tmp_path / "copy.toml"
    copy.write_text(to_toml(profile))
    assert resolve(str(copy)) == profile


def test_targets_show_matches_golden() -> None:
    golden = Path(__file__).parents[1] / "golden" / "targets_show_mcu.toml"
    text = to_toml(resolve("mcu"))
    if not golden.exists() or __import__("os").environ.get("EDGEBUILD_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
