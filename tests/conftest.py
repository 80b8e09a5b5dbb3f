"""Root conftest: shared fixtures live in tests/fixtures/ and are loaded as plugins."""

import os

# pytest-xdist's workers start with COLUMNS=80 in their environment (unset in the controller and in a serial run),
# and a Rich Console built at import (bcjobs/cli/render.py) keeps the COLUMNS it saw then: the CLI tests that pass
# COLUMNS per invocation (CliRunner's env) would get 80 columns and wrapped text under `make test` only. Popped
# here, before any test module imports the CLI, so every worker renders like a serial run.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.sandbox",
]
