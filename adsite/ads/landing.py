"""The last check before a click redirect: only an absolute http(s) URL with a host leaves the site.

Landing URLs are validated when saved (``models.landing_url_validate``); this re-checks at redirect
time, so a row written past the validators (a raw SQL import, an old row) can still not send a
visitor to ``javascript:``, a scheme-relative ``//host`` or a header-splitting value.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def landing_url_safe(url: str) -> str:
    """``url`` when it is a plain absolute http(s) URL with a host, else ``""``."""
    if not url or len(url) > 2000 or any(ord(ch) < 0x21 or ch in "\\\x7f" for ch in url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.lower().startswith(parts.scheme + "://"):
        return ""
    # no user:password@ (a host that looks like another), no encoded line breaks or NULs
    if "@" in parts.netloc or any(code in url.lower() for code in ("%0d", "%0a", "%00")):
        return ""
    return url
