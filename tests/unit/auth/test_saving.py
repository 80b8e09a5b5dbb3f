"""Newest wins: an older or equal generation never overwrites the stored token set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth.errors import StaleTokenSetError
from shared.auth.models import Grant, TokenSet, first_token_set
from shared.auth.saving import save_newest
from shared.settings import AuthMode
from tests.fakes.auth_stores import MemoryTokenStore

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def token_set(generation: int, refresh_token: str) -> TokenSet:
    grant = Grant(f"at-{generation}", timedelta(hours=1), (), refresh_token)
    return first_token_set("default", AuthMode.DELEGATED, grant, NOW, generation)


async def test_stale_writer_is_refused_and_the_newer_set_stays() -> None:
    """Generation 3 stored; writing generation 2 raises StaleTokenSetError and leaves 3."""
    store = MemoryTokenStore()
    await save_newest(store, token_set(3, "rt-3"))

    with pytest.raises(StaleTokenSetError):
        await save_newest(store, token_set(2, "rt-2"))

    assert store.peek("default") == token_set(3, "rt-3")


async def test_equal_generation_with_different_content_is_refused() -> None:
    """Two refreshers producing the same generation: the second one does not overwrite the first."""
    store = MemoryTokenStore()
    await save_newest(store, token_set(4, "rt-a"))
    with pytest.raises(StaleTokenSetError):
        await save_newest(store, token_set(4, "rt-b"))
    assert store.peek("default") == token_set(4, "rt-a")


async def test_unchanged_set_is_not_written_again() -> None:
    """Saving the stored set again performs no write."""
    store = MemoryTokenStore()
    await save_newest(store, token_set(1, "rt-1"))
    await save_newest(store, token_set(1, "rt-1"))
    assert store.writes == 1


async def test_token_manager_satisfies_the_token_provider_seam() -> None:
    """TokenManager is usable where shared.tokens.TokenProvider is expected (checked by mypy too)."""
    from shared.tokens import TokenProvider
    from tests.functional.auth.fakes import World

    provider: TokenProvider = World().manager()
    assert callable(provider.token)
    assert callable(provider.refresh)
