"""The apps' import rule (README "Development", STYLE.md): ``inference`` imports nothing from ``adsite`` or
``tracking`` (they tell it what happened through its signals, ``inference.signals``), the other apps use
``inference`` and ``tracking`` only through their public faces, ``inference.api`` and ``tracking.api``,
and no production module imports test machinery (the simulation drives the site over HTTP)."""

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


def test_the_site_reaches_tracking_only_through_its_api_and_signals():
    faces = ("tracking.api", "tracking.signals")
    offending = []
    for path in sorted((ROOT / "adsite").rglob("*.py")):
        if "migrations" in path.parts or path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "tracking":
                # ``from tracking import api`` imports the module tracking.api
                targets = [f"{node.module}.{a.name}" if node.module == "tracking" else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "tracking"]
            else:
                continue
            offending.extend(f"{path.relative_to(ROOT)}:{node.lineno} imports {t}" for t in targets
                             if not any(t == f or t.startswith(f + ".") for f in faces))
    assert offending == []


TEST_MACHINERY = ("django.test", "pytest", "unittest.mock", "fakeredis", "hypothesis")


def test_production_code_imports_no_test_machinery():
    offending = [
        f"{path}:{line} imports {module}"
        for package in ("adsite", "inference", "tracking")
        for path, line, module in _imports(package)
        if any(module == name or module.startswith(name + ".") for name in TEST_MACHINERY)
    ]
    assert offending == []
