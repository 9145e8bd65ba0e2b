"""Charts drawn on the server as SVG: no script, so the console's CSP (script-src 'self', no inline)
holds, and the chart is readable without JavaScript. Colours meet WCAG AA contrast on white."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from vern.stats.report import Bucket

WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T = 720, 240, 48, 36, 12
BAR = "#1d4ed8"
LINE = "#9a3412"
AXIS = "#374151"


def series_svg(series: Sequence[Bucket], *, title: str, pageviews_label: str = "Page views",
               visitors_label: str = "Visitors") -> str:
    """Bars for page views and a line for visitors, with a text alternative in ``<title>`` and
    ``<desc>`` for screen readers."""
    n = max(len(series), 1)
    top = max([b.pageviews for b in series] + [b.visitors for b in series] + [1])
    plot_w, plot_h = WIDTH - PAD_L - 8, HEIGHT - PAD_B - PAD_T
    step = plot_w / n
    bar_w = max(1.0, step * 0.7)

    def y(value: int) -> float:
        return PAD_T + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" class="stats-chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        '<desc id="chart-desc">' + escape("; ".join(
            f"{b.start}: {b.pageviews} {pageviews_label.lower()}, {b.visitors} {visitors_label.lower()}"
            for b in series)) + "</desc>",
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{WIDTH - 8}" y2="{PAD_T + plot_h}" '
        f'stroke="{AXIS}" stroke-width="1"/>',
        f'<text x="{PAD_L - 6}" y="{PAD_T + 10}" text-anchor="end" font-size="11" '
        f'fill="{AXIS}">{top}</text>',
        f'<text x="{PAD_L - 6}" y="{PAD_T + plot_h}" text-anchor="end" font-size="11" '
        f'fill="{AXIS}">0</text>',
    ]
    points = []
    for i, b in enumerate(series):
        x = PAD_L + i * step + (step - bar_w) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{y(b.pageviews):.1f}" width="{bar_w:.1f}" '
            f'height="{PAD_T + plot_h - y(b.pageviews):.1f}" fill="{BAR}">'
            f"<title>{escape(b.start)}: {b.pageviews}</title></rect>")
        points.append(f"{PAD_L + i * step + step / 2:.1f},{y(b.visitors):.1f}")
        if len(series) <= 12 or i % max(1, len(series) // 6) == 0:
            parts.append(
                f'<text x="{PAD_L + i * step + step / 2:.1f}" y="{HEIGHT - 14}" font-size="10" '
                f'text-anchor="middle" fill="{AXIS}">{escape(b.start[5:])}</text>')
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}" '
                     'stroke-width="2"/>')
    parts.append(
        f'<rect x="{PAD_L}" y="{HEIGHT - 10}" width="10" height="8" fill="{BAR}"/>'
        f'<text x="{PAD_L + 14}" y="{HEIGHT - 2}" font-size="10" fill="{AXIS}">'
        f"{escape(pageviews_label)}</text>"
        f'<rect x="{PAD_L + 120}" y="{HEIGHT - 7}" width="10" height="2" fill="{LINE}"/>'
        f'<text x="{PAD_L + 134}" y="{HEIGHT - 2}" font-size="10" fill="{AXIS}">'
        f"{escape(visitors_label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def metric_svg(series: Sequence[Bucket], values: Sequence[float], *, title: str, unit: str,
               chart_id: str, height: int = 150) -> str:
    """Bars for one measure per period (bounce rate, average visit), with its text alternative."""
    n = max(len(series), 1)
    top = max([*values, 1.0])
    plot_w, plot_h = WIDTH - PAD_L - 8, height - 26 - PAD_T
    step = plot_w / n
    bar_w = max(1.0, step * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" class="stats-chart">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">' + escape("; ".join(
            f"{b.start}: {v:g} {unit}" for b, v in zip(series, values, strict=True))) + "</desc>",
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{WIDTH - 8}" y2="{PAD_T + plot_h}" '
        f'stroke="{AXIS}" stroke-width="1"/>',
        f'<text x="{PAD_L - 6}" y="{PAD_T + 10}" text-anchor="end" font-size="11" '
        f'fill="{AXIS}">{top:g} {escape(unit)}</text>',
        f'<text x="{PAD_L - 6}" y="{PAD_T + plot_h}" text-anchor="end" font-size="11" '
        f'fill="{AXIS}">0</text>',
    ]
    for i, (b, v) in enumerate(zip(series, values, strict=True)):
        x = PAD_L + i * step + (step - bar_w) / 2
        h = plot_h * v / top
        parts.append(
            f'<rect x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{BAR}"><title>{escape(b.start)}: {v:g} {escape(unit)}</title></rect>')
        if len(series) <= 12 or i % max(1, len(series) // 6) == 0:
            parts.append(
                f'<text x="{PAD_L + i * step + step / 2:.1f}" y="{height - 8}" font-size="10" '
                f'text-anchor="middle" fill="{AXIS}">{escape(b.start[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)
