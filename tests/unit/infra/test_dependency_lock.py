"""The deployment installs exactly what the tests ran: requirements.txt is a complete, hashed lock compiled from
requirements.in, .funcignore ships it, and this environment holds every locked package at its locked version.

Why a lock in requirements.txt itself: azd deploys Flex Consumption with a remote build (Azure/azure-dev PR #7223),
which installs requirements.txt alone ("Remote build installs all dependencies listed in requirements.txt",
learn.microsoft.com/azure/azure-functions/python-build-options); a constraints file beside it would never be read.
"""

from __future__ import annotations

import importlib.metadata
import re
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
# A requirement line of a pip-compile lock: `name==version \` followed by its `--hash=sha256:...` lines.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\#]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def canonical(name: str) -> str:
    """PEP 503 normalised name: `Typing_Extensions` and `typing-extensions` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path) -> dict[str, tuple[str, int]]:
    """{package: (version, number of hashes)} of a requirements file; continuation lines joined."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, tuple[str, int]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}: not pinned with ==: {line}"
        found[canonical(match.group(1))] = (match.group(2), len(_HASH.findall(line)))
    return found


def versions(path: Path) -> dict[str, str]:
    return {name: version for name, (version, _) in requirements(path).items()}


def installed() -> dict[str, str]:
    return {canonical(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()}


def test_every_locked_package_is_installed_at_exactly_its_locked_version() -> None:
    """The tests run on the deployed lock: a package missing here or at another version fails (re-run `make deps`)."""
    locked = {**versions(DEV_LOCK), **versions(LOCK)}
    here = installed()
    differ = {
        name: (version, here.get(name)) for name, version in locked.items() if here.get(name) != version
    }
    assert differ == {}


def test_the_deployed_lock_pins_every_package_with_hashes() -> None:
    """Every line of requirements.txt is `==` with hashes, so the remote build's pip runs in hash-checking mode,
    which also refuses any dependency the lock does not pin (pip docs, "Hash-checking mode")."""
    lock = requirements(LOCK)
    assert len(lock) > len(requirements(ROOT / "requirements.in"))  # transitive packages are pinned too
    assert {name for name, (_, hashes) in lock.items() if hashes == 0} == set()
    assert {name for name, (_, hashes) in requirements(DEV_LOCK).items() if hashes == 0} == set()


def test_the_locks_hold_every_direct_dependency_at_its_pinned_version() -> None:
    """A package added to or re-pinned in requirements.in / requirements-dev.in without `make lock` fails here."""
    runtime, dev = versions(LOCK), {**versions(DEV_LOCK), **versions(LOCK)}
    stale = {
        name: (version, lock.get(name))
        for source, lock in ((ROOT / "requirements.in", runtime), (ROOT / "requirements-dev.in", dev))
        for name, version in versions(source).items()
        if lock.get(name) != version
    }
    assert stale == {}


def test_the_dev_lock_agrees_with_the_deployed_lock() -> None:
    """A package both locks pin is at one version: the dev tools never move a runtime package off the deployed one."""
    runtime, dev = versions(LOCK), versions(DEV_LOCK)
    assert {
        name: (runtime[name], dev[name]) for name in runtime.keys() & dev.keys() if runtime[name] != dev[name]
    } == {}


def funcignore_excludes(name: str) -> bool:
    """Whether .funcignore (gitignore patterns, all top-level names here) keeps `name` out of the package."""
    patterns = [
        line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    ]
    return any(fnmatch(name, pattern) for pattern in patterns if pattern and not pattern.startswith("#"))


def test_the_deployment_ships_the_lock_and_no_other_pin_file() -> None:
    """requirements.txt is deployed; its sources and the dev lock are not; no constraints file exists that the
    remote build would ignore."""
    assert not funcignore_excludes("requirements.txt")
    for name in ("requirements.in", "requirements-dev.in", "requirements-dev.txt"):
        assert funcignore_excludes(name), name
    assert sorted(path.name for path in ROOT.glob("constraints*.txt")) == []
