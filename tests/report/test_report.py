"""HTML report: page structure from hand-written results (no browser), then the page in headless Chromium."""
from __future__ import annotations

from html.parser import HTMLParser
import json
from pathlib import Path
import re
import shutil

import pytest

from matcher.errors import MatcherError
from matcher.report.write import write_report
from matcher.scan.writers import open_writer

REPO = Path(__file__).resolve().parents[2]
LISTINGS = REPO / "demo" / "listings"
MALICIOUS_TITLE = 'Yoggi 1:1 copy <script>alert(1)</script> & "cheap"'
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _row(position, listing, verdict, brand, reference, score, suspicion, *, listing_id="", status="ok", error="",
         explanation="", title="", price="", matches=None, path=None):
    return {
        "listing": f"listings/{listing}", "listing_id": listing_id, "status": status, "error": error,
        "verdict": verdict, "brand": brand, "reference": reference, "score": score, "suspicion": suspicion,
        "explanation": explanation, "path": str(path or LISTINGS / listing), "title": title, "price": price,
        "position": position, "matches": matches if matches is not None else (
            [{"brand": brand, "reference": reference, "score": score, "copy_score": score, "inliers": 0}]
            if status == "ok" else []),
    }


KEYPOINTS = [[0.30, 0.25, 0.32, 0.28], [0.62, 0.30, 0.60, 0.31], [0.45, 0.70, 0.47, 0.72], [0.55, 0.52, 0.54, 0.50]]
ROWS = [  # deliberately not in suspicion order
    _row(0, "broken.jpg", "", "", "", None, None, listing_id="MP-1", status="not_an_image",
         error="listings/broken.jpg: not an image (looks like an HTML web page)"),
    _row(1, "listing_02.jpg", "no_match", "Oatly-Natural-Oatghurt", "", 0.04, 0.04, listing_id="MP-2"),
    _row(2, "listing_13.jpg", "same_product", "Arla-Sour-Milk", "Arla-Sour-Milk/Arla-Sour-Milk_Iconic.jpg",
         0.81, 0.70, listing_id="MP-3", explanation="image: another photo of Arla-Sour-Milk's product (score 0.81)"),
    _row(3, "listing_01.jpg", "copy", "Yoggi-Vanilla-Yoghurt", "Yoggi-Vanilla-Yoghurt/Yoggi-Vanilla-Yoghurt_013.jpg",
         0.97, 0.99, listing_id="MP-4", title=MALICIOUS_TITLE, price="0.59",
         explanation="image: copy of Yoggi-Vanilla-Yoghurt's photo Yoggi-Vanilla-Yoghurt/Yoggi-Vanilla-Yoghurt_013.jpg "
                     "(score 0.97); title says 'replica', '1:1' (+0.02); price 0.59 is 90% below Yoggi's typical 5.90",
         matches=[{"brand": "Yoggi-Vanilla-Yoghurt", "reference": "Yoggi-Vanilla-Yoghurt/Yoggi-Vanilla-Yoghurt_013.jpg",
                   "score": 0.97, "copy_score": 0.99, "inliers": 4, "keypoints": KEYPOINTS},
                  {"brand": "Valio-Vanilla-Yoghurt", "reference": "Valio-Vanilla-Yoghurt/Valio-Vanilla-Yoghurt_008.jpg",
                   "score": 0.12, "copy_score": 0.01, "inliers": 0}]),
    _row(4, "listing_03.jpg", "copy", "Arla-Medium-Fat-Milk", "Arla-Medium-Fat-Milk/Arla-Medium-Fat-Milk_020.jpg",
         0.95, 0.95, listing_id="MP-5"),
    _row(5, "listing_10.jpg", "same_product", "Valio-Vanilla-Yoghurt",
         "Valio-Vanilla-Yoghurt/Valio-Vanilla-Yoghurt_Iconic.jpg",
         0.60, 0.55, listing_id="MP-6"),
    _row(6, "gone.jpg", "copy", "Ghost-Brand", "Ghost-Brand/missing.jpg", 0.50, 0.30, listing_id="MP-7",
         path=LISTINGS / "no_such_listing.jpg"),  # neither image exists: placeholders
    _row(7, "listing_01.jpg", "copy", "Yoggi-Vanilla-Yoghurt", "Yoggi-Vanilla-Yoghurt/Yoggi-Vanilla-Yoghurt_013.jpg",
         0.93, 0.80, listing_id="MP-8"),  # same image file as position 3: one thumbnail
    _row(8, "listing_05.jpg", "no_match", "Tropicana-Apple-Juice", "", 0.02, 0.02, listing_id="MP-9"),
]
SUSPECTS = sorted((r for r in ROWS if r["verdict"] in ("copy", "same_product")), key=lambda r: -r["suspicion"])


