"""Throughput and memory of ``matcher scan`` against a naive baseline, in one run on one machine.

Usage::

    .venv/bin/python scripts/bench_scan.py [--listings 360] [--seed 0] [--workers N]    # or: make bench

Measures, over synthetic listings generated once (deterministically from ``--seed``) into ``results/bench/``:

* naive baseline: PIL decode + eager PyTorch fp32 (the timm model under ``no_grad``, no channels_last,
  batches of 32), one process, images/s;
* the engine's model alone: the CNN on the runtime the index records (OpenVINO bf16 or ONNX Runtime fp32, as
  the machine allows) on already decoded images, images/s;
* end-to-end ``scan()`` listings/s, each scan in a fresh process (model and index loading not timed; decode
  workers as the scan decides, and forced off / on for comparison), on a
  marketplace-like mix (5% edited copies of catalog photos, 95% everyday photos: random crops of scikit-image's
  photos, lightly edited, 512-640 px JPEGs) and a benchmark-like mix (35% copies, 35% edited held-out photos of
  the catalog's products from ``demo/holdout``, 30% everyday photos);
* peak RSS of the scanning process (VmHWM) at two sizes of the marketplace mix, plus the peak private memory
  (USS, sampled) of its helper processes (decode workers, forkserver).

The index of ``demo/catalog`` is built once into ``results/bench/index``. ``--listings N`` sets the large
marketplace scan (the small one is N/6, the benchmark-like one N/15, the model-only sets min(256, N/6)). The
default, 360, takes a few minutes on 2 CPUs (the gate sends ~10% of the marketplace mix, the copies and a few
everyday photos, to region search + SIFT). ``--listings 3000`` gives the 500 / 3,000 memory comparison.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from matcher.inputs import default_workers

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "results" / "bench"
CATALOG = REPO / "demo" / "catalog"
HOLDOUT = REPO / "demo" / "holdout"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# ----------------------------------------------------------------------------------------- listings
_GEN: dict = {}


def _gen_init() -> None:
    from PIL import Image

    from matcher.inputs import everyday_photos

    def photos(root: Path) -> list:
        return [Image.open(p).convert("RGB") for p in sorted(root.glob("*/*")) if p.suffix.lower() in IMAGE_SUFFIXES]

    _GEN.update(backgrounds=everyday_photos(), catalog=photos(CATALOG), holdout=photos(HOLDOUT))


def _everyday(rng, backgrounds):
    """A random crop of an everyday photo, lightly edited, resized to a long side of 512-640 px."""
    from PIL import Image

    from matcher.building import listing_edit, random_crop

    image, _ = listing_edit(random_crop(backgrounds[int(rng.integers(len(backgrounds)))], rng, 0.15), rng)
    scale = int(rng.integers(512, 641)) / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)


def _make_listing(job: tuple[str, int, int, Path]) -> str:
    """Write listing ``index`` of ``mix`` (deterministic in seed and index) unless it exists; its kind."""
    import numpy as np

    from matcher.building import copy_edit, listing_edit

    mix, seed, index, path = job
    rng = np.random.default_rng([seed, 1 if mix == "market" else 2, index])
    draw = rng.random()
    g = _GEN
    if (mix == "market" and draw < 0.05) or (mix == "bench" and draw < 0.35):
        kind, (image, _) = "copy", copy_edit(g["catalog"][int(rng.integers(len(g["catalog"])))], rng, g["backgrounds"])
    elif mix == "bench" and draw < 0.70:
        kind, (image, _) = "same_product", listing_edit(g["holdout"][int(rng.integers(len(g["holdout"])))], rng)
        scale = rng.uniform(0.8, 1.0)  # and a re-encode: distinct bytes even for unedited photos
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    else:
        kind, image = "none", _everyday(rng, g["backgrounds"])
    if not path.exists():
        temp = path.with_suffix(".tmp")
        image.save(temp, "JPEG", quality=int(rng.integers(75, 96)))
        os.replace(temp, path)
    return kind


def make_listings(mix: str, count: int, seed: int, jobs: int) -> tuple[Path, dict[str, int]]:
    """Generate (or reuse) the first ``count`` listings of a mix; a .txt manifest of them and their kinds."""
    import multiprocessing

    folder = WORK / f"{mix}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(mix, seed, i, folder / f"{mix}_{i:05d}.jpg") for i in range(count)]
    kinds_file = folder / "kinds.json"
    known = json.loads(kinds_file.read_text()) if kinds_file.is_file() else {}
    missing = [job for job in todo if job[3].name not in known or not job[3].exists()]
    if missing:
        print(f"generating {len(missing)} {mix} listings in {folder} ...", file=sys.stderr, flush=True)
        context = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_gen_init) as pool:
            for job, kind in zip(missing, pool.map(_make_listing, missing, chunksize=16)):
                known[job[3].name] = kind
        kinds_file.write_text(json.dumps(known))
    manifest = WORK / f"{mix}_seed{seed}_{count}.txt"
    manifest.write_text("".join(f"{folder.name}/{job[3].name}\n" for job in todo))
    kinds: dict[str, int] = {}
    for job in todo:
        kinds[known[job[3].name]] = kinds.get(known[job[3].name], 0) + 1
    return manifest, kinds


# ------------------------------------------------------------------------------------- measurements
def naive_images_per_second(paths: list[Path]) -> float:
    """PIL decode + eager torch fp32 (plain timm model, no_grad, NCHW), GeM, batches of 32, one process."""
    from PIL import Image
    import numpy as np
    import torch

    from matcher.features import DescriptorConfig, get_spec, load_backbone

    spec = get_spec(DescriptorConfig().backbone)
    model, _ = load_backbone(spec)
    model.eval()
    pre = spec.preprocessing
    mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(paths), 32):
            arrays = [np.asarray(Image.open(p).convert("RGB").resize((pre.size, pre.size), Image.BILINEAR))
                      for p in paths[start:start + 32]]
            x = (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
            feature_map = model.forward_features(x)
            torch.nn.functional.normalize(feature_map.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3), dim=1)
    return len(paths) / (time.perf_counter() - started)


def model_images_per_second(paths: list[Path], index: Path) -> tuple[float, str]:
    """The engine's CNN alone, on the runtime the index records (``cascade.load_embedder_for``), on images decoded
    beforehand: (images/s, the runtime's name)."""
    from matcher.cascade import load_embedder_for
    from matcher.inputs import decode_for_matching

    images = [decode_for_matching(p.read_bytes(), p.name) for p in paths]
    embedder = load_embedder_for(index)
    embedder.describe(images[:4])  # warm-up: first-run allocations
    started = time.perf_counter()
    embedder.describe(images)
    return len(images) / (time.perf_counter() - started), embedder.runner.name


def run_scan(manifest: Path, index: Path, workers: int | None, repeats: int = 1) -> dict:
    """A scan in a fresh process (this script with --child): timing and memory of the fastest of ``repeats``."""
    out = WORK / f"scan_{manifest.stem}_w{workers}.jsonl"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(manifest), "--index", str(index),
               "--out", str(out)] + ([] if workers is None else ["--workers", str(workers)])
    runs = []
    for _ in range(repeats):
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"scan of {manifest} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return max(runs, key=lambda r: r["per_second"])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _uss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    private = ("Private_Clean", "Private_Dirty")
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(private))


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def child_scan(args: argparse.Namespace) -> None:
    """Run one scan here; print a JSON line: seconds, listings, CPU time, peak RSS here, helpers' peak USS."""
    from matcher import Matcher, scan
    from matcher.scan import read_results

    peak_helpers, helper_cpu, stop = [0], {}, threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            helpers = _descendants(os.getpid())
            peak_helpers[0] = max(peak_helpers[0], sum(_uss_kb(pid) for pid in helpers))
            helper_cpu.update({pid: max(helper_cpu.get(pid, 0.0), _cpu_seconds(pid)) for pid in helpers})

    if sys.platform.startswith("linux"):
        threading.Thread(target=sample, daemon=True).start()
    matcher = Matcher.open(args.index)
    cpu = time.process_time()
    summary = scan(args.child, matcher, args.out, workers=args.workers)
    cpu = time.process_time() - cpu
    stop.set()
    rows = read_results(args.out)
    verified = sum(any(m["inliers"] >= 0 for m in r.get("matches") or []) for r in rows)  # -1: not verified
    status = Path("/proc/self/status").read_text() if sys.platform.startswith("linux") else ""
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
    print(json.dumps({"seconds": summary.seconds, "total": summary.total, "per_second": summary.per_second,
                      "cpu_ms": 1000 * (cpu + sum(helper_cpu.values())) / max(summary.total, 1),
                      "verified": verified / max(len(rows), 1),
                      "verdicts": dict(summary.verdicts), "peak_rss_mb": hwm / 1024,
                      "helpers_uss_mb": peak_helpers[0] / 1024}))


