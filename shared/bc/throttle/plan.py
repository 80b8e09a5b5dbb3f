"""How an identity's budget is divided into each member's share: pure functions of the coordination state and the time.

Why shares and not leased request quotas: a process that leases k requests per compare-and-swap may spend them at any
time until they expire, so the server's sliding window can see up to ~2k more than the accounting allowed at
its edges (and a lease's lifetime more). Dividing the *rate* between live members instead — each paces its own
requests at rate/N — keeps every window within rate*W + N*burst, and costs storage transactions only per
heartbeat (one member change), not per request. The price: a member's unused share is not lent to others.

Safety of changes: a joining member may start only after `join_delay` (longer than a heartbeat plus a grace),
by which time every existing member has seen it and shrunk its share; a leaving member's share is taken over
only after it left (or its lease ran out). A member that cannot refresh its view in time stops trusting it and
falls back to a conservative local share: rate / max(expected instances, last known members) and 1 slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.bc.throttle.coordination import CoordinationState

# How often a member renews its place in the coordination row and re-reads its share. Each heartbeat costs a
# process one read and one write of the row, and shares follow a join or a leave about a heartbeat later (a
# newcomer waits join_delay_seconds, 1.5 heartbeats + 1 s): 10 s keeps both small beside BC's 5-minute window.
HEARTBEAT_SECONDS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleConfig:
    """BC's limits for one identity, the safety margin, and the coordination timing.

    The limits and the margin come from the `bc` settings (shared.bc.factory.throttle_config_from_settings), so
    they have no default here; the coordination timing is the throttle's own."""

    requests: int  # per sliding window
    window_seconds: float
    safety_margin: float
    max_in_flight: int  # concurrent requests (more wait in BC's queue)
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    # Conservative share when the coordination row cannot be read: rate / this (or more live members).
    fallback_instances: int = 4
    # Requests a process may send back to back after an idle spell (GCRA burst); the margin must cover N*burst.
    burst: int = 2
    # A member unused this long leaves the row, so its slots go where the work is (three heartbeats: long enough
    # that a steadily used instance never churns, short enough that juniors holding jobs are not kept waiting).
    idle_leave_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.requests <= 0 or self.window_seconds <= 0 or self.heartbeat_seconds <= 0:
            raise ValueError("requests, window and heartbeat must be positive")
        if not 0 <= self.safety_margin < 1:
            raise ValueError("the safety margin is a fraction in [0, 1)")
        if self.max_in_flight < 1 or self.fallback_instances < 1 or self.burst < 1:
            raise ValueError("in-flight slots, fallback instances and burst must be at least 1")
        if self.idle_leave_seconds < self.heartbeat_seconds:
            raise ValueError("a member may leave on idle only after at least one heartbeat")

    @property
    def rate(self) -> float:
        """Requests per second the identity may send in total (the margin taken off)."""
        return self.requests * (1.0 - self.safety_margin) / self.window_seconds

    @property
    def lease_seconds(self) -> float:
        """How long a heartbeat keeps a member alive in the row: three heartbeats."""
        return 3.0 * self.heartbeat_seconds

    @property
    def stale_after_seconds(self) -> float:
        """How old a member's last successful heartbeat may be before it stops trusting its view.

        Two heartbeats: a full heartbeat before the others would drop it (lease_seconds), so a member never
        keeps its share after the others have taken it over.
        """
        return 2.0 * self.heartbeat_seconds

    @property
    def join_delay_seconds(self) -> float:
        """How long a newcomer waits before sending: one heartbeat (+10% jitter) for everyone to see it, plus grace."""
        return 1.5 * self.heartbeat_seconds + 1.0


@dataclass(frozen=True, slots=True)
class Share:
    """One member's part of the identity's budget right now: a rate and a number of slots (possibly none)."""

    rate: float  # requests per second
    slots: int  # requests in flight
    members: int  # live members counted (for logs and the fallback)
    fallback: bool = False


def share_of(state: CoordinationState, member_id: str, now: float, config: ThrottleConfig) -> Share:
    """My share at `now`: slots split by seniority over all live members (pending ones included, so seniors
    drain before a newcomer starts); the rate split over the members that are sending now."""
    live = state.live(now)
    ranks = {member.id: rank for rank, member in enumerate(live)}
    rank = ranks.get(member_id)
    if rank is None:
        return Share(rate=0.0, slots=0, members=len(live))
    slots = _slots_for(rank, len(live), config.max_in_flight)
    senders = [
        member
        for member in live
        if member.active_from <= now and _slots_for(ranks[member.id], len(live), config.max_in_flight)
    ]
    me = live[rank]
    if me.active_from > now or slots == 0:
        return Share(rate=0.0, slots=0, members=len(live))
    return Share(rate=config.rate / len(senders), slots=slots, members=len(live))


def fallback_share(last_known_members: int, config: ThrottleConfig) -> Share:
    """The conservative share used while the coordination row cannot be refreshed."""
    divisor = max(config.fallback_instances, last_known_members)
    return Share(rate=config.rate / divisor, slots=1, members=last_known_members, fallback=True)


def _slots_for(rank: int, members: int, slots: int) -> int:
    """Slots of the member at `rank` among `members`: an even split, seniors get the remainder.

    Beyond `slots` members the juniors get none (they wait until a senior leaves).
    """
    base, extra = divmod(slots, members)
    return base + (1 if rank < extra else 0)
