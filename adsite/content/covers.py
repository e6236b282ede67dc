"""Generated cover art: a small inline SVG per article, in its category's colour and motif.

Promises: the same (category, seed text) always gives the same picture; no external image, no
element ids (so any number of covers can share a page); output contains only numbers we computed and
the escaped label, so it is safe to mark as HTML.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from adsite.content.taxonomy import category_style

WIDTH, HEIGHT = 400, 225


def _circles(rng: random.Random, hue: int, filled: bool) -> list[str]:
    shapes = []
    for _ in range(rng.randint(5, 9)):
        r = rng.randint(14, 70)
        cx, cy = rng.randint(0, WIDTH), rng.randint(0, HEIGHT)
        light = rng.randint(70, 92)
        if filled:
            shapes.append(
                f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="hsl({hue},70%,{light}%)" fill-opacity="0.35"/>'
            )
        else:
            shapes.append(
                f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="hsl({hue},70%,{light}%)" '
                f'stroke-opacity="0.55" stroke-width="{rng.randint(3, 10)}"/>'
            )
    return shapes


def _bars(rng: random.Random, hue: int, diagonal: bool) -> list[str]:
    shapes = []
    n = rng.randint(6, 11)
    step = WIDTH / n
    for i in range(n):
        h = rng.randint(30, HEIGHT - 20)
        light = rng.randint(65, 90)
        x = round(i * step + 4, 1)
        shapes.append(
            f'<rect x="{x}" y="{HEIGHT - h}" width="{round(step * 0.62, 1)}" height="{h}" rx="3" '
            f'fill="hsl({hue},65%,{light}%)" fill-opacity="0.4"/>'
        )
    if diagonal:
        return [
            f'<g transform="rotate(-24 {WIDTH // 2} {HEIGHT // 2}) translate(0 30)">{"".join(shapes)}</g>'
        ]
    return shapes


def _grid(rng: random.Random, hue: int) -> list[str]:
    shapes = []
    size = rng.choice((20, 25, 32))
    for x in range(0, WIDTH, size):
        for y in range(0, HEIGHT, size):
            if rng.random() < 0.28:
                light = rng.randint(65, 92)
                shapes.append(
                    f'<rect x="{x + 2}" y="{y + 2}" width="{size - 4}" height="{size - 4}" rx="2" '
                    f'fill="hsl({hue},70%,{light}%)" fill-opacity="0.45"/>'
                )
    return shapes


def _waves(rng: random.Random, hue: int) -> list[str]:
    shapes = []
    for i in range(rng.randint(4, 7)):
        base = 40 + i * 30 + rng.randint(-10, 10)
        amp, freq, phase = rng.randint(8, 28), rng.uniform(1.0, 2.6), rng.uniform(0, math.pi * 2)
        points = " ".join(
            f"{x},{round(base + amp * math.sin(freq * x / WIDTH * 2 * math.pi + phase), 1)}"
            for x in range(0, WIDTH + 1, 10)
        )
        shapes.append(
            f'<polyline points="{points}" fill="none" stroke="hsl({hue},70%,{rng.randint(70, 92)}%)" '
            f'stroke-opacity="0.6" stroke-width="{rng.randint(3, 8)}" stroke-linecap="round"/>'
        )
    return shapes


def _peaks(rng: random.Random, hue: int) -> list[str]:
    shapes = []
    for layer in range(3):
        points = [f"0,{HEIGHT}"]
        x = 0
        while x < WIDTH:
            x += rng.randint(50, 120)
            points.append(f"{min(x, WIDTH)},{rng.randint(60 + layer * 30, 150 + layer * 25)}")
        points.append(f"{WIDTH},{HEIGHT}")
        shapes.append(
            f'<polygon points="{" ".join(points)}" fill="hsl({hue},55%,{80 - layer * 12}%)" fill-opacity="0.45"/>'
        )
    return shapes


def _crosses(rng: random.Random, hue: int) -> list[str]:
    shapes = []
    for _ in range(rng.randint(6, 10)):
        cx, cy, s = rng.randint(10, WIDTH - 10), rng.randint(10, HEIGHT - 10), rng.randint(10, 26)
        light = rng.randint(70, 92)
        shapes.append(
            f'<path d="M{cx - s} {cy}H{cx + s}M{cx} {cy - s}V{cy + s}" stroke="hsl({hue},70%,{light}%)" '
            f'stroke-opacity="0.6" stroke-width="{max(4, s // 3)}" stroke-linecap="round"/>'
        )
    return shapes


MOTIF_DRAWERS = {
    "circles": lambda rng, hue: _circles(rng, hue, True),
    "dots": lambda rng, hue: _circles(rng, hue, True),
    "blobs": lambda rng, hue: _circles(rng, hue, True),
    "coins": lambda rng, hue: _circles(rng, hue, False),
    "rings": lambda rng, hue: _circles(rng, hue, False),
    "orbits": lambda rng, hue: _circles(rng, hue, False),
    "bars": lambda rng, hue: _bars(rng, hue, False),
    "steps": lambda rng, hue: _bars(rng, hue, False),
    "stripes": lambda rng, hue: _bars(rng, hue, True),
    "diagonal": lambda rng, hue: _bars(rng, hue, True),
    "lines": lambda rng, hue: _bars(rng, hue, True),
    "grid": _grid,
    "pixels": _grid,
    "circuit": _grid,
    "frames": _grid,
    "waves": _waves,
    "mountains": _peaks,
    "triangles": _peaks,
    "houses": _peaks,
    "leaves": _waves,
    "plus": _crosses,
    "stars": _crosses,
}


@lru_cache(maxsize=4096)  # a picture is a pure function of its arguments; pages reuse them all the time
def cover_svg(*, category_slug: str, seed_text: str, label: str = "") -> SafeString:
    """The cover as inline SVG. With a ``label`` it is an image with that accessible name, without one
    it is decorative and hidden from assistive technology (the headline beside it says the same)."""
    style = category_style(category_slug)
    rng = random.Random(f"{category_slug}:{seed_text}")
    hue = style.hue
    drawer = MOTIF_DRAWERS.get(style.motif, _grid)
    accessible = (
        f'role="img" aria-label="{escape(label)}"' if label else 'aria-hidden="true" focusable="false"'
    )
    glow_x, glow_y = rng.randint(60, WIDTH - 60), rng.randint(40, HEIGHT - 40)
    parts = [
        f'<svg class="cover" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="xMidYMid slice" '
        f'xmlns="http://www.w3.org/2000/svg" {accessible}>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="hsl({hue},48%,34%)"/>',
        f'<circle cx="{glow_x}" cy="{glow_y}" r="{rng.randint(120, 200)}" fill="hsl({(hue + 25) % 360},60%,52%)" fill-opacity="0.55"/>',
        *drawer(rng, hue),
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 - built from numbers and an escaped label only
