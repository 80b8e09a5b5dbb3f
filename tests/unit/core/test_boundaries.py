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
    return imports_in(path.read_text(encoding="utf-8"))


def imports_in(source: str) -> set[str]:
    """Every module a source imports. `from shared import jobs` records `shared.jobs` as well as `shared`: the
    imported name may be a module, and a rule on `shared.jobs` must see it (an extra `shared.x.Name` entry for an
    imported class matches the same rules as its module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_a_module_imported_from_its_package_is_recorded_under_its_full_name() -> None:
    """The form `from shared import jobs` once matched no rule; `shared.jobs` now does."""
    recorded = imports_in("from shared import jobs\nfrom shared.bc import client as c\nimport shared.auth\n")
    assert {"shared.jobs", "shared.bc.client", "shared.auth"} <= recorded
    assert offenders_in(recorded, re.compile(r"^shared\.(jobs|bc)\b")) == [
        "shared.bc",
        "shared.bc.client",
        "shared.jobs",
    ]


def offenders_in(names: set[str], forbidden: re.Pattern[str]) -> list[str]:
    return [name for name in sorted(names) if forbidden.match(name)]


def offenders(files: list[Path], forbidden: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in offenders_in(imported_modules(path), forbidden)
    ]


def test_azure_functions_is_imported_only_by_triggers_the_app_and_devhost() -> None:
    """Services stay importable and testable without the Functions library."""
    files = [path for path in python_files("shared") if "triggers" not in path.parts]
    assert offenders(files, re.compile(r"^azure\.functions\b")) == []


# What of devhost the local world, bench, soak and testkit may not import: every module but the host's settings
# sources (devhost.environment: the env file, local.settings.json), its errors and its --help style
# (devhost.help_format, a leaf the local tools share), and `from devhost import x`.
DEVHOST_INTERNALS = r"^devhost(\.(?!(environment|errors|help_format)(\.|$))|$)"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("shared/auth", r"^shared\.(bc|jobs|ops|triggers)\b"),
        ("shared/bc", r"^shared\.(auth|jobs|ops|triggers)\b"),
        ("shared/connections", r"^shared\.(auth|bc|jobs|ops|triggers)\b"),
        ("shared/jobs", r"^shared\.(ops|triggers)\b"),
        ("shared/ops", r"^shared\.(jobs\.front_door|triggers)\b"),
        ("shared/telemetry", r"^shared\.(auth|bc|jobs|ops|triggers)\b"),
        ("shared/onboarding", r"^shared\.(jobs|ops|triggers)\b"),
        ("shared", r"^(devhost|localworld|demo|sandbox|bench|soak|tests|testkit)\b"),
        ("sandbox", r"^(shared|devhost|localworld|demo|bench)\b"),
        ("bcjobs", r"^(shared|devhost|localworld|demo|sandbox|bench|soak|tests|testkit|azure\.functions)\b"),
        ("devhost", r"^(localworld|demo|sandbox|bench|soak|tests|testkit)\b"),
        ("localworld", rf"^(demo|bench|soak|tests|testkit)\b|{DEVHOST_INTERNALS}"),
        ("testkit", rf"^(tests|bench)\b|{DEVHOST_INTERNALS}"),
        ("bench", rf"^tests\b|{DEVHOST_INTERNALS}"),
        ("soak", rf"^(tests|bench)\b|{DEVHOST_INTERNALS}"),
        ("tests", r"^bench\b"),
    ],
)
def test_packages_respect_their_boundaries(package: str, forbidden: str) -> None:
    """auth knows nothing of BC or jobs, BC takes a token provider, the sandbox is independent of the product,
    tests/ and bench/ share their doubles through testkit/ instead of importing each other, the host knows
    nothing of the local world around it, and the local world, bench, soak and testkit run the host as a process
    (`python -m devhost`) rather than reaching into it."""
    assert offenders(python_files(package), re.compile(forbidden)) == []


def test_the_devhost_internals_pattern_allows_only_the_hosts_settings_sources_and_errors() -> None:
    """`devhost.environment` (the env file and local.settings.json readers), `devhost.errors` and
    `devhost.help_format` (the --help style) are what the local world may use of the host; any other devhost
    module, or `from devhost import x`, is internal."""
    internals = re.compile(DEVHOST_INTERNALS)
    allowed = [
        "devhost.environment",
        "devhost.environment.read_env_file",
        "devhost.errors",
        "devhost.help_format.DefaultsHelp",
        "devhostile",
    ]
    refused = [
        "devhost",
        "devhost.host",
        "devhost.host.DevHost",
        "devhost.waiting",
        "devhost.environment_extra",
    ]
    assert [name for name in allowed if internals.match(name)] == []
    assert [name for name in refused if internals.match(name)] == refused


def test_nothing_imports_the_demo_but_the_demo_and_its_tests() -> None:
    """The demo is a leaf: what it shares with bench and soak lives in localworld/."""
    tops = sorted(
        path.name
        for path in ROOT.iterdir()
        if path.is_dir() and (path / "__init__.py").exists() and path.name not in {"demo", "tests"}
    )
    demo_tests = {ROOT / "tests" / tier / "demo" for tier in ("unit", "functional", "integration")}
    tests = [path for path in python_files("tests") if not demo_tests & set(path.parents)]
    files = [*python_files(*tops), *tests, ROOT / "function_app.py"]
    assert {"devhost", "localworld", "bench", "soak", "testkit", "shared"} <= set(tops)
    assert offenders(files, re.compile(r"^demo\b")) == []


SETTINGS_MODEL = ROOT / "shared" / "settings" / "model.py"


def test_only_settings_reads_the_environment() -> None:
    """One typed settings object: no other module of the product (function_app.py included) reads os.environ or
    os.getenv."""
    readers = [
        str(path.relative_to(ROOT))
        for path in [*python_files("shared"), ROOT / "function_app.py"]
        if path != SETTINGS_MODEL and re.search(r"os\.(environ|getenv)", path.read_text(encoding="utf-8"))
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


MAX_FUNCTION_LINES = 30


def long_functions(path: Path) -> list[str]:
    """Functions and methods of `path` longer than MAX_FUNCTION_LINES, `def` line to last line (docstring
    included), as "path:line name length"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {length}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]


