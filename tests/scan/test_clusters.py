"""Clusters of near-duplicate listings: candidate pairs from stored descriptors checked against brute force, SIFT
verification that joins reposts of a photo and not other photos of the product, and a real scan's cluster ids."""
from __future__ import annotations

from pathlib import Path

from PIL import Image
import numpy as np
import pytest

from matcher.building import apply_chain
from matcher.features import extract_local_features
from matcher.scan import read_results, scan
from matcher.scan.clusters import ClusterSettings, candidate_pairs, near_duplicates

DEMO = Path(__file__).resolve().parents[2] / "demo"
BRAND = DEMO / "catalog" / "Arla-Sour-Milk"


def _descriptors(vectors: np.ndarray) -> np.ndarray:
    """(n, d) unit vectors -> the stored layout (n, 1 + 5, d) float16 (windows: zeros, unused here)."""
    out = np.zeros((len(vectors), 6, vectors.shape[1]), np.float16)
    out[:, 0] = vectors
    return out


def test_candidate_pairs_match_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16))
    vectors = np.vstack([base, base[:10] + 0.1 * rng.normal(size=(10, 16)), np.zeros((3, 16))])
    vectors[:50] /= np.linalg.norm(vectors[:50], axis=1, keepdims=True)
    stored = _descriptors(vectors)
    settings = ClusterSettings(min_similarity=0.8, neighbours=3, query_block=7, database_block=11)
    sims = stored[:, 0].astype(np.float32) @ stored[:, 0].astype(np.float32).T
    expected = {(min(i, j), max(i, j)) for i in range(len(sims)) for j in np.argsort(-sims[i])[:4]
                if i != j and sims[i, j] >= 0.8}
    assert set(candidate_pairs(stored, settings)) == expected
    assert {(i, i + 40) for i in range(10)} <= expected  # every perturbed copy found; rows of zeros never


def test_reposts_verify_and_other_photos_of_the_product_do_not():
    photos = sorted(BRAND.glob("*.jpg"))
    original = Image.open(photos[1]).convert("RGB")
    rng = np.random.default_rng(3)
    reposts = [apply_chain(original, names, rng)[0] for names in (["crop", "jpeg"], ["text", "downscale"],
                                                                 ["hflip", "sticker"])]
    settings = ClusterSettings()
    extract = lambda im: extract_local_features(im, long_side=settings.sift_long_side,  # noqa: E731
                                                max_features=settings.sift_features)
    features = [extract(im) for im in [original, *reposts]]
    for repost in features[1:]:
        assert near_duplicates(features[0], repost)
    other = extract(Image.open(photos[2]).convert("RGB"))
    assert not near_duplicates(features[0], other)


def test_scan_gives_reposts_one_cluster_and_others_none(demo_matcher, tmp_path):
    rng = np.random.default_rng(7)
    folder = tmp_path / "listings"
    folder.mkdir()
    photo = Image.open(sorted(BRAND.glob("*.jpg"))[1]).convert("RGB")
    for k, names in enumerate((["crop"], ["text", "jpeg"], ["pad"], ["emoji"])):
        apply_chain(photo, names, rng)[0].save(folder / f"repost_{k}.jpg", quality=90)
    others = [p for p in sorted((DEMO / "listings").glob("listing_0*.jpg"))][:6]
    for p in others:
        Image.open(p).convert("RGB").save(folder / f"other_{p.name}", quality=90)
    summary = scan(folder, demo_matcher, tmp_path / "results.jsonl")
    rows = {r["listing"]: r for r in read_results(tmp_path / "results.jsonl")}
    reposts = {rows[f"repost_{k}.jpg"]["cluster_id"] for k in range(4)}
    assert len(reposts) == 1 and reposts != {""}
    assert {r["cluster_id"] for name, r in rows.items() if name.startswith("other_")} == {""}
    assert summary.clustered == {reposts.pop(): 4}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_descriptors_kept_beside_results_row_per_position(demo_matcher, tmp_path, fmt):
    from matcher.scan import read_history

    folder = tmp_path / "listings"
    folder.mkdir()
    for p in sorted((DEMO / "listings").glob("listing_0[1-3].jpg")):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "listing_00.jpg").write_bytes(b"not an image")
    results = tmp_path / f"results.{fmt}"
    scan(folder, demo_matcher, results)
    history = read_history(results)
    rows = read_results(results)
    assert history.vectors.dtype == np.float16 and history.vectors.shape[0] == len(rows)
    for row in rows:
        assert history.has(row["position"]) == (row["status"] == "ok")
        assert row["index_version"] == demo_matcher.version.folder.name
        assert row["model"].startswith("efficientnet_lite0@") and float(row["threshold"]) > 0
    assert history.meta["index_version"]["name"] == demo_matcher.version.folder.name
    assert not list(tmp_path.glob(".*.part"))


