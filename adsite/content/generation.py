"""Demo article text, generated from the taxonomy's per-category vocabularies.

Promises: ``demo_articles`` is deterministic for a given seed, taxonomy entry and anchor time; each
category gets its own random stream (adding a category does not change another's articles); titles
are unique within a category and slugs unique overall. Nothing here touches the database.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.text import slugify

from adsite.content.taxonomy import TaxonomyEntry

TITLE_TEMPLATES = (
    "{n} things {people} wish they knew about {topic}",
    "Why everyone is talking about {topic}",
    "The quiet revolution in {topic}",
    "Inside the {adj} world of {topic}",
    "How to get started with {topic}",
    "What {people} get wrong about {topic}",
    "{Topic}: a beginner's guide",
    "The {adj} case for {topic}",
    "{Topic}: worth the hype?",
    "{Topic}: what to expect next",
    "We spent a month with {topic}. Here is what we learned",
    "The hidden costs of {topic}",
    "A field guide to {topic} for curious {people}",
    "How {people} are rethinking {topic}",
    "{Topic}, explained in five charts",
    "The {adj} rise of {topic}",
)

OPENERS = (
    "For years, {topic} sat at the edge of the conversation. That is changing fast.",
    "Ask a room full of {people} about {topic} and you will get a dozen different answers.",
    "It started, as these things often do, with a small experiment and a lot of scepticism.",
    "There is a moment, familiar to many {people}, when {topic} stops being a curiosity and becomes a habit.",
    "The numbers tell part of the story: interest in {topic} has grown by roughly {pct} per cent in {span}.",
)
MIDDLES = (
    "\u201cMost people underestimate how much {topic} depends on the basics,\u201d says {expert}, who has worked with {people} in {city} for {years} years. \u201cGet those right and the rest follows.\u201d",
    "The {adj} part is not the technology or the cost. It is the time it takes to build a routine around {topic}, and the patience to stick with it when the early results are modest.",
    "Compared with {other}, {topic} asks less up front but rewards consistency. Several {people} we spoke to said the first {weeks} weeks were the hardest.",
    "In {city}, a small group of {people} has been meeting every month to compare notes on {topic}. What began as {count} regulars now fills a room.",
    "Critics point out that {topic} is not for everyone, and they have a point: costs vary widely, and advice online is often contradictory or out of date.",
    "One practical tip came up again and again: start small, write down what you try, and change one thing at a time. It sounds obvious, but it is the step most {people} skip.",
    "The data is still thin, but a recent survey of {count} {people} found that {pct} per cent planned to spend more time on {topic} over the next year.",
    "{Expert} is cautiously optimistic. \u201cWe are seeing better tools and better information about {topic} than even two years ago,\u201d they say. \u201cThe challenge is making it accessible.\u201d",
    "There is also a link with {other} that is easy to miss. The same habits that help with one tend to help with the other.",
    "None of this happens in isolation. Prices, local rules and plain old fashion all shape how {people} approach {topic}, and those forces rarely point the same way.",
)
CLOSERS = (
    "Whether {topic} becomes a lasting shift or a passing trend, the {people} who got in early seem unlikely to look back.",
    "For now, the best advice is the simplest: try it, keep notes, and talk to {people} who have done it before.",
    "We will keep following the story of {topic}. If you have experience to share, our inbox is open.",
    "The verdict, for the moment, is {adj}: promising, imperfect, and worth a closer look.",
)
SUMMARIES = (
    "{People} are paying closer attention to {topic}. We look at what is changing, what it costs, and what the experts advise.",
    "From {city} to your own street: how {topic} went from niche to normal, and what {people} should know first.",
    "{Expert} and other {people} explain why {topic} matters now, and where the common advice falls short.",
    "A practical look at {topic}: the {adj} bits, the costly mistakes, and the small changes that make a difference.",
    "We asked {people} what they have learned about {topic}. Their answers were more {adj} than we expected.",
)
FIRST_NAMES = (
    "Amara",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonah",
    "Kemi",
    "Lars",
    "Maya",
    "Niall",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tess",
    "Umar",
    "Vera",
    "Wen",
    "Yusuf",
)
LAST_NAMES = (
    "Abbott",
    "Bianchi",
    "Carter",
    "Dlamini",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ibrahim",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quiroga",
    "Rossi",
    "Silva",
    "Tanaka",
)
AUTHORS = (
    "Hannah Brooks",
    "Marcus Reid",
    "Sofia Lindgren",
    "Tomasz Nowak",
    "Aisha Bello",
    "Daniel Osei",
    "Claire Dubois",
    "Rafael Costa",
    "Mei Lin",
    "Oliver Grant",
    "Leila Haddad",
    "James Whitfield",
    "Ana Ferreira",
    "Kofi Mensah",
    "Isla Campbell",
    "Nikhil Rao",
)
CITIES = (
    "Leeds",
    "Lisbon",
    "Glasgow",
    "Bristol",
    "Rotterdam",
    "Lyon",
    "Cork",
    "Porto",
    "Malm\u00f6",
    "Ghent",
    "Bologna",
    "Cardiff",
    "Aarhus",
    "Manchester",
    "Valencia",
    "Edinburgh",
)
ROLES = ("consultant", "researcher", "teacher", "practitioner", "organiser", "adviser", "writer", "coach")


@dataclass(frozen=True, slots=True)
class GeneratedArticle:
    category_slug: str
    slug: str
    title: str
    summary: str
    body: str
    author: str
    published_at: datetime
    reading_minutes: int


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(template: str, values: dict[str, str]) -> str:
    values = {
        **values,
        "Topic": _capitalised(values["topic"]),
        "People": _capitalised(values["people"]),
        "Expert": values["expert"],
    }
    return template.format(**values)


def _article(
    rng: random.Random, entry: TaxonomyEntry, template: str, topic: str, anchor: datetime, days: int
) -> GeneratedArticle:
    others = [t for t in entry.topics if t != topic]
    people = rng.choice(entry.people)
    values = {
        "topic": topic,
        "other": rng.choice(others) if others else "everything else",
        "people": people,
        "adj": rng.choice(entry.adjectives),
        "n": str(rng.choice((3, 5, 7, 9, 10, 12))),
        "year": str(anchor.year),
        "expert": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "city": rng.choice(CITIES),
        "years": str(rng.randint(4, 25)),
        "weeks": str(rng.randint(2, 8)),
        "count": str(rng.choice((40, 120, 250, 800, 1500, 2000))),
        "pct": str(rng.randint(12, 68)),
        "span": rng.choice(("two years", "five years", "the past decade", "eighteen months")),
    }
    title = _fill(template, values)
    role = rng.choice(ROLES)
    middles = rng.sample(MIDDLES, k=rng.randint(4, 7))
    paragraphs = [_fill(rng.choice(OPENERS), values)]
    for number, middle in enumerate(middles):
        # Each middle paragraph is one template sentence plus a connecting sentence or two, so the
        # body reads as prose rather than a list.
        values["other"] = rng.choice(others) if others else values["other"]
        sentence = _fill(middle, values)
        if number == 0:
            since = int(values["year"]) - int(values["years"]) // 2
            sentence += (
                f" {values['expert']}, a {role} in {values['city']}, has followed {topic} since {since}."
            )
        paragraphs.append(sentence)
    paragraphs.append(_fill(rng.choice(CLOSERS), values))
    body = "\n\n".join(paragraphs)
    summary = _fill(rng.choice(SUMMARIES), values)
    words = len(body.split())
    published_at = anchor - timedelta(days=rng.uniform(0, days), minutes=rng.randint(0, 59))
    return GeneratedArticle(
        category_slug=entry.slug,
        slug="",
        title=title,
        summary=summary,
        body=body,
        author=rng.choice(AUTHORS),
        published_at=published_at.replace(second=0, microsecond=0),
        reading_minutes=max(2, round(words / 200) + 1),
    )


def demo_articles(
    *, entries: Sequence[TaxonomyEntry], per_category: int, seed: int, anchor: datetime, days: int = 120
) -> list[GeneratedArticle]:
    """``per_category`` articles for each entry, dated over the ``days`` before ``anchor``."""
    articles: list[GeneratedArticle] = []
    used_slugs: set[str] = set()
    for entry in entries:
        rng = random.Random(f"{seed}:{entry.slug}")
        templates, topics = list(TITLE_TEMPLATES), list(entry.topics)
        rng.shuffle(templates)
        rng.shuffle(topics)
        # Round r pairs topic i with template i + r: distinct pairs, and within the first round
        # every article of a category has its own template and its own topic.
        pairs = [
            (templates[(i + r) % len(templates)], topic)
            for r in range(len(templates))
            for i, topic in enumerate(topics)
        ]
        for template, topic in pairs[:per_category]:
            article = _article(rng, entry, template, topic, anchor, days)
            base = slugify(article.title)[:180] or entry.slug
            slug, suffix = base, 2
            while slug in used_slugs:
                slug, suffix = f"{base}-{suffix}", suffix + 1
            used_slugs.add(slug)
            articles.append(
                GeneratedArticle(
                    category_slug=article.category_slug,
                    slug=slug,
                    title=article.title,
                    summary=article.summary,
                    body=article.body,
                    author=article.author,
                    published_at=article.published_at,
                    reading_minutes=article.reading_minutes,
                )
            )
    return articles
