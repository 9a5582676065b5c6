"""The pictures the pages draw, as inline SVG made here: the overview's charts and a DAG run's
graph. No JavaScript library, nothing to fetch; values are escaped by ``markupsafe``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

STATE_COLOURS = {
    "SUCCESS": "#2e7d32",
    "FAILURE": "#c62828",
    "UPSTREAM_FAILED": "#ef6c00",
    "REVOKED": "#6d4c41",
    "STARTED": "#1565c0",
    "RETRY": "#f9a825",
    "PENDING": "#9e9e9e",
    "WAITING": "#bdbdbd",
}


def bar_chart(
    values: Sequence[float], *, colour: str, title: str, width: int = 560, height: int = 120
) -> Markup:
    """One series as bars, scaled to its largest value, with the title and that value."""
    top = max(values, default=0.0) or 1.0
    step = width / max(1, len(values))
    bars = []
    for i, value in enumerate(values):
        h = (height - 20) * value / top
        bars.append(
            f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{value:g}</title></rect>'
        )
    label = f"{escape(title)} (max {max(values, default=0.0):g})"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{label}"><text x="4" y="14">{label}</text>{"".join(bars)}</svg>'
    )


def series_charts(series: Sequence[dict[str, Any]]) -> list[Markup]:
    """The overview's three charts: succeeded, failed, and the average run time, per bucket."""
    return [
        bar_chart([b["succeeded"] for b in series], colour="#2e7d32", title="succeeded"),
        bar_chart([b["failed"] for b in series], colour="#c62828", title="failed"),
        bar_chart([b["runtime_avg"] for b in series], colour="#1565c0", title="avg run time (s)"),
    ]


def dag_graph(nodes: Sequence[dict[str, Any]]) -> Markup:
    """A DAG run: one column per depth, a box per node coloured by its state, an arrow per
    edge. Each box links to the node's task page."""
    box_w, box_h, gap_x, gap_y = 150, 44, 60, 20
    rows: dict[int, int] = {}
    place: dict[str, tuple[float, float]] = {}
    for node in nodes:
        row = rows.get(node["depth"], 0)
        rows[node["depth"]] = row + 1
        place[node["name"]] = (10 + node["depth"] * (box_w + gap_x), 10 + row * (box_h + gap_y))
    width = 20 + (max(rows, default=0) + 1) * (box_w + gap_x)
    height = 20 + max(rows.values(), default=1) * (box_h + gap_y)
    parts = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>'
    ]
    for node in nodes:
        x2, y2 = place[node["name"]]
        for parent in node["parents"]:
            x1, y1 = place[parent]
            parts.append(
                f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
                'stroke="#555" marker-end="url(#arrow)"/>'
            )
    for node in nodes:
        x, y = place[node["name"]]
        colour = STATE_COLOURS.get(node["state"], "#9e9e9e")
        name, state = escape(node["name"]), escape(node["state"])
        parts.append(
            f'<a href="/tasks/{escape(node["task_id"])}"><g class="dag-node" data-node="{name}" '
            f'data-state="{state}"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" '
            f'fill="{colour}"/><text x="{x + 8}" y="{y + 18}" fill="#fff">{name}</text>'
            f'<text x="{x + 8}" y="{y + 36}" fill="#fff" font-size="11">{state}'
            f"{' #' + str(node['attempt']) if node['attempt'] > 1 else ''}</text></g></a>"
        )
    return Markup(
        f'<svg class="dag" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"{''.join(parts)}</svg>"
    )
