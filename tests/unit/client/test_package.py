"""The client package stands alone: no Functions runtime, no product package, its own pinned dependency list."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_clients_loads_neither_azure_functions_nor_the_product() -> None:
    """A fresh interpreter imports bcjobs.client and bcjobs.aio without azure.functions or shared."""
    code = (
        "import sys, bcjobs.client, bcjobs.aio, bcjobs.submit; "
        "print(sorted(m for m in sys.modules if m == 'azure.functions' or m.startswith(('azure.functions.', 'shared'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_package_imports_nothing_of_the_product_or_the_local_tools() -> None:
    """bcjobs/ never imports shared, devhost, sandbox, bench or azure.functions (an app depends on it alone)."""
    offenders = []
    for path in sorted((ROOT / "bcjobs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] in {"shared", "devhost", "sandbox", "bench", "tests"}
                or name.startswith("azure.functions")
            ]
    assert offenders == []


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.split("[")[0].strip().lower().replace("_", "-")] = version.rstrip("\\ ")
    return found


def test_the_client_requirements_are_pinned_as_the_frozen_set() -> None:
    """bcjobs/requirements.txt pins every package at the version the locks (requirements*.txt) hold."""
    client = pins(ROOT / "bcjobs" / "requirements.txt")
    frozen = pins(ROOT / "requirements-dev.txt") | pins(ROOT / "requirements.txt")
    assert {"pydantic", "azure-storage-queue", "azure-data-tables", "azure-identity", "rich", "typer"} <= set(
        client
    )
    assert {name: version for name, version in client.items() if frozen.get(name) != version} == {}


def client_project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "bcjobs" / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]
    return project


def test_the_console_script_points_at_the_cli() -> None:
    """bcjobs/pyproject.toml declares `bcjobs = bcjobs.cli:main`, the same entry point as `python -m bcjobs`."""
    assert client_project()["scripts"]["bcjobs"] == "bcjobs.cli:main"


def test_the_distribution_depends_on_exactly_the_client_requirements() -> None:
    """`pip install ./bcjobs` pulls the pins of bcjobs/requirements.txt, no more, no fewer, at the same versions."""
    declared = {}
    for requirement in client_project()["dependencies"]:
        name, version = requirement.split("==", 1)
        declared[name.strip().lower()] = version.strip()
    assert declared == pins(ROOT / "bcjobs" / "requirements.txt")


def test_the_product_does_not_declare_a_script_it_never_installs() -> None:
    """The top-level project is deployed, not installed: the `bcjobs` command comes from bcjobs/pyproject.toml."""
    assert "scripts" not in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
