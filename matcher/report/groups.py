"""The report's cases: suspects grouped by cluster (the same photo reposted: ``scan.clusters``) and by seller (a
``seller`` column of the listings manifest), so fifty listings of one stolen photo read as one case and the
sellers behind most suspects come first. Every piece of text is escaped (it comes from marketplaces)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

from .rows import ReportRow

SHOWN = 50  # rows per table; the rest is counted below it
NAMES_SHOWN = 4  # listing names (or brands) written out per cell


@dataclass
class Group:
    """One cluster or seller: its listings, suspects, brands of the suspects, and clusters / sellers."""

    name: str
    listings: int = 0
    suspects: int = 0
    brands: Counter = field(default_factory=Counter)
    others: Counter = field(default_factory=Counter)  # a cluster's sellers, a seller's clusters
    names: list[str] = field(default_factory=list)  # its suspects' listing names, most suspicious first


def group_rows(rows: Sequence[ReportRow], key: str) -> list[Group]:
    """Groups of ``key`` ("cluster_id" or "seller") that hold at least one suspect, most suspects first.

    rows : in suspicion order (``load_rows``); rows with an empty key belong to no group
    """
    other = "seller" if key == "cluster_id" else "cluster_id"
    groups: dict[str, Group] = {}
    for row in rows:
        name = getattr(row, key)
        if not name:
            continue
        group = groups.setdefault(name, Group(name))
        group.listings += 1
        if getattr(row, other):
            group.others[getattr(row, other)] += 1
        if row.suspect:
            group.suspects += 1
            group.brands[row.brand] += 1
            group.names.append(row.listing)
    return sorted((g for g in groups.values() if g.suspects), key=lambda g: (-g.suspects, -g.listings, g.name))


def groups_section(rows: Sequence[ReportRow]) -> str:
    """The two panels (clusters, sellers) as HTML; '' when the results have neither."""
    panels = []
    if any(r.cluster_id for r in rows):
        panels.append(_table("Clusters: the same photo in several listings", "cluster-table",
                             ["Cluster", "Listings", "Suspects", "Brands", "Sellers", "Suspect listings"],
                             group_rows(rows, "cluster_id"), with_names=True))
    if any(r.seller for r in rows):
        panels.append(_table("Sellers with suspects", "seller-table",
                             ["Seller", "Listings", "Suspects", "Brands", "Clusters"],
                             group_rows(rows, "seller"), with_names=False))
    if not panels:
        return ""
    return '<section id="cases" class="summary"><div class="summary-grid">\n' + "\n".join(panels) + \
        "\n</div></section>"


def _table(title: str, table_id: str, headers: list[str], groups: list[Group], *, with_names: bool) -> str:
    if not groups:
        return f'<div class="panel"><h2>{escape(title)}</h2><p class="empty">No suspects.</p></div>'
    numeric = ' class="num"'
    head = "".join(f'<th{numeric if h in ("Listings", "Suspects") else ""}>{escape(h)}</th>' for h in headers)
    body = []
    for g in groups[:SHOWN]:
        cells = [escape(g.name), f'<td class="num">{g.listings}</td>', f'<td class="num">{g.suspects}</td>',
                 escape(_listed(g.brands)), escape(_listed(g.others) if g.others else "-")]
        if with_names:
            cells.append(escape(", ".join(g.names[:NAMES_SHOWN]) + (" ..." if len(g.names) > NAMES_SHOWN else "")))
        body.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells) + "</tr>")
    more = f'<p class="more">and {len(groups) - SHOWN} more</p>' if len(groups) > SHOWN else ""
    return (f'<div class="panel"><h2>{escape(title)}</h2><table id="{table_id}" class="brand-table"><thead><tr>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}</div>')


def _listed(counts: Counter) -> str:
    """'a 3, b 1' for the most common few, '(+N)' for the rest."""
    common = counts.most_common(NAMES_SHOWN)
    text = ", ".join(f"{name or '(none)'} {n}" for name, n in common)
    return text + (f" (+{len(counts) - NAMES_SHOWN})" if len(counts) > NAMES_SHOWN else "")
