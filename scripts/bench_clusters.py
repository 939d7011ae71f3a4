"""Clusters of reposted photos in a marketplace-like scan: how many reposts share their photo's cluster, how many
unrelated listings join one, and what clustering adds to the scan's time.

Usage::

    .venv/bin/python scripts/bench_clusters.py BENCH_DIR [--listings 3000] [--photos 20] [--seed 0]
                                               [--clusters suspects|all]

Writes ``--listings`` JPEGs to ``results/clusters/listings`` (reused when present): ``--photos`` reference photos
of distinct classes of ``BENCH_DIR/references``, each reposted 5-15 times with one or two different edits (crop,
downscale, JPEG, colour, text, emoji, logo, sticker, pad, meme caption, mirror, rotation: ``matcher.building``'s
edit functions); the rest unrelated: the four quadrants of the benchmark's ``none`` and ``same_product`` queries
and one ``copy`` query per other reference. Builds an index of the references without the class after the
copied photos' (``held_out_class``: every copied photo is of a brand the index protects) in
``results/clusters/index_without_<class>`` (``scripts/bench_rescan.py`` adds it back), scans, and prints:
the share of reposts in their photo's cluster (the cluster most of its reposts share), the share of unrelated
listings in any cluster, and the clustering's seconds as a share of the rest of the scan.

The unrelated pool is not free of shared pixels: devbench's screenshot edits paste photos into two app
templates (a quadrant of one can be all template, the same pixels in several listings), its collages fill in
with the same everyday photos, and its ``onto_background`` edits reuse a few backgrounds. The script prints the
unrelated share twice: over the whole pool, and over the listings cut from queries without those edits (which
no other listing shares pixels with).
"""
from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path
import shutil
import sys
import time

from PIL import Image
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import IndexMismatchError, IndexNotFoundError, Matcher, build_index, scan  # noqa: E402
from matcher.building import apply_chain  # noqa: E402
from matcher.inputs import everyday_photos  # noqa: E402
from matcher.scan import ClusterSettings, read_results  # noqa: E402
from matcher.scan.clusters import SCOPES  # noqa: E402

WORK = Path(__file__).resolve().parent.parent / "results" / "clusters"
REPOST_EDITS = ["crop", "downscale", "jpeg", "color_jitter", "text", "emoji", "logo", "sticker", "pad", "meme",
                "hflip", "rotate"]


def copied_photos(bench: Path, count: int) -> list[Path]:
    """One non-iconic reference photo of each of the first ``count`` classes (sorted)."""
    classes = sorted(p for p in (bench / "references").iterdir() if p.is_dir())[:count]
    return [sorted(p for p in c.glob("*.jpg") if "Iconic" not in p.name)[0] for c in classes]


SHARED_PIXEL_EDITS = ("screenshot", "collage", "onto_background")  # edits pasting pixels other queries share


def make_listings(bench: Path, count: int, photos: int, seed: int) -> tuple[Path, dict[str, str]]:
    """Write the listings (reused when present); the manifest (path, seller) and listing -> group ('' unrelated,
    else the copied photo's name)."""
    manifest, groups, _ = make_listings_with_sources(bench, count, photos, seed)
    return manifest, groups


