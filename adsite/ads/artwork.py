"""Creative images made locally: deterministic SVG banners (no downloads, no external fonts)."""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

PALETTES = (
    ("#0b3954", "#087e8b", "#ffffff"),
    ("#5c2751", "#ef798a", "#ffffff"),
    ("#1b4332", "#52b788", "#ffffff"),
    ("#3d348b", "#7678ed", "#ffffff"),
    ("#7f5539", "#ddb892", "#1b1b1b"),
    ("#9d0208", "#f48c06", "#ffffff"),
    ("#023047", "#8ecae6", "#ffffff"),
    ("#283618", "#dda15e", "#ffffff"),
)


def banner_svg(*, advertiser: str, headline: str, width: int = 600, height: int = 300) -> str:
    """An SVG banner: the advertiser's initials on a gradient, a few shapes, the headline."""
    digest = hashlib.sha256(f"{advertiser}|{headline}".encode()).digest()
    dark, light, ink = PALETTES[digest[0] % len(PALETTES)]
    initials = "".join(word[0] for word in advertiser.split()[:2]).upper()
    circles = "".join(
        f'<circle cx="{digest[i] * width // 255}" cy="{digest[i + 1] * height // 255}" '
        f'r="{20 + digest[i + 2] % 70}" fill="{ink}" fill-opacity="0.08"/>'
        for i in range(3, 18, 3)
    )
    title = escape(headline[:48])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(advertiser)}">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{dark}"/><stop offset="1" stop-color="{light}"/></linearGradient></defs>'
        f'<rect width="{width}" height="{height}" fill="url(#g)"/>{circles}'
        f'<text x="32" y="{height // 2}" font-family="Georgia, serif" font-size="{height // 3}" '
        f'font-weight="700" fill="{ink}">{escape(initials)}</text>'
        f'<text x="32" y="{height - 32}" font-family="Helvetica, Arial, sans-serif" font-size="{height // 12}" '
        f'fill="{ink}">{title}</text></svg>'
    )
