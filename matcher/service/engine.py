"""The service's engine: a ``Matcher`` whose index version is swapped whole when a new one is published.

A request's images are matched against the version current when their batch starts; a reload loads the new
version beside the old one and swaps one reference, so batches in flight finish on the old version. A version
that fails to load (damaged, or made by another model) is logged and the old one keeps serving.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from ..cascade import CascadeSettings, Matcher, MatchResult, run_cascade
from ..errors import MatcherError
from ..index import IndexVersion, model_name

log = logging.getLogger(__name__)


class Engine:
    """A ``Matcher`` that swaps in newly published versions safely, for a long-running service.

    Use ``Engine.open(index_dir)``; ``reload()`` switches to a newer published version; ``watch(interval)`` does
    it in a background thread until ``close()``.

    on_switch : called with each version the engine switches to after the first
    """

    def __init__(self, matcher: Matcher, on_switch: Callable[[IndexVersion], None] = lambda version: None):
        self.matcher = matcher
        self.on_switch = on_switch
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @classmethod
    def open(cls, index_dir: str | Path, *, settings: CascadeSettings = CascadeSettings(), threads: int | None = None,
             on_switch: Callable[[IndexVersion], None] = lambda version: None) -> "Engine":
        """Load the published version of ``index_dir`` with the embedder its manifest records."""
        return cls(Matcher.open(index_dir, threads=threads, settings=settings), on_switch)

    @property
    def version(self) -> IndexVersion:
        """The version served now."""
        return self.matcher.version

    def match(self, images: Sequence[Image.Image]) -> tuple[list[MatchResult], IndexVersion]:
        """Match decoded RGB images; returns their results and the version that made them."""
        version = self.matcher.version  # one version for the whole batch, even if a reload swaps it meanwhile
        return run_cascade(version, self.matcher.embedder, images, self.matcher.settings), version

    def reload(self) -> bool:
        """Load the newest published version if it is not the one served; True if it switched. A version that
        fails to load leaves the served one in place (logged, returns False)."""
        with self._reload_lock:
            served = self.matcher.version
            try:
                if not self.matcher.reload():
                    return False
            except MatcherError as exc:
                log.error("index %s: keeping version %s; the new one does not load: %s",
                          self.matcher.index_dir, served.folder.name, exc)
                return False
            self.on_switch(self.matcher.version)
            log.info("index %s: now serving version %s", self.matcher.index_dir, self.matcher.version.folder.name)
            return True

    def watch(self, interval_s: float) -> None:
        """Check for a newly published version every ``interval_s`` seconds, in a daemon thread."""
        if interval_s <= 0 or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, args=(interval_s,), name="matcher-reload", daemon=True)
        self._watcher.start()

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.reload()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failed check
                log.exception("index %s: checking for a new version failed", self.matcher.index_dir)

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)


def model_of(version: IndexVersion) -> str:
    """What made a version's vectors: backbone@weights digest/runtime family (as ``matcher index info`` shows)."""
    return model_name(version.manifest.get("fingerprint", {}))
