"""Inline SVG figures as pure functions returning strings.

Hand-written rather than a plotting library so the report stays one file that
opens offline: no JavaScript, no web fonts, no external references, only
generic font families. Every text is escaped (``markup.escape``, the report's one
HTML escape, so the HTML template can take a figure as markup); every figure is
well-formed XML carrying ``data-figure`` so tests (and readers of the DOM) can find it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lcrag.pipeline.report.markup import escape

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# Okabe-Ito, minus its yellow (too faint on white): readable for colour-blind readers.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#555555", "#8C564B")
INK, GRID, MUTED = "#222222", "#e3e3e3", "#666666"
CHAR_W = 6.6  # average glyph width at 12px, for label placement


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _n(value: float) -> str:
    """Coordinates with one decimal: smaller files, stable output."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def fmt_tick(value: float) -> str:
    """Short tick text: 0.25, 1.5k, 20k, 1.2M."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if magnitude >= 1_000:
        return f"{value / 1_000:.3g}k"
    if magnitude >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2g}" if magnitude >= 0.01 else f"{value:.1e}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]: the first tick is at
    or below ``lo`` and the last at or above ``hi``, so an axis built on them holds every point."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    value = math.floor(lo / step + 1e-9) * step
    ticks = [round(value, 10)]
    while value < hi - step * 1e-9:
        value += step
        ticks.append(round(value, 10))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks within [lo, hi] for a log axis (only powers of ten if that is too many)."""
    ticks: list[float] = []
    for power in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        ticks.extend(m * 10.0**power for m in (1, 2, 5) if lo <= m * 10.0**power <= hi)
    if len(ticks) > 9:
        ticks = [t for t in ticks if math.isclose(10 ** round(math.log10(t)), t)]
    return ticks


@dataclass(frozen=True)
class Scale:
    """Maps a data domain onto a pixel range, linearly or on log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        f = math.log10 if self.log else (lambda v: v)
        span = f(self.hi) - f(self.lo) or 1.0
        return self.start + (f(value) - f(self.lo)) / span * (self.end - self.start)


def _open(width: int, height: int, figure: str, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" data-figure="{escape(figure)}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'style="max-width:100%;height:auto" font-family="{escape(FONT)}" font-size="12" fill="{INK}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2:g}" y="22" text-anchor="middle" font-size="15" font-weight="600">{escape(title)}</text>',
    ]


def _text(x: float, y: float, text: object, anchor: str = "middle", **attrs: object) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _y_axis(scale: Scale, ticks: Sequence[float], left: float, right: float, label: str, top: float, bottom: float) -> list[str]:
    parts = []
    for tick in ticks:
        y = scale(tick)
        parts.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y + 4, fmt_tick(tick), "end", fill=MUTED))
    mid = (top + bottom) / 2
    parts.append(
        f'<text x="16" y="{_n(mid)}" text-anchor="middle" transform="rotate(-90 16 {_n(mid)})" '
        f'font-size="13">{escape(label)}</text>'
    )
    return parts


def _x_axis(scale: Scale, ticks: Sequence[float], bottom: float, top: float, label: str, left: float, right: float, grid: bool = True) -> list[str]:
    parts = []
    for tick in ticks:
        x = scale(tick)
        if grid:
            parts.append(f'<line x1="{_n(x)}" y1="{_n(top)}" x2="{_n(x)}" y2="{_n(bottom)}" stroke="{GRID}"/>')
        parts.append(f'<line x1="{_n(x)}" y1="{_n(bottom)}" x2="{_n(x)}" y2="{_n(bottom + 5)}" stroke="{MUTED}"/>')
        parts.append(_text(x, bottom + 19, fmt_tick(tick), fill=MUTED))
    parts.append(_text((left + right) / 2, bottom + 42, label, font_size="13"))
    return parts


def _frame(left: float, top: float, right: float, bottom: float) -> str:
    return (
        f'<path d="M{_n(left)} {_n(top)} V{_n(bottom)} H{_n(right)}" fill="none" stroke="{MUTED}" stroke-width="1"/>'
    )


def _legend(entries: Sequence[tuple[str, str, str]], x: float, y: float) -> list[str]:
    """Vertical legend: (label, colour, kind) with kind 'dot', 'line' or 'dash'."""
    parts = []
    for i, (label, fill, kind) in enumerate(entries):
        cy = y + i * 20
        if kind == "dot":
            parts.append(f'<circle cx="{_n(x + 8)}" cy="{_n(cy)}" r="5" fill="{fill}"/>')
        elif kind == "box":
            parts.append(f'<rect x="{_n(x + 2)}" y="{_n(cy - 6)}" width="12" height="12" fill="{fill}"/>')
        else:
            dash = ' stroke-dasharray="6 4"' if kind == "dash" else ""
            parts.append(
                f'<line x1="{_n(x)}" y1="{_n(cy)}" x2="{_n(x + 18)}" y2="{_n(cy)}" stroke="{fill}" stroke-width="2.5"{dash}/>'
            )
            if kind == "line":
                parts.append(f'<circle cx="{_n(x + 9)}" cy="{_n(cy)}" r="3.5" fill="{fill}"/>')
        parts.append(_text(x + 24, cy + 4, label, "start"))
    return parts


def _no_data(width: int, height: int, figure: str, title: str) -> str:
    parts = _open(width, height, figure, title)
    parts.append(_text(width / 2, height / 2, "no data", fill=MUTED))
    return "\n".join([*parts, "</svg>"])


# ------------------------------------------------------------------ scatter


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Points no other point beats on both cost (lower x) and quality (higher y), by x."""
    front: list[tuple[str, float, float]] = []
    for point in sorted(points, key=lambda p: (p[1], -p[2])):
        if not front or point[2] > front[-1][2]:
            front.append(point)
    return front