def test_no_function_of_the_product_is_longer_than_thirty_lines() -> None:
    """Every function in shared/ fits on a screen: a longer one is split into named steps or a data table."""
    assert [entry for path in python_files("shared") for entry in long_functions(path)] == []


SDK_ROOTS = ("azure", "msal", "httpx")
PATCHERS = ("setattr", "patch", "patch.object", "patch.multiple")


def _is_sdk_module(name: str) -> bool:
    return name.split(".")[0] in SDK_ROOTS


def sdk_names(tree: ast.Module) -> set[str]:
    """Names a module binds to the SDKs: `import httpx`, `import azure.x as y`, `from azure.x import SecretClient`."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(
                alias.asname or alias.name.split(".")[0] for alias in node.names if _is_sdk_module(alias.name)
            )
        elif isinstance(node, ast.ImportFrom) and node.module and _is_sdk_module(node.module):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _patch_target(call: ast.Call) -> ast.expr | None:
    """The first argument (or `target=`) of monkeypatch.setattr, setattr, [mock.|mocker.]patch[.object|.multiple]."""
    callee = ast.unparse(call.func)
    if not any(callee == name or callee.endswith(f".{name}") for name in PATCHERS):
        return None
    if call.args:
        return call.args[0]
    return next((keyword.value for keyword in call.keywords if keyword.arg == "target"), None)


def sdk_patches(source: str) -> list[int]:
    """Lines of `source` that patch something of the Azure SDKs, MSAL or httpx: a dotted string naming it
    ("azure.keyvault.secrets.SecretClient.get_secret") or an object imported from them (SecretClient, httpx.AsyncClient)."""
    tree = ast.parse(source)
    imported = sdk_names(tree)
    lines = []
    for node in ast.walk(tree):
        target = _patch_target(node) if isinstance(node, ast.Call) else None
        if not isinstance(node, ast.Call) or target is None:
            continue
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            hit = _is_sdk_module(target.value)
        else:
            hit = _root_name(target) in imported
        if hit:
            lines.append(node.lineno)
    return sorted(lines)


def test_the_sdk_patch_detector_finds_strings_classes_and_modules_but_not_other_patches() -> None:
    """Dotted strings, imported SDK classes and SDK modules are caught; patches of the project's objects are not."""
    sample = (Path(__file__).parent / "samples" / "sdk_patches.txt").read_text(encoding="utf-8")
    assert sdk_patches(sample) == [9, 10, 11, 12, 13, 14, 17]


def test_tests_never_patch_the_sdks() -> None:
    """Integration tests run the real Azure SDKs, MSAL and httpx; patching them would hide real behaviour."""
    patched = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in python_files("tests", "testkit")
        for line in sdk_patches(path.read_text(encoding="utf-8"))
    ]
    assert patched == []
