"""Small inline SVG charts, built from numbers only (no text from users goes in)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from pgbatch.web.throughput import WINDOW_SECONDS, Bar


def bar_chart(bars: Sequence[Bar], every: float, *, small: bool = False) -> Markup:
    """Bars of finished jobs per sample over the last ``WINDOW_SECONDS`` (newest right)."""
    width, height = (160, 24) if small else (600, 80)
    slots = max(1, int(WINDOW_SECONDS / every))
    slot_w = width / slots
    peak = max((b.count for b in bars), default=0)
    rects = []
    for bar in bars:
        if bar.count <= 0:
            continue
        x = width - (bar.seconds_ago / every + 1) * slot_w
        h = max(1.0, (height - 2) * bar.count / peak)
        rects.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(slot_w - 0.5, 0.5):.1f}" '
                     f'height="{h:.1f}"><title>{bar.count}</title></rect>')
    total = sum(b.count for b in bars)
    label = f"{total} jobs finished in the last {WINDOW_SECONDS // 60} minutes, peak {peak} " \
            f"per {every:g}s"
    return Markup(  # noqa: S704 (numbers only)
        f'<svg class="chart" role="img" aria-label="{label}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-total="{total}"><title>{label}</title>'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="axis"/>'
        + "".join(rects) + "</svg>")
