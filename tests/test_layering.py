"""The apps' import rule (README "Development", STYLE.md): ``inference`` imports nothing from ``adsite`` or
``tracking`` (it gets what it needs from them by dotted path in its settings), and the other apps use
``inference`` and ``tracking`` only through their public faces, ``inference.api`` and ``tracking.api``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.lineno, node.module))
            elif isinstance(node, ast.Import):
                found.extend((str(path.relative_to(ROOT)), node.lineno, alias.name) for alias in node.names)
    return found


def test_inference_imports_nothing_from_the_site_or_the_tracker():
    offending = [
        f"{path}:{line} imports {module}"
        for path, line, module in _imports("inference")
        if module.split(".")[0] in ("adsite", "tracking")
    ]
    assert offending == []


def test_other_apps_reach_inference_only_through_its_api():
    offending = [
        f"{path}:{line} imports {module}"
        for package in ("adsite", "tracking")
        for path, line, module in _imports(package)
        if module.split(".")[0] == "inference" and module not in ("inference", "inference.api")
        and not path.endswith("settings.py")
    ]
    assert offending == []
