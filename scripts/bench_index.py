"""Flat vs approximate (IVF) reference index at 10k, 100k and 1M real embeddings: build time, memory, query
latency and recall@10 against flat.

Usage::

    nice -n 10 .venv/bin/python scripts/bench_index.py --sizes 10000,100000,1000000 [--threads 1]

How the vectors are made (all real EfficientNet-Lite0 activations of real, augmented pixels; no random vectors):

- **Sources**: the 48 demo product photos (``demo/catalog`` and ``demo/holdout``) and the 15 everyday photos of
  ``matcher.inputs.everyday_photos()``.
- **Augmented images** (seeded, ``--seed``): each picks a source at random and makes one of, with equal
  probability, ``matcher.building.copy_edit`` (1-3 chained copy edits: crops, overlays, screenshots, collages, mirrors,
  recolours, ...; backgrounds = the everyday photos), ``listing_edit`` of a ``random_crop``
  (area 20-100%), or a plain ``random_crop`` (``finish``-ed: <= 640 px, JPEG q90).
- **Descriptors**: each augmented image is run once through the CNN at 224 x 224 exactly as
  ``matcher.features.Embedder`` does (ONNX Runtime, same preprocessing), giving a 1280 x 7 x 7 feature map.
  Its **whole-image descriptor** is the GeM (p=3) of the whole map, L2-normalised: identical to
  ``Embedder.describe``. It also gives ``--per-image - 1`` (default 24) **regional descriptors**: GeM of the
  same feature map over distinct random windows of 3..7 x 3..7 cells (a crop of >= 3/7 of each side, >= 18% of
  the area, at different positions), L2-normalised: the descriptors of crops of the image as seen by the CNN in
  the context of the whole image (regional pooling, as in R-MAC), not separate CNN passes over the cropped
  pixels. This is what makes 1M vectors feasible: 40k CNN passes instead of 1M (1M passes at ~85 images/s on
  one core here would take ~3.5 h of CPU; the 40k images took ~15 min at ~45 images/s including the
  augmentation, on a shared 2-core machine). Measured on 120 windows of 40 images, whitened: a regional
  descriptor has cosine ~0.43 with the CNN descriptor of the same window cropped and embedded on its own
  (the whole image's: ~0.39; a crop of another image: ~0.05), so regional descriptors are real, distinct views
  of the image, but not identical to embeddings of the crops. A size-n database is the first n vectors in
  generation order, so the databases are nested and each mixes whole-image and regional descriptors 1:24.
- **Whitening**: ``matcher.index.fit_whitening(dim=256, shrinkage=1.0)`` (the engine's default) fitted on
  the raw descriptors of the first chunk (1,000 images, 25k vectors), then applied to all: 256-d unit vectors,
  as an index stores them.
- **Queries** (held out, never in a database): 1,000 listing-like images, separately seeded ``copy_edit`` or
  ``listing_edit`` of the 48 product photos, whole-image descriptors only, whitened the same way.

Everything is cached in ``results/bench_index/`` (git-ignored), chunk by chunk, so reruns and larger sizes only
embed what is missing.

Measured per size, for ``flat`` (``VectorIndex(256)``) and for the approximate kind at its defaults
(``VectorIndex.for_vectors(256, n, flat_max=0)``: IVF, nlist = 4 sqrt(n), default nprobe):
build time (train + add), index memory (bytes of the serialised index, and the process RSS growth while
building), query latency (ms per query in one batch of 1,000 queries, in batches of 32 as ``matcher scan``
searches, and for single queries one by one) and
recall@10 (|top-10 returned ∩ top-10 of flat| / 10, averaged over the queries). A second table sweeps nprobe.
FAISS and ONNX Runtime run on ``--threads`` threads (default 1).

Measured (FAISS 1.15.1, one thread, shared 2-core Xeon; ms per query; recall@10 against flat)::

            n | index             | build s |    file | RSS +    | batch 1000 | batch 32 | single | recall@10
       10,000 | flat              |    0.01 |  10 MiB |   10 MiB |      0.042 |    0.393 |  0.431 |    1.0000
       10,000 | ivf256,nprobe=32  |    0.12 |  10 MiB |   13 MiB |      0.056 |    0.063 |  0.089 |    0.9993
      100,000 | flat              |    0.07 |  98 MiB |   98 MiB |      0.388 |    5.846 |  5.741 |    1.0000
      100,000 | ivf1265,nprobe=32 |    4.42 | 100 MiB |  116 MiB |      0.155 |    0.178 |  0.245 |    0.9994
      200,000 | flat              |    0.10 | 197 MiB |  195 MiB |      0.745 |   15.199 | 14.956 |    1.0000
      200,000 | ivf1789,nprobe=32 |    9.17 | 199 MiB |  243 MiB |      0.281 |    0.322 |  0.408 |    0.9998
    1,000,000 | flat              |    0.58 | 984 MiB |  977 MiB |      3.925 |   76.307 | 76.012 |    1.0000
    1,000,000 | ivf4000,nprobe=32 |   51.91 | 988 MiB | 1245 MiB |      0.807 |    0.956 |  1.010 |    0.9988

nprobe sweep, recall@10 at nprobe 4 / 8 / 16 / 32 / 64: 10k 0.989 / 0.994 / 0.999 / 0.9993 / 0.9997;
100k 0.976 / 0.996 / 0.998 / 0.9994 / 0.9996; 200k 0.975 / 0.993 / 0.999 / 0.9998 / 0.9998;
1M 0.967 / 0.989 / 0.996 / 0.9988 / 0.9998. The default nprobe 32 keeps a margin over 0.98 for catalogs more
varied than these 63 source photos (on near-structureless synthetic data IVF recall is far lower).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from matcher.building import copy_edit, finish, listing_edit, random_crop  # noqa: E402
from matcher.features import Embedder, gem, l2_normalise, to_batch  # noqa: E402
from matcher.index import VectorIndex, Whitening, fit_whitening  # noqa: E402
from matcher.inputs import everyday_photos, load_image  # noqa: E402

CACHE_VERSION = 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MIN_CELLS = 3  # smallest window side, in feature-map cells
K = 10


# ----------------------------------------------------------------------------- sources and augmentation
def load_sources() -> tuple[list, list]:
    """(product photos of demo/catalog + demo/holdout, everyday background photos)."""
    paths = sorted(p for folder in ("catalog", "holdout") for p in (REPO / "demo" / folder).rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES)
    return [load_image(p) for p in paths], everyday_photos()


def augmented_image(rng: np.random.Generator, products: list, backgrounds: list):
    sources = products + backgrounds
    base = sources[int(rng.integers(len(sources)))]
    how = int(rng.integers(3))
    if how == 0:
        return copy_edit(base, rng, backgrounds)[0]
    if how == 1:
        return listing_edit(random_crop(base, rng), rng)[0]
    return finish(random_crop(base, rng))


def listing_query(rng: np.random.Generator, products: list, backgrounds: list):
    base = products[int(rng.integers(len(products)))]
    if rng.random() < 0.5:
        return copy_edit(base, rng, backgrounds)[0]
    return listing_edit(base, rng)[0]


# ----------------------------------------------------------------------------- descriptors
def all_windows(cells: int) -> np.ndarray:
    """Every window (y0, x0, y1, x1) of a cells x cells map with both sides >= MIN_CELLS, excluding the whole map."""
    spans = [(a, b) for a in range(cells) for b in range(a + MIN_CELLS, cells + 1)]
    windows = [(y0, x0, y1, x1) for y0, y1 in spans for x0, x1 in spans]
    return np.array([w for w in windows if w != (0, 0, cells, cells)], np.int64)


def regional_descriptors(feature_map: np.ndarray, p: float, regions: int, rng: np.random.Generator) -> np.ndarray:
    """Per image: the whole-image GeM descriptor, then ``regions`` GeM descriptors of distinct random windows.

    feature_map : float32 (b, C, h, w) -> float32 (b * (1 + regions), C), raw (L2-normalised, not whitened)
    """
    b, c, h, w = feature_map.shape
    whole = l2_normalise(gem(feature_map, p))  # == Embedder.describe for a single input size
    powered = np.power(np.maximum(feature_map, 1e-6), p).astype(np.float64)
    integral = np.zeros((b, c, h + 1, w + 1))
    integral[:, :, 1:, 1:] = powered.cumsum(axis=2).cumsum(axis=3)
    windows = all_windows(h)
    out = np.zeros((b, 1 + regions, c), np.float32)
    out[:, 0] = whole
    for i in range(b):
        y0, x0, y1, x1 = windows[rng.choice(len(windows), size=regions, replace=False)].T
        s = integral[i]
        sums = s[:, y1, x1] - s[:, y0, x1] - s[:, y1, x0] + s[:, y0, x0]  # (C, regions)
        means = np.maximum(sums / ((y1 - y0) * (x1 - x0)), 1e-6 ** p)  # as gem() clips
        out[i, 1:] = l2_normalise(np.power(means, 1.0 / p).T.astype(np.float32))
    return out.reshape(b * (1 + regions), c)


class Generator:
    """Makes and caches whitened vectors chunk by chunk (``chunk_images`` augmented images per chunk)."""

    def __init__(self, cache: Path, *, seed: int, per_image: int, chunk_images: int, threads: int):
        self.folder = cache / f"v{CACHE_VERSION}-seed{seed}-per{per_image}-chunk{chunk_images}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seed, self.per_image, self.chunk_images, self.threads = seed, per_image, chunk_images, threads
        self._embedder = self._sources = self._whitening = None
        self.embed_seconds = 0.0
        self.embedded_images = 0

    @property
    def chunk_vectors(self) -> int:
        return self.chunk_images * self.per_image

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(threads=self.threads)
        return self._embedder

    def sources(self):
        if self._sources is None:
            self._sources = load_sources()
        return self._sources

    def _feature_maps(self, images) -> np.ndarray:
        embedder = self.embedder()
        pre = embedder.spec.preprocessing
        maps = []
        for start in range(0, len(images), 32):
            batch = to_batch(images[start:start + 32], embedder.config.sizes[0], pre.mean, pre.std)
            maps.append(embedder.runner.run(batch))
        return np.concatenate(maps)

    def _raw_chunk(self, chunk: int) -> np.ndarray:
        products, backgrounds = self.sources()
        rng = np.random.default_rng([self.seed, chunk])
        start = time.perf_counter()
        raw = []
        for first in range(0, self.chunk_images, 100):
            images = [augmented_image(rng, products, backgrounds) for _ in range(min(100, self.chunk_images - first))]
            raw.append(regional_descriptors(self._feature_maps(images), self.embedder().config.gem_p,
                                            self.per_image - 1, rng))
        self.embed_seconds += time.perf_counter() - start
        self.embedded_images += self.chunk_images
        return np.concatenate(raw)

    def whitening(self) -> Whitening:
        if self._whitening is None:
            path = self.folder / "whitening.npz"
            if not path.is_file():
                raw = self._raw_chunk(0)
                whitening = fit_whitening(raw, dim=256, shrinkage=1.0)
                np.savez(path, **whitening.to_arrays())
                np.save(self.folder / "chunk_00000.npy", whitening.apply(raw))
            with np.load(path) as arrays:
                self._whitening = Whitening.from_arrays(arrays)
        return self._whitening

    def chunk(self, chunk: int) -> np.ndarray:
        path = self.folder / f"chunk_{chunk:05d}.npy"
        whitening = self.whitening()
        if not path.is_file():
            vectors = whitening.apply(self._raw_chunk(chunk))
            np.save(path.with_suffix(".tmp.npy"), vectors)
            path.with_suffix(".tmp.npy").rename(path)
            print(f"  embedded chunk {chunk} ({self.chunk_images} images -> {len(vectors)} vectors), "
                  f"{self.embedded_images / max(self.embed_seconds, 1e-9):.0f} images/s", flush=True)
        return np.load(path)

    def database(self, n: int) -> np.ndarray:
        chunks = -(-n // self.chunk_vectors)
        out = np.empty((n, 256), np.float32)
        for c in range(chunks):
            part = self.chunk(c)[: n - c * self.chunk_vectors]
            out[c * self.chunk_vectors: c * self.chunk_vectors + len(part)] = part
        return out

    def queries(self, count: int) -> np.ndarray:
        path = self.folder / f"queries_{count}.npy"
        if not path.is_file():
            products, backgrounds = self.sources()
            rng = np.random.default_rng([self.seed, 999_999])
            images = [listing_query(rng, products, backgrounds) for _ in range(count)]
            raw = l2_normalise(gem(self._feature_maps(images), self.embedder().config.gem_p))
            np.save(path, self.whitening().apply(raw))
        return np.load(path)


# ----------------------------------------------------------------------------- measurements
def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def serialised_bytes(index: VectorIndex, folder: Path) -> int:
    """Size of the index's file (``VectorIndex.save``: what FAISS serialises), written to ``folder`` and removed."""
    path = folder / f"sized-{os.getpid()}.faiss"
    try:
        index.save(path)
        return path.stat().st_size
    finally:
        path.unlink(missing_ok=True)


