"""The 60-second chaos soak (`soak.SoakConfig.short()`; `make soak` runs the full one) and the secrets sweep of
everything it produced.

One run serves both tests: 2 devhost worker processes, 600 jobs of every operation over 60 s (5 % sent twice,
10 % through the front door, malformed and expired ones), BC faults all along, then a Key Vault outage, Entra
down, a worker SIGKILLed and restarted, Azurite stopped and restarted with its data, BC down, and every token
dying at BC. Invariants are checked while it runs; the figures are printed as the soak's JSON line.
"""

from __future__ import annotations

import json

import pytest

from soak.__main__ import passed
from soak.config import SoakConfig
from soak.run import SoakOutcome, run_soak
from soak.sweep import sweep

pytestmark = pytest.mark.timeout(900)  # 60 s of load, up to 4 minutes of drain on a busy machine
REQUIRED = ("enqueued", "lost", "duplicate_records", "non_terminal", "bc_calls_per_job", "invariants_checked")


@pytest.fixture(scope="module")
def soak() -> SoakOutcome:
    """One short soak for the module."""
    outcome = run_soak(SoakConfig.short())
    print(json.dumps(outcome.figures, default=str))  # the soak's line, in the test report
    return outcome


def test_the_60_second_soak_loses_nothing_duplicates_nothing_and_breaks_no_invariant(
    soak: SoakOutcome,
) -> None:
    """Every job sent ends in a recorded terminal state, once in BC, with every invariant held throughout."""
    figures = soak.figures
    assert all(name in figures for name in REQUIRED)
    assert (figures["lost"], figures["duplicate_records"], figures["non_terminal"]) == (0, 0, 0), figures
    assert soak.violations == []
    assert figures["invariant_violations"] == 0
    assert figures["invariants_checked"] > 1000
    assert (figures["missing_effects"], figures["injection_leaks"], figures["missing_results"]) == (0, 0, 0)
    assert figures["harness_failures"] == []
    assert figures["lever_failures"] == []
    assert figures["enqueued"] >= 600
    assert figures["rejected"] == figures["malformed"]
    assert figures["expired"] >= 1
    assert figures["succeeded"] > 0.9 * figures["enqueued"]
    assert figures["peak_in_flight_per_identity"] <= 5
    assert figures["peak_queued_at_bc"] == 0
    assert figures["max_attempts_seen"] <= SoakConfig.short().max_attempts
    events = [event["event"] for event in figures["events"]]
    for disruption in ("vault_outage_end", "entra_outage_end", "worker_restarted", "azurite_restarted"):
        assert disruption in events
    assert {"bc_outage_end", "tokens_expired_at_bc"} <= set(events)
    assert figures["faults_injected"].keys() >= {"429", "503", "drop"}
    assert passed(figures)


def test_nothing_the_soak_produced_holds_a_token_a_secret_a_verifier_or_a_code(soak: SoakOutcome) -> None:
    """Every log line (workers' and this process's), Table row, queue message and HTTP answer of the run is free
    of the client secret, every access and refresh token Key Vault held, the sign-in's code and PKCE verifier,
    and anything shaped like them."""
    sources = soak.evidence.counts()
    for source in (
        "worker logs",
        "soak process log records",
        "Table rows",
        "bc-results messages",
        "HTTP answers",
    ):
        assert sources.get(source, 0) > 0, f"no {source} gathered"
    names = set(soak.secrets)
    assert {
        "the BC client secret",
        "the sign-in's authorization code",
        "the sign-in's PKCE verifier",
    } <= names
    assert any(name.startswith("access_token") for name in names)
    assert any(name.startswith("refresh_token") for name in names)
    assert soak.findings == []
    assert sweep(soak.evidence, soak.secrets) == []
