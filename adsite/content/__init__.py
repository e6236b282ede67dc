"""adsite.content: the demo publication (category taxonomy, articles, pages, demo data)."""
