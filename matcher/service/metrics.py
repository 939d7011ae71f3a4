"""The service's Prometheus metrics, in a registry of its own (one per app: no process-wide state).

Names follow Prometheus conventions: the ``matcher_`` prefix, base units, ``_total`` for counters and
``_seconds`` for durations. A deployment with several worker processes needs ``PROMETHEUS_MULTIPROC_DIR``
(``docs/service.md``); ``matcher serve`` runs one process.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """The counters, histograms and gauges ``/metrics`` exposes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("matcher_requests_total", "HTTP requests answered, by endpoint and status code",
                                ["endpoint", "code"], registry=self.registry)
        self.duration = Histogram("matcher_request_duration_seconds", "Time to answer a request, by endpoint",
                                  ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("matcher_batch_size", "Images matched together in one CNN batch",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("matcher_queue_depth", "Images waiting for the engine", registry=self.registry)
        self.verdicts = Counter("matcher_verdicts_total", "Listing images answered, by verdict (or error status)",
                                ["verdict"], registry=self.registry)
        self.index_info = Gauge("matcher_index_info", "The index version served (1 for the current one)",
                                ["version", "model"], registry=self.registry)
        self.reloads = Counter("matcher_index_reloads_total", "Switches to a newly published index version",
                               registry=self.registry)

    def serving(self, version: str, model: str) -> None:
        """Mark ``version`` as the one served (the previous one is dropped from ``matcher_index_info``)."""
        self.index_info.clear()
        self.index_info.labels(version=version, model=model).set(1)

    def text(self) -> bytes:
        return generate_latest(self.registry)
