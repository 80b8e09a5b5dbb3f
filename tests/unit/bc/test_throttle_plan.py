"""How an identity's budget is split between processes: slots by seniority, rate among senders, the feed-only
members' reserve, the join rules, fallback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.bc.throttle import (
    CoordinationState,
    Member,
    ThrottleConfig,
    fallback_share,
    has_juniors,
    joined,
    share_of,
)

CONFIG = ThrottleConfig(
    requests=600, window_seconds=20.0, safety_margin=0.05, max_in_flight=5, heartbeat_seconds=5
)
NOW = 1000.0


def members(*specs: tuple[str, float]) -> CoordinationState:
    """Members (id, active_from) with leases well into the future; an id starting with "f" is feed-only."""
    return CoordinationState(
        tuple(
            Member(member_id, active_from, NOW + 60, low=member_id.startswith("f"))
            for member_id, active_from in specs
        )
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
    "kwargs",
    [
        {"requests": 0},
        {"safety_margin": 1.0},
        {"max_in_flight": 0},
        {"heartbeat_seconds": 0},
        {"low_reserve": 0.0},
        {"low_reserve": 1.0},
        {"low_reserve_slots": 0},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    """Nonsense limits fail at construction."""
    with pytest.raises(ValueError):  # noqa: PT011 -- several messages, one rule
        replace(CONFIG, **kwargs)  # type: ignore[arg-type]


RESERVE = 28.5 * 0.1


@pytest.mark.parametrize("normal", [1, 2, 3])
@pytest.mark.parametrize("low", [0, 1, 2])
def test_feed_only_members_share_the_reserve_and_normal_ones_the_rest(normal: int, low: int) -> None:
    """With feed-only members live, the feed gets 10 % and a slot each (at most 2); the jobs the rest."""
    state = members(*[(f"n{n}", float(n)) for n in range(normal)], *[(f"f{n}", float(n)) for n in range(low)])
    normals = [share_of(state, f"n{n}", NOW, CONFIG) for n in range(normal)]
    lows = [share_of(state, f"f{n}", NOW, CONFIG) for n in range(low)]
    reserve_rate, reserve_slots = (RESERVE, low) if low else (0.0, 0)
    assert sum(share.rate for share in normals) == pytest.approx(28.5 - reserve_rate)
    assert sum(share.slots for share in normals) == 5 - reserve_slots
    assert [share.rate for share in lows] == [pytest.approx(RESERVE / max(low, 1))] * low
    assert [share.slots for share in lows] == [1] * low


def test_a_lone_feed_only_member_gets_only_the_reserve() -> None:
    """The reserve is fixed: the rest is kept for jobs processes, which may then start at once."""
    share = share_of(members(("f", 0)), "f", NOW, CONFIG)
    assert share.rate == pytest.approx(RESERVE)
    assert share.slots == 1


def test_a_pending_feed_only_member_takes_a_slot_at_once_and_the_rate_once_admitted() -> None:
    """Normal members drain the reserve's slot as soon as they see the newcomer, and give up its rate on admission."""
    state = members(("n", 0), ("f", NOW + 10))
    assert (share_of(state, "n", NOW, CONFIG).slots, share_of(state, "n", NOW, CONFIG).rate) == (4, 28.5)
    assert share_of(state, "f", NOW, CONFIG).slots == 0
    assert share_of(state, "n", NOW + 11, CONFIG).rate == pytest.approx(28.5 - RESERVE)
    assert share_of(state, "f", NOW + 11, CONFIG).rate == pytest.approx(RESERVE)


def test_a_normal_newcomer_after_feed_only_members_starts_at_once() -> None:
    """The feed's reserve does not change when a jobs process joins: no join delay."""
    me = joined(members(("f1", 0), ("f2", 0)), "n", False, NOW, CONFIG)
    assert (me.active_from, me.low) == (NOW, False)


