"""One name per concept: no class, type alias or module in `shared/` and `bcjobs/` is defined twice with different
meanings. A new top-level name that collides with an existing one fails here; a name that two packages use for
the same role (each package's `errors.py`) is listed below with that role."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("shared", "bcjobs")

# Module names several packages use for the same role; docs/architecture.md's glossary defines each role.
ROLE_MODULES = {
    "__init__": "a package",
    "__main__": "a package's command line",
    "errors": "the package's exception tree, rooted at shared.errors.IntegrationError",
    "models": "the package's frozen values",
    "compose": "the package's wiring from Settings: one set of services per process and event loop",
    "client": "the package's client of its service: BC for shared.bc, the jobs queue and tables for bcjobs",
}


def top_level_names(tree: ast.Module) -> list[str]:
    """Classes and type aliases (`X = ...` with a CapWords name, `X: TypeAlias = ...`; Python 3.11 has no `type`)."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.append(node.name)
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            names += [node.targets[0].id] if _cap_words(node.targets[0].id) else []
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            alias = isinstance(node.annotation, ast.Name) and node.annotation.id == "TypeAlias"
            names += [node.target.id] if alias else []
    return names


def _cap_words(name: str) -> bool:
    bare = name.lstrip("_")
    return bare[:1].isupper() and not bare.isupper()


def definitions() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Where each top-level name and each module name is defined."""
    names: dict[str, list[str]] = defaultdict(list)
    modules: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            modules[path.stem].append(where)
            for name in top_level_names(ast.parse(path.read_text(encoding="utf-8"))):
                names[name].append(where)
    return names, modules


def collisions(found: dict[str, list[str]], allowed: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    return {name: places for name, places in found.items() if len(places) > 1 and name not in allowed}


def test_no_class_or_type_alias_is_defined_twice() -> None:
    names, _ = definitions()
    assert collisions(names) == {}


def test_no_module_name_is_used_twice_except_for_a_shared_role() -> None:
    _, modules = definitions()
    assert collisions(modules, frozenset(ROLE_MODULES)) == {}


def test_the_detector_finds_classes_aliases_and_private_names_but_not_constants() -> None:
    source = "class Call: ...\nStep = int | str\n_Storage = dict\nLIMIT = 5\nx = 1\nfrom a import Query\n"
    assert top_level_names(ast.parse(source)) == ["Call", "Step", "_Storage"]
