"""Charts as inline SVG: a report's page draws them without a script or a network fetch."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 800, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 16, 40


@dataclass(frozen=True)
class Series:
    """One series: the first of a chart is drawn as bars, the others as lines over them."""

    label: str
    values: list[int]
    colour: str


def _short(value: float, unit: str) -> str:
    steps = (1024, ("", "K", "M", "G", "T")) if unit == "bytes" else (1000, ("", "k", "M", "G"))
    base, names = steps
    for name in names:
        if abs(value) < base or name == names[-1]:
            text = f"{value:.0f}" if not name else f"{value:.1f}{name}"
            return text + ("B" if unit == "bytes" else "")
        value /= base
    return f"{value:.0f}"


def bar_chart(labels: list[str], series: list[Series], *, chart_id: str, unit: str = "") -> Markup:
    """An SVG chart of `series` over `labels` (bars for the first series, lines for the rest),
    scaled to fit its box; each point has a tooltip with its exact value."""
    count = len(labels)
    top_value = max([1, *(value for item in series for value in item.values)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(count, 1)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top_value

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" data-points="{count}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(', '.join(item.label for item in series))} per bucket</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'class="axis"/>',
    ]
    for fraction in (0.5, 1.0):
        level = TOP + plot_h - plot_h * fraction
        parts.append(
            f'<line x1="{LEFT}" y1="{level:.1f}" x2="{WIDTH - RIGHT}" y2="{level:.1f}" '
            'class="grid"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end">'
            f"{escape(_short(top_value * fraction, unit))}</text>"
        )
    if series:
        bars = series[0]
        width = max(step * 0.8, 1.0)
        for index, value in enumerate(bars.values):
            x = LEFT + index * step + (step - width) / 2
            parts.append(
                f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{width:.1f}" '
                f'height="{TOP + plot_h - y(value):.1f}" fill="{bars.colour}">'
                f"<title>{escape(labels[index])}: {value:,} {escape(bars.label)}</title></rect>"
            )
    for line in series[1:]:
        points = " ".join(
            f"{LEFT + index * step + step / 2:.1f},{y(value):.1f}"
            for index, value in enumerate(line.values)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{line.colour}" stroke-width="2"/>'
        )
        for index, value in enumerate(line.values):
            parts.append(
                f'<circle cx="{LEFT + index * step + step / 2:.1f}" cy="{y(value):.1f}" r="2.5" '
                f'fill="{line.colour}"><title>{escape(labels[index])}: {value:,} '
                f"{escape(line.label)}</title></circle>"
            )
    if labels:
        shown = sorted({0, count // 2, count - 1})
        for index in shown:
            anchor = "start" if index == 0 else "end" if index == count - 1 else "middle"
            x = LEFT + index * step + (0 if anchor == "start" else step if anchor == "end" else 0)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="{anchor}">'
                f"{escape(labels[index])}</text>"
            )
    legend_x = LEFT
    for item in series:
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{item.colour}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}">{escape(item.label)}</text>'
        )
        legend_x += 24 + 8 * len(item.label)
    parts.append("</svg>")
    # Every text in `parts` went through `escape`; the rest are our own numbers and names.
    return Markup("".join(parts))  # noqa: S704
