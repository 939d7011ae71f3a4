"""Outputs never clobber inputs: a results file or report is refused where it would overwrite what it reads.

``check_output`` is called before an output is opened for writing: by ``scan`` (the results file against the
listings source and the index folder), by ``report.write_report`` (the page against the results file and the
index) and by the CLI (``--report`` against ``--out`` and the listings, before any work). A path is compared
with another both resolved (symlinks, ``..``, relative paths) and, when both exist, with ``os.path.samefile``
(hard links, case-insensitive file systems).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import MatcherError


class OutputPathError(MatcherError):
    """An output path is one of the command's inputs, or lies inside the index folder."""

    exit_code = 2


def check_output(output: str | os.PathLike, what: str, *,
                 inputs: Iterable[tuple[str, str | os.PathLike | None]] = (),
                 folders: Iterable[tuple[str, str | os.PathLike | None]] = ()) -> None:
    """Refuse ``output`` when it is one of ``inputs`` or is (or lies inside) one of ``folders``.

    what : what would be written, e.g. "results" or "report"
    inputs, folders : ``(description, path)`` pairs, e.g. ``("listings manifest", path)``; None paths are skipped

    Raises
    ------
    OutputPathError
        One line naming both paths; nothing has been written.
    """
    for description, path in inputs:
        if path is not None and same_path(output, path):
            raise OutputPathError(f"{output}: refusing to write the {what} over the {description} {path}; "
                                  f"choose another output file")
    for description, folder in folders:
        if folder is not None and inside(output, folder):
            raise OutputPathError(f"{output}: refusing to write the {what} into the {description} {folder}; "
                                  f"choose an output outside it")


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file or folder (resolved, or ``os.path.samefile`` when both exist)."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet)
        return False


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies somewhere under it."""
    resolved, root = _resolved(path), _resolved(folder)
    if resolved == root or root in resolved.parents:
        return True
    if not os.path.isdir(folder):
        return False
    for parent in (resolved, *resolved.parents):  # the same folder under another name (bind mount, case)
        try:
            if os.path.samefile(parent, folder):
                return True
        except (OSError, ValueError):
            continue  # a part of the path that does not exist yet
    return False


def _resolved(path: str | os.PathLike) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return Path(os.path.abspath(path))
