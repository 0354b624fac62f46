"""`edgebuild bench ARTIFACT.tflite [--threads N] [--runs N] [--warmup N] [--device URL ...]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    artifact_path: Path = typer.Argument(..., metavar="ARTIFACT", help="A .tflite file."),
    threads: list[int] = typer.Option([1], "--threads", help="Thread count; repeats."),
    runs: int = typer.Option(100, "--runs", min=1),
    warmup: int = typer.Option(10, "--warmup", min=0),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Real input samples (.npz/.npy, or an image folder scaled by data.image_range); host only.",
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        "-t",
        help="Target or profile .toml whose data.image_range scales --data images (default: 0-255).",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a key of --target's profile, e.g. --set data.image_range=0-1. Repeats."
    ),
    as_json: bool = typer.Option(False, "--json"),
    device: str | None = typer.Option(
        None, "--device", metavar="URL", help="Benchmark on a device instead: ssh://user@host[:port] or adb:SERIAL."
    ),
    identity: Path | None = typer.Option(None, "--identity", "-i", help="SSH private key (ssh -i)."),
    accept_new_host_key: bool = typer.Option(
        False,
        "--accept-new-host-key",
        help="Trust and record an SSH host key seen for the first time (never a changed one).",
    ),
    known_hosts: Path | None = typer.Option(
        None, "--known-hosts", help="known_hosts file to use instead of ssh's default."
    ),
    connect_timeout: float = typer.Option(10, "--connect-timeout", min=1, help="SSH connect timeout, seconds."),
    device_python: str = typer.Option("python3", "--device-python", help="Python on the SSH device."),
    benchmark_model: str | None = typer.Option(
        None,
        "--benchmark-model",
        help="TFLite benchmark_model for adb devices: a local file (pushed) or a device path.",
    ),
) -> int:
    """Measure invoke() latency in LiteRT on this host, or on a device with --device."""
    from edgebuild.cli.render import benchmark_table, out

    if device is not None:
        return _bench_device(
            artifact_path,
            device,
            threads,
            runs,
            warmup,
            data,
            as_json,
            identity,
            accept_new_host_key,
            known_hosts,
            connect_timeout,
            device_python,
            benchmark_model,
        )

    from edgebuild.artifact import read_artifact
    from edgebuild.bench import benchmark_threads
    from edgebuild.cli.prune import target_profile
    from edgebuild.named_data import load_artifact_data
    from edgebuild.samples import for_artifact

    image_range = target_profile(target, set_).data.image_range  # as a build loads --data
    artifact = read_artifact(artifact_path)
    inputs = None
    if data is not None:
        dataset = load_artifact_data(data, artifact, image_range, str(artifact_path))
        inputs = for_artifact(dataset.inputs, artifact)
    result = benchmark_threads(artifact_path, threads, runs=runs, warmup=warmup, inputs=inputs)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        out.print(benchmark_table(result, str(artifact_path)))
    return 0


def _bench_device(
    artifact_path: Path,
    device: str,
    threads: list[int],
    runs: int,
    warmup: int,
    data: Path | None,
    as_json: bool,
    identity: Path | None,
    accept_new_host_key: bool,
    known_hosts: Path | None,
    connect_timeout: float,
    device_python: str,
    benchmark_model: str | None,
) -> int:
    from edgebuild.cli.render import benchmark_table, out
    from edgebuild.device import bench_on_device
    from edgebuild.errors import UsageError

    if data is not None:
        raise UsageError(
            "--data is not supported with --device yet: device benchmarks use seeded random inputs. "
            "Drop --data (latency does not depend on the input values for these models)."
        )
    result = bench_on_device(
        artifact_path,
        device,
        threads=threads,
        runs=runs,
        warmup=warmup,
        identity=identity,
        accept_new_host_key=accept_new_host_key,
        known_hosts=known_hosts,
        connect_timeout=connect_timeout,
        device_python=device_python,
        benchmark_model=benchmark_model,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return 0
    if "instructions_per_inference" in result:  # qemu:BOARD: a firmware run, counted in instructions
        cost, dev = result["instructions_per_inference"], result["device"]
        out.print(
            f"{artifact_path} on {device} ({dev['cpu']}, {dev['kernels']} kernels): {cost['median']:,} instructions "
            f"per inference (min {cost['min']:,}, max {cost['max']:,}, {result['runs']} runs); {result['unit']}\n"
            f"firmware flash {result['flash_bytes']:,} bytes, RAM {result['ram_bytes']:,} bytes, tensor arena used "
            f"{result['arena']['used_bytes']:,} of {result['arena']['declared_bytes']:,} bytes",
            markup=False,
        )
        return 0
    complete = all(
        r.get(k) is not None
        for r in result["threads"].values()
        for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "load_ms")
    )
    if complete:
        out.print(benchmark_table(result, f"{artifact_path} on {device}"))
    else:  # benchmark_model (adb) reports mean/std/min/max, not percentiles
        for n, r in result["threads"].items():
            p50 = f"{r['p50_ms']:.3f}" if r.get("p50_ms") is not None else "n/a"
            std = f"{r['std_ms']:.3f}" if r.get("std_ms") is not None else "n/a"
            out.print(
                f"{artifact_path} on {device}: threads {n}: mean {r['mean_ms']:.3f} ms, p50 {p50} ms, "
                f"std {std} ms, runs {r['runs']}, init {r['load_ms']:.1f} ms"
            )
    d = result["device"]
    details = ", ".join(str(v) for v in (d.get("cpu"), d.get("machine"), d.get("os")) if v)
    python = f", Python {d['python']}, NumPy {d['numpy']}" if d.get("python") else ""
    runtime = result.get("runtime") or {}
    out.print(f"device: {device} ({details}{python}, {runtime.get('name')} {runtime.get('version')})")
    edgetpu = result.get("edgetpu")
    if edgetpu is not None:
        out.print(
            f"Edge TPU delegate {edgetpu['library']}: "
            + ("used" if edgetpu["used"] else "loaded but did not take any part of the graph; these are CPU timings")
        )
    return 0
