"""The site's pages. Thin: read through selectors, add the page context (page view, placements), render."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from adsite.content import selectors
from adsite.content.models import Article, Category
from adsite.content.pages import page_context
from tracking.api import rate_limited

ARTICLES_PER_PAGE = 12
IN_ARTICLE_AFTER_PARAGRAPH = 2


@rate_limited("page")
def home(request: HttpRequest) -> HttpResponse:
    latest = selectors.articles_latest(limit=7)
    return render(
        request,
        "site/home.html",
        {
            "lead": latest[0] if latest else None,
            "latest": latest[1:],
            "sections": selectors.articles_latest_per_category(per_category=3),
            **page_context(request=request, page_type="home"),
        },
    )


@rate_limited("page")
def category_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        category = selectors.category_get(slug=slug)
    except Category.DoesNotExist as exc:
        raise Http404("No such section") from exc
    page = Paginator(selectors.articles_for_category(category=category), ARTICLES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "site/category.html",
        {
            "category": category,
            "page_obj": page,
            **page_context(request=request, page_type="category", categories=[category.slug]),
        },
    )


@rate_limited("page")
def article_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        article = selectors.article_get(slug=slug)
    except Article.DoesNotExist as exc:
        raise Http404("No such article") from exc
    paragraphs = [p for p in article.body.split("\n\n") if p.strip()]
    return render(
        request,
        "site/article.html",
        {
            "article": article,
            "body_before": paragraphs[:IN_ARTICLE_AFTER_PARAGRAPH],
            "body_after": paragraphs[IN_ARTICLE_AFTER_PARAGRAPH:],
            "related": selectors.articles_related(article=article, limit=6),
            **page_context(
                request=request, page_type="article", item_id=article.slug, categories=[article.category.slug]
            ),
        },
    )


@rate_limited("page")
def about(request: HttpRequest) -> HttpResponse:
    return render(request, "site/about.html", page_context(request=request, page_type="about"))
