"""Figures on how the code is laid out, computed from the source tree (no Django, no services).

For the production packages (``adsite``, ``inference``, ``tracking``; migrations left out):

- **cross-app import edges**: distinct (importing app, imported app) pairs, the apps being
  ``adsite.ads``, ``adsite.content``, ``adsite.dashboard``, ``adsite.ops``, ``adsite`` (the project:
  settings, the composition root, Celery), ``inference`` and ``tracking``; and how many import
  statements cross an app boundary without going through a public face (``inference.api``,
  ``inference.signals``, ``tracking.api``, ``tracking.signals``);
- **the five largest modules** by lines;
- **module-level mutable globals**: module names rebound through ``global`` in a function, plus
  module-level containers (dict, list, set, deque, ...) that the module mutates in place, plus
  per-process holders (``PerProcess``, ``threading.local``); constants that are never mutated and
  Prometheus metrics do not count;
- **settings keys**: the upper-case names ``adsite/settings.py`` binds, and those plus the keys of
  its namespaced dicts (``ADS = {...}``);
- **dotted-path hooks**: settings keys that wire behaviour by a dotted path (``*_HOOKS``,
  ``*_PROVIDER``, ``*_SOURCE``) and ``import_string``/``import_module`` calls in the production code;
- with ``--suite``, the wall time of ``make test``'s pytest command (minutes; the load average at
  the start and end is printed beside it).

Usage::

    python scripts/house_figures.py [--root PATH] [--json] [--suite]

``--root`` reads another checkout (e.g. ``git worktree add /tmp/before <commit>``) to compare.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

PACKAGES = ("adsite", "inference", "tracking")
FACES = ("inference.api", "inference.signals", "tracking.api", "tracking.signals")
MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "popleft", "clear",
            "add", "discard", "remove", "appendleft", "move_to_end", "__setitem__"}
CONTAINER_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "deque", "Counter", "WeakValueDictionary",
                   "WeakKeyDictionary", "WeakSet"}
HOLDER_CALLS = {"PerProcess", "local"}
METRIC_CALLS = {"Counter", "Gauge", "Histogram", "Summary"}


def app_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "adsite":
        if len(parts) > 1 and parts[1] in ("ads", "content", "dashboard", "ops"):
            return f"adsite.{parts[1]}"
        return "adsite"
    if parts[0] in ("inference", "tracking"):
        return parts[0]
    return None


def modules(root: Path) -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def imported_modules(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from inference import api`` imports the module inference.api
            names.extend(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target for alias in node.names)
    return names


def import_edges(root: Path) -> tuple[set[tuple[str, str]], int, int]:
    edges: set[tuple[str, str]] = set()
    crossing = private = 0
    known = {name for name, _ in modules(root)}
    for module, path in modules(root):
        source = app_of(module)
        tree = ast.parse(path.read_text(), str(path))
        for target in imported_modules(tree, module, path.name == "__init__.py", known):
            dest = app_of(target)
            if dest is None or source is None or dest == source:
                continue
            # the project package (settings, platform) may be imported by every app and imports them
            edges.add((source, dest))
            crossing += 1
            if dest in ("inference", "tracking") and not any(target == f or target.startswith(f + ".") for f in FACES):
                private += 1
    return edges, crossing, private


def largest(root: Path, n: int = 5) -> list[tuple[str, int]]:
    sizes = [(str(path.relative_to(root)), len(path.read_text().splitlines())) for _, path in modules(root)]
    return sorted(sizes, key=lambda item: -item[1])[:n]


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def mutable_globals(root: Path) -> list[str]:
    found: list[str] = []
    for module, path in modules(root):
        tree = ast.parse(path.read_text(), str(path))
        containers: dict[str, str] = {}
        holders: set[str] = set()
        for statement in tree.body:
            targets: list[ast.expr] = []
            value: ast.AST | None = None
            if isinstance(statement, ast.Assign):
                targets, value = statement.targets, statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                targets, value = [statement.target], statement.value
            for target in targets:
                if not isinstance(target, ast.Name) or value is None:
                    continue
                call = _call_name(value)
                if call in HOLDER_CALLS:
                    holders.add(target.id)
                elif isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp) or (
                    call in CONTAINER_CALLS and call not in METRIC_CALLS
                ):
                    containers[target.id] = module
        rebound: set[str] = set()
        mutated: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                rebound.update(node.names)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
                if isinstance(node.func.value, ast.Name):
                    mutated.add(node.func.value.id)
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                        mutated.add(target.value.id)
        names = rebound | holders | (mutated & set(containers))
        if module == "adsite.settings":
            continue  # settings are configuration, built once at start-up
        found.extend(f"{module}.{name}" for name in sorted(names))
    return found


def settings_keys(root: Path) -> tuple[int, int]:
    tree = ast.parse((root / "adsite" / "settings.py").read_text())
    top: set[str] = set()
    nested = 0
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper() and target.id not in top:
                top.add(target.id)
                if isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value.isupper()
                                                       for k in value.keys):
                    nested += len(value.keys)
    return len(top), len(top) + nested


HOOK_KEY = re.compile(r"""^\s*["']?(\w*(?:_HOOKS|_PROVIDER|_SOURCE))["']?\s*[=:]""", re.M)


def dotted_hooks(root: Path) -> list[str]:
    """Settings keys that wire behaviour between apps by a dotted path (``*_HOOKS``, ``*_PROVIDER``,
    ``*_SOURCE``), and calls in the production code that import the project's code by name."""
    found = [f"settings {name}" for name in HOOK_KEY.findall((root / "adsite" / "settings.py").read_text())
             if name != "POSTPROCESSING_HOOKS"]  # drf-spectacular's own schema hooks
    for module, path in modules(root):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _call_name(node) in ("import_string", "import_module"):
                found.append(f"{module}:{node.lineno} {_call_name(node)}")
    return found


def suite_seconds(root: Path) -> dict[str, Any]:
    python = root / ".venv" / "bin" / "python"
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:randomly", "-m", "not contract and not scaleout"],
                          cwd=root, capture_output=True, text=True)
    seconds = time.monotonic() - started
    tail = done.stdout.strip().splitlines()[-1:] if done.stdout else []
    return {"seconds": round(seconds, 1), "load_start": round(load_before, 1), "load_end": round(os.getloadavg()[0], 1),
            "result": tail[0] if tail else f"exit {done.returncode}"}


