"""How an identity's budget is split between processes: slots by seniority, rate among senders, fallback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.bc.throttle import CoordinationState, Member, ThrottleConfig, fallback_share, share_of

CONFIG = ThrottleConfig(
    requests=600, window_seconds=20.0, safety_margin=0.05, max_in_flight=5, heartbeat_seconds=5
)
NOW = 1000.0


def members(*specs: tuple[str, float]) -> CoordinationState:
    """Members (id, active_from) with leases well into the future."""
    return CoordinationState(
        tuple(Member(member_id, active_from, NOW + 60) for member_id, active_from in specs)
    )


def test_rate_takes_the_margin_off() -> None:
    """600 per 20 s with a 5% margin is 28.5 requests per second."""
    assert CONFIG.rate == pytest.approx(28.5)


def test_lone_member_gets_everything() -> None:
    """One live member: the whole rate and all five slots."""
    share = share_of(members(("a", 0)), "a", NOW, CONFIG)
    assert share.rate == pytest.approx(28.5)
    assert share.slots == 5


@pytest.mark.parametrize(
    ("count", "expected"), [(2, [3, 2]), (3, [2, 2, 1]), (5, [1] * 5), (7, [1] * 5 + [0, 0])]
)
def test_slots_split_evenly_seniors_first(count: int, expected: list[int]) -> None:
    """Five slots over N members: even split, the remainder to the oldest; beyond five, juniors get none."""
    state = members(*[(f"m{n}", float(n)) for n in range(count)])
    assert [share_of(state, f"m{n}", NOW, CONFIG).slots for n in range(count)] == expected
    assert sum(expected) == CONFIG.max_in_flight


def test_rate_is_split_among_members_that_may_send() -> None:
    """Three senders share the rate equally; a member without slots is not counted."""
    state = members(*[(f"m{n}", float(n)) for n in range(6)])
    rates = [share_of(state, f"m{n}", NOW, CONFIG).rate for n in range(6)]
    assert rates[:5] == [pytest.approx(28.5 / 5)] * 5
    assert rates[5] == 0


def test_pending_member_reserves_slots_but_not_rate() -> None:
    """A newcomer not yet admitted sends nothing; seniors already give up its slots (to drain) but keep the rate."""
    state = members(("a", 0), ("b", NOW + 10))
    senior, newcomer = share_of(state, "a", NOW, CONFIG), share_of(state, "b", NOW, CONFIG)
    assert senior.slots == 3
    assert senior.rate == pytest.approx(28.5)
    assert (newcomer.slots, newcomer.rate) == (0, 0)
    later = NOW + 11
    assert share_of(state, "a", later, CONFIG).rate == pytest.approx(28.5 / 2)
    assert share_of(state, "b", later, CONFIG).slots == 2


def test_expired_members_are_not_counted() -> None:
    """A member whose lease ran out gives its share back."""
    state = CoordinationState((Member("a", 0, NOW + 60), Member("dead", 0, NOW - 1)))
    assert share_of(state, "a", NOW, CONFIG).slots == 5


def test_unknown_member_gets_nothing() -> None:
    """A process not (or no longer) in the row may not send on the shared budget."""
    assert share_of(members(("a", 0)), "ghost", NOW, CONFIG).slots == 0


def test_fallback_is_a_conservative_share() -> None:
    """Without coordination: rate / max(expected instances, last known members), one slot."""
    assert fallback_share(1, CONFIG).rate == pytest.approx(28.5 / CONFIG.fallback_instances)
    assert fallback_share(6, CONFIG).rate == pytest.approx(28.5 / 6)
    assert fallback_share(1, CONFIG).slots == 1
    assert fallback_share(1, CONFIG).fallback


def test_join_delay_outlasts_a_heartbeat() -> None:
    """A newcomer waits longer than the others need to see it; a stale view is dropped before others drop us."""
    assert CONFIG.join_delay_seconds > 1.1 * CONFIG.heartbeat_seconds
    assert CONFIG.stale_after_seconds < CONFIG.lease_seconds


@pytest.mark.parametrize(
    "kwargs", [{"requests": 0}, {"safety_margin": 1.0}, {"max_in_flight": 0}, {"heartbeat_seconds": 0}]
)
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    """Nonsense limits fail at construction."""
    with pytest.raises(ValueError):  # noqa: PT011 -- several messages, one rule
        replace(CONFIG, **kwargs)  # type: ignore[arg-type]
