"""How fast the HTML report is written and filtered with many cards.

Usage::

    .venv/bin/python scripts/bench_report.py [--cards 5000]

Scans the demo listings once (index ``results/bench_report/index`` of ``demo/catalog``, built if missing), then
repeats their rows as ``--cards`` suspects (brands and suspicions varied) and prints: seconds to write the report
(thumbnails included), the page's size, and, in headless Chromium (Debian's ``chromium``) via Playwright, the time
to load the page and to apply a brand filter. Baseline in the same run: the same page with 100 cards.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher import Matcher, build_index, scan  # noqa: E402
from matcher.report import write_report  # noqa: E402
from matcher.scan import read_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "results" / "bench_report"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def suspects_file(rows: list[dict], cards: int, path: Path) -> Path:
    """``cards`` suspect rows cycled from the demo scan's suspects, most suspicious first."""
    suspects = [r for r in rows if r["verdict"] in ("copy", "same_product")]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(cards):
            row = dict(suspects[i % len(suspects)], position=i, listing_id=f"MP-{i}",
                       suspicion=round(1 - i / (cards + 1), 6))
            f.write(json.dumps(row) + "\n")
    return path


def browser_times(page_path: Path, brand: str) -> tuple[float, float]:
    """(seconds to load the page, milliseconds to apply a brand filter incl. layout) in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 800})
        started = time.perf_counter()
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        loaded = time.perf_counter() - started
        filtered = page.evaluate("""brand => {
            const select = document.getElementById('brand-filter');
            const t0 = performance.now();
            select.value = brand;
            select.dispatchEvent(new Event('change'));
            document.body.offsetHeight;
            return performance.now() - t0;
        }""", brand)
        browser.close()
    return loaded, filtered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=5000)
    args = parser.parse_args()
    index = WORK / "index"
    if not (index / "CURRENT").exists():
        build_index(REPO / "demo" / "catalog", index)
    scan(REPO / "demo" / "listings.csv", Matcher.open(index), WORK / "demo.jsonl", workers=0)
    rows = read_results(WORK / "demo.jsonl")
    brand = next(r["brand"] for r in rows if r["verdict"] == "copy")
    print(f"{'cards':>6} {'write s':>8} {'page MB':>8} {'thumbs MB':>9} {'load s':>7} {'filter ms':>9}")
    for cards in (100, args.cards):
        results = suspects_file(rows, cards, WORK / f"suspects_{cards}.jsonl")
        started = time.perf_counter()
        out = write_report(results, index, WORK / f"report_{cards}.html")
        written = time.perf_counter() - started
        thumbs = sum(f.stat().st_size for f in (WORK / f"report_{cards}_files").iterdir())
        loaded, filtered = browser_times(out.path, brand)
        print(f"{cards:>6} {written:>8.2f} {out.path.stat().st_size / 1e6:>8.2f} {thumbs / 1e6:>9.2f} "
              f"{loaded:>7.2f} {filtered:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
