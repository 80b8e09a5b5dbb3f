"""The admin-consent link and Entra's answer; states that name their connection."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import cast
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.auth.compose import AuthServices
from shared.auth.errors import SignInFlowError, SignInResponseMalformedError, SignInStateUnknownError
from shared.auth.models import PendingSignIn
from shared.auth.sign_in import PendingSignIns, check_state, connection_in_state, connection_state
from shared.connections import Connection, Credential
from shared.connections.connection import Identity
from shared.connections.registry import ConnectionRegistry
from shared.onboarding.consent import (
    CONSENT_CALLBACK_PATH,
    ConsentUnavailableError,
    consent_answer,
    consent_redirect_uri,
    refusal_fix,
    split_consent_name,
    start_consent,
)
from shared.onboarding.service import Onboarding
from shared.settings import Settings, load_settings
from testkit.auth_stores import MemoryRecordStore
from testkit.clock import ManualClock

CLIENT = "33333333-3333-3333-3333-333333333333"
ACME = Connection(name="acme", tenant_id="acme.onmicrosoft.com", environment="production", client_id=CLIENT)


def settings(**environ: str) -> Settings:
    return load_settings({"BC_AUTHORITY_HOST": "https://login.microsoftonline.com", **environ})


def test_a_connection_state_names_its_connection_and_has_a_state_shape() -> None:
    state = connection_state("acme")
    assert check_state(state) == state
    assert connection_in_state(state) == "acme"
    assert connection_state("acme") != state
    assert connection_in_state("MsalMadeLetters") is None  # the settings' connection, as before


@pytest.mark.parametrize("state", ["ACME~x", "~x", f"{'a' * 41}~x"])
def test_a_state_naming_no_possible_connection_is_refused_before_any_lookup(state: str) -> None:
    with pytest.raises(SignInResponseMalformedError):
        connection_in_state(state)


def test_the_consent_redirect_uri_is_the_sign_in_callbacks_origin_never_a_request_host() -> None:
    configured = settings(BC_REDIRECT_URI="https://func.example.net/api/auth/callback")
    assert consent_redirect_uri(configured) == f"https://func.example.net{CONSENT_CALLBACK_PATH}"
    platform = settings(WEBSITE_HOSTNAME="bc-func.azurewebsites.net")
    assert consent_redirect_uri(platform) == f"https://bc-func.azurewebsites.net{CONSENT_CALLBACK_PATH}"
    with pytest.raises(ConsentUnavailableError, match="set BC_REDIRECT_URI"):
        consent_redirect_uri(settings())


async def test_a_consent_link_is_entras_v2_admin_consent_url_with_a_one_time_state_of_that_connection() -> (
    None
):
    store = MemoryRecordStore[PendingSignIn]()
    pending = PendingSignIns(store, ManualClock())
    link = await start_consent(
        ACME, settings(BC_REDIRECT_URI="https://func.example.net/api/auth/callback"), pending
    )

    url = urlsplit(link.url)
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == (
        "https://login.microsoftonline.com/acme.onmicrosoft.com/v2.0/adminconsent"
    )
    assert query["client_id"] == CLIENT
    assert query["scope"] == "https://api.businesscentral.dynamics.com/.default"
    assert query["redirect_uri"] == f"https://func.example.net{CONSENT_CALLBACK_PATH}"
    assert connection_in_state(query["state"]) == "acme"
    assert (await pending.consume(query["state"])).state == query["state"]


async def test_a_state_of_one_connection_is_unknown_in_anothers_partition() -> None:
    """The callback consumes in the state's connection's partition: B's has no row for A's state."""
    clock = ManualClock()
    a, b = MemoryRecordStore[PendingSignIn](), MemoryRecordStore[PendingSignIn]()
    link = await start_consent(
        ACME, settings(BC_REDIRECT_URI="https://f.example/api/auth/callback"), PendingSignIns(a, clock)
    )
    state = parse_qs(urlsplit(link.url).query)["state"][0]
    with pytest.raises(SignInStateUnknownError):
        await PendingSignIns(b, clock).consume(state)


def test_entras_answer_is_read_and_its_error_code_sanitised() -> None:
    granted = consent_answer({"admin_consent": "True", "tenant": "t-id", "state": "s"}, "s")
    assert granted.granted
    assert granted.tenant == "t-id"
    assert granted.error is None
    refused = consent_answer({"error": "access_denied<script>", "error_description": "x", "state": "s"}, "s")
    assert not refused.granted
    assert refused.error == "access_deniedscript"
    assert "declined" in refusal_fix(ACME, "access_denied")
    assert "GET /api/connections/acme/consent" in refusal_fix(ACME, "invalid_request")


async def test_a_new_consent_link_purges_the_connections_expired_states() -> None:
    store, clock = MemoryRecordStore[PendingSignIn](), ManualClock()
    pending = PendingSignIns(store, clock)
    configured = settings(BC_REDIRECT_URI="https://f.example/api/auth/callback")
    await start_consent(ACME, configured, pending)
    clock.advance(timedelta(minutes=11))

    await start_consent(ACME, configured, pending)

    assert len(await store.scan()) == 1


async def test_an_identity_s_consent_link_names_its_own_app_and_a_state_naming_the_identity() -> None:
    other_app = "44444444-4444-4444-4444-444444444444"
    second = Identity(
        name="second", client_id=other_app, credential=Credential.KEY_VAULT_SECRET, secret_name="s"
    )
    pooled = ACME.model_copy(update={"identities": (second,)})
    pending = PendingSignIns(MemoryRecordStore[PendingSignIn](), ManualClock())
    configured = settings(BC_REDIRECT_URI="https://func.example.net/api/auth/callback")
    link = await start_consent(pooled, configured, pending, second)

    query = {key: values[0] for key, values in parse_qs(urlsplit(link.url).query).items()}
    assert query["client_id"] == other_app
    named = connection_in_state(query["state"])
    assert named is not None
    assert split_consent_name(named) == ("acme", "second")
    assert split_consent_name("acme") == ("acme", None)
    assert split_consent_name("old-name") == ("old-name", None)


class _Recorder:
    """The identity's connection record (HealthRecorder.record_consent) as the callback writes it."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def record_consent(self, outcome: str) -> bool:
        self.outcomes.append(outcome)
        return True


