"""Root conftest: shared fixtures live in tests/fixtures/ and are loaded as plugins."""

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.sandbox",
]
