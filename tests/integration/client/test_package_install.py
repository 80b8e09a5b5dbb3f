"""`pip install ./bcjobs` stands alone: the wheel holds the package and its CLI, and nothing of the Functions app.

The wheel is built offline from a copy of bcjobs/ (an in-place build would leave build/ and *.egg-info in the
package folder) and installed with --no-deps --no-index into a fresh venv. The dependencies are not downloaded:
the venv sees this interpreter's site-packages through a .pth file, which the repo's own packages (shared,
devhost, ...) are not in; cwd is the tmp folder, so the repo is not on the path either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 120


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path


def _run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, (
        f"{args} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    )
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("bcjobs-wheel")
    source = tmp / "bcjobs"
    shutil.copytree(
        ROOT / "bcjobs", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", source, "-w", tmp / "wheels"], tmp
    )
    (wheel,) = (tmp / "wheels").glob("bcjobs-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    python = venv / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp
    ).stdout.strip()
    Path(purelib, "_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", "--ignore-installed", wheel], tmp)
    return Installed(wheel, venv)


def test_the_wheel_holds_the_package_and_its_cli_and_nothing_else(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert {"bcjobs/__init__.py", "bcjobs/client.py", "bcjobs/aio.py", "bcjobs/cli/__init__.py"} <= set(names)
    assert [n for n in names if not n.startswith(("bcjobs/", "bcjobs-"))] == []
    assert [n for n in names if n.endswith(("pyproject.toml", "requirements.txt")) or "test" in n] == []
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "bcjobs = bcjobs.cli:main" in zipfile.ZipFile(installed.wheel).read(entry_points).decode()


def test_the_installed_bcjobs_command_prints_its_help(installed: Installed) -> None:
    done = _run([installed.venv / "bin" / "bcjobs", "--help"], installed.venv)
    assert "Usage: bcjobs" in done.stdout
    assert {"enqueue", "show", "list", "wait", "results"} <= set(done.stdout.split())


def test_the_installed_library_imports_without_the_functions_app(installed: Installed) -> None:
    code = (
        "import sys, bcjobs, bcjobs.client, bcjobs.aio, bcjobs.cli; print(bcjobs.__file__); "
        "print(sorted(m for m in sys.modules if m.startswith(('azure.functions', 'shared', 'devhost'))))"
    )
    done = _run([installed.venv / "bin" / "python", "-c", code], installed.venv)
    where, loaded = done.stdout.strip().splitlines()
    assert Path(where).resolve().is_relative_to(installed.venv.resolve())
    assert loaded == "[]"
