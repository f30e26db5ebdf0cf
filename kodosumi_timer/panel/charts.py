"""Small server-side SVG charts for the operators' Timer page (pure: data in, markup out).

No script and no network: the page works offline and the charts print. Colours come
from the page (``currentColor`` for text and axes, BeerCSS' ``--primary`` and
``--error`` for bars, with fallbacks), so one chart reads in light and in dark. Every
chart carries a ``<title>`` and a ``<desc>`` (named by ``aria-labelledby``), and each bar
its own ``<title>``; the page adds a table of the same figures for screen readers.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

BAR = "fill: var(--primary, #6750a4)"
BAD = "fill: var(--error, #b3261e)"
AXIS = 'stroke="currentColor" stroke-opacity="0.25"'
_ids = count(1)  # unique ids per rendered chart, for aria-labelledby


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    bad: bool = False  # drawn in the error colour (a failing status)


def _frame(width: int, height: int, title: str, desc: str, body: list[str],
           css_class: str) -> Markup:
    n = next(_ids)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class={quoteattr(css_class)} '
            f'viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="chart{n}-t chart{n}-d" font-family="inherit" '
            f'font-size="12" fill="currentColor">'
            f'<title id="chart{n}-t">{escape(title)}</title>'
            f'<desc id="chart{n}-d">{escape(desc)}</desc>')
    return Markup(head + "".join(body) + "</svg>")


def _nice_top(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and 1)."""
    step = 1
    while True:
        for f in (1, 2, 5):
            if f * step >= value:
                return max(1, f * step)
        step *= 10


def column_chart(bars: Sequence[Bar], *, title: str, desc: str, width: int = 640,
                 height: int = 220) -> Markup:
    """Vertical bars with their labels below and their values above; an empty or
    all-zero series draws the axis and says "no data"."""
    left, right, top, bottom = 36, 8, 18, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_top(max((b.value for b in bars), default=0))
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
            f'y2="{top + plot_h}" {AXIS}/>',
            f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
            f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>']
    if not bars or all(b.value == 0 for b in bars):
        body.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
                    'text-anchor="middle" opacity="0.7">no data</text>')
    slot = plot_w / max(1, len(bars))
    for i, b in enumerate(bars):
        h = plot_h * b.value / peak
        x = left + i * slot + slot * 0.15
        y = top + plot_h - h
        mid = left + (i + 0.5) * slot
        body.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{h:.1f}" style="{BAD if b.bad else BAR}">'
                    f'<title>{escape(b.label)}: {b.value}</title></rect>')
        if b.value:
            body.append(f'<text x="{mid:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
                        f'{b.value}</text>')
        body.append(f'<text x="{mid:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                    f'font-size="10">{escape(b.label)}</text>')
    return _frame(width, height, title, desc, body, "chart column-chart")


def row_chart(bars: Sequence[Bar], *, title: str, desc: str, width: int = 340) -> Markup:
    """Horizontal bars, one row each (label, bar, value): readable at phone width."""
    row, label_w, value_w = 26, 90, 50
    height = max(1, len(bars)) * row + 8
    plot_w = width - label_w - value_w
    peak = max((b.value for b in bars), default=0)
    body = []
    if not bars or peak == 0:
        body.append(f'<text x="{width / 2:.1f}" y="{row - 8}" text-anchor="middle" '
                    'opacity="0.7">no data</text>')
    for i, b in enumerate(bars):
        y = 4 + i * row
        w = plot_w * b.value / peak if peak else 0.0
        body.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">'
                    f'{escape(b.label)}</text>')
        body.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" '
                    f'height="{row - 8}" rx="3" style="{BAD if b.bad else BAR}">'
                    f'<title>{escape(b.label)}: {b.value}</title></rect>')
        body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{b.value}</text>')
    return _frame(width, height, title, desc, body, "chart row-chart")


def minute_chart(counts: Sequence[int], hour_labels: Sequence[tuple[int, str]], *,
                 title: str, desc: str, marks: Sequence[int] = (),
                 height: int = 200) -> Markup:
    """One column per minute (``counts[i]`` slots in minute i), drawn as one path so a
    day of 1,440 minutes stays a small document; ``hour_labels`` are (minute index,
    text) ticks; ``marks`` are minute indexes to point at (the busiest)."""
    left, right, top, bottom = 40, 10, 16, 26
    width = left + len(counts) // 2 + right if counts else left + 720 + right
    plot_h = height - top - bottom
    peak = _nice_top(max(counts, default=0))
    base = top + plot_h
    body = [f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" {AXIS}/>',
            f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
            f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>']
    if not any(counts):
        body.append(f'<text x="{width / 2:.1f}" y="{top + plot_h / 2:.1f}" '
                    'text-anchor="middle" opacity="0.7">no slots in this window</text>')
    for minute, text in hour_labels:
        x = left + minute / 2
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{base + 4}" {AXIS}/>'
                    f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" '
                    f'font-size="11">{escape(text)}</text>')
    path = " ".join(f"M{left + i / 2 + 0.25:.2f} {base}v-{plot_h * n / peak:.1f}"
                    for i, n in enumerate(counts) if n)
    if path:
        body.append(f'<path class="bar" d="{path}" stroke-width="1.5" '
                    'style="stroke: var(--primary, #6750a4)"/>')
    for i in marks:
        if 0 <= i < len(counts) and counts[i]:
            x = left + i / 2 + 0.25
            y = base - plot_h * counts[i] / peak
            body.append(f'<circle cx="{x:.2f}" cy="{y:.1f}" r="3" style="{BAD}">'
                        f'<title>{counts[i]} slots</title></circle>')
    return _frame(width, height, title, desc, body, "chart minute-chart")
