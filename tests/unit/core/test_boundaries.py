"""The architecture's rules, checked on the source: who may import what, who reads the environment, error roots."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import shared
from shared.errors import IntegrationError

ROOT = Path(__file__).resolve().parents[3]


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def offenders(files: list[Path], forbidden: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if forbidden.match(name)
    ]


def test_azure_functions_is_imported_only_by_triggers_the_app_and_devhost() -> None:
    """Services stay importable and testable without the Functions library."""
    files = [path for path in python_files("shared") if "triggers" not in path.parts]
    assert offenders(files, re.compile(r"^azure\.functions\b")) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("shared/auth", r"^shared\.(bc|jobs)\b"),
        ("shared/bc", r"^shared\.(auth|jobs)\b"),
        ("shared", r"^(devhost|sandbox|bench|tests|testkit)\b"),
        ("sandbox", r"^(shared|devhost|bench)\b"),
        ("bcjobs", r"^(shared|devhost|sandbox|bench|tests|testkit|azure\.functions)\b"),
        ("testkit", r"^(tests|bench)\b"),
        ("bench", r"^tests\b"),
        ("tests", r"^bench\b"),
    ],
)
def test_packages_respect_their_boundaries(package: str, forbidden: str) -> None:
    """auth knows nothing of BC or jobs, BC takes a token provider, the sandbox is independent of the product,
    and tests/ and bench/ share their doubles through testkit/ instead of importing each other."""
    assert offenders(python_files(package), re.compile(forbidden)) == []


def test_only_settings_reads_the_environment() -> None:
    """One typed settings object: no other module of the product reads os.environ or os.getenv."""
    readers = [
        str(path.relative_to(ROOT))
        for path in python_files("shared")
        if path.name != "settings.py" and re.search(r"os\.(environ|getenv)", path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_every_exception_of_the_product_is_rooted_at_integration_error() -> None:
    """One exception root: callers can catch everything the package raises on purpose in one clause."""
    strays = []
    for module_info in pkgutil.walk_packages(shared.__path__, "shared."):
        if ".triggers" in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not issubclass(value, IntegrationError)
            ):
                strays.append(f"{module.__name__}.{name}")
    assert strays == []


def test_tests_never_patch_the_sdks() -> None:
    """Integration tests run the real Azure SDKs, MSAL and httpx; patching them would hide real behaviour."""
    pattern = re.compile(r"(mock\.patch|mocker\.patch|monkeypatch\.setattr)\(.*(azure|msal|httpx)")
    patched = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files("tests")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert patched == []
