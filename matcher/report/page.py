"""HTML of the report page: summary, filter bar, one card per suspect, unreadable listings.

Pure text rendering, no I/O beyond reading the packaged CSS/JS (``matcher/report/assets``), which are inlined
so the page works from ``file://`` with no network. Every piece of text from the results file is escaped with
``html.escape`` (titles come from untrusted marketplaces).
"""
from __future__ import annotations

from collections import Counter
from html import escape
from importlib import resources
from typing import Iterable, Sequence

from .groups import groups_section
from .rows import Card, ReportRow, Thumb

VERDICT_LABELS = {"copy": "Copy", "same_product": "Same product", "no_match": "No match"}
HISTOGRAM_BINS = 20
MAX_OVERLAY_POINTS = 400  # inlier dots drawn per thumbnail


def render_page(rows: Sequence["ReportRow"], cards: Sequence["Card"], failed: Sequence["ReportRow"], *,
                results_name: str, index_name: str, min_suspicion: float, threshold: float | None) -> str:
    """The whole HTML document (str). ``rows``: every row; ``cards``: suspects to show, in order."""
    css, js = _asset("report.css"), _asset("report.js")
    source = f"results <code>{escape(results_name)}</code>"
    if index_name:
        source += f" &middot; index <code>{escape(index_name)}</code>"
    cards_html = "\n".join(_card(card, rank) for rank, card in enumerate(cards, start=1))
    if not cards:
        cards_html = '<p class="empty">No suspect listings above the report\'s minimum suspicion.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Counterfeit listing report &middot; {escape(results_name)}</title>
<style>
{css}
</style>
</head>
<body>
<header class="page-head">
<h1>Counterfeit listing report</h1>
<p class="source">{source}</p>
</header>
{_summary(rows, threshold)}
{groups_section(rows)}
{_filters(cards, min_suspicion)}
<main id="cards" class="cards">
{cards_html}
</main>
<p id="no-cards" class="empty" hidden>No card matches these filters.</p>
{_failed_section(failed)}
<script>
{js}
</script>
</body>
</html>
"""


# --- summary ---------------------------------------------------------------


def _summary(rows: Sequence["ReportRow"], threshold: float | None) -> str:
    ok = [r for r in rows if r.ok]
    verdicts = Counter(r.verdict for r in ok)
    failed = len(rows) - len(ok)
    tiles = [("Listings", len(rows), "total"), ("Copies", verdicts["copy"], "copy"),
             ("Same product", verdicts["same_product"], "same_product"),
             ("No match", verdicts["no_match"], "no_match"), ("Could not be read", failed, "failed")]
    tiles_html = "".join(
        f'<div class="tile tile-{kind}"><span class="tile-count">{count}</span>'
        f'<span class="tile-label">{label}</span></div>' for label, count, kind in tiles)
    scores = [r.score for r in ok if r.score is not None]
    suspicions = [r.suspicion for r in ok if r.suspicion is not None]
    charts = _histogram(scores, "Score of readable listings", threshold)
    if suspicions:
        charts += _histogram(suspicions, "Suspicion of readable listings", None)
    return f"""<section id="summary" class="summary">
<div class="tiles">{tiles_html}</div>
<div class="summary-grid">
{_brand_table(ok)}
{charts}
</div>
</section>"""


def _brand_table(ok_rows: Sequence["ReportRow"]) -> str:
    counts: dict[str, Counter] = {}
    for row in ok_rows:
        if row.suspect:
            counts.setdefault(row.brand, Counter())[row.verdict] += 1
    if not counts:
        return '<div class="panel"><h2>Suspects per brand</h2><p class="empty">No suspects.</p></div>'
    order = sorted(counts, key=lambda b: (-sum(counts[b].values()), b))
    body = "".join(
        f"<tr><td>{escape(brand or '(none)')}</td><td class=\"num\">{counts[brand]['copy']}</td>"
        f"<td class=\"num\">{counts[brand]['same_product']}</td>"
        f"<td class=\"num\">{sum(counts[brand].values())}</td></tr>" for brand in order)
    return f"""<div class="panel"><h2>Suspects per brand</h2>