def make_listings_with_sources(bench: Path, count: int, photos: int,
                               seed: int) -> tuple[Path, dict[str, str], dict[str, str]]:
    """``make_listings``, plus listing -> the benchmark query an unrelated listing was cut from."""
    rng = np.random.default_rng(seed)
    folder = WORK / f"listings_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    truth = list(csv.DictReader(open(bench / "ground_truth.csv", newline="", encoding="utf-8")))
    copied = copied_photos(bench, photos)
    jobs: list[tuple[str, object]] = []  # (group, how to make it)
    for photo in copied:
        jobs += [(photo.name, ("repost", photo)) for _ in range(int(rng.integers(5, 16)))]
    copied_refs = {f"references/{p.parent.name}/{p.name}" for p in copied}
    seen_refs, whole = set(), []
    for r in truth:
        if r["kind"] == "copy" and r["reference_image"] not in seen_refs and \
                not any(r["reference_image"].endswith(c.split("/", 1)[1]) for c in copied_refs):
            seen_refs.add(r["reference_image"])
            whole.append(r["query"])
    quads = [(q, k) for q in (r["query"] for r in truth if r["kind"] in ("none", "same_product")) for k in range(4)]
    unrelated = [("", ("quadrant", q)) for q in quads] + [("", ("whole", (q, -1))) for q in whole]
    order = rng.permutation(len(unrelated))[:max(0, count - len(jobs))]
    jobs += [unrelated[i] for i in sorted(order)]
    jobs = [jobs[i] for i in rng.permutation(len(jobs))]
    backgrounds = everyday_photos()
    groups, lines, sources = {}, [], {}
    for i, (group, (how, source)) in enumerate(jobs):
        name = f"l{i:05d}.jpg"
        groups[name] = group
        if how != "repost":
            sources[name] = source[0]
        lines.append((f"{folder.name}/{name}", f"seller{int(rng.integers(0, 150)):03d}"))
        if (folder / name).exists():
            continue
        if how == "repost":
            names = [str(n) for n in rng.choice(REPOST_EDITS, size=int(rng.integers(1, 3)), replace=False)]
            image = apply_chain(Image.open(source).convert("RGB"), names, rng, backgrounds)[0]
        else:
            path, k = source
            image = Image.open(bench / path).convert("RGB")
            if how == "quadrant":
                w, h = image.size
                image = image.crop(((k % 2) * w // 2, (k // 2) * h // 2, (k % 2 + 1) * w // 2, (k // 2 + 1) * h // 2))
                image = image.resize((image.width * 2, image.height * 2), Image.BILINEAR)
        image.save(folder / name, "JPEG", quality=90)
    manifest = WORK / f"listings_seed{seed}_{count}.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "seller"])
        writer.writerows(lines)
    return manifest, groups, sources


def sharing_pixels(bench: Path, sources: dict[str, str]) -> set[str]:
    """The unrelated listings cut from queries whose edits paste pixels other queries share
    (``SHARED_PIXEL_EDITS``, read from the benchmark's ``manifest.csv``)."""
    edits = {r["file"]: r["edits"] for r in csv.DictReader(open(bench / "manifest.csv", newline="", encoding="utf-8"))}
    return {name for name, query in sources.items() if any(e in edits.get(query, "") for e in SHARED_PIXEL_EDITS)}


def held_out_class(bench: Path, photos: int) -> str:
    """The class left out of the base index (``bench_rescan.py`` adds it back): the first after the copied
    photos' classes, so that every copied photo is of a brand the index protects."""
    return sorted(p.name for p in (bench / "references").iterdir() if p.is_dir())[photos]


def base_index(bench: Path, photos: int, brand: str | None = None) -> Path:
    """The index of the references without ``brand`` (default ``held_out_class``; built once)."""
    brand = brand or held_out_class(bench, photos)
    index = WORK / f"index_without_{brand}"
    try:
        Matcher.open(index)
    except (IndexMismatchError, IndexNotFoundError):
        catalog = WORK / f"catalog_without_{brand}"
        if not catalog.exists():
            shutil.copytree(bench / "references", catalog)
            shutil.rmtree(catalog / brand)
        build_index(catalog, index)
    return index


def cluster_figures(results: Path, groups: dict[str, str],
                    leave_out: set[str] = frozenset()) -> tuple[float, float, int, int]:
    """(share of reposts in their photo's cluster, share of unrelated listings (less ``leave_out``) in any
    cluster, reposts, unrelated)."""
    rows = {Path(r["listing"]).name: r.get("cluster_id") or "" for r in read_results(results)}
    by_group: dict[str, list[str]] = {}
    for name, group in groups.items():
        if group:
            by_group.setdefault(group, []).append(rows.get(name, ""))
    together = 0
    for clusters in by_group.values():
        named = Counter(c for c in clusters if c)
        if named:
            together += named.most_common(1)[0][1]
    reposts = sum(len(v) for v in by_group.values())
    unrelated = [rows.get(n, "") for n, g in groups.items() if not g and n not in leave_out]
    return together / reposts, sum(1 for c in unrelated if c) / len(unrelated), reposts, len(unrelated)


def bench_arguments(doc: str, mixes: tuple[str, ...] = ()) -> argparse.Namespace:
    """The arguments of this bench and of ``bench_rescan.py`` (``mixes``: its listing mixes, first the default),
    which scans the same listings or bench_marketplace.py's."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--listings", type=int, default=3000)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    if mixes:
        parser.add_argument("--mix", choices=mixes, default=mixes[0])
        parser.add_argument("--brand", help="the class left out of the index and added back (default: the class "
                                            "after the copied photos' classes)")
    else:
        parser.add_argument("--clusters", choices=SCOPES, default="suspects",
                            help="which candidate pairs are verified (matcher scan --clusters)")
    return parser.parse_args()


def main() -> int:
    args = bench_arguments(__doc__)
    manifest, groups, sources = make_listings_with_sources(args.bench_dir, args.listings, args.photos, args.seed)
    matcher = Matcher.open(base_index(args.bench_dir, args.photos))
    matcher.match_many([manifest.parent / f"listings_seed{args.seed}" / name for name in list(groups)[:8]])  # warm-up
    started = time.perf_counter()
    summary = scan(manifest, matcher, WORK / "results.jsonl", clusters=ClusterSettings(scope=args.clusters))
    seconds = time.perf_counter() - started
    together, joined, reposts, unrelated = cluster_figures(WORK / "results.jsonl", groups)
    print(f"{len(groups)} listings: {reposts} reposts of {args.photos} photos, {unrelated} unrelated")
    print(f"reposts in their photo's cluster: {together:.1%}")
    print(f"unrelated listings in a cluster: {joined:.2%}")
    shared = sharing_pixels(args.bench_dir, sources)
    _, clean, _, kept = cluster_figures(WORK / "results.jsonl", groups, shared)
    print(f"unrelated listings in a cluster, without the {len(shared)} cut from queries whose edits paste shared "
          f"pixels ({', '.join(SHARED_PIXEL_EDITS)}): {clean:.2%} of {kept}")
    print(f"clustering ({args.clusters} pairs): {summary.cluster_seconds:.1f} s of a {seconds:.1f} s scan, "
          f"+{summary.cluster_seconds / (seconds - summary.cluster_seconds):.1%} on the scan without it")
    print(summary.line())
    for note in summary.notes():
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
