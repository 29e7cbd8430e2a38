"""Server-rendered SVG bar charts (no JavaScript): axes, tick labels, a legend whose entries
link to the list behind each series, and an accessible `<title>`/`<desc>` on the chart and a
`<title>` (tooltip) on every bar. Every text is escaped; colours are presentation attributes,
not `style=` (the Content-Security-Policy allows no inline style)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 40, 34


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    colour: str  # a CSS colour name or #hex (never user input)
    values: Sequence[float | None]
    href: str = ""  # the list behind this series


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for mult in (1, 2, 5, 10):
        if mult * step >= value:
            return mult * step
    return value  # pragma: no cover


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
) -> Markup:
    """Stacked bars, one per label (week), one segment per series."""
    n = max(1, len(labels))
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.7)
    e = escape
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{e(chart_id)}" '
        f'role="img" aria-labelledby="{e(chart_id)}-title {e(chart_id)}-desc" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f'<title id="{e(chart_id)}-title">{e(title)}</title>',
        f'<desc id="{e(chart_id)}-desc">{e(description)}</desc>',
    ]
    # Axes and y ticks.
    x0, y0 = LEFT, TOP + plot_h
    out.append(
        f'<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{y0}" stroke="#444" stroke-width="1"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{WIDTH - RIGHT}" y2="{y0}" stroke="#444" '
        'stroke-width="1"/>'
    )
    for frac in (0.0, 0.5, 1.0):
        y = y0 - frac * plot_h
        out.append(
            f'<line x1="{x0 - 3}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="{0 if frac == 0 else 1}"/>'
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#333">{e(_fmt(top * frac))}</text>'
        )
    if unit:
        out.append(f'<text x="4" y="{TOP - 10}" font-size="11" fill="#333">{e(unit)}</text>')
    # Bars.
    every = max(1, -(-n // 8))  # at most 8 x labels
    for i, label in enumerate(labels):
        x = x0 + i * slot + (slot - bar_w) / 2
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = value / top * plot_h
            y = y0 - (base + value) / top * plot_h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{e(s.colour)}" data-series="{e(s.name)}" data-value="{e(_fmt(value))}">'
                f"<title>{e(s.name)}: {e(_fmt(value))}{e(' ' + unit if unit else '')} "
                f"(week of {e(label)})</title></rect>"
            )
            base += value
        if i % every == 0:
            out.append(
                f'<text x="{x0 + i * slot + slot / 2:.1f}" y="{y0 + 14}" text-anchor="middle" '
                f'font-size="10" fill="#333">{e(label)}</text>'
            )
    out.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end" font-size="10" '
        'fill="#555">week starting (Monday, UTC)</text>'
    )
    # Legend: each entry links to the list behind its series.
    lx = LEFT
    for s in series:
        entry = (
            f'<rect x="{lx}" y="2" width="10" height="10" fill="{e(s.colour)}"/>'
            f'<text x="{lx + 14}" y="11" font-size="11" fill="#222">{e(s.name)}</text>'
        )
        if s.href:
            entry = f'<a href="{e(s.href)}">{entry}</a>'
        out.append(entry)
        lx += 24 + 7 * len(s.name)
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above
