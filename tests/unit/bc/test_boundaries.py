"""Package boundaries of shared/bc, checked on its source: who may touch tokens, storage and the environment."""

from __future__ import annotations

import re
from pathlib import Path

import shared.bc

PACKAGE = Path(shared.bc.__file__).parent
SOURCES = {path.relative_to(PACKAGE).as_posix(): path.read_text() for path in PACKAGE.rglob("*.py")}


def test_only_the_request_sender_touches_the_authorization_header() -> None:
    """The bearer token is set in exactly one place (an `Authorization` header, not AuthorizationError)."""
    touching = {name for name, text in SOURCES.items() if re.search(r"[\"']Authorization[\"']", text)}
    assert touching == {"sender.py"}


def test_bc_never_imports_the_token_manager_or_jobs() -> None:
    """shared/bc sees tokens only through shared.tokens (the TokenProvider seam in shared/tokens.py)."""
    for name, text in SOURCES.items():
        assert not re.search(r"^\s*(from|import) shared\.(auth|jobs)\b", text, re.MULTILINE), name


def test_only_the_table_store_imports_azure_tables() -> None:
    """Table Storage (the SDK or shared.table_cas over it) stays behind the CoordinationStore seam."""
    importing = {
        name
        for name, text in SOURCES.items()
        if re.search(
            r"^\s*(from|import) (azure\.data\.tables|shared\.table_cas|shared import table_cas)", text, re.M
        )
    }
    assert importing == {"throttle/table_store.py"}


def test_nothing_reads_the_environment() -> None:
    """Settings come from shared.settings only."""
    assert not [name for name, text in SOURCES.items() if "os.environ" in text or "getenv" in text]


def test_public_surface_is_declared() -> None:
    """Everything in __all__ exists, and the client, its errors and the throttle are exported."""
    for name in shared.bc.__all__:
        assert hasattr(shared.bc, name), name
    assert {
        "BusinessCentralClient",
        "BusinessCentralError",
        "SharedThrottle",
        "ODataQuery",
        "odata_field",
    } <= set(shared.bc.__all__)


def test_trust_and_credentials_come_from_azure_clients() -> None:
    """No CA context or managed-identity credential is built here: shared.azure_clients owns both."""
    building = {
        name
        for name, text in SOURCES.items()
        if "ssl.create_default_context" in text or "ManagedIdentityCredential" in text
    }
    assert building == set()
