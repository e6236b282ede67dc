"""``python -m benchmarks.pages``: time to render the site's pages in-process, per page.

What a visitor of the demo site (and every page of ``manage.py simulate``) pays on the server: one
``GET`` through Django's whole stack (middleware, the view, its queries, the ad decision for the page's
slots, the server-side page view, the template), with production settings (``DJANGO_DEBUG=0``, cached
template loader) and embedded mode (SQLite, in-process ledger and feature store), from a fresh var dir
seeded as ``make run`` seeds it (demo articles, campaigns, demo traffic; no trained model: ads use the
prior). No network: Django's test client, one thread. Prints a Markdown row per page type.

    python -m benchmarks.pages [--pages 300] [--var /tmp/adsite-bench/pages]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300, help="requests timed per page type")
    parser.add_argument("--var", default="/tmp/adsite-bench/pages", help="var dir (emptied first)")
    args = parser.parse_args()
    var = Path(args.var)
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    os.environ.update({"ADSITE_VAR_DIR": str(var), "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
                       "DJANGO_SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "adsite.settings",
                       "ADSITE_RATE_LIMITS": "0"})
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from adsite.content.selectors import article_slugs_by_category

    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    call_command("seed_ads", verbosity=0)
    call_command("bootstrap_demo", skip_training=True, verbosity=0)
    by_category = article_slugs_by_category()
    rng = random.Random(7)
    kinds = {
        "article": lambda: f"/article/{rng.choice(rng.choice(list(by_category.values())))}/",
        "category": lambda: f"/category/{rng.choice(list(by_category))}/",
        "home": lambda: "/",
    }
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36")
    client.cookies["adsite_uid"] = "bench-pages-visitor"
    print("| page | requests | mean ms | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for kind, url in kinds.items():
        for _ in range(20):  # warm: templates compiled, caches filled, the visitor has features
            assert client.get(url()).status_code == 200
        times = []
        for _ in range(args.pages):
            target = url()
            start = time.perf_counter()
            response = client.get(target)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (target, response.status_code)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"| {kind} | {len(times)} | {statistics.fmean(times):.2f} | {statistics.median(times):.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
