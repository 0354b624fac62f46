"""Parallel targets (--jobs): same bytes as a serial build; one failure does not spoil the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vela_boards import board_ini

from edgebuild.cli.main import main
from edgebuild.pipeline import default_jobs

pytestmark = pytest.mark.tf

FAST = ["--no-cache", "--set", "benchmark.enabled=false"]


def test_parallel_build_is_byte_identical_to_serial(keras2_cnn, digits_data, tmp_path: Path) -> None:
    for jobs in ("1", "2"):
        assert (
            main(
                [
                    "build",
                    str(keras2_cnn.paths["keras"]),
                    "-t",
                    "mcu",
                    "-t",
                    "edgetpu",
                    "-t",
                    "mobile",
                    "-d",
                    str(digits_data.npz),
                    "-o",
                    str(tmp_path / jobs),
                    "-j",
                    jobs,
                    *FAST,
                ]
            )
            == 0
        )
    for target in ("mcu", "edgetpu", "mobile"):
        serial = (tmp_path / "1" / target / "model.tflite").read_bytes()
        assert serial == (tmp_path / "2" / target / "model.tflite").read_bytes(), target
        assert (tmp_path / "1" / target / "report.md").read_text().count("PASSED") == (
            tmp_path / "2" / target / "report.md"
        ).read_text().count("PASSED")
    assert (tmp_path / "1" / "mcu" / "c" / "model_data.cc").read_bytes() == (
        tmp_path / "2" / "mcu" / "c" / "model_data.cc"
    ).read_bytes()


def test_one_failing_target_leaves_the_others_complete(keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    # A board's own Vela config that Vela cannot parse (core_clock=fast): only Vela reads it, in the compile stage
    # after conversion, so the board target fails late (exit 10); mobile runs no Vela and must finish beside it.
    ini = tmp_path / "board.ini"
    ini.write_text(board_ini("fast"))
    board = tmp_path / "board.toml"
    board.write_text(
        f'extends = "ethos-u55"\nname = "board"\n[vela]\nconfig_file = "{ini}"\nsystem_config = "My_Board"\n'
    )
    out = tmp_path / "out"
    code = main(
        [
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            str(board),
            "-t",
            "mobile",
            "-d",
            str(digits_data.npz),
            "-o",
            str(out),
            "-j",
            "2",
            *FAST,
        ]
    )
    assert code == 10
    err = " ".join(capsys.readouterr().err.split())
    assert "Vela could not compile" in err and "could not convert string to float: 'fast" in err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["mobile"]  # no partial board folder
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    report = json.loads((out / "mobile" / "report.json").read_text())
    assert report["validation"]["passed"] is True
    assert (out / "mobile" / "model.tflite").stat().st_size == report["artifact"]["size_bytes"]


def test_default_jobs_respects_cores_targets_and_requests() -> None:
    assert default_jobs(4, 2) == 2
    assert default_jobs(1, 5) == 1
    assert 1 <= default_jobs(None, 3) <= 3


def test_ctrl_c_stops_workers_and_leaves_no_partial_folder(keras2_cnn, digits_data, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    code = "import sys; from edgebuild.cli.main import main; sys.exit(main(sys.argv[1:]))"
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "build",
            str(keras2_cnn.paths["keras"]),
            "-t",
            "mcu",
            "-t",
            "edgetpu",
            "-t",
            "mobile",
            "-t",
            "ethos-u55",
            "-d",
            str(digits_data.npz),
            "-o",
            str(out),
            "-j",
            "2",
            "--no-cache",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # interrupt as soon as the workers are converting
        if " load " in line or time.monotonic() > deadline:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
    assert leftovers == []
    for folder in (p for p in out.iterdir() if p.is_dir()) if out.exists() else []:
        assert (folder / "report.json").exists()  # whatever finished is complete