def ensure_index() -> Path:
    from matcher import IndexMismatchError, IndexNotFoundError, Matcher, build_index

    index = WORK / "index"
    try:
        Matcher.open(index)
    except (IndexNotFoundError, IndexMismatchError):
        print(f"building the index of {CATALOG} into {index} ...", file=sys.stderr, flush=True)
        build_index(CATALOG, index)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=360, help="size of the large marketplace scan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="scan --workers (default: the scan's, auto)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_scan(args)

    big = max(args.listings, 12)
    small, bench, sample = max(big // 6, 6), max(big // 15, 6), min(256, max(big // 6, 6))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()
    jobs = max(1, min(os.cpu_count() or 1, 4))
    market, market_kinds = make_listings("market", big, args.seed, jobs)
    bench_manifest, bench_kinds = make_listings("bench", bench, args.seed, jobs)
    index = ensure_index()
    paths = [WORK / line for line in market.read_text().splitlines()[:sample]]

    print("measuring: naive baseline ...", file=sys.stderr, flush=True)
    naive = naive_images_per_second(paths)
    print("measuring: engine model only ...", file=sys.stderr, flush=True)
    model, runtime = model_images_per_second(paths, index)
    small_manifest, _ = make_listings("market", small, args.seed, jobs)
    print("warming up (a scan whose figures are dropped) ...", file=sys.stderr, flush=True)
    run_scan(small_manifest, index, 0)
    scans = []
    mode = "auto" if args.workers is None else f"--workers {args.workers}"
    for label, manifest, workers in [(f"scan marketplace mix ({small}), {mode}", small_manifest, args.workers),
                                     (f"scan marketplace mix ({big}), {mode}", market, args.workers),
                                     (f"scan marketplace mix ({small}), --workers 0", small_manifest, 0),
                                     (f"scan marketplace mix ({small}), --workers {default_workers()}",
                                      small_manifest, default_workers()),
                                     (f"scan benchmark-like mix ({bench}), {mode}", bench_manifest, args.workers)]:
        print(f"measuring: {label} ...", file=sys.stderr, flush=True)
        scans.append((label, run_scan(manifest, index, workers, repeats=2 if manifest == small_manifest else 1)))

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\nbench_scan: seed {args.seed}, {cpus} CPUs, load average {load:.1f} at start; "
          f"marketplace kinds {market_kinds}, benchmark-like kinds {bench_kinds}")
    print(f"{'':46} {'n':>5} {'items/s':>8} {'x naive':>8} {'CPU ms':>7} {'cascade':>8} {'peak RSS':>9} "
          f"{'helpers':>8}")
    print(f"{'naive: PIL + eager torch fp32, 1 process':46} {len(paths):5d} {naive:8.1f} {1:8.2f}")
    print(f"{'engine model only: ' + runtime + ', decoded':46} {len(paths):5d} {model:8.1f} {model / naive:8.2f}")
    for label, r in scans:
        print(f"{label:46} {r['total']:5d} {r['per_second']:8.1f} {r['per_second'] / naive:8.2f} {r['cpu_ms']:7.0f} "
              f"{100 * r['verified']:7.0f}% {r['peak_rss_mb']:7.0f}MB {r['helpers_uss_mb']:6.0f}MB")
    ratio = scans[1][1]["peak_rss_mb"] / scans[0][1]["peak_rss_mb"]
    print(f"peak RSS of the scanning process, {big} vs {small} listings: x{ratio:.2f}")
    print(f"(listings/s exclude model and index loading, best of 2 for the small scans; CPU ms: per listing, scan "
          f"process and helpers; cascade: listings that got region search + SIFT; helpers: peak private memory of "
          f"decode workers and forkserver; total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
