"""Entry point and the one error boundary.

`edgebuild --target T MODEL` is routed to `build` (the default command), user
mistakes become one paragraph and an exit code, and only bugs show tracebacks
(or everything, with --debug).
"""

from __future__ import annotations

import os
import sys
import textwrap

COMMANDS = {
    "build",
    "targets",
    "plan",
    "validate",
    "bench",
    "compare",
    "carray",
    "flash",
    "prune",
    "distill",
    "doctor",
    "cache",
    "debug-quant",
    "optimize",
}
ROOT_FLAGS = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


def route_default_command(argv: list[str]) -> list[str]:
    """Insert `build` when the first argument is neither a command nor a root flag."""
    if argv and argv[0] not in COMMANDS and argv[0] not in ROOT_FLAGS:
        return ["build", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    from typer.exceptions import Abort, TyperException

    from edgebuild.cli.app import app
    from edgebuild.errors import EdgebuildError, StageTimeout

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = route_default_command([a for a in args if a != "--debug"])
    try:
        result = app(args=args, prog_name="edgebuild", standalone_mode=False)
    except EdgebuildError as exc:
        if debug:
            raise
        _print_error(f"{exc.title}: {exc}")
        if isinstance(exc, StageTimeout):  # the stuck worker thread cannot be joined: leave without it
            sys.stderr.flush()
            os._exit(exc.exit_code)
        return exc.exit_code
    except Abort:
        _exit_interrupted()
    except TyperException as exc:  # bad flags, missing arguments: the parser's own message
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            _print_error(exc.format_message())
        return exc.exit_code
    except KeyboardInterrupt:
        _exit_interrupted()
    return int(result or 0)


def _exit_interrupted() -> None:
    """Ctrl-C: every target stopped at a stage boundary and removed its partial folder.

    Exit without the interpreter's shutdown: TensorFlow's thread pools may still be winding down.
    """
    _print_error("interrupted; no partial artifacts were left behind")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _print_error(text: str) -> None:
    sys.stderr.write(
        textwrap.fill(f"edgebuild: {text}", width=100, break_on_hyphens=False, break_long_words=False) + "\n"
    )


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
