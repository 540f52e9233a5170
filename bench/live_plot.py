"""The deferral curve as a PNG, drawn with Pillow (already a pinned dependency): accuracy against
the share of queries sent to the large model, one line per confidence signal, the random
policy's diagonal, and the operating points measured or replayed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from cascade.evaluate import deferral_curve
from cascade.live import LiveOutcome

WIDTH, HEIGHT, MARGIN = 900, 620, 70
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def plot_deferral(
    rows: Sequence[LiveOutcome],
    signals: Sequence[str],
    points: dict[str, tuple[float, float]],
    path: Path,
    title: str,
) -> None:
    """`points`: label -> (share sent to the large model, accuracy)."""
    small = [o.small_correct for o in rows]
    large = [o.large_correct for o in rows]
    costs = ([o.small_cost for o in rows], [o.large_cost for o in rows])
    curves = {
        name: [
            (p.share_large, p.quality)
            for p in deferral_curve(small, large, [o.signals.get(name, 0.0) for o in rows], *costs)
        ]
        for name in signals
    }
    values = [q for c in curves.values() for _, q in c] + [q for _, q in points.values()]
    low, high = max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.05)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)

    def xy(share: float, quality: float) -> tuple[float, float]:
        x = MARGIN + share * (WIDTH - 2 * MARGIN)
        y = HEIGHT - MARGIN - (quality - low) / (high - low) * (HEIGHT - 2 * MARGIN)
        return x, y

    _axes(draw, xy, low, high, title)
    q_small, q_large = sum(small) / len(small), sum(large) / len(large)
    draw.line([xy(0, q_small), xy(1, q_large)], fill="#999999", width=1)
    draw.text(
        (xy(0.55, (q_small + q_large) / 2)[0], xy(0.55, (q_small + q_large) / 2)[1] + 6),
        "random",
        fill="#777777",
    )
    draw.line([xy(0, 0.95 * q_large), xy(1, 0.95 * q_large)], fill="#bbbbbb", width=1)
    draw.text((MARGIN + 4, xy(0, 0.95 * q_large)[1] - 12), "95% of large", fill="#777777")
    for i, (name, curve) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        draw.line([xy(s, q) for s, q in curve], fill=colour, width=2)
        draw.text((MARGIN + 10, MARGIN + 8 + 14 * i), f"-- {name}", fill=colour)
    for j, (label, (share, quality)) in enumerate(points.items()):
        x, y = xy(share, quality)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline="black", width=2)
        draw.text((x + 7, y - 7 - 12 * (j % 2)), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _axes(draw: ImageDraw.ImageDraw, xy: object, low: float, high: float, title: str) -> None:
    to_xy = xy if callable(xy) else None
    assert to_xy is not None
    draw.rectangle([MARGIN, MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN], outline="black")
    for k in range(6):
        share = k / 5
        x, y = to_xy(share, low)
        draw.line([x, y, x, y + 5], fill="black")
        draw.text((x - 10, y + 8), f"{share:.1f}", fill="black")
        quality = low + (high - low) * k / 5
        x, y = to_xy(0, quality)
        draw.line([x - 5, y, x, y], fill="black")
        draw.text((x - 40, y - 6), f"{quality:.2f}", fill="black")
    draw.text(
        (WIDTH / 2 - 120, HEIGHT - MARGIN + 28),
        "share of queries sent to the large model",
        fill="black",
    )
    draw.text((8, MARGIN - 30), "accuracy", fill="black")
    draw.text((MARGIN, 16), title, fill="black")
