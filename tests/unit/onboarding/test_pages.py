"""The consent callback's pages: the check's steps, the next step after a refusal, and nothing unescaped."""

from __future__ import annotations

from shared.connections import Connection
from shared.onboarding.check import CheckReport, CheckStep
from shared.onboarding.consent import ConsentAnswer
from shared.onboarding.service import ConsentOutcome
from shared.triggers.connections_onboarding import consent_page, refused_consent_page

TENANT = "44444444-4444-4444-4444-444444444444"
ACME = Connection(
    name="acme", tenant_id=TENANT, environment="production", client_id="33333333-3333-3333-3333-333333333333"
)


def test_a_granted_consent_shows_each_step_of_the_check_and_its_fix_escaped() -> None:
    report = CheckReport(
        "acme",
        (
            CheckStep("token", True, "Entra issued a token"),
            CheckStep("environment", False, "no environment '<b>x</b>'", "set environment"),
        ),
    )
    answer = ConsentAnswer("acme~s", granted=True, tenant=TENANT, error=None)
    reply = consent_page(ConsentOutcome(ACME, answer, report))
    assert reply.status == 200
    assert "OK token: Entra issued a token" in reply.body
    assert "FAILED environment: no environment &#x27;&lt;b&gt;x&lt;/b&gt;&#x27;" in reply.body
    assert "Fix: set environment" in reply.body
    assert "<b>" not in reply.body


def test_a_consent_recorded_in_another_tenant_than_the_connections_says_so() -> None:
    answer = ConsentAnswer("acme~s", granted=True, tenant="55555555-5555-5555-5555-555555555555", error=None)
    reply = consent_page(ConsentOutcome(ACME, answer, CheckReport("acme", ())))
    assert "but the connection names tenant" in reply.body


def test_a_declined_consent_is_a_400_naming_the_next_step() -> None:
    answer = ConsentAnswer("acme~s", granted=False, tenant=None, error="access_denied")
    reply = consent_page(ConsentOutcome(ACME, answer, None))
    assert reply.status == 400
    assert "GET /api/connections/acme/consent" in reply.body


def test_a_refused_state_page_changes_nothing_and_shows_the_reference() -> None:
    reply = refused_consent_page("abc123")
    assert reply.status == 400
    assert "Nothing was changed" in reply.body
    assert "abc123" in reply.body