def figures(root: Path, *, suite: bool = False) -> dict[str, Any]:
    edges, crossing, private = import_edges(root)
    globals_found = mutable_globals(root)
    top, with_nested = settings_keys(root)
    report: dict[str, Any] = {
        "cross_app_edges": len(edges),
        "edges": sorted(f"{a} -> {b}" for a, b in edges),
        "cross_app_imports": crossing,
        "cross_app_imports_past_the_faces": private,
        "largest_modules": largest(root),
        "mutable_globals": len(globals_found),
        "mutable_globals_by_app": dict(Counter(app_of(name) or "?" for name in globals_found)),
        "mutable_global_names": globals_found,
        "settings_keys": top,
        "settings_keys_with_nested": with_nested,
        "dotted_path_hooks": dotted_hooks(root),
    }
    if suite:
        report["test_suite"] = suite_seconds(root)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    parser.add_argument("--suite", action="store_true", help="also time the test suite (minutes)")
    args = parser.parse_args(argv)
    report = figures(args.root, suite=args.suite)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"cross-app import edges: {report['cross_app_edges']} "
          f"({report['cross_app_imports']} import statements, {report['cross_app_imports_past_the_faces']} past the faces)")
    for edge in report["edges"]:
        print(f"  {edge}")
    print("five largest modules:")
    for name, lines in report["largest_modules"]:
        print(f"  {lines:5d}  {name}")
    print(f"module-level mutable globals: {report['mutable_globals']} {report['mutable_globals_by_app']}")
    for name in report["mutable_global_names"]:
        print(f"  {name}")
    print(f"settings keys: {report['settings_keys']} top-level, {report['settings_keys_with_nested']} with the namespaced dicts' keys")
    print(f"dotted-path hooks in settings: {len(report['dotted_path_hooks'])} {report['dotted_path_hooks']}")
    if "test_suite" in report:
        suite = report["test_suite"]
        print(f"test suite: {suite['seconds']} s ({suite['result']}; load {suite['load_start']} -> {suite['load_end']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