@pytest.mark.parametrize("others", [("n",), ("f1",), ("n", "f1")])
def test_a_feed_only_newcomer_waits_while_any_member_is_live(others: tuple[str, ...]) -> None:
    """The normal members (or the other feed-only ones) must shrink first."""
    me = joined(members(*[(name, 0.0) for name in others]), "f", True, NOW, CONFIG)
    assert (me.active_from, me.low) == (NOW + CONFIG.join_delay_seconds, True)


def test_a_normal_newcomer_waits_for_another_normal_member() -> None:
    """As before the reserve existed: the seniors shrink first."""
    assert joined(members(("n1", 0), ("f", 0)), "n2", False, NOW, CONFIG).active_from > NOW


def test_a_lone_newcomer_of_either_kind_starts_at_once() -> None:
    """Nobody to wait for."""
    assert joined(CoordinationState(), "f", True, NOW, CONFIG).active_from == NOW
    assert joined(CoordinationState(), "n", False, NOW, CONFIG).active_from == NOW


def test_a_renewal_keeps_the_admission_time() -> None:
    """A heartbeat of a member already in the row only extends its lease."""
    state = members(("n", 0), ("f", NOW - 5))
    me = joined(state, "f", True, NOW, CONFIG)
    assert (me.active_from, me.low, me.lease_until) == (NOW - 5, True, NOW + CONFIG.lease_seconds)


def test_a_feed_only_member_converts_by_joining_the_normal_pool() -> None:
    """Asked a normal permit, it re-joins as a normal newcomer: at once when alone, else after the delay."""
    assert joined(members(("f", 0)), "f", False, NOW, CONFIG) == Member("f", NOW, NOW + CONFIG.lease_seconds)
    converted = joined(members(("n", 0), ("f", 0)), "f", False, NOW, CONFIG)
    assert (converted.active_from, converted.low) == (NOW + CONFIG.join_delay_seconds, False)


def test_a_normal_member_never_turns_feed_only() -> None:
    """Shrinking the normal pool needs a join delay: a normal member stays one until it leaves."""
    me = joined(members(("n", 0)), "n", True, NOW, CONFIG)
    assert (me.active_from, me.low) == (0, False)


def test_juniors_are_counted_per_pool() -> None:
    """A third feed-only member waits for a reserve's slot; five members of both kinds fit 4 + 1 slots."""
    assert not has_juniors(members(("n", 0), ("f1", 0), ("f2", 1)), NOW, CONFIG)
    assert has_juniors(members(("n", 0), ("f1", 0), ("f2", 1), ("f3", 2)), NOW, CONFIG)
    assert not has_juniors(members(*[(f"n{n}", float(n)) for n in range(4)], ("f", 9)), NOW, CONFIG)
    assert has_juniors(members(*[(f"n{n}", float(n)) for n in range(5)], ("f", 9)), NOW, CONFIG)


def test_a_feed_only_fallback_stays_within_the_reserve() -> None:
    """Without coordination a feed-only member never takes more than its reserve."""
    assert fallback_share(1, CONFIG, low=True).rate == pytest.approx(RESERVE)
    assert fallback_share(1, replace(CONFIG, low_reserve=0.5), low=True).rate == pytest.approx(28.5 / 4)


def test_with_a_single_slot_nothing_is_reserved() -> None:
    """BC_MAX_IN_FLIGHT=1 leaves no slot to reserve: feed-only processes then join as normal members."""
    assert replace(CONFIG, max_in_flight=1).reserve_slots == 0
    assert replace(CONFIG, max_in_flight=2).reserve_slots == 1
    assert CONFIG.reserve_slots == 2


def test_a_third_feed_only_member_waits_for_a_reserve_slot() -> None:
    """The reserve holds at most two slots: the junior gets none (it waits for a senior's leave), the jobs keep 3."""
    state = members(("n", 0), ("f1", 1), ("f2", 2), ("f3", 3))
    assert [share_of(state, f"f{n}", NOW, CONFIG).slots for n in (1, 2, 3)] == [1, 1, 0]
    assert share_of(state, "f3", NOW, CONFIG).rate == 0
    assert share_of(state, "n", NOW, CONFIG).slots == 3
