"""Clusters of a scan: listings whose images are near-duplicates of each other (the same photo reposted,
re-encoded, cropped or overlaid) share a ``cluster_id``, so fifty sellers of one stolen photo read as one case.

Two steps, neither holding the scan's descriptors in memory at once:

1. **candidates**: the nearest listings of every listing by whitened global cosine (``history.py``'s float16
   memory map, searched block by block with FAISS: exact inner products, memory one block of queries and one
   of the database); pairs at or above ``ClusterSettings.min_similarity`` are candidates. The search costs
   O(n^2 d) multiply-adds: about a second per 10^4 listings squared on 2 cores (docs/benchmarks.md).
2. **verification**: a cosine alone joins look-alike photos of the same product, so each candidate pair is
   SIFT-verified (``features.sift.verify_against``, mirror image included) on the two images read again; it is
   a near-duplicate when it has at least ``min_inliers`` inliers, they spread over at least ``min_coverage`` of
   one image's area, and they agree with one affine map to within ``max_affine_error`` (``features.sift.
   affine_error``): edits of one photo move its pixels affinely, while two shots of the same shelf (the same
   carton photographed twice, a step apart) agree only through perspective and parallax, which the homography
   absorbs on a package but an affine map does not. Candidates are verified one connected group at a time, most
   similar first, skipping pairs already joined, so only one group's local features are in memory.

Verified pairs are joined transitively (union-find); a cluster is named ``c<smallest position>``. A listing with
no verified near-duplicate has no cluster (empty ``cluster_id``).

By default (``ClusterSettings.scope`` ``suspects``) only the pairs with at least one suspect (a ``copy`` or
``same_product`` verdict) are verified: a case is a suspect and the listings reposting its photo, flagged or
not, and the report shows only the clusters holding a suspect. Verifying the pairs of two unflagged listings
too (``all``) costs several times more on real traffic, where most listings have a look-alike (another shot of
the same shelf) in the scan.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..features.sift import LocalFeatures, affine_error, extract_local_features, mirror_features, verify_against
from ..inputs import load_or_error
from ..errors import ImageError
from .history import DescriptorLog
from .writers import iter_results


SCOPES = ("suspects", "all")
SUSPECT_VERDICTS = ("copy", "same_product")


@dataclass(frozen=True)
class ClusterSettings:
    """Knobs of clustering (defaults measured by ``scripts/bench_clusters.py``).

    min_similarity : whitened global cosine of a candidate pair
    neighbours : nearest listings examined per listing (transitivity joins larger clusters)
    min_inliers : SIFT inliers of a verified near-duplicate pair
    min_coverage : share of one image's area the inliers' bounding box must cover
    max_affine_error : median distance (pixels of the SIFT working frame) of the inliers from their best affine
        map; reposts stay under it (localisation noise), two shots of a scene mostly do not
    sift_long_side, sift_features : SIFT extraction of the listings re-read (smaller than the cascade's: a
        near-duplicate needs no fine detail, and extraction is most of clustering's time)
    query_block, database_block : rows searched at a time (memory: (query_block + database_block) x d floats)
    scope : ``suspects`` (pairs with at least one ``copy`` or ``same_product`` listing) or ``all`` pairs
    """

    min_similarity: float = 0.5
    neighbours: int = 10
    min_inliers: int = 15
    min_coverage: float = 0.5
    max_affine_error: float = 0.2
    sift_long_side: int = 160
    sift_features: int = 300
    query_block: int = 8192
    database_block: int = 65536
    scope: str = "suspects"

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"cluster scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")


def find_clusters(descriptors: np.ndarray, results: str | os.PathLike,
                  settings: ClusterSettings = ClusterSettings(), *, focus: set[int] | None = None,
                  known: Mapping[int, str] | None = None) -> dict[int, str]:
    """position -> cluster id for the listings that have a verified near-duplicate in the scan.

    descriptors : float16 (n, 1 + WINDOWS, d) stored descriptors (row = position, zeros where none)
    results : the results file (JSONL or CSV), or a sharded scan's folder, whose ``path`` column says where each
        listing's image is (and ``verdict`` which listings are suspects)
    focus, known : a re-scan's update of clusters found before (``known``: position -> cluster id, kept): only
        the pairs with a listing in ``focus`` (its new suspects) are verified, whatever ``settings.scope``
    """
    joined = _UnionFind()
    for members in _members(known or {}):
        for member in members[1:]:
            joined.union(members[0], member)
    pairs = candidate_pairs(descriptors, settings)
    if not pairs:
        return joined.names()
    paths, suspects = _listings(Path(results), {p for pair in pairs for p in pair})
    if focus is not None:
        pairs = [(a, b) for a, b in pairs if a in focus or b in focus]
    elif settings.scope == "suspects":
        pairs = [(a, b) for a, b in pairs if a in suspects or b in suspects]
    pairs = [(a, b) for a, b in pairs if joined.find(a) != joined.find(b)]
    # two threads: decoding, SIFT, the ratio test's matrix products and RANSAC release the GIL
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="matcher-clusters") as pool:
        for group in _groups(pairs):
            features = _local_features(paths, sorted({p for pair in group for p in pair}), settings, pool)
            todo = [(a, b) for a, b in _most_similar_first(descriptors, group) if a in features and b in features]
            while todo:  # a few pairs at a time, dropping those an earlier batch already joined
                batch, todo = todo[:_BATCH], todo[_BATCH:]
                verdicts = pool.map(lambda pair: near_duplicates(features[pair[0]], features[pair[1]], settings),
                                    batch)
                for (a, b), same in zip(batch, verdicts):
                    if same:
                        joined.union(a, b)
                todo = [(a, b) for a, b in todo if joined.find(a) != joined.find(b)]
    return joined.names()


_BATCH = 8  # pairs verified at once: enough for two threads, few verified in vain once their listings joined


def _members(cluster_ids: Mapping[int, str]) -> list[list[int]]:
    """The positions of each cluster of ``cluster_ids`` (position -> id)."""
    by_id: dict[str, list[int]] = {}
    for position, name in cluster_ids.items():
        if name:
            by_id.setdefault(name, []).append(position)
    return list(by_id.values())


def _most_similar_first(descriptors: np.ndarray, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs by decreasing global cosine (ties by position), so that reposts join through their closest
    copies first and the pairs they make redundant are skipped."""
    first = np.asarray(descriptors[[a for a, _ in pairs], 0], np.float32)
    second = np.asarray(descriptors[[b for _, b in pairs], 0], np.float32)
    order = np.lexsort((np.arange(len(pairs)), -np.einsum("ij,ij->i", first, second)))
    return [pairs[k] for k in order]


def candidate_pairs(descriptors: np.ndarray, settings: ClusterSettings = ClusterSettings()) -> list[tuple[int, int]]:
    """Sorted (i, j), i < j: each listing's up to ``neighbours`` nearest other listings whose whitened global
    cosine is at least ``min_similarity``; rows of zeros (no descriptor) take no part."""
    import faiss  # loaded on first use, see docs/architecture.md

    n = len(descriptors)
    best: dict[int, list[tuple[float, int]]] = {}
    k = settings.neighbours + 1
    for db_start in range(0, n, settings.database_block):
        database = np.asarray(descriptors[db_start:db_start + settings.database_block, 0], np.float32)
        index = faiss.IndexFlatIP(database.shape[1])
        index.add(database)
        for q_start in range(0, n, settings.query_block):
            queries = np.asarray(descriptors[q_start:q_start + settings.query_block, 0], np.float32)
            sims, ids = index.search(queries, min(k, len(database)))
            rows, cols = np.nonzero(sims >= settings.min_similarity)
            for r, c in zip(rows.tolist(), cols.tolist()):
                i, j = q_start + r, db_start + int(ids[r, c])
                if i != j:
                    best.setdefault(i, []).append((float(sims[r, c]), j))
    pairs = set()
    for i, found in best.items():
        for _, j in sorted(found, reverse=True)[:settings.neighbours]:
            pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def near_duplicates(a: LocalFeatures, b: LocalFeatures, settings: ClusterSettings = ClusterSettings()) -> bool:
    """Whether two images are the same photo: enough SIFT inliers (mirror image included unless the image as it
    is already has them), spread over at least ``min_coverage`` of the area of one of them, in one affine
    arrangement (``features.sift.affine_error`` at most ``max_affine_error``)."""
    found = verify_against(a, [b], query_mirrored=mirror_features(a), mirror_unless=settings.min_inliers)[0]
    if found.inliers < settings.min_inliers:
        return False
    if max(_coverage(found.query_points, a.size), _coverage(found.reference_points, b.size)) \
            < settings.min_coverage:
        return False
    return affine_error(found, a, b) <= settings.max_affine_error


def _coverage(points: np.ndarray, size: tuple[int, int]) -> float:
    """Area of the points' bounding box as a share of the image's (points in pixels, size (width, height))."""
    if len(points) == 0 or not all(size):
        return 0.0
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1]) / float(size[0] * size[1])