def test_a_view_from_elsewhere_verifies_but_is_not_a_repost():
    """A perspective change (the same carton photographed from a step aside) keeps many homography inliers over
    the package, but they do not fit one affine map: not a near-duplicate. An affine edit (rotation and
    downscale) of the same photo stays within SIFT's localisation noise."""
    from matcher.building.edits import perspective
    from matcher.features.sift import affine_error, mirror_features, verify_against

    settings = ClusterSettings()
    extract = lambda im: extract_local_features(im, long_side=settings.sift_long_side,  # noqa: E731
                                                max_features=settings.sift_features)
    original = Image.open(sorted(BRAND.glob("*.jpg"))[1]).convert("RGB")
    rng = np.random.default_rng(5)
    views = [perspective(original, rng)[0] for _ in range(3)]
    edited = apply_chain(original, ["rotate", "downscale"], rng)[0]
    base = extract(original)
    for view in map(extract, views):
        found = verify_against(base, [view], query_mirrored=mirror_features(base))[0]
        assert found.inliers >= settings.min_inliers  # the homography still verifies it
        assert affine_error(found, base, view) > settings.max_affine_error
        assert not near_duplicates(base, view, settings)
    copy = extract(edited)
    found = verify_against(base, [copy])[0]
    assert affine_error(found, base, copy) < settings.max_affine_error
    assert near_duplicates(base, copy, settings)


def test_scope_suspects_verifies_only_pairs_with_a_suspect(demo_matcher, tmp_path):
    """Reposts of an everyday photo (no brand: no suspect among them) form a cluster only with scope ``all``;
    reposts of a catalog photo form one either way."""
    from matcher.inputs import everyday_photos

    folder = tmp_path / "listings"
    folder.mkdir()
    photos = {"brand": Image.open(sorted(BRAND.glob("*.jpg"))[1]).convert("RGB"),
              "everyday": everyday_photos()[0].convert("RGB")}
    for seed, (prefix, photo) in enumerate(photos.items(), start=7):
        rng = np.random.default_rng(seed)
        for k, names in enumerate((["crop"], ["text", "jpeg"], ["pad"])):
            apply_chain(photo, names, rng)[0].save(folder / f"{prefix}_{k}.jpg", quality=90)
    found = {}
    for scope in ("suspects", "all"):
        scan(folder, demo_matcher, tmp_path / f"{scope}.jsonl", clusters=ClusterSettings(scope=scope))
        rows = {r["listing"]: r for r in read_results(tmp_path / f"{scope}.jsonl")}
        assert all(rows[f"brand_{k}.jpg"]["verdict"] != "no_match" for k in range(3))
        assert all(rows[f"everyday_{k}.jpg"]["verdict"] == "no_match" for k in range(3))
        found[scope] = {prefix: {rows[f"{prefix}_{k}.jpg"]["cluster_id"] for k in range(3)}
                        for prefix in ("brand", "everyday")}
        assert len(found[scope]["brand"]) == 1 and found[scope]["brand"] != {""}
    assert found["suspects"]["everyday"] == {""}
    assert len(found["all"]["everyday"]) == 1 and found["all"]["everyday"] != {""}
    scan(folder, demo_matcher, tmp_path / "none.jsonl", clusters=None)
    assert {r["cluster_id"] for r in read_results(tmp_path / "none.jsonl")} == {""}