def _place_labels(anchors: Sequence[tuple[str, float, float]], bounds: tuple[float, float, float, float]) -> list[tuple[float, float, str]]:
    """Greedy label placement: right, left, above, below the point, first that fits
    without overlapping an earlier label (falls back to the right)."""
    left, top, right, bottom = bounds
    taken: list[tuple[float, float, float, float]] = []
    placed = []
    for label, x, y in anchors:
        width = len(label) * CHAR_W
        options = [
            (x + 11, y + 4, "start"),
            (x - 11, y + 4, "end"),
            (x, y - 12, "middle"),
            (x, y + 20, "middle"),
            (x + 11, y - 10, "start"),
            (x + 11, y + 18, "start"),
        ]
        chosen = options[0]
        for tx, ty, anchor in options:
            x0 = tx if anchor == "start" else tx - width if anchor == "end" else tx - width / 2
            box = (x0, ty - 12, x0 + width, ty + 3)
            inside = box[0] >= left and box[2] <= right and box[1] >= top and box[3] <= bottom
            clear = all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in taken)
            if inside and clear:
                chosen = (tx, ty, anchor)
                taken.append(box)
                break
        placed.append(chosen)
    return placed


def scatter(
    points: Sequence[tuple[str, float, float]],
    x_label: str,
    y_label: str,
    title: str,
    *,
    figure: str = "frontier",
    y_range: tuple[float, float] = (0.0, 1.0),
    log_x: bool | None = None,
    colours: Mapping[str, str] | None = None,
    width: int = 760,
    height: int = 440,
) -> str:
    """Cost/quality plane: one labelled point per (label, x, y), the Pareto frontier
    as a dashed line. Token costs span orders of magnitude, so x goes log when
    max/min >= 10 (unless ``log_x`` says otherwise). ``colours`` keeps a strategy's
    colour the same across figures."""
    if not points:
        return _no_data(width, height, figure, title)
    left, top, right, bottom = 70.0, 44.0, width - 170.0, height - 62.0
    xs = [p[1] for p in points]
    lo_x, hi_x = min(xs), max(xs)
    log = log_x if log_x is not None else (lo_x > 0 and hi_x / lo_x >= 10)
    if log:
        lo_x, hi_x = lo_x / 1.6, hi_x * 1.6
        ticks_x = log_ticks(lo_x, hi_x) or [lo_x, hi_x]
    else:
        pad = (hi_x - lo_x) * 0.12 or max(1.0, abs(hi_x) * 0.1)
        ticks_x = nice_ticks(max(0.0, lo_x - pad), hi_x + pad)
        lo_x, hi_x = ticks_x[0], ticks_x[-1]
    sx = Scale(lo_x, hi_x, left, right, log)
    sy = Scale(y_range[0], y_range[1], bottom, top)
    parts = _open(width, height, figure, title)
    parts += _y_axis(sy, nice_ticks(*y_range), left, right, y_label, top, bottom)
    parts += _x_axis(sx, ticks_x, bottom, top, x_label + (" (log scale)" if log else ""), left, right)
    parts.append(_frame(left, top, right, bottom))
    front = pareto_front(points)
    if len(front) > 1:
        path = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for _, x, y in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{INK}" stroke-width="1.5" stroke-dasharray="6 4"/>')
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][2]))
    anchors = [(points[i][0], sx(points[i][1]), sy(points[i][2])) for i in order]
    on_front = {p[0] for p in front}
    for i, (label, px, py), (tx, ty, anchor) in zip(order, anchors, _place_labels(anchors, (left, top, right + 160, bottom))):
        fill = (colours or {}).get(label, colour(i))
        ring = f' stroke="{INK}" stroke-width="1.5"' if label in on_front else ' stroke="#ffffff" stroke-width="1"'
        parts.append(
            f'<circle cx="{_n(px)}" cy="{_n(py)}" r="6" fill="{fill}"{ring}>'
            f"<title>{escape(label)}: {escape(fmt_tick(points[i][1]))} tokens, {points[i][2]:.3f}</title></circle>"
        )
        # white halo: the label stays readable where the frontier line passes under it
        parts.append(_text(tx, ty, label, anchor, font_weight="600", fill=fill, stroke="#ffffff",
                           stroke_width="4", stroke_linejoin="round", paint_order="stroke"))
    parts += _legend([("Pareto frontier", INK, "dash")], right + 24, top + 8)
    parts.append(_text(right + 24, top + 36, "ringed: on the frontier", "start", fill=MUTED, font_size="11"))
    return "\n".join([*parts, "</svg>"])


