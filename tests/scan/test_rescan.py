"""Re-scan of history: after a brand is added, ``rescan`` gives a fresh scan's verdicts while reading again only
the listings the new brand might reach; descriptors of another model, or none, are one-line errors."""
from __future__ import annotations

import json
from pathlib import Path
import shutil

import numpy as np
import pytest

from matcher import Matcher, add_to_index, rescan, scan
from matcher.errors import IndexMismatchError, MatcherError
from matcher.scan import read_results

DEMO = Path(__file__).resolve().parents[2] / "demo"


@pytest.fixture(scope="module")
def rescanned(demo_index, tmp_path_factory):
    """A scan of the demo listings with the demo index, then a brand added (the held-out photos of one product
    under a new name), then the re-scan and a fresh scan with the new version."""
    work = tmp_path_factory.mktemp("rescan")
    index = work / "index"
    shutil.copytree(demo_index, index)
    old = work / "old.jsonl"
    scan(DEMO / "listings.csv", Matcher.open(index), old)
    catalog = work / "new_brand"
    shutil.copytree(DEMO / "holdout" / "Oatly-Natural-Oatghurt", catalog / "Oatly-Lookalike")
    add_to_index(index, catalog)
    matcher = Matcher.open(index)
    summary = rescan(old, matcher, work / "new.jsonl")
    scan(DEMO / "listings.csv", matcher, work / "fresh.jsonl")
    return work, summary, matcher


def _verdicts(path: Path) -> dict[str, tuple]:
    """Per listing: status, verdict and, for a match, brand (a no_match row's closest brand may differ in a near
    tie of two low scores)."""
    return {r["listing"]: (r["status"], r["verdict"], r["brand"] if r["verdict"] != "no_match" else None)
            for r in read_results(path)}


def _clusters(path: Path) -> set[frozenset]:
    groups: dict[str, set] = {}
    for r in read_results(path):
        if r["cluster_id"]:
            groups.setdefault(r["cluster_id"], set()).add(r["listing"])
    return {frozenset(g) for g in groups.values()}


def test_rescan_verdicts_and_clusters_equal_a_fresh_scan(rescanned):
    work, summary, matcher = rescanned
    assert _verdicts(work / "new.jsonl") == _verdicts(work / "fresh.jsonl")
    assert _clusters(work / "new.jsonl") == _clusters(work / "fresh.jsonl")
    fresh = {r["listing"]: r for r in read_results(work / "fresh.jsonl")}
    for row in read_results(work / "new.jsonl"):  # re-scored from float16 descriptors: the same to ~1e-3
        if row["status"] == "ok":
            assert row["score"] == pytest.approx(fresh[row["listing"]]["score"], abs=2e-3)
            if row["verdict"] != "no_match":
                assert row["reference"] == fresh[row["listing"]]["reference"]
    rows = read_results(work / "new.jsonl")
    assert {r["index_version"] for r in rows} == {matcher.version.folder.name}
    assert summary.total == len(rows) == (summary.carried + summary.rescored + summary.remeasured + summary.rechecked
                                          + summary.failed)


def test_rescan_reads_again_only_what_the_new_brand_might_reach(rescanned):
    work, summary, _ = rescanned
    assert summary.carried + summary.rescored > 0  # judged from stored descriptors, no CNN
    assert summary.rescored_past_gate > 0  # from what verification measured in the first scan
    assert summary.remeasured > 0  # the added brand verified on the image, without the CNN
    assert summary.rechecked < summary.total - summary.failed
    assert (work / "new.jsonl.descriptors.npy").is_file()  # re-scans chain


def test_rescan_refuses_descriptors_of_another_model(rescanned, tmp_path):
    work, _, matcher = rescanned
    shutil.copy(work / "old.jsonl", tmp_path / "old.jsonl")
    shutil.copy(work / "old.jsonl.descriptors.npy", tmp_path / "old.jsonl.descriptors.npy")
    meta = json.loads((work / "old.jsonl.descriptors.json").read_text())
    meta["fingerprint"]["runtime"] = "int8-qdq-v2"
    (tmp_path / "old.jsonl.descriptors.json").write_text(json.dumps(meta))
    with pytest.raises(IndexMismatchError, match="old.jsonl: its stored descriptors were made by") as found:
        rescan(tmp_path / "old.jsonl", matcher, tmp_path / "new.jsonl")
    assert "\n" not in str(found.value)
    (tmp_path / "old.jsonl.descriptors.npy").unlink()
    with pytest.raises(MatcherError, match="no stored descriptors beside it"):
        rescan(tmp_path / "old.jsonl", matcher, tmp_path / "new.jsonl")
    assert not (tmp_path / "new.jsonl").exists()


def test_rescan_keeps_listings_past_the_gate_that_nothing_new_reaches(rescanned):
    """The demo is nearly all gate passes: most of them are kept from their stored crops, raw descriptor and the
    candidates' shared keypoints (``scan.reach``), not read again."""
    _, summary, _ = rescanned
    assert 0 < summary.carried_past_gate <= summary.carried


def test_a_stored_crop_near_a_new_reference_judges_the_listing_again(rescanned, tmp_path):
    """Each listing's stored descriptor given a region crop equal to a new reference's vector: the region search
    would bring that reference up, so no listing past the gate is kept as it was; each is judged again."""
    from matcher.cascade.descriptors import CROP_ROWS

    work, _, matcher = rescanned
    refs = matcher.version.refs
    new_ref = next(r.id for r in refs.references if r.brand == "Oatly-Lookalike")
    shutil.copy(work / "old.jsonl", tmp_path / "old.jsonl")
    shutil.copy(work / "old.jsonl.descriptors.json", tmp_path / "old.jsonl.descriptors.json")
    stored = np.load(work / "old.jsonl.descriptors.npy")
    kept = np.any(stored[:, 0] != 0, axis=1)
    stored[kept, CROP_ROWS.start] = refs.vectors[refs.row_of_id[new_ref]]
    np.save(tmp_path / "old.jsonl.descriptors.npy", stored)
    summary = rescan(tmp_path / "old.jsonl", matcher, tmp_path / "new.jsonl")
    assert summary.carried_past_gate == 0
    assert summary.rescored_past_gate + summary.remeasured + summary.rechecked > 0
