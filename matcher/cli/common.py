"""What every `matcher` command shares: the typer apps, one-line errors, progress on stderr, option checks.

Library errors (``MatcherError``) become one line on stderr and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import functools

import typer

from ..errors import MatcherError

app = typer.Typer(help="Find listing images that copy or imitate a brand's genuine reference photos.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
index_app = typer.Typer(help="Build, update and inspect indexes of genuine reference photos.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def domain_errors(command):
    """Turn MatcherError (and a missing torch extra, Ctrl-C) into a one-line message and exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MatcherError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def _say(message: str) -> None:
    typer.echo(message, err=True)


RUNTIME_HELP = ("auto (OpenVINO bf16 on a CPU with bf16 instructions, else ONNX Runtime fp32), onnx (fp32), bf16, "
                "int8 (ONNX Runtime, statically quantised) or torch (fp32). Scans of the index use its runtime.")


def _runtime(name: str) -> str:
    """``--runtime`` checked before any work (``runtime.make_runner`` would refuse it with a traceback)."""
    from ..features.runtimes import RUNTIMES

    if name not in RUNTIMES:
        _fail(f"unknown --runtime {name!r}; use one of {', '.join(RUNTIMES)}", 2)
    return name