class _PoolAuth:
    """AuthServices for the callback: one pending-consent store per connection, one record per identity."""

    def __init__(self, pending: PendingSignIns) -> None:
        self.pending = pending
        self.records: dict[str, _Recorder] = {}

    def pending_consents(self, connection: str) -> PendingSignIns:
        assert connection == "acme"
        return self.pending

    def for_identity(self, connection: Connection, identity: Identity) -> SimpleNamespace:
        health = self.records.setdefault(identity.name, _Recorder())
        return SimpleNamespace(manager=SimpleNamespace(parts=SimpleNamespace(health=health, identity=None)))


class _Registry:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def find(self, name: str) -> Connection | None:
        return self.connection if name == self.connection.name else None


async def test_an_identity_s_consent_answer_is_recorded_on_that_identity_s_record() -> None:
    second = Identity(name="second", client_id="44444444-4444-4444-4444-444444444444")
    pooled = ACME.model_copy(update={"identities": (second,)})
    pending = PendingSignIns(MemoryRecordStore[PendingSignIn](), ManualClock())
    configured = settings(BC_REDIRECT_URI="https://func.example.net/api/auth/callback")
    link = await start_consent(pooled, configured, pending, second)
    state = parse_qs(urlsplit(link.url).query)["state"][0]
    auth = _PoolAuth(pending)
    onboarding = Onboarding(configured, cast(ConnectionRegistry, _Registry(pooled)), cast(AuthServices, auth))

    outcome = await onboarding.finish_consent({"state": state, "error": "access_denied"})

    assert (outcome.identity, outcome.report) == ("second", None)
    assert auth.records["second"].outcomes == ["access_denied"]
    assert "primary" not in auth.records
    with pytest.raises(SignInFlowError):  # one-time: the state is spent
        await onboarding.finish_consent({"state": state, "error": "access_denied"})
