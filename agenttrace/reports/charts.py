"""Charts as inline SVG, drawn on the server: no script, no external service, readable offline.

Every function returns `Markup` built from numbers we compute and text passed through `escape`,
so a scorer or metric name holding markup is shown as text. Colours are presentation attributes
(not `style=`), which the UI's Content-Security-Policy allows and e-mail clients keep.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

__all__ = ["histogram", "interval_chart", "line_chart"]

_W, _H = 320, 140
_PAD_L, _PAD_B, _PAD_T = 34, 22, 14
_BAR = "#4c78a8"
_ERR = "#e45756"
_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d")


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _x_text(value: float, is_time: bool) -> str:
    if not is_time:
        return _fmt(value)
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")


def _bins(values: Sequence[Any]) -> list[tuple[str, int, str]]:
    """(label, count, colour) per bar: booleans as fail/pass, numbers in 10 bins, labels by frequency."""
    errors = sum(1 for v in values if v is None)
    present = [v for v in values if v is not None]
    bars: list[tuple[str, int, str]] = []
    if present and all(isinstance(v, bool) for v in present):
        bars = [("fail", sum(1 for v in present if not v), _ERR), ("pass", sum(1 for v in present if v), _BAR)]
    elif present and all(isinstance(v, int | float) and math.isfinite(v) for v in present):
        numbers = [float(v) for v in present]
        low, high = min(numbers), max(numbers)
        if 0.0 <= low and high <= 1.0:  # scores on the unit scale keep a fixed axis, comparable across runs
            low, high = 0.0, 1.0
        width = (high - low) / 10 or 1.0
        counts = [0] * 10
        for n in numbers:
            counts[min(9, int((n - low) / width))] += 1
        bars = [(_fmt(low + i * width), c, _BAR) for i, c in enumerate(counts)]
    elif present:
        common = Counter(str(v) for v in present).most_common(10)
        bars = [(label, count, _BAR) for label, count in common]
    if errors:
        bars.append(("error", errors, _ERR))
    return bars


def histogram(values: Sequence[Any], title: str = "") -> Markup:
    """Distribution of one scorer's values (None = an errored cell) as an SVG bar chart."""
    bars = _bins(values)
    top = max((c for _, c, _ in bars), default=0) or 1
    plot_w, plot_h = _W - _PAD_L - 6, _H - _PAD_B - _PAD_T
    step = plot_w / max(1, len(bars))
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{escape(title)} distribution">',
        f"<title>{escape(title)}: {len(values)} values</title>",
        f'<text x="{_PAD_L}" y="10" font-size="10" fill="#555">{escape(title)}</text>',
        f'<line x1="{_PAD_L}" y1="{_H - _PAD_B}" x2="{_W - 4}" y2="{_H - _PAD_B}" stroke="#999"/>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 8}" font-size="9" text-anchor="end" fill="#555">{top}</text>',
    ]
    for i, (label, count, colour) in enumerate(bars):
        height = plot_h * count / top
        x = _PAD_L + i * step + 1
        y = _H - _PAD_B - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" height="{height:.1f}" '
            f'fill="{colour}"><title>{escape(label)}: {count}</title></rect>'
        )
        if len(bars) <= 12:
            parts.append(
                f'<text x="{x + step / 2 - 1:.1f}" y="{_H - _PAD_B + 11}" font-size="9" text-anchor="middle" '
                f'fill="#555">{escape(label[:8])}</text>'
            )
    if not bars:
        parts.append(
            f'<text x="{_W / 2}" y="{_H / 2}" font-size="11" text-anchor="middle" fill="#777">no values</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]], title: str = "", x_label: str = "", x_time: bool = False
) -> Markup:
    """One line per named series of (x, y) points, with a legend; for metric histories and quality over time.

    With `x_time`, x is seconds since the epoch and its ends are labelled as UTC dates.
    """
    points = [p for s in series.values() for p in s if math.isfinite(p[0]) and math.isfinite(p[1])]
    width, height = 480, 200
    plot_w, plot_h = width - _PAD_L - 10, height - _PAD_B - _PAD_T - 14
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_PAD_L}" y="10" font-size="10" fill="#555">{escape(title)}</text>',
    ]
    if not points:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" font-size="11" text-anchor="middle">no data</text></svg>')
        return Markup("".join(parts))
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    base = height - _PAD_B

    def sx(x: float) -> float:
        return _PAD_L + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return base - (y - y0) / (y1 - y0) * plot_h

    parts += [
        f'<line x1="{_PAD_L}" y1="{base}" x2="{width - 6}" y2="{base}" stroke="#999"/>',
        f'<line x1="{_PAD_L}" y1="{base}" x2="{_PAD_L}" y2="{base - plot_h}" stroke="#999"/>',
        f'<text x="{_PAD_L - 4}" y="{base}" font-size="9" text-anchor="end">{escape(_fmt(y0))}</text>',
        f'<text x="{_PAD_L - 4}" y="{base - plot_h + 8}" font-size="9" text-anchor="end">{escape(_fmt(y1))}</text>',
        f'<text x="{_PAD_L}" y="{base + 12}" font-size="9">{escape(_x_text(x0, x_time))}</text>',
        f'<text x="{width - 6}" y="{base + 12}" font-size="9" text-anchor="end">{escape(_x_text(x1, x_time))} '
        f"{escape(x_label)}</text>",
    ]
    for i, (name, pts) in enumerate(series.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        good = sorted(p for p in pts if math.isfinite(p[0]) and math.isfinite(p[1]))
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        parts.append(f'<polyline class="series" points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for x, y in good if len(good) <= 60 else ():
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)}: {escape(_fmt(y))} at {escape(_fmt(x))}</title></circle>"
            )
        parts.append(
            f'<text x="{_PAD_L + 8 + (i % 4) * 110}" y="{height - 2 - 0 * i}" font-size="9" fill="{colour}">'
            f"■ {escape(name[:18])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def interval_chart(rows: Sequence[Mapping[str, Any]]) -> Markup:
    """Per scorer, B − A with its 95% interval around a zero line: which deltas are clearly off zero."""
    usable = [r for r in rows if r.get("delta") is not None]
    row_h, width = 22, 420
    height = 20 + row_h * max(1, len(usable))
    spread = max([abs(float(r.get(k) or 0)) for r in usable for k in ("delta", "ci95_low", "ci95_high")] + [0.05])
    mid, half = 150 + (width - 160) / 2, (width - 160) / 2 - 6

    def sx(v: float) -> float:
        return mid + v / spread * half

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="deltas with 95% intervals">',
        f'<line x1="{mid}" y1="4" x2="{mid}" y2="{height - 4}" stroke="#999" stroke-dasharray="3,3"/>',
    ]
    for i, row in enumerate(usable):
        y = 16 + i * row_h
        delta = float(row["delta"])
        low, high = row.get("ci95_low"), row.get("ci95_high")
        colour = _ERR if delta < 0 else _BAR
        parts.append(f'<text x="4" y="{y + 4}" font-size="10">{escape(str(row["scorer"])[:22])}</text>')
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{sx(float(low)):.1f}" y1="{y}" x2="{sx(float(high)):.1f}" y2="{y}" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        parts.append(
            f'<circle cx="{sx(delta):.1f}" cy="{y}" r="4" fill="{colour}"><title>{escape(str(row["scorer"]))}: '
            f"{delta:+.3f}</title></circle>"
        )
        parts.append(f'<text x="{width - 4}" y="{y + 4}" font-size="10" text-anchor="end">{delta:+.3f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