class _Tags(HTMLParser):
    """Start tags of a page in document order: (tag, attrs dict)."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def with_class(self, name: str) -> list[dict]:
        return [a for _, a in self.tags if name in (a.get("class") or "").split()]


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


@pytest.fixture
def report(tmp_path, demo_index):
    results = _write_jsonl(tmp_path / "results.jsonl", ROWS)
    out = tmp_path / "out" / "report.html"
    summary = write_report(results, demo_index, out)
    return summary, out, out.read_text(encoding="utf-8")


def test_cards_are_the_suspects_in_suspicion_order(report):
    summary, out, page = report
    cards = _Tags(page).with_class("card")
    assert [c["data-suspicion"] for c in cards] == [f"{r['suspicion']:.4f}" for r in SUSPECTS]
    assert [c["data-brand"] for c in cards] == [r["brand"] for r in SUSPECTS]
    assert [c["data-verdict"] for c in cards] == [r["verdict"] for r in SUSPECTS]
    assert (summary.total, summary.suspects, summary.cards, summary.failed) == (len(ROWS), 6, 6, 1)
    assert summary.path == out and str(out) in summary.line() and "\n" not in summary.line()


def test_summary_counts_and_histograms(report):
    _, _, page = report
    summary = _section(page, "summary")
    pattern = r'<span class="tile-count">(\d+)</span><span class="tile-label">([^<]+)<'
    tiles = {label: int(count) for count, label in re.findall(pattern, summary)}
    assert tiles == {"Listings": 9, "Copies": 4, "Same product": 2, "No match": 2, "Could not be read": 1}
    brand_rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", summary)
    assert ("Yoggi-Vanilla-Yoghurt", "2", "0") in brand_rows and ("Arla-Sour-Milk", "0", "1") in brand_rows
    bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]+)</title>', summary)
    assert len(bars) == 40  # two histograms of 20 bins
    assert sum(int(re.search(r": (\d+) listing", t).group(1)) for t in bars[:20]) == 8  # readable rows


def test_min_suspicion_drops_cards_but_not_the_summary(tmp_path, demo_index):
    results = _write_jsonl(tmp_path / "results.jsonl", ROWS)
    summary = write_report(results, demo_index, tmp_path / "r.html", min_suspicion=0.6)
    cards = _Tags((tmp_path / "r.html").read_text(encoding="utf-8")).with_class("card")
    assert [float(c["data-suspicion"]) for c in cards] == [0.99, 0.95, 0.80, 0.70]
    assert (summary.cards, summary.suspects) == (4, 6)


def test_card_content_and_keypoint_overlay(report):
    _, _, page = report
    first = page[page.index('id="card-1"'):page.index('id="card-2"')]
    assert "<li>title says &#x27;replica&#x27;, &#x27;1:1&#x27; (+0.02)</li>" in first
    assert first.count("<li>") == 3
    assert "0.59" in first and "MP-4" in first and "listings/listing_01.jpg" in first
    assert "Valio-Vanilla-Yoghurt" in first and "0.12" in first  # other candidate
    tags = _Tags(first)
    overlays = [a for t, a in tags.tags if t == "svg" and "overlay" in a.get("class", "")]
    assert len(overlays) == 2 and all(a["viewbox"] == "0 0 1 1" for a in overlays)
    assert all(a["preserveaspectratio"] == "none" for a in overlays)
    box = tags.with_class("kp-box")[0]
    assert (float(box["x"]), float(box["y"])) == (0.30, 0.25)
    assert (float(box["width"]), float(box["height"])) == pytest.approx((0.32, 0.45))
    second = page[page.index('id="card-2"'):page.index('id="card-3"')]
    assert "overlay" not in second  # no keypoints, no overlay


def test_untrusted_text_is_escaped(report):
    _, _, page = report
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;cheap&quot;" in page
    assert page.count("<script") == 1  # only the page's own filter script


def test_thumbnails_written_once_and_placeholders_for_missing_images(report):
    _, out, page = report
    files = out.parent / "report_files"
    listing_files = sorted(p.name for p in files.glob("listing-*.jpg"))
    reference_files = sorted(p.name for p in files.glob("reference-*.jpg"))
    assert len(listing_files) == 4  # listing_01 twice -> once; the missing listing -> placeholder
    assert len(reference_files) == 4  # Yoggi_013 twice -> once; Ghost-Brand's reference -> placeholder
    tags = _Tags(page)
    images = tags.with_class("listing-thumb") + tags.with_class("reference-thumb")
    assert len(images) == 10
    for image in images:
        assert image["loading"] == "lazy" and (out.parent / image["src"]).is_file()
    ghost = page[page.index('data-brand="Ghost-Brand"'):]
    ghost = ghost[:ghost.index("</article>")]
    assert "listing-thumb-missing" in ghost and "reference-thumb-missing" in ghost and "<img" not in ghost


def test_failed_section_lists_unreadable_listings(report):
    _, _, page = report
    failed = _section(page, "failed")
    rows = re.findall(r"<tr>(.*?)</tr>", failed.split("<tbody>")[1], re.S)
    assert len(rows) == 1
    assert "listings/broken.jpg" in rows[0] and "not_an_image" in rows[0] and "looks like an HTML web page" in rows[0]


def test_csv_results_give_the_same_cards(tmp_path, demo_index):
    results = tmp_path / "results.csv"
    with open_writer(results, extra_fields=["suspicion", "explanation", "path", "title", "price"]) as writer:
        for row in ROWS:
            writer.write(row)
    summary = write_report(results, demo_index, tmp_path / "csv.html")
    page = (tmp_path / "csv.html").read_text(encoding="utf-8")
    assert [c["data-suspicion"] for c in _Tags(page).with_class("card")] == [f"{r['suspicion']:.4f}" for r in SUSPECTS]
    assert (summary.cards, summary.failed) == (6, 1)
    assert "&lt;script&gt;" in page and len(_Tags(page).with_class("kp-box")) == 2  # listing + reference


def test_report_without_index_shows_reference_placeholders(tmp_path):
    results = _write_jsonl(tmp_path / "results.jsonl", ROWS)
    summary = write_report(results, None, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert summary.cards == 6 and not _Tags(page).with_class("reference-thumb")
    assert page.count("reference-thumb-missing") == 6


def test_missing_or_damaged_results_file_is_a_one_line_error(tmp_path, demo_index):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(MatcherError, match="nope.jsonl") as info:
        write_report(missing, demo_index, tmp_path / "r.html")
    assert "\n" not in str(info.value)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text(json.dumps(ROWS[1]) + "\n{not json\n" + json.dumps(ROWS[2]) + "\n", encoding="utf-8")
    with pytest.raises(MatcherError, match="damaged.jsonl"):
        write_report(damaged, demo_index, tmp_path / "r.html")


def test_unwritable_output_is_a_one_line_error(tmp_path, demo_index):
    results = _write_jsonl(tmp_path / "results.jsonl", ROWS)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(MatcherError, match="report.html") as info:
        write_report(results, demo_index, blocker / "report.html")
    assert "\n" not in str(info.value)


# --- in a browser ----------------------------------------------------------


def _chromium():
    """Path of Chromium and playwright's sync API, or skip."""
    executable = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if executable is None:
        pytest.skip("Chromium not installed (apt-get install chromium); the report's browser checks need it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed (pip install playwright); the report's browser checks need it")
    return executable, sync_playwright


