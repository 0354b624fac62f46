"""`edgebuild build MODEL --target T [--target T2] [--data D]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from edgebuild.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgebuild.api import BuildResult


def register(app: typer.Typer) -> None:
    app.command("build")(build)


def build(
    model: Path | None = typer.Argument(None, help="SavedModel folder, .keras (Keras 2 or 3) or .h5 file."),
    target: list[str] = typer.Option(
        [], "--target", "-t", help="Built-in target name, a profile .toml, or 'all'. Repeats."
    ),
    data: Path | None = typer.Option(
        None, "--data", "-d", help=".npz (x, y), .npy or an image folder with class sub-folders."
    ),
    val_data: Path | None = typer.Option(
        None, "--val-data", help="Separate validation data (default: a seeded split of --data)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output root (default build/<model name>)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a profile key, e.g. --set quantization.io=int8. Repeats."
    ),
    calibration: str = typer.Option("data", "--calibration", help="'data' (default) or 'random' (smoke tests only)."),
    no_gates: bool = typer.Option(
        False, "--no-gates", help="Report failed validation gates without failing the build."
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, help="Targets built in parallel (default: cores, capped by memory)."
    ),
    bench_device: str | None = typer.Option(
        None, "--bench-device", help="Also benchmark each target on a device: ssh://user@host[:port] or adb:SERIAL."
    ),
    identity: Path | None = typer.Option(None, "--identity", "-i", help="SSH private key for --bench-device."),
    accept_new_host_key: bool = typer.Option(
        False, "--accept-new-host-key", help="Add an unknown device's host key (never disables checking)."
    ),
    known_hosts: Path | None = typer.Option(
        None, "--known-hosts", help="known_hosts file for the device (default: ssh's)."
    ),
    device_python: str = typer.Option("python3", "--device-python", help="Python on the SSH device."),
    benchmark_model: str | None = typer.Option(
        None, "--benchmark-model", help="adb devices: path of TFLite's benchmark_model."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build from scratch and do not store the result."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Cache location (default: $XDG_CACHE_HOME/edgebuild)."
    ),
    matrix: Path | None = typer.Option(
        None, "--matrix", help="Build every cell of a matrix file (edgebuild.toml: models x targets x variants)."
    ),
    executor: str = typer.Option("local", "--executor", help="Where --matrix builds run: local or ray."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: a local Ray)."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local executor processes (default: cores)."),
) -> int:
    """Convert, validate and benchmark MODEL for each target; write OUT/<target>/."""
    from edgebuild.api import build as api_build
    from edgebuild.cli.render import StageProgress
    from edgebuild.errors import EdgebuildError

    if matrix is not None:
        if model is not None or target or data is not None:
            raise UsageError("--matrix takes models, targets and data from the file; drop MODEL, --target and --data.")
        from edgebuild.cli.matrix import build_matrix

        return build_matrix(
            matrix,
            executor=executor,
            ray_address=ray_address,
            workers=workers,
            overrides=tuple(set_),
            gates=not no_gates,
            use_cache=not no_cache,
            cache_dir=cache_dir,
        )
    if model is None:
        raise UsageError("No model given. Pass MODEL (a .keras, .h5 or SavedModel folder) or --matrix edgebuild.toml.")
    if not target:
        raise UsageError("No target given. Pass --target mobile|edgetpu|mcu|all (see `edgebuild targets`).")
    if calibration not in {"data", "random"}:
        raise UsageError(f"--calibration {calibration!r} is not valid; use 'data' or 'random'.")
    device_options = None
    if bench_device is not None:
        device_options = {
            "identity": identity,
            "accept_new_host_key": accept_new_host_key,
            "known_hosts": known_hosts,
            "device_python": device_python,
            "benchmark_model": benchmark_model,
        }
    try:
        result = api_build(
            model,
            target,
            data,
            val_data=val_data,
            out=out,
            overrides=set_,
            gates=not no_gates,
            calibration=calibration,
            jobs=jobs,
            cache=not no_cache,
            cache_dir=cache_dir,
            progress=StageProgress(),
            bench_device=bench_device,
            device_options=device_options,
        )
    except EdgebuildError as exc:
        if getattr(exc, "result", None) is not None:  # the targets ran: show them, then fail
            _print_result(exc.result)  # type: ignore[attr-defined]
        raise
    _print_result(result)
    return 0


def _print_result(result: BuildResult) -> None:
    """The summary table, each target's warnings, and notes said once per build."""
    from edgebuild.cli.render import build_summary
    from edgebuild.cli.render import out as console

    console.print(build_summary(list(result)))
    notes = []
    for r in result:
        report: Mapping[str, Any] = r.report or {}
        for warning in report.get("warnings", []):
            console.print(f"[yellow]warning[/yellow] ({r.target}): {warning}")
        edgetpu = (report.get("compile") or {}).get("edgetpu") or {}
        if edgetpu.get("available") is False and edgetpu["message"] not in notes:
            notes.append(edgetpu["message"])
    for note in notes:  # said once per build, not once per target
        console.print(f"[cyan]note[/cyan]: {note}")