def _groups(pairs: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """The candidate pairs split into connected groups."""
    linked = _UnionFind()
    for a, b in pairs:
        linked.union(a, b)
    groups: dict[int, list[tuple[int, int]]] = {}
    for a, b in pairs:
        groups.setdefault(linked.find(a), []).append((a, b))
    return list(groups.values())


def _local_features(paths: dict[int, str], positions: list[int], settings: ClusterSettings,
                    pool: ThreadPoolExecutor) -> dict[int, LocalFeatures]:
    """Local features of the listings at ``positions``, read again from their files (on ``pool``'s threads);
    a listing that cannot be read any more is left out."""
    def one(position: int) -> LocalFeatures | None:
        image = load_or_error(paths[position], draft_side=settings.sift_long_side) if position in paths else None
        if image is None or isinstance(image, ImageError):
            return None
        return extract_local_features(image, long_side=settings.sift_long_side, max_features=settings.sift_features)

    found = dict(zip(positions, pool.map(one, positions)))
    return {p: f for p, f in found.items() if f is not None}


def _listings(results: Path, wanted: set[int]) -> tuple[dict[int, str], set[int]]:
    """(position -> image path, positions of the suspects) of the wanted listings, streamed from the results file
    (or from the part files of a sharded scan's folder, three columns at a time: its rows are large)."""
    paths, suspects = {}, set()

    def take(position: int, path: str | None, verdict: str | None) -> None:
        if position in wanted and path:
            paths[position] = path
            if verdict in SUSPECT_VERDICTS:
                suspects.add(position)

    if results.is_dir():
        import pyarrow.parquet as pq

        for part in sorted(results.glob("part-*.parquet")):
            table = pq.read_table(part, columns=["position", "path", "verdict"])
            for row in zip(*(table.column(name).to_pylist() for name in ("position", "path", "verdict"))):
                take(*row)
        return paths, suspects
    for row in iter_results(results):
        take(int(row["position"]), row.get("path"), row.get("verdict"))
    return paths, suspects


class _UnionFind:
    """Disjoint sets of positions; ``names`` gives each member of a set of two or more ``c<smallest>``."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def names(self) -> dict[int, str]:
        members: dict[int, list[int]] = {}
        for x in self.parent:
            members.setdefault(self.find(x), []).append(x)
        return {x: f"c{min(group)}" for group in members.values() if len(group) > 1 for x in group}


def cluster_scan(history: DescriptorLog | None, results: str | os.PathLike,
                 settings: ClusterSettings | None = ClusterSettings()) -> dict[int, str]:
    """A scan's final pass before ranking: write its stored descriptors (``history.finish``) and find its
    clusters (``find_clusters``); {} when the scan kept no descriptors or ``settings`` is None (no clustering)."""
    if history is None:
        return {}
    descriptors = history.finish()
    return {} if settings is None else find_clusters(np.load(descriptors, mmap_mode="r"), results, settings)
