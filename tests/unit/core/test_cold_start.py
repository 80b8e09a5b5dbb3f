"""`import function_app` stays light: the Functions host imports it at every cold start to index every function
(the worker's index_function_app), so only the decorators' inputs load then; each function imports its services
when it first runs (issue 24, point 4).

Checked in a fresh interpreter (sys.modules of this one holds whatever earlier tests imported). `click` is blocked
there as in the deployment: httpx imports its optional command line (click, rich, pygments) only when click is
installed, and only requirements-dev.txt installs it, never requirements.txt.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]

_PROBE = """
import json, sys
sys.modules["click"] = None  # as deployed: requirements.txt has no click (httpx's CLI is then skipped)
import function_app
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""

# Developer and CLI tools (requirements-dev.txt), never needed by a function.
TOOLS = ("rich", "typer", "pygments", "jsonschema", "croniter", "click")
# What only a running function needs: composition roots with their SDK clients, the BC client, the status page,
# onboarding, the change feed's stores and the jobs' pipeline.
SERVICES = (
    "shared.auth.compose",
    "shared.bc.client",
    "shared.changes.compose",
    "shared.connections.compose",
    "shared.connections.registry",
    "shared.jobs.compose",
    "shared.onboarding.service",
    "shared.ops",
    "azure.identity",
    "azure.data.tables",
    "azure.storage.queue",
    "azure.keyvault.secrets",
    "msal",
    "httpx",
)


# What only a function's first run needs (issue 24, point 4): the job contract's and the change feed's pydantic
# models (bcjobs' names load on first use, PEP 562) and OpenTelemetry: its metrics API loads with the first metric
# recorded (shared.telemetry's names load on first use too), its SDK with psutil only when a connection string
# configures Azure Monitor.
FIRST_USE = (
    "bcjobs.models",
    "bcjobs.results",
    "bcjobs.wire",
    "bcjobs.changes",
    "bcjobs.client",
    "opentelemetry",
    "psutil",
)


def modules_after(probe: str = _PROBE) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_import_function_app_loads_no_tool_and_no_service() -> None:
    """No developer tool and no service (composition root, SDK client) is imported to index the functions."""
    modules = modules_after()
    loaded = [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in TOOLS + SERVICES)]
    assert loaded == []


def test_import_function_app_builds_no_job_model_and_loads_no_opentelemetry() -> None:
    """The job contract's models and OpenTelemetry (API and SDK) wait for the function that needs them."""
    modules = modules_after()
    loaded = [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in FIRST_USE)]
    assert loaded == []


def test_import_function_app_never_looks_for_a_pydantic_plugin() -> None:
    """The settings models are built at import; pydantic's plugin discovery (a scan of every installed
    distribution's entry points, about 15 ms) never runs: shared.settings.model sets PYDANTIC_DISABLE_PLUGINS."""
    probe = (
        "import json, function_app\n"
        "from pydantic.plugin import _loader\n"
        "print(json.dumps(['discovered' if _loader._plugins is not None else 'never looked']))"
    )
    assert modules_after(probe) == ["never looked"]


def test_import_bcjobs_alone_loads_no_pydantic() -> None:
    """An app that reads the queue names (`import bcjobs`) pays for no model."""
    probe = (
        "import json, sys, bcjobs; print(json.dumps([m for m in sys.modules if m.startswith('pydantic')]))"
    )
    assert modules_after(probe) == []


def test_every_public_name_of_bcjobs_resolves_on_first_use() -> None:
    """`from bcjobs import X` works for every name of `__all__`, and is the submodule's own object."""
    import bcjobs
    from bcjobs.models import Job
    from bcjobs.results import JobReport

    assert all(hasattr(bcjobs, name) for name in bcjobs.__all__)
    assert (bcjobs.Job, bcjobs.JobReport) == (Job, JobReport)
    assert set(bcjobs.__all__) <= set(dir(bcjobs))


def test_a_name_bcjobs_lacks_raises_attribute_error() -> None:
    """A typo fails as for any module (an AttributeError naming it), not with a KeyError."""
    import bcjobs

    with pytest.raises(AttributeError, match="'Jobb'"):
        _ = bcjobs.Jobb  # type: ignore[attr-defined]


def _resolves(module: ModuleType, name: str) -> bool:
    """`from module import name` works: an attribute, or a submodule the import system would load."""
    if hasattr(module, name):
        return True
    try:
        importlib.import_module(f"{module.__name__}.{name}")
    except ModuleNotFoundError:
        return False
    return True


def test_every_import_a_trigger_defers_resolves() -> None:
    """The imports a trigger's functions run on first use name modules and names that exist (a typo would only
    surface when the function first runs in Azure)."""
    missing = []
    for path in sorted((ROOT / "shared" / "triggers").glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.module:
                    module = importlib.import_module(node.module)
                    missing += [
                        f"{path.name}: {node.module}.{a.name}"
                        for a in node.names
                        if not _resolves(module, a.name)
                    ]
    assert missing == []
