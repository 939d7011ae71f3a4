"""Time local-feature extraction and pair verification on the demo catalog.

Usage::

    PYTHONPATH=. python scripts/bench_verify.py [--catalog demo/catalog] [--threads 1]

Prints milliseconds per image for :func:`extract_local_features` (plus the cost of
:func:`mirror_features`), milliseconds per pair for :func:`verify_pair` with the
mirrored query, and the cost of one listing against 5 references. Pin to one core
for a one-core figure, e.g. ``taskset -c 0`` with ``OPENBLAS_NUM_THREADS=1``.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path
import time

from PIL import Image, ImageDraw
import cv2
import numpy as np

from matcher.features import extract_local_features, mirror_features, pack_features, unpack_features, verify_pair


def edited_copy(image: Image.Image, angle: float) -> Image.Image:
    """Crop 80 %, rotate, add a caption and re-save as JPEG quality 30."""
    w, h = image.size
    out = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    out = out.rotate(angle, expand=True, fillcolor="white")
    ImageDraw.Draw(out).text((10, 10), "SALE -50%", fill=(255, 0, 0), font_size=30)
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=30)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def ms_per_call(function, items) -> float:
    start = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - start) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=Path("demo/catalog"))
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    paths = sorted(args.catalog.glob("*/*.jpg"))
    images = [Image.open(p).convert("RGB") for p in paths]
    brands = [p.parent.name.split("-")[0] for p in paths]
    print(f"{len(images)} catalog images, OpenCV threads = {args.threads}")

    extract_local_features(images[0])  # warm-up
    ms = ms_per_call(extract_local_features, images)
    references = [extract_local_features(im) for im in images]
    print(f"extract_local_features: {ms:6.1f} ms/image "
          f"(mean {np.mean([len(f) for f in references]):.0f} keypoints)")
    print(f"mirror_features:        {ms_per_call(mirror_features, references):6.2f} ms/image")

    queries = [extract_local_features(edited_copy(im, 10)) for im in images]
    mirrored = [mirror_features(q) for q in queries]
    pairs = [(i, j) for i in range(len(images)) for j in range(len(images))]
    pairs = pairs[:: max(1, len(pairs) // 600)]

    def verify(pair):
        i, j = pair
        return verify_pair(queries[i], references[j], query_mirrored=mirrored[i])

    ms_pair = ms_per_call(verify, pairs)
    ms_plain = ms_per_call(lambda p: verify_pair(queries[p[0]], references[p[1]]), pairs)
    print(f"verify_pair with mirror: {ms_pair:5.2f} ms/pair   (without mirror {ms_plain:.2f})")
    print(f"one listing vs 5 references: {5 * ms_pair:5.1f} ms verify "
          f"+ {ms:.1f} ms to extract the listing's features")

    true = [verify((i, i)).inliers for i in range(len(images))]
    other = [verify((i, j)).inliers for i in range(len(images))
             for j in range(len(images)) if brands[i] != brands[j]]
    print(f"edited copy (crop, rotate 10, caption, JPEG 30) vs its reference: "
          f"min {min(true)}, 5th pct {np.percentile(true, 5):.0f}, median {np.median(true):.0f}")
    print(f"same copies vs other brands' photos: 90th pct {np.percentile(other, 90):.0f}, "
          f"99th pct {np.percentile(other, 99):.0f}, max {max(other)}")

    packed = pack_features(references)
    start = time.perf_counter()
    buffer = io.BytesIO()
    np.savez(buffer, **packed)
    unpack_features(np.load(io.BytesIO(buffer.getvalue())))
    print(f"pack + savez + load + unpack: {(time.perf_counter() - start) * 1000:.1f} ms, "
          f"{buffer.tell() / len(references) / 1024:.0f} KiB/image")


if __name__ == "__main__":
    main()
