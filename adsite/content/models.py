"""Content tables: the category taxonomy (data, not code) and the demo site's articles."""

from __future__ import annotations

from django.db import models


class Category(models.Model):
    """An interest category. Seeded with an IAB-style tier-1 taxonomy; created on import as well."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    slug = models.SlugField(max_length=200, unique=True)
    title = models.CharField(max_length=300)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="articles")
    summary = models.TextField()
    body = models.TextField()
    author = models.CharField(max_length=120)
    published_at = models.DateTimeField()
    reading_minutes = models.PositiveSmallIntegerField(default=3)

    class Meta:
        ordering = ["-published_at"]
        indexes = [models.Index(fields=["category", "-published_at"], name="article_cat_pub")]

    def __str__(self) -> str:
        return self.title
