"""Walk a listings folder: every entry named like an image, and a count of what the walk left out.

Every entry whose name has an image suffix (``IMAGE_SUFFIXES``, any case) is yielded, whatever it is: a
regular file, a dangling symlink, a symlink loop, a FIFO, a device... A scan gives each its row, and one that
is no readable file fails when it is read, with its reason (``not_found`` / ``unreadable``). Nothing else is
yielded; a :class:`WalkReport` counts it: hidden entries (names starting with '.'; a hidden folder is not
entered), other names, links to a folder already walked, and sub-folders that could not be listed.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator

from matcher.errors import ListingsError
from .files import one_line
from .images import IMAGE_EXTENSIONS as IMAGE_SUFFIXES
_NAMED_FOLDERS = 3  # unreadable folders named in WalkReport.line()


@dataclasses.dataclass
class WalkReport:
    """What a folder walk did not yield, counted as it goes. False when it left nothing out.

    hidden : entries whose name starts with '.' (files, and folders, which are not entered)
    not_images : other entries whose name has no image suffix (text files, ...)
    repeated_folders : links to a folder already walked (its images have their rows once)
    unreadable_folders : ``'relative/path: reason'`` of each sub-folder that could not be listed
    """

    hidden: int = 0
    not_images: int = 0
    repeated_folders: int = 0
    unreadable_folders: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.hidden or self.not_images or self.repeated_folders or self.unreadable_folders)

    def line(self) -> str:
        """One line saying what was left out, e.g. ``listings folder walk left out 2 names without an image
        suffix, 1 hidden entry``; '' when nothing was."""
        parts = []
        if self.not_images:
            parts.append(f"{self.not_images} {_plural(self.not_images, 'name')} without an image suffix")
        if self.hidden:
            parts.append(f"{self.hidden} hidden {_plural(self.hidden, 'entry', 'entries')}")
        if self.repeated_folders:
            parts.append(f"{self.repeated_folders} {_plural(self.repeated_folders, 'link')} to a folder "
                         "already walked")
        if self.unreadable_folders:
            count = len(self.unreadable_folders)
            named = "; ".join(one_line(name) for name in self.unreadable_folders[:_NAMED_FOLDERS])
            more = f"; {count - _NAMED_FOLDERS} more" if count > _NAMED_FOLDERS else ""
            parts.append(f"{count} unreadable {_plural(count, 'folder')} ({named}{more})")
        return f"listings folder walk left out {', '.join(parts)}" if parts else ""


def walk_images(root: str, report: WalkReport) -> Iterator[str]:
    """Yield the '/'-joined paths, relative to ``root``, of the entries named like an image, sorted by name
    within each folder, and count in ``report`` what is left out.

    Symlinks are followed, but each real folder is walked once (a symlink loop or two links to one folder
    do not repeat files). An unreadable sub-folder is counted, not fatal.

    Raises
    ------
    ListingsError
        ``root`` itself cannot be listed.
    """
    try:
        top = os.stat(root)
    except OSError as exc:
        raise ListingsError(f"{root}: cannot read listings folder ({exc.strerror or exc})") from None
    yield from _walk(root, "", {(top.st_dev, top.st_ino)}, report)


def _walk(folder: str, prefix: str, visited: set, report: WalkReport) -> Iterator[str]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if not prefix:
            raise ListingsError(f"{folder}: cannot read listings folder ({exc.strerror or exc})") from None
        report.unreadable_folders.append(f"{prefix.rstrip('/')}: {exc.strerror or exc}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            report.hidden += 1
            continue
        rel = prefix + entry.name
        if _is_folder(entry):
            try:
                info = entry.stat()  # follows symlinks
            except OSError as exc:
                report.unreadable_folders.append(f"{rel}: {exc.strerror or exc}")
                continue
            key = (info.st_dev, info.st_ino)
            if key in visited:
                report.repeated_folders += 1
            else:
                visited.add(key)
                yield from _walk(entry.path, rel + "/", visited, report)
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
            yield rel  # a file, or anything else named like one: reading it says what is wrong
        else:
            report.not_images += 1


def _is_folder(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a folder or a link to one (False for a dangling link or a symlink loop)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _plural(count: int, word: str, words: str | None = None) -> str:
    return word if count == 1 else (words or word + "s")
