"""Loopback load benchmark of ``matcher serve`` against ``matcher scan`` on the same listing images, same run.

Usage::

    .venv/bin/python scripts/bench_serve.py [--listings demo/listings] [--index INDEX_DIR] [--concurrency 8]
                                            [--idle-requests 40] [--timeout 600]

Builds an index of ``demo/catalog`` in ``results/bench_serve/index`` unless ``--index`` is given. Then, in one
run: ``matcher scan`` of the listing images (every image file of ``--listings``, each distinct, so the scan's
duplicate memo gives it nothing) -> listings/s, model and index loading excluded; a ``matcher serve`` subprocess on
a free loopback port; ``--idle-requests`` single requests one after another (idle-server latency p50/p95/p99 and
p99/p50); every listing image sent once at ``--concurrency`` (throughput images/s, latency percentiles) and the
ratio of that throughput to the scan's listings/s. The request counts are bounded, requests give up after
``--timeout`` seconds, and the server is stopped at the end. Loopback only; the server binds 127.0.0.1.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import Matcher, build_index, scan  # noqa: E402
from matcher.inputs import iter_listings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "results" / "bench_serve"


def percentiles(seconds: list[float]) -> str:
    p50, p95, p99 = (1000 * float(np.percentile(seconds, q)) for q in (50, 95, 99))
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms (p99/p50 {p99 / p50:.2f})"


def scan_rate(listings: Path, index: Path) -> tuple[float, int]:
    matcher = Matcher.open(index)  # loading excluded from the timing
    with tempfile.TemporaryDirectory() as tmp:
        summary = scan(listings, matcher, Path(tmp) / "results.jsonl", workers=0)
    return summary.per_second, summary.total


def start_server(index: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "matcher.cli", "serve", "--index", str(index), "--port", str(port)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit("bench_serve: the server exited before it was ready")
        time.sleep(0.2)
    server.kill()
    raise SystemExit("bench_serve: the server was not ready after 300 s")


def post(client: httpx.Client, name: str, data: bytes) -> float:
    started = time.perf_counter()
    response = client.post("/v1/match", files={"image": (name, data, "image/jpeg")})
    if response.status_code not in (200, 422):  # 422: an unreadable listing, answered as such
        raise SystemExit(f"bench_serve: {name}: HTTP {response.status_code} {response.text[:200]}")
    return time.perf_counter() - started


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listings", type=Path, default=REPO / "demo" / "listings", help="folder of listing images")
    ap.add_argument("--index", type=Path, help="index folder (default: the demo catalog, built once)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--idle-requests", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=600, help="seconds before the benchmark gives up")
    args = ap.parse_args(argv)
    index = args.index or WORK / "index"
    if not (index / "CURRENT").exists():
        build_index(REPO / "demo" / "catalog", index)
    files = [(item.listing, item.path.read_bytes()) for item in iter_listings(args.listings)]
    per_second, scanned = scan_rate(args.listings, index)
    print(f"matcher scan: {scanned} listings at {per_second:.1f} listings/s", flush=True)
    server, url = start_server(index)
    try:
        with httpx.Client(base_url=url, timeout=args.timeout) as client:
            post(client, *files[0])  # warm-up
            idle = [post(client, *files[k % len(files)]) for k in range(args.idle_requests)]
        print(f"idle server, one request at a time: {percentiles(idle)}", flush=True)
        clients = [httpx.Client(base_url=url, timeout=args.timeout) for _ in range(args.concurrency)]
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            latencies = list(pool.map(lambda k: post(clients[k % len(clients)], *files[k]), range(len(files))))
        elapsed = time.perf_counter() - started
        for client in clients:
            client.close()
        rate = len(files) / elapsed
        print(f"concurrency {args.concurrency}: {len(files)} images at {rate:.1f} images/s; {percentiles(latencies)}")
        print(f"service / scan throughput: {rate / per_second:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
