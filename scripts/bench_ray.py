"""The Ray engine's overhead on one machine: the same listings through the local engine and through Ray.

Usage::

    .venv/bin/python scripts/bench_ray.py BENCH_DIR [--listings 3000] [--shard-size 500] [--actors N] [--threads N]

Uses ``bench_marketplace.py``'s marketplace-like listings (the benchmark's real everyday ``none`` photos
re-encoded, 5% matches) and index (``results/marketplace``). Each engine runs in its own child process, one after
the other: the local engine (``matcher.scan`` to Parquet, default workers) and the Ray engine
(``scan_on_ray`` to Parquet shards, on a local Ray instance started by the child before the clock starts, as a
cluster would already be running). Prints listings/s of each (model and index loading included: an actor loads
its own), the ratio, CPU-core milliseconds per listing (the process and its decode workers; for Ray the driver
and every ``ray::`` worker process, polled from /proc: the load-independent cost behind docs/scale-out.md's
sizing), the peak RSS (``VmHWM``) of each driver and of each cascade actor, and whether both engines gave the
same verdicts.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import resource
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_marketplace import WORK, make_listings  # noqa: E402

from matcher import IndexMismatchError, IndexNotFoundError, Matcher, build_index  # noqa: E402
from matcher.index import published_manifest  # noqa: E402


def peak_kb(pid: int | str = "self") -> int:
    """A process's peak resident memory (``VmHWM``, kB; unlike ``ru_maxrss`` it does not carry over exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    """A process's CPU time so far (user + system, seconds), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch_workers(stop: threading.Event, peaks: dict[int, int], cpu: dict[int, float]) -> None:
    """Poll /proc until ``stop``: the cascade actors' peak RSS (kB) and every Ray worker's CPU seconds, by pid."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if not cmdline.startswith(b"ray::"):
                    continue
                cpu[int(pid)] = max(cpu.get(int(pid), 0.0), cpu_seconds(pid))
                if b"CascadeStage" in cmdline:
                    peaks[int(pid)] = max(peaks.get(int(pid), 0), peak_kb(pid))
            except (OSError, IndexError, ValueError):
                continue
        stop.wait(0.5)


def child(engine: str, manifest: Path, index: Path, shard_size: int, actors: int | None,
          threads: int | None) -> dict:
    """Run one engine in this process; its figures as a dict."""
    if engine == "local":
        from matcher import scan

        started, cpu = time.perf_counter(), _own_cpu()
        summary = scan(manifest, Matcher.open(index), WORK / "ray_bench_local.parquet")
        seconds = time.perf_counter() - started
        return {"rows": summary.total, "seconds": seconds, "cpu_seconds": _own_cpu() - cpu,
                "driver_peak_mb": _peak_mb(), "actors_mb": []}
    import ray

    from matcher.scan.distributed import scan_on_ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    peaks: dict[int, int] = {}
    workers_cpu: dict[int, float] = {}
    stop = threading.Event()
    poller = threading.Thread(target=watch_workers, args=(stop, peaks, workers_cpu), daemon=True)
    poller.start()
    started, cpu = time.perf_counter(), _own_cpu()
    summary = scan_on_ray(manifest, index, WORK / "ray_bench_sharded", shard_size=shard_size, actors=actors,
                          threads=threads)
    seconds = time.perf_counter() - started
    stop.set()
    poller.join()
    ray.shutdown()
    return {"rows": summary.rows, "seconds": seconds, "cpu_seconds": _own_cpu() - cpu + sum(workers_cpu.values()),
            "driver_peak_mb": _peak_mb(),
            "actors_mb": [round(kb / 1024) for _, kb in sorted(peaks.items())]}


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the local scan's decode workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mb() -> int:
    return round(peak_kb() / 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--listings", type=int, default=3000)
    parser.add_argument("--match-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--actors", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="CNN threads per actor (default: the engine's)")
    parser.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    index = WORK / "index"
    manifest = WORK / f"listings_seed{args.seed}_{args.listings}.txt"
    if args.child:
        print(json.dumps(child(args.child, manifest, index, args.shard_size, args.actors, args.threads)))
        return 0
    try:
        published_manifest(index)  # not Matcher.open: the children measure their own memory
    except (IndexMismatchError, IndexNotFoundError):
        build_index(args.bench_dir / "references", index)
    make_listings(args.bench_dir, args.listings, args.match_rate, args.seed)
    figures = {}
    for engine in ("local", "ray"):
        command = [sys.executable, __file__, str(args.bench_dir), "--listings", str(args.listings),
                   "--seed", str(args.seed), "--shard-size", str(args.shard_size), "--child", engine]
        for option in ("actors", "threads"):
            if getattr(args, option):
                command += [f"--{option}", str(getattr(args, option))]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        figures[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    from matcher.scan import read_results

    local = {r["position"]: r["verdict"] for r in read_results(WORK / "ray_bench_local.parquet")}
    sharded = {r["position"]: r["verdict"] for r in read_results(WORK / "ray_bench_sharded")}
    rate = {engine: f["rows"] / f["seconds"] for engine, f in figures.items()}
    print(f"{args.listings} marketplace-like listings from {args.bench_dir} ({os.cpu_count()} CPUs)")
    for engine, f in figures.items():
        actors = f", cascade actors peak {f['actors_mb']} MB" if f["actors_mb"] else ""
        print(f"  {engine:5}: {rate[engine]:.1f} listings/s ({f['seconds']:.1f} s), "
              f"{1000 * f['cpu_seconds'] / f['rows']:.0f} CPU-core ms per listing, "
              f"driver peak {f['driver_peak_mb']} MB{actors}")
    print(f"ray / local: {rate['ray'] / rate['local']:.2f}x; rows {len(sharded)} vs {len(local)}, "
          f"verdicts differing: {sum(local.get(p) != v for p, v in sharded.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