<table id="brand-table" class="brand-table"><thead><tr><th>Brand</th><th class="num">Copies</th>
<th class="num">Same product</th><th class="num">Suspects</th></tr></thead>
<tbody>{body}</tbody></table></div>"""


def _histogram(values: Sequence[float], title: str, threshold: float | None) -> str:
    """An inline SVG bar chart of ``values`` in [0, 1] (20 bins); hovering a bar shows its count."""
    counts = [0] * HISTOGRAM_BINS
    for value in values:
        counts[min(HISTOGRAM_BINS - 1, max(0, int(value * HISTOGRAM_BINS)))] += 1
    width, height, left, bottom, top = 400.0, 150.0, 34.0, 124.0, 10.0
    plot_w, plot_h = width - left - 8, bottom - top
    peak = max(counts) or 1
    bar_w = plot_w / HISTOGRAM_BINS
    parts = [f'<line class="axis" x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}"/>',
             f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>',
             f'<text class="tick" x="{left - 4}" y="{bottom}" text-anchor="end">0</text>']
    for i, count in enumerate(counts):
        low, high = i / HISTOGRAM_BINS, (i + 1) / HISTOGRAM_BINS
        bar_h = plot_h * count / peak
        parts.append(
            f'<rect class="bar" x="{left + i * bar_w + 1:.1f}" y="{bottom - bar_h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{max(bar_h, 0.0):.1f}"><title>{low:.2f}–{high:.2f}: {count} listing'
            f'{"" if count == 1 else "s"}</title></rect>')
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text class="tick" x="{left + tick * plot_w:.1f}" y="{bottom + 16}" '
                     f'text-anchor="middle">{tick:g}</text>')
    if threshold is not None and 0.0 <= threshold <= 1.0:
        x = left + threshold * plot_w
        parts.append(f'<line class="threshold" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}">'
                     f'<title>operating threshold {threshold:.2f}</title></line>')
    note = f" (n = {len(values)})"
    return f"""<figure class="panel histogram"><figcaption><h2>{escape(title)}{note}</h2></figcaption>
<svg viewBox="0 0 {width:g} {height:g}" role="img" aria-label="{escape(title)}">{''.join(parts)}</svg></figure>"""


# --- filters ---------------------------------------------------------------


def _filters(cards: Sequence["Card"], min_suspicion: float) -> str:
    brands = Counter(card.row.brand for card in cards)
    options = f'<option value="">All brands ({len(cards)})</option>' + "".join(
        f'<option value="{escape(brand)}">{escape(brand or "(none)")} ({brands[brand]})</option>'
        for brand in sorted(brands))
    verdicts = Counter(card.row.verdict for card in cards)
    boxes = "".join(
        f'<label class="verdict-choice"><input type="checkbox" class="verdict-filter" value="{verdict}" checked '
        f'autocomplete="off"> <span class="badge badge-{verdict}">{VERDICT_LABELS[verdict]}</span> '
        f'<span class="count">{verdicts[verdict]}</span></label>' for verdict in ("copy", "same_product"))
    low = min(max(min_suspicion, 0.0), 1.0)
    return f"""<nav id="filters" class="filters" aria-label="Filter the cards">
<label class="brand-choice">Brand <select id="brand-filter" autocomplete="off">{options}</select></label>
<span class="verdict-choices">{boxes}</span>
<label class="suspicion-choice">Min. suspicion
<input type="range" id="suspicion-filter" min="{low:.2f}" max="1" step="0.01" value="{low:.2f}" autocomplete="off">
<output id="suspicion-value">{low:.2f}</output></label>
<p class="counter">Showing <strong id="shown-count">{len(cards)}</strong> of
<span id="total-count">{len(cards)}</span> suspects</p>
</nav>"""


# --- cards -----------------------------------------------------------------


def _card(card: "Card", rank: int) -> str:
    row = card.row
    suspicion = row.suspicion if row.suspicion is not None else 0.0
    score = "–" if row.score is None else f"{row.score:.2f}"
    points = row.keypoints
    listing = _thumb(card.listing_thumb, "listing-thumb", "Listing photo", [(p[0], p[1]) for p in points])
    reference = _thumb(card.reference_thumb, "reference-thumb", "Reference photo", [(p[2], p[3]) for p in points])
    reasons = [part.strip() for part in row.explanation.split("; ") if part.strip()]
    reasons_html = "".join(f"<li>{escape(part)}</li>" for part in reasons) or "<li>no explanation given</li>"
    facts = [("Title", row.title), ("Price", row.price), ("Listing ID", row.listing_id)]
    facts_html = "".join(f"<dt>{name}</dt><dd>{escape(value)}</dd>" for name, value in facts if value)
    facts_html += f'<dt>Listing</dt><dd><code class="path">{escape(row.listing or row.path)}</code></dd>'
    others = [m for m in row.matches[1:] if m.get("brand")]
    others_html = ""
    if others:
        items = ", ".join(f'{escape(str(m["brand"]))} <span class="num">{_fmt(m.get("score"))}</span>'
                          for m in others)
        others_html = f'<p class="others">Other candidates: {items}</p>'
    verified = row.matches[0].get("inliers", -1) if row.matches else -1
    verified = int(verified) if isinstance(verified, (int, float)) else -1
    inliers = f" &middot; {verified} verified matching points" if verified > 0 else ""
    return f"""<article class="card" id="card-{rank}" data-brand="{escape(row.brand)}" \
