"""`build --matrix`, `--executor` and `optimize` mistakes: one paragraph, the right exit code, before TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgebuild.cli.main import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_optimize_and_matrix_help_import_neither_tensorflow_nor_ray() -> None:
    code = (
        "import sys; from edgebuild.cli.main import main; main(['optimize', '--help']); main(['build', '--help']); "
        "print('HEAVY', [m for m in ('tensorflow', 'ray') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout and "--budget" in result.stdout and "--matrix" in result.stdout


def test_matrix_file_with_unknown_key_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "edgebuild.toml"
    matrix.write_text('[matrix]\nmodels = ["m.keras"]\ntargets = ["mcu"]\ntarget = "x"\n')
    code, err = run(["build", "--matrix", str(matrix)], capsys)
    assert code == 3 and "edgebuild.toml" in err and "target" in err and "Traceback" not in err


def test_matrix_with_missing_model_fails_before_any_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "edgebuild.toml"
    matrix.write_text('[matrix]\nmodels = ["absent.keras"]\ntargets = ["mcu", "mobile"]\n')
    code, err = run(["build", "--matrix", str(matrix)], capsys)
    assert code == 4 and "absent.keras" in err
    assert not (tmp_path / "build").exists()


def test_matrix_with_bad_override_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.keras").write_bytes(b"")
    matrix = tmp_path / "edgebuild.toml"
    matrix.write_text('[matrix]\nmodels = ["m.keras"]\ntargets = ["mcu"]\n[matrix.variants]\nx = ["mcu.nope=1"]\n')
    code, err = run(["build", "--matrix", str(matrix)], capsys)
    assert code == 3 and "mcu.nope" in err


def test_ray_executor_without_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgebuild.errors import UsageError
    from edgebuild.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    with pytest.raises(UsageError, match=r"edgebuild\[ray\]"):
        make_executor("ray")
    with pytest.raises(UsageError, match="local, ray"):
        make_executor("dask")


@pytest.mark.parametrize(
    ("budget", "message"), [("speed=3", "KEY=VALUE"), ("ram=lots", "not a size"), ("flash", "KEY=VALUE")]
)
def test_bad_budget(budget: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["optimize", str(tmp_path), "--target", "mcu", "--budget", budget], capsys)
    assert code == 2 and message in err


def test_budget_and_duration_parsing() -> None:
    from edgebuild.optimize.run import parse_budgets, parse_duration

    budgets = parse_budgets(["ram=128KiB", "flash=1MiB", "latency_ms=2.5"], 1.5)
    assert (budgets.ram, budgets.flash, budgets.latency_ms, budgets.max_drop) == (131072, 1048576, 2.5, 1.5)
    assert budgets.overrides() == ("budget.flash=1048576", "budget.ram=131072", "validation.max_accuracy_drop=1.5")
    assert [parse_duration(t) for t in ("2h", "30m", "90s", "12")] == [7200, 1800, 90, 12]


def test_space_orders_cheap_candidates_first_and_bounds_are_optimistic() -> None:
    from edgebuild.optimize.space import Measured, candidates, lower_bounds
    from edgebuild.profiles import resolve

    profile = resolve("mcu")
    space = candidates(profile)
    assert [c.name for c in space if not c.trains] == ["int16x8-ptq", "int8-ptq"]
    assert all(not c.trains for c in space[:2]) and all(c.trains for c in space[2:])
    assert not any(c.method == "qat" and c.precision == "int16x8" for c in space)
    pruned = next(c for c in space if c.ratio == 0.5 and c.precision == "int8" and c.method == "ptq")
    assert "pruning.ratio=0.5" in pruned.overrides(profile)
    assert "training.recovery_epochs=25" in pruned.overrides(profile, 0.25)
    assert lower_bounds(pruned, Measured(10_000, 4_000)) == (2_500, 2_000)
