"""``manage.py models list|activate VERSION|rollback ALGORITHM|retire VERSION``: operate the registry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.registry import selectors, services


class Command(BaseCommand):
    help = "List model versions, activate one, roll an algorithm back, or retire a version."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="list versions, newest first")
        listing.add_argument("--algorithm", choices=["neural", "gbdt", "blend"])
        activate = sub.add_parser("activate", help="serve VERSION")
        activate.add_argument("version")
        rollback = sub.add_parser("rollback", help="serve the previously active version of ALGORITHM")
        rollback.add_argument("algorithm", choices=["neural", "gbdt", "blend"])
        retire = sub.add_parser("retire", help="retire a non-active VERSION")
        retire.add_argument("version")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "list":
                self._list(options.get("algorithm"))
            elif action == "activate":
                row = services.model_version_activate(version=options["version"], actor="manage.py")
                self.stdout.write(self.style.SUCCESS(f"activated {row.version}"))
            elif action == "rollback":
                row = services.model_version_rollback(algorithm=options["algorithm"], actor="manage.py")
                self.stdout.write(self.style.SUCCESS(f"rolled back {row.algorithm} to {row.version}"))
            elif action == "retire":
                row = services.model_version_retire(version=options["version"], actor="manage.py")
                self.stdout.write(self.style.SUCCESS(f"retired {row.version}"))
        except services.RegistryError as exc:
            raise CommandError(str(exc)) from exc

    def _list(self, algorithm: str | None) -> None:
        rows = selectors.model_versions_list(algorithm=algorithm)
        if not rows:
            self.stdout.write("no model versions (run `manage.py train`)")
            return
        self.stdout.write(
            f"{'version':<32} {'status':<10} {'ndcg@5':>7} {'best baseline':>14} {'trained':>8}  created"
        )
        for row in rows:
            results = (row.metrics or {}).get("results", {})
            model = results.get("model", {}).get("ndcg@5")
            baselines = [v.get("ndcg@5") for k, v in results.items() if k != "model" and isinstance(v, dict)]
            best = max((b for b in baselines if b is not None), default=None)
            self.stdout.write(
                f"{row.version:<32} {row.status:<10} {_fmt(model):>7} {_fmt(best):>14} "
                f"{row.training_seconds:>7.1f}s  {row.created_at:%Y-%m-%d %H:%M}"
            )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