data-verdict="{escape(row.verdict)}" data-suspicion="{suspicion:.4f}">
<div class="pair">
<figure class="thumb-cell">{listing}<figcaption>Listing</figcaption></figure>
<figure class="thumb-cell">{reference}<figcaption title="{escape(row.reference)}">Reference \
<code>{escape(row.reference or 'none')}</code></figcaption></figure>
</div>
<div class="info">
<div class="head"><span class="rank">#{rank}</span><span class="badge badge-{escape(row.verdict)}">\
{VERDICT_LABELS.get(row.verdict, escape(row.verdict))}</span><h3 class="brand">{escape(row.brand)}</h3></div>
<div class="suspicion" title="suspicion {suspicion:.3f}"><span class="suspicion-value">{suspicion:.2f}</span>\
<span class="suspicion-label">suspicion</span>\
<span class="bar"><span style="width:{100 * suspicion:.1f}%"></span></span></div>
<p class="score">score <strong>{score}</strong>{inliers}</p>
<ul class="explanation">{reasons_html}</ul>
<dl class="facts">{facts_html}</dl>
{others_html}
</div>
</article>"""


def _thumb(thumb: "Thumb", css_class: str, alt: str, points: list[tuple[float, float]]) -> str:
    """An image (with the inlier overlay when ``points``) or a placeholder box saying why there is none."""
    if thumb.src is None:
        return f'<div class="thumb placeholder {css_class}-missing"><span>{escape(thumb.note)}</span></div>'
    size = f' width="{thumb.width}" height="{thumb.height}"' if thumb.width and thumb.height else ""
    image = (f'<img class="{css_class}" src="{escape(thumb.src)}"{size} loading="lazy" decoding="async" '
             f'alt="{alt}">')
    return f'<div class="thumb">{image}{_overlay(points)}</div>'


def _overlay(points: Iterable[tuple[float, float]]) -> str:
    """SVG over a thumbnail: inlier dots and their bounding box, in image fractions (viewBox 0 0 1 1)."""
    points = list(points)[:MAX_OVERLAY_POINTS]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box = (f'<rect class="kp-box" x="{min(xs):.4f}" y="{min(ys):.4f}" width="{max(xs) - min(xs):.4f}" '
           f'height="{max(ys) - min(ys):.4f}" vector-effect="non-scaling-stroke"/>')
    dots = "".join(f"M{x:.4f} {y:.4f}h0" for x, y in points)
    return (f'<svg class="overlay" viewBox="0 0 1 1" preserveAspectRatio="none" aria-hidden="true">{box}'
            f'<path class="kp-dots" d="{dots}" vector-effect="non-scaling-stroke"/></svg>')


# --- unreadable listings ---------------------------------------------------


def _failed_section(failed: Sequence["ReportRow"]) -> str:
    if not failed:
        return ('<section id="failed" class="failed"><h2>Listings that could not be read</h2>'
                '<p class="empty">Every listing was read.</p></section>')
    body = "\n".join(
        f'<tr><td><code class="path">{escape(r.listing or r.path)}</code></td><td>{escape(r.listing_id)}</td>'
        f'<td><span class="status">{escape(r.status)}</span></td><td>{escape(r.error)}</td></tr>' for r in failed)
    return f"""<section id="failed" class="failed"><h2>Listings that could not be read ({len(failed)})</h2>
<table class="failed-table"><thead><tr><th>Listing</th><th>Listing ID</th><th>Status</th><th>Reason</th></tr></thead>
<tbody>
{body}
</tbody></table></section>"""


# --- helpers ---------------------------------------------------------------


def _fmt(value: object) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "–"


def _asset(name: str) -> str:
    """Text of a packaged asset (``matcher/report/assets/<name>``)."""
    return resources.files("matcher.report").joinpath("assets", name).read_text(encoding="utf-8")