def _open(p, executable, url):
    browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    problems = {"dialogs": [], "errors": []}

    def on_dialog(dialog):
        problems["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: problems["errors"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems["errors"].append(str(exc)))
    page.goto(url)
    page.wait_for_load_state("load")
    return browser, page, problems


def _visible_cards(page) -> list[dict]:
    return page.eval_on_selector_all(
        ".card", "els => els.filter(e => !e.hidden && e.offsetParent !== null).map(e => e.dataset)")


def test_report_in_chromium(report, tmp_path):
    executable, sync_playwright = _chromium()
    _, out, _ = report
    with sync_playwright() as p:
        browser, page, problems = _open(p, executable, out.as_uri())
        try:
            assert len(_visible_cards(page)) == len(SUSPECTS)
            assert page.text_content("#shown-count") == str(len(SUSPECTS))
            for card in page.query_selector_all(".card")[:4]:
                card.scroll_into_view_if_needed()
                for image in card.query_selector_all("img.listing-thumb, img.reference-thumb"):
                    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image, timeout=5000)
                left = card.query_selector("img.listing-thumb").bounding_box()
                right = card.query_selector("img.reference-thumb").bounding_box()
                assert left["x"] + left["width"] <= right["x"] + 0.5  # reference to the right of the listing
                assert max(left["y"], right["y"]) < min(left["y"] + left["height"], right["y"] + right["height"])
            first = page.query_selector("#card-1")
            for image in first.query_selector_all("img"):  # the overlay covers its image exactly
                overlay = image.evaluate_handle("img => img.parentElement.querySelector('svg.overlay')").as_element()
                a, b = image.bounding_box(), overlay.bounding_box()
                assert all(abs(a[k] - b[k]) <= 1 for k in ("x", "y", "width", "height"))

            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_timeout(300)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            shutil.copy(tmp_path / "report.png", "/tmp/report_screenshot.png")

            page.select_option("#brand-filter", "Yoggi-Vanilla-Yoghurt")
            shown = _visible_cards(page)
            assert [c["brand"] for c in shown] == ["Yoggi-Vanilla-Yoghurt"] * 2
            assert page.text_content("#shown-count") == "2"
            page.select_option("#brand-filter", "")
            page.uncheck("input.verdict-filter[value=copy]")
            shown = _visible_cards(page)
            assert {c["verdict"] for c in shown} == {"same_product"} and len(shown) == 2
            assert page.text_content("#shown-count") == "2"
            page.check("input.verdict-filter[value=copy]")
            assert len(_visible_cards(page)) == len(SUSPECTS)

            failed = page.inner_text("#failed")
            assert "listings/broken.jpg" in failed and "looks like an HTML web page" in failed
            card = page.query_selector("#card-1")  # cards off screen are not laid out (content-visibility: auto)
            card.scroll_into_view_if_needed()
            page.wait_for_function("card => card.innerText.length > 0", arg=card, timeout=5000)
            assert MALICIOUS_TITLE in card.inner_text()  # shown as text
            assert problems == {"dialogs": [], "errors": []}
        finally:
            browser.close()


def test_filters_work_on_5000_cards(tmp_path, demo_index):
    """5,000 cards render and filter (speed is measured by scripts/bench_report.py, not asserted here)."""
    executable, sync_playwright = _chromium()
    brands = ["Yoggi-Vanilla-Yoghurt", "Arla-Medium-Fat-Milk", "Arla-Sour-Milk", "Valio-Vanilla-Yoghurt"]
    base = ROWS[3]
    rows = [dict(base, position=i, listing_id=f"MP-{i}", brand=brands[i % 4],
                 verdict="copy" if i % 3 else "same_product", suspicion=round(1 - i / 6000, 6))
            for i in range(5000)]
    results = _write_jsonl(tmp_path / "big.jsonl", rows)
    summary = write_report(results, demo_index, tmp_path / "big.html")
    assert summary.cards == 5000
    with sync_playwright() as p:
        browser, page, problems = _open(p, executable, (tmp_path / "big.html").as_uri())
        try:
            page.select_option("#brand-filter", "Arla-Sour-Milk")
            assert page.text_content("#shown-count") == "1250"
            assert page.locator(".card:visible").count() == 1250
            assert problems == {"dialogs": [], "errors": []}
        finally:
            browser.close()