# -------------------------------------------------------------------- lines


def lines(
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_label: str,
    y_label: str,
    title: str,
    *,
    figure: str = "position",
    y_range: tuple[float, float] = (0.0, 1.0),
    colours: Mapping[str, str] | None = None,
    width: int = 760,
    height: int = 400,
) -> str:
    """One line per series (e.g. accuracy by evidence position per strategy), with a legend;
    ``colours`` maps series names to colours (else the palette in order)."""
    xs = sorted({x for values in series.values() for x, _ in values})
    if not xs:
        return _no_data(width, height, figure, title)
    legend_w = max(110.0, max(len(name) for name in series) * CHAR_W + 40)
    left, top, right, bottom = 70.0, 44.0, width - legend_w - 16, height - 62.0
    ticks_x = xs if len(xs) <= 12 else nice_ticks(xs[0], xs[-1])
    pad = (xs[-1] - xs[0]) * 0.05 or 0.5
    sx = Scale(xs[0] - pad, xs[-1] + pad, left, right)
    sy = Scale(y_range[0], y_range[1], bottom, top)
    parts = _open(width, height, figure, title)
    parts += _y_axis(sy, nice_ticks(*y_range), left, right, y_label, top, bottom)
    parts += _x_axis(sx, ticks_x, bottom, top, x_label, left, right)
    parts.append(_frame(left, top, right, bottom))
    entries = []
    for i, (name, values) in enumerate(series.items()):
        pts = sorted(values)
        if not pts:
            continue
        ink = (colours or {}).get(name, colour(i))
        path = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{ink}" stroke-width="2.5" stroke-opacity="0.9"/>')
        for x, y in pts:
            parts.append(
                f'<circle cx="{_n(sx(x))}" cy="{_n(sy(y))}" r="3.5" fill="{ink}">'
                f"<title>{escape(name)} @ {escape(fmt_tick(x))}: {y:.3f}</title></circle>"
            )
        entries.append((name, ink, "line"))
    parts += _legend(entries, right + 20, top + 8)
    return "\n".join([*parts, "</svg>"])


