"""The demo site's category taxonomy, read from ``data/taxonomy.json`` (data, not code).

Promises: ``taxonomy_entries()`` returns the tier-1 categories in file order as frozen dataclasses
(read once per process); ``category_style(slug)`` gives any category, also one created on import
and absent from the file, a stable cover colour and motif.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TAXONOMY_PATH = Path(__file__).resolve().parent / "data" / "taxonomy.json"
MOTIFS = (
    "stripes",
    "lines",
    "bars",
    "steps",
    "grid",
    "circles",
    "blobs",
    "waves",
    "triangles",
    "leaves",
    "plus",
    "frames",
    "coins",
    "dots",
    "stars",
    "houses",
    "rings",
    "orbits",
    "diagonal",
    "circuit",
    "mountains",
    "pixels",
)


@dataclass(frozen=True, slots=True)
class TaxonomyEntry:
    slug: str
    name: str
    description: str
    hue: int
    motif: str
    topics: tuple[str, ...]
    people: tuple[str, ...]
    adjectives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CategoryStyle:
    hue: int
    motif: str


@lru_cache(maxsize=1)
def taxonomy_entries() -> tuple[TaxonomyEntry, ...]:
    raw = json.loads(TAXONOMY_PATH.read_text(encoding="utf-8"))
    return tuple(
        TaxonomyEntry(
            slug=item["slug"],
            name=item["name"],
            description=item["description"],
            hue=int(item["hue"]) % 360,
            motif=item["motif"],
            topics=tuple(item["topics"]),
            people=tuple(item["people"]),
            adjectives=tuple(item["adjectives"]),
        )
        for item in raw["categories"]
    )


@lru_cache(maxsize=4096)
def category_style(slug: str) -> CategoryStyle:
    """Cover colour and motif: from the taxonomy file, else derived from the slug (stable across runs)."""
    for entry in taxonomy_entries():
        if entry.slug == slug:
            return CategoryStyle(hue=entry.hue, motif=entry.motif)
    digest = hashlib.blake2b(slug.encode(), digest_size=4).digest()
    return CategoryStyle(hue=digest[0] * 360 // 256, motif=MOTIFS[digest[1] % len(MOTIFS)])
