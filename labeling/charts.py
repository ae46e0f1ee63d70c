"""Charts of the stats page as server-rendered SVG (no JavaScript library): labeler quality per week."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from labeling.selectors import WeekQuality

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 22, 10, 22
SERIES = [("gold_accuracy", "Gold accuracy", "lb-line-gold"), ("agreement", "Agreement", "lb-line-agree")]


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if n == 1 else span * i / (n - 1))


def _y(value: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value)


def quality_chart_svg(weeks: list[WeekQuality]) -> SafeString:
    """Two lines, gold accuracy and agreement (smoothed, 0 to 100 %), one point per week with its counts."""
    n = len(weeks)
    grid = format_html_join(
        "",
        '<line class="lb-grid" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="lb-axis" x="{}" y="{}">{}%</text>',
        ((LEFT, WIDTH - RIGHT, _y(v), _y(v), LEFT - 6, _y(v) + 4, round(v * 100)) for v in (0, 0.5, 0.7, 1.0)),
    )
    labels = format_html_join(
        "",
        '<text class="lb-axis lb-week" x="{}" y="{}">{}</text>',
        # Every other week's date once they would crowd a phone's width.
        (
            (round(_x(i, n), 1), HEIGHT - 6, w.week.strftime("%d %b"))
            for i, w in enumerate(weeks)
            if n <= 6 or (n - 1 - i) % 2 == 0
        ),
    )
    lines = []
    for attr, name, css in SERIES:
        points = [(i, getattr(w, attr), w) for i, w in enumerate(weeks) if getattr(w, attr) is not None]
        if not points:
            continue
        path = " ".join(f"{_x(i, n):.1f},{_y(v):.1f}" for i, v, _ in points)
        dots = format_html_join(
            "",
            '<circle class="{}" cx="{}" cy="{}" r="3.5"><title>{} · week of {}: {}% ({})</title></circle>',
            (
                (
                    css,
                    round(_x(i, n), 1),
                    round(_y(v), 1),
                    name,
                    w.week.isoformat(),
                    round(v * 100),
                    f"{w.gold_correct}/{w.gold_answered} gold"
                    if attr == "gold_accuracy"
                    else f"{w.agreed}/{w.compared} settled",
                )
                for i, v, w in points
            ),
        )
        lines.append(format_html('<polyline class="{}" points="{}"/>{}', css, path, dots))
    return format_html(
        '<svg class="lb-quality-chart" viewBox="0 0 {} {}" role="img" aria-label="{}">{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        "Gold accuracy and agreement per week",
        grid,
        labels,
        mark_safe("".join(lines)),  # each part built with format_html above
    )
