"""`matcher` command line: a thin typer app over the library, one module per group of commands.

``common`` holds the apps and the one-line error handling; importing the command modules registers them.
"""
from __future__ import annotations

import logging

from . import history_commands, index_commands, scan_commands, service_commands  # noqa: F401 - registers the commands
from . import feedback_commands  # noqa: F401,I001 - after index_commands: `matcher index --help` lists it later
from .common import app

__all__ = ["app", "main"]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
