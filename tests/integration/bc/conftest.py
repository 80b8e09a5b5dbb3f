"""Fixtures for the BC client against the TLS sandbox: settings, a client-credentials token provider, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.bc import BusinessCentralClient, MemoryRecorder, SharedThrottle, build_client, build_throttle
from shared.bc.retry import RetryPolicy
from shared.settings import Settings, load_settings
from testkit.sandbox_tokens import SandboxTokenProvider
from tests.fakes.coordination import MemoryCoordinationStore

# Short heartbeats keep join delays (1.5 heartbeats + 1 s) small in tests that add a second process.
HEARTBEAT_SECONDS = 0.5


@pytest.fixture
def bc_settings(sandbox_env: dict[str, str]) -> Settings:
    """Settings loaded from the sandbox's env keys, exactly as an app would load them."""
    return load_settings(sandbox_env)


@pytest.fixture
def tokens(bc_settings: Settings) -> SandboxTokenProvider:
    """Client-credentials tokens from the sandbox Entra."""
    return SandboxTokenProvider(bc_settings)


@pytest.fixture
def coordination() -> MemoryCoordinationStore:
    """The throttle's coordination row, in memory (Table Storage is covered in its own tests)."""
    return MemoryCoordinationStore()


@pytest.fixture
async def throttle(
    bc_settings: Settings, coordination: MemoryCoordinationStore
) -> AsyncIterator[SharedThrottle]:
    """This process's throttle for the sandbox identity."""
    shared = build_throttle(bc_settings, coordination, heartbeat_seconds=HEARTBEAT_SECONDS)
    yield shared
    await shared.close()


@pytest.fixture
def recorder() -> MemoryRecorder:
    """Collects every interaction."""
    return MemoryRecorder()


@pytest.fixture
async def bc(
    bc_settings: Settings, tokens: SandboxTokenProvider, throttle: SharedThrottle, recorder: MemoryRecorder
) -> AsyncIterator[BusinessCentralClient]:
    """A client on the sandbox, wired like production (settings -> httpx with the local CA)."""
    client = build_client(bc_settings, tokens, throttle, recorder=recorder, policy=RetryPolicy(jitter=0.0))
    yield client
    await client.aclose()
