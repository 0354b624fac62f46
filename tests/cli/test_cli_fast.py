"""CLI commands that must work without TensorFlow: exact output and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgebuild.cli.main import main, route_default_command


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_command_routing() -> None:
    assert route_default_command(["--target", "edgetpu", "model/"]) == ["build", "--target", "edgetpu", "model/"]
    assert route_default_command(["model/", "-t", "mcu"]) == ["build", "model/", "-t", "mcu"]
    assert route_default_command(["targets"]) == ["targets"]
    assert route_default_command(["--help"]) == ["--help"]


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from edgebuild.cli.main import main; main(['--help']); "
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'keras', 'ai_edge_litert.interpreter') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout
    assert "edgebuild --target T MODEL is short for" in result.stdout


@pytest.mark.parametrize("command", [["targets"], ["targets", "show", "mcu"]])
def test_fast_commands_do_not_import_tensorflow(command: list[str]) -> None:
    code = (
        f"import sys; from edgebuild.cli.main import main; main({command!r}); print('TF', 'tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("TF False")


def test_targets_lists_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["targets"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["edgetpu", "ethos-u55", "mcu", "mobile"]


def test_targets_show_prints_resolved_toml(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["targets", "show", "mcu", "--set", "quantization.io=uint8"], capsys)
    assert code == 0
    assert 'name = "mcu"' in out and 'io = "uint8"' in out and "ram = 262144" in out


def test_unknown_target_exit_code_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["targets", "show", "tpu"], capsys)
    assert code == 3
    assert err.startswith("edgebuild: profile error: Unknown target 'tpu'.")
    assert "Traceback" not in err


def test_build_without_target_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["build", str(tmp_path)], capsys)
    assert code == 2
    assert "No target given" in err


def test_missing_model_is_reported_before_tensorflow_loads(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["--target", "mobile", str(tmp_path / "nope.keras")], capsys)
    assert code == 4
    assert f"Model {tmp_path / 'nope.keras'} does not exist" in err.replace("\n", " ")


def test_plan_prints_stages_without_tensorflow(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    code = (
        f"import sys; from edgebuild.cli.main import main; "
        f"main(['plan', {str(model)!r}, '-t', 'mcu', '--calibration', 'random']); "
        "print('TF', 'tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "mcu: Microcontroller" in result.stdout
    assert "6. emit" in result.stdout
    assert result.stdout.strip().endswith("TF False")


def test_impossible_pass_combination_fails_at_plan_time(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    code, _, err = run(
        ["build", str(model), "-t", "mobile", "-d", str(model), "--set", "distillation.enabled=true"], capsys
    )
    assert code == 3
    assert 'distillation.student = "pruned" needs pruning.kind = "structured"' in " ".join(err.split())
    assert not (Path("build") / "m").exists()


def test_bad_set_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["targets", "show", "mcu", "--set", "quantization.io"], capsys)
    assert code == 3
    assert "is not of the form key.path=value" in err


def test_keyword_symbol_fails_in_the_profile_before_tensorflow_loads(tmp_path: Path) -> None:
    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    code = (
        f"import sys; from edgebuild.cli.main import main; "
        f"rc = main(['build', {str(model)!r}, '-t', 'mcu', '--calibration', 'random', '-o', {str(tmp_path / 'out')!r}, "
        f"'--set', 'mcu.symbol=class']); print('TF', 'tensorflow' in sys.modules); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "'mcu.symbol' = 'class': a C/C++ keyword" in " ".join(result.stderr.split())
    assert result.stdout.strip().endswith("TF False")
    assert not (tmp_path / "out").exists()
