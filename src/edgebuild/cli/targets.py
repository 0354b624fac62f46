"""`edgebuild targets` lists the profiles; `edgebuild targets show NAME` prints one fully resolved."""

from __future__ import annotations

import typer

targets_app = typer.Typer(help="List built-in targets, or show one resolved profile.", invoke_without_command=True)


def register(app: typer.Typer) -> None:
    app.add_typer(targets_app, name="targets")


@targets_app.callback()
def list_targets(ctx: typer.Context) -> None:
    """List the built-in target profiles, one line each."""
    if ctx.invoked_subcommand is not None:
        return
    from edgebuild.profiles import builtin_names, resolve

    for name in builtin_names():
        profile = resolve(name)
        typer.echo(f"{name:<10} {profile.description}")


@targets_app.command("show")
def show(
    name: str = typer.Argument(..., help="Built-in target name or a profile .toml path."),
    set_: list[str] = typer.Option([], "--set", help="Override a key before showing."),
) -> None:
    """Print the fully resolved profile as TOML."""
    from edgebuild.profiles import resolve, to_toml

    typer.echo(to_toml(resolve(name, set_)), nl=False)