# ------------------------------------------------------------------ heatmap

# Red -> yellow -> green (ColorBrewer RdYlGn ends): low accuracy reads as a warning.
_STOPS = ((0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80)))


def heat_colour(value: float) -> str:
    """Colour of a value in [0, 1] (clamped)."""
    v = min(1.0, max(0.0, value))
    for (a, ca), (b, cb) in itertools.pairwise(_STOPS):
        if v <= b:
            t = (v - a) / (b - a)
            return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))
    return "#1a9850"


def _ink_on(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return INK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def heatmap(
    cells: Sequence[tuple[float, float, float] | tuple[float, float, float, int]],
    x_label: str,
    y_label: str,
    title: str,
    *,
    figure: str = "heatmap",
    value_label: str = "accuracy",
    width: int = 760,
) -> str:
    """A grid of (x, y, value[, n]) cells, value in [0, 1], printed in each cell,
    with a colour-scale legend; missing cells are grey."""
    if not cells:
        return _no_data(width, 300, figure, title)
    xs = sorted({c[0] for c in cells})
    ys = sorted({c[1] for c in cells})
    left, top, legend_w = 70.0, 44.0, 90.0
    cell_w = (width - left - legend_w - 20) / len(xs)
    cell_h = min(44.0, max(22.0, 320.0 / len(ys)))
    bottom = top + cell_h * len(ys)
    height = int(bottom + 62)
    by_xy = {(c[0], c[1]): c for c in cells}
    parts = _open(width, height, figure, title)
    for j, y in enumerate(ys):
        cy = top + j * cell_h
        parts.append(_text(left - 8, cy + cell_h / 2 + 4, fmt_tick(y), "end", fill=MUTED))
        for i, x in enumerate(xs):
            cx = left + i * cell_w
            cell = by_xy.get((x, y))
            fill = heat_colour(cell[2]) if cell else "#eeeeee"
            tip = f"{fmt_tick(x)} x {fmt_tick(y)}: " + (f"{cell[2]:.3f}" + (f" (n={cell[3]})" if len(cell) > 3 else "") if cell else "no data")
            parts.append(
                f'<rect x="{_n(cx)}" y="{_n(cy)}" width="{_n(cell_w)}" height="{_n(cell_h)}" fill="{fill}" '
                f'stroke="#ffffff" stroke-width="1.5"><title>{escape(tip)}</title></rect>'
            )
            text = f"{cell[2]:.2f}" if cell else "–"
            parts.append(_text(cx + cell_w / 2, cy + cell_h / 2 + 4, text, fill=_ink_on(fill) if cell else MUTED))
    for i, x in enumerate(xs):
        parts.append(_text(left + (i + 0.5) * cell_w, bottom + 19, fmt_tick(x), fill=MUTED))
    parts.append(_text(left + cell_w * len(xs) / 2, bottom + 42, x_label, font_size="13"))
    mid = (top + bottom) / 2
    parts.append(
        f'<text x="16" y="{_n(mid)}" text-anchor="middle" transform="rotate(-90 16 {_n(mid)})" font-size="13">{escape(y_label)}</text>'
    )
    # colour scale: ten discrete steps (no gradient ids that could clash between figures)
    lx, steps, bar_h = width - legend_w + 10, 10, max(120.0, bottom - top - 20)
    parts.append(_text(lx, top - 10, value_label, "start", font_size="11", fill=MUTED))
    for k in range(steps):
        value = 1 - (k + 0.5) / steps
        parts.append(
            f'<rect x="{_n(lx)}" y="{_n(top + k * bar_h / steps)}" width="16" height="{_n(bar_h / steps + 0.5)}" '
            f'fill="{heat_colour(value)}"/>'
        )
    for value in (1.0, 0.5, 0.0):
        y = top + (1 - value) * bar_h
        parts.append(_text(lx + 22, y + 4, fmt_tick(value), "start", fill=MUTED))
    return "\n".join([*parts, "</svg>"])


# ------------------------------------------------------------------- bars


def bars_with_intervals(
    categories: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float, float] | None]],
    y_label: str,
    title: str,
    *,
    figure: str = "quality",
    y_range: tuple[float, float] = (0.0, 1.0),
    width: int = 760,
    height: int = 420,
) -> str:
    """Grouped bars: for each category (strategy), one bar per series (metric) at its
    mean with a whisker from low to high; None leaves a gap."""
    if not categories or not series:
        return _no_data(width, height, figure, title)
    legend_w = max(125.0, max(len(name) for name in series) * CHAR_W + 40)
    left, top, right = 70.0, 44.0, width - legend_w - 16
    group_w = (right - left) / len(categories)
    widest = max(len(c) for c in categories) * CHAR_W
    rotate = widest > group_w - 8
    bottom = height - (62.0 + (widest * 0.5 if rotate else 0))
    sy = Scale(y_range[0], y_range[1], bottom, top)
    parts = _open(width, height, figure, title)
    parts += _y_axis(sy, nice_ticks(*y_range), left, right, y_label, top, bottom)
    parts.append(_frame(left, top, right, bottom))
    bar_w = min(34.0, group_w * 0.8 / len(series))
    for c, category in enumerate(categories):
        gx = left + c * group_w + (group_w - bar_w * len(series)) / 2
        for s, (name, values) in enumerate(series.items()):
            value = values[c] if c < len(values) else None
            if value is None:
                continue
            mean, low, high = value
            x = gx + s * bar_w
            cx = x + bar_w / 2
            parts.append(
                f'<rect x="{_n(x + 1)}" y="{_n(sy(mean))}" width="{_n(bar_w - 2)}" height="{_n(sy(y_range[0]) - sy(mean))}" '
                f'fill="{colour(s)}"><title>{escape(category)} {escape(name)}: {mean:.3f} [{low:.3f}, {high:.3f}]</title></rect>'
            )
            cap = min(6.0, bar_w / 3)
            parts.append(
                f'<path d="M{_n(cx)} {_n(sy(low))} V{_n(sy(high))} M{_n(cx - cap)} {_n(sy(low))} H{_n(cx + cap)} '
                f'M{_n(cx - cap)} {_n(sy(high))} H{_n(cx + cap)}" stroke="{INK}" stroke-width="1.3" fill="none"/>'
            )
            parts.append(_text(cx, sy(high) - 5, f"{mean:.2f}", font_size="10", fill=INK))
        lx, ly = left + (c + 0.5) * group_w, bottom + 18
        if rotate:
            parts.append(
                f'<text x="{_n(lx)}" y="{_n(ly)}" text-anchor="end" transform="rotate(-30 {_n(lx)} {_n(ly)})">{escape(category)}</text>'
            )
        else:
            parts.append(_text(lx, ly, category))
    parts += _legend([(name, colour(s), "box") for s, name in enumerate(series)], right + 20, top + 8)
    parts.append(_text(right + 20, top + 8 + 20 * len(series) + 8, "whiskers: 95% CI", "start", font_size="11", fill=MUTED))
    return "\n".join([*parts, "</svg>"])
