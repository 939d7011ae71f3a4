"""The HTTP service's knobs, in one place (``matcher serve`` options map onto them one to one)."""
from __future__ import annotations

from dataclasses import dataclass

ADMIN_TOKEN_VARIABLE = "MATCHER_ADMIN_TOKEN"  # admin endpoints answer only with this bearer token, and not at all without it


@dataclass(frozen=True)
class ServiceSettings:
    """Knobs of ``matcher serve``.

    max_batch_size : images gathered into one CNN batch from concurrent requests
    max_batch_wait_ms : how long the first image of a batch waits for others, milliseconds
    max_queue : images waiting for the engine at most; past it a request is answered 429 with ``Retry-After``
    max_batch_images : images one ``/v1/match/batch`` call may carry
    max_upload_mb : request body limit, megabytes (10^6 bytes), enforced while the body is read
    reload_interval_s : how often the published version of the index is checked, seconds (0: never; the admin
        endpoint still reloads)
    top_k : candidate brands per result unless the request asks for another number (1..``max_top_k``)
    """

    max_batch_size: int = 16
    max_batch_wait_ms: float = 5.0
    max_queue: int = 256
    max_batch_images: int = 32
    max_upload_mb: float = 20.0
    reload_interval_s: float = 10.0
    top_k: int = 5
    max_top_k: int = 50

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)