def ivf_nlist_of(index: VectorIndex) -> int:
    """The IVF cells of a trained approximate index, read from its ``kind`` (``ivf{nlist},nprobe={nprobe}``)."""
    return int(index.kind.split(",")[0].removeprefix("ivf"))


def recall(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def measure(make, database: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth, singles: int,
            scratch: Path) -> dict:
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    index = make()
    index.add(database, ids)
    build = time.perf_counter() - start
    grown = rss_bytes() - before
    index.search(queries[:10], K)  # warm up
    start = time.perf_counter()
    _, found = index.search(queries, K)
    batch_ms = (time.perf_counter() - start) / len(queries) * 1000
    start = time.perf_counter()
    for first in range(0, 256, 32):  # the batch size of `matcher scan`
        index.search(queries[first:first + 32], K)
    b32_ms = (time.perf_counter() - start) / 256 * 1000
    times = []
    for q in queries[:singles]:
        start = time.perf_counter()
        index.search(q[None], K)
        times.append(time.perf_counter() - start)
    row = {"kind": index.kind, "build_s": build, "bytes": serialised_bytes(index, scratch), "rss_delta": grown,
           "batch_ms": batch_ms, "b32_ms": b32_ms, "single_ms": float(np.median(times)) * 1000,
           "recall10": 1.0 if truth is None else recall(found, truth)}
    return row, index, found


def fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=200, help="queries timed one by one")
    parser.add_argument("--per-image", type=int, default=25, help="vectors per augmented image (1 whole + regions)")
    parser.add_argument("--chunk-images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="FAISS and ONNX Runtime threads")
    parser.add_argument("--nprobes", default="4,8,16,32,64,128", help="nprobe sweep of the IVF kind")
    parser.add_argument("--cache", type=Path, default=REPO / "results" / "bench_index")
    parser.add_argument("--embed-only", action="store_true", help="fill the cache and stop")
    args = parser.parse_args()

    import faiss

    faiss.omp_set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    gen = Generator(args.cache, seed=args.seed, per_image=args.per_image, chunk_images=args.chunk_images,
                    threads=args.threads)
    queries = gen.queries(args.queries)
    print(f"{len(queries)} held-out queries; databases: first n of the vectors in {gen.folder}", flush=True)
    if args.embed_only:
        gen.database(max(sizes))
        return

    rows, sweeps = [], []
    for n in sizes:
        database = gen.database(n)
        ids = np.arange(n, dtype=np.int64) * 3 + 5  # non-contiguous stable ids
        flat_row, flat, truth = measure(lambda: VectorIndex(256), database, ids, queries, None, args.singles,
                                        gen.folder)
        del flat
        ivf_row, ivf, found = measure(lambda: VectorIndex.for_vectors(256, n, flat_max=0), database, ids, queries,
                                      truth, args.singles, gen.folder)
        for row in (flat_row, ivf_row):
            row["n"] = n
            rows.append(row)
            print(f"  n={n:>9,} {row['kind']:<22} build {row['build_s']:7.2f} s  {fmt_bytes(row['bytes']):>9}  "
                  f"batch {row['batch_ms']:7.3f} ms/q  b32 {row['b32_ms']:7.3f} ms/q  "
                  f"single {row['single_ms']:7.3f} ms  recall@10 {row['recall10']:.4f}", flush=True)
        default = ivf.nprobe
        for nprobe in [int(p) for p in args.nprobes.split(",")]:
            ivf.nprobe = nprobe
            start = time.perf_counter()
            _, got = ivf.search(queries, K)
            ms = (time.perf_counter() - start) / len(queries) * 1000
            sweeps.append({"n": n, "nlist": ivf_nlist_of(ivf), "nprobe": nprobe, "batch_ms": ms,
                           "recall10": recall(got, truth)})
        ivf.nprobe = default
        del ivf, database
        gc.collect()

    print(f"\nFAISS {faiss.__version__}, {args.threads} thread(s); {len(queries)} held-out queries, k={K}; "
          f"b32 = batches of 32 as `matcher scan` issues "
          f"them; single = median of {args.singles} one-query searches")
    header = (f"{'n':>9} | {'index':<22} | {'build s':>8} | {'file':>9} | {'RSS +':>9} | {'batch ms/q':>10} | "
              f"{'b32 ms/q':>8} | {'single ms':>9} | {'recall@10':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['n']:>9,} | {r['kind']:<22} | {r['build_s']:>8.2f} | {fmt_bytes(r['bytes']):>9} | "
              f"{fmt_bytes(max(r['rss_delta'], 0)):>9} | {r['batch_ms']:>10.3f} | {r['b32_ms']:>8.3f} | "
              f"{r['single_ms']:>9.3f} | {r['recall10']:>9.4f}")
    print("\nIVF nprobe sweep (batch of queries):")
    print(f"{'n':>9} | {'nlist':>5} | {'nprobe':>6} | {'batch ms/q':>10} | {'recall@10':>9}")
    for s in sweeps:
        print(f"{s['n']:>9,} | {s['nlist']:>5} | {s['nprobe']:>6} | {s['batch_ms']:>10.3f} | {s['recall10']:>9.4f}")
    out = args.cache / "results.json"
    out.write_text(json.dumps({"rows": rows, "sweep": sweeps, "threads": args.threads,
                               "embedded_images_this_run": gen.embedded_images,
                               "embed_seconds_this_run": gen.embed_seconds}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
