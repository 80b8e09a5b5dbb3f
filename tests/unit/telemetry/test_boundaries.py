"""shared.telemetry sits below every package that records metrics, and the status page stays off reserved routes."""

from __future__ import annotations

import ast
from pathlib import Path

import function_app
from devhost.catalog import functions_of

ROOT = Path(__file__).resolve().parents[3]
# Routes and function names the Functions host keeps for itself: a function using one is put in error at start
# ("The specified route conflicts with one or more built in routes", azure-functions-host#1781).
RESERVED_PREFIXES = ("admin", "runtime")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_telemetry_imports_nothing_of_the_product_above_it() -> None:
    """auth, bc and jobs import telemetry; telemetry importing them back would be a cycle."""
    allowed = ("shared.telemetry", "shared.redaction", "shared.clock", "bcjobs")
    strays = [
        f"{path.name}: {module}"
        for path in sorted((ROOT / "shared" / "telemetry").glob("*.py"))
        for module in imports_of(path)
        if module.startswith(("shared", "bcjobs")) and not module.startswith(allowed)
    ]
    assert strays == []


def test_no_function_uses_a_route_or_name_the_host_reserves() -> None:
    """The status page is /api/status, not /api/admin: the real host refuses routes beginning with `admin`."""
    functions = functions_of(function_app.app)  # get_functions() works once per app: devhost caches it
    for function in functions:
        name = str(function.get_function_name())
        assert not name.lower().startswith(RESERVED_PREFIXES), name
        trigger = function.get_trigger()
        route = str(getattr(trigger, "route", "") or "")
        assert not route.lower().startswith(RESERVED_PREFIXES), route
