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

Feed-only members (issue 22, point 6: a flood of changes never starves the jobs). On Flex Consumption the change
feed's functions run on instances of their own (per-function scaling), in processes that ask only low permits. As
equal members they would take 1/N of the budget from the jobs and, joining first, make every jobs process wait the
join delay. So a member records its kind (`Member.low`): while any low member is live, the low members share a
fixed *reserve* (`ThrottleConfig.low_reserve` of the rate; one slot per low member, at most `reserve_slots`),
split among them like the budget (slots by seniority, the rate among those sending), and the normal members split
the rest; with no low
member live the normal members get everything, as before. A low member that asks a normal permit converts: it
re-joins as a normal newcomer (a join of the normal pool), since growing a pool is only safe once others saw it.

Why the windows stay within rate*W + N*burst with two pools. The budget is the sum of the two pools' budgets
whatever the members believe, so it suffices that each pool's members never together exceed their pool's budget,
and that a pool's budget shrinks only once every member of that pool has seen why:
- a normal newcomer waits join_delay only when another normal member is live: the low members' reserve does not
  change when a normal one joins, and an empty normal pool has nobody to shrink;
- a low newcomer waits join_delay whenever any member is live: the first low member shrinks the normal pool (its
  slots at once, as seniors drain for any pending member; its rate from the newcomer's admission), a later one
  the other low members' rate and, up to reserve_slots, the normal pool's slots again; by admission every member has seen it (join_delay > heartbeat + jitter);
- a pool only grows after the row changed (a leave, a lease run out, the last low member leaving or converting),
  and a member's own share changes with its own write, so the one that shrank did so before anyone grew;
- a member never changes from normal to low (that would shrink the normal pool without a delay): a process that
  once asked a normal permit stays normal until it leaves the row.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.bc.throttle.coordination import CoordinationState, Member

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
    # The feed-only members' reserve while any is live: this fraction of the rate and one slot per feed-only
    # member, at most `low_reserve_slots`. 10 %: the jobs keep 90 % through any flood of changes (point 6), and
    # the feed still reads ~1.9 entities a second at BC's 6,000 per 5 minutes (3 % margin). One slot each, as the
    # low permit allows a process (at most one in flight); up to 2, so the expansion and a timer's process (the
    # feed's functions scale apart) both send: with a single slot the second would wait as a junior for the
    # first's idle leave (a heartbeat to see it, one to leave, one to notice: up to 30 s). The jobs keep 3 or more.
    low_reserve: float = 0.1
    low_reserve_slots: int = 2

    def __post_init__(self) -> None:
        if self.requests <= 0 or self.window_seconds <= 0 or self.heartbeat_seconds <= 0:
            raise ValueError("requests, window and heartbeat must be positive")
        if not 0 <= self.safety_margin < 1:
            raise ValueError("the safety margin is a fraction in [0, 1)")
        if self.max_in_flight < 1 or self.fallback_instances < 1 or self.burst < 1:
            raise ValueError("in-flight slots, fallback instances and burst must be at least 1")
        if self.idle_leave_seconds < self.heartbeat_seconds:
            raise ValueError("a member may leave on idle only after at least one heartbeat")
        if not 0 < self.low_reserve < 1 or self.low_reserve_slots < 1:
            raise ValueError("the feed's reserve is a fraction in (0, 1) of the rate and at least 1 slot")

    @property
    def rate(self) -> float:
        """Requests per second the identity may send in total (the margin taken off)."""
        return self.requests * (1.0 - self.safety_margin) / self.window_seconds

    @property
    def reserve_rate(self) -> float:
        """Requests per second the feed-only members share while any is live."""
        return self.rate * self.low_reserve

    @property
    def reserve_slots(self) -> int:
        """Most slots the feed-only members share: none when BC allows a single one (they join as normal members)."""
        return min(self.low_reserve_slots, self.max_in_flight - 1)

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
    def watch_seconds(self) -> float:
        """How often the first junior re-reads the row while it holds deliveries for a slot: a quarter heartbeat,
        so a slot a senior gives back idles at most this long (one read each time, by one process per pool)."""
        return self.heartbeat_seconds / 4

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
    """My share at `now`: my pool's budget (the reserve for a low member, the rest for a normal one) split within
    the pool: slots by seniority over its live members (pending ones included, so seniors drain before a newcomer
    starts), the rate over the members that are sending now."""
    live = state.live(now)
    me = next((member for member in live if member.id == member_id), None)
    if me is None:
        return Share(rate=0.0, slots=0, members=len(live))
    pool = [member for member in live if member.low == me.low]
    rate, slots = _pool_budget(me.low, live, now, config)
    rank = pool.index(me)
    mine = _slots_for(rank, len(pool), slots)
    if me.active_from > now or mine == 0:
        return Share(rate=0.0, slots=0, members=len(live))
    return Share(rate=rate / _rate_divisor(pool, me.low, now, slots, config), slots=mine, members=len(live))


def _rate_divisor(pool: list[Member], low: bool, now: float, slots: int, config: ThrottleConfig) -> int:
    """How many members the pool's rate is split over: its admitted members that hold a slot.

    For the normal pool, counted as if no slot were reserved (at most `max_in_flight`): a feed-only member arriving
    or leaving moves a slot between a normal junior and the reserve, and a member that has not seen the row change
    yet must not be outpaced by one that has (a junior's lost slot would raise the others' rate before the junior
    stopped; a junior's regained slot would let it send before the others shrank). The price: while a normal
    junior waits for a reserved slot, the pool sends at its slots' part of its rate."""
    admitted = [member for member in pool if member.active_from <= now]
    if not low:
        return max(1, min(len(admitted), config.max_in_flight))
    ranks = {member.id: n for n, member in enumerate(pool)}
    return max(1, sum(1 for member in admitted if _slots_for(ranks[member.id], len(pool), slots)))


def _pool_budget(
    low: bool, live: tuple[Member, ...], now: float, config: ThrottleConfig
) -> tuple[float, int]:
    """The (rate, slots) of the low or the normal pool: the reserve's slots leave the normal pool as soon as a low
    member is live (pending included), its rate once the senior low member sends (no earlier: plan docstring)."""
    lows = [member for member in live if member.low]
    if not lows:
        return config.rate, config.max_in_flight
    slots = min(len(lows), config.reserve_slots)
    if low:
        return config.reserve_rate, slots
    reserved = config.reserve_rate if lows[0].active_from <= now else 0.0
    return config.rate - reserved, config.max_in_flight - slots


def joined(state: CoordinationState, member_id: str, low: bool, now: float, config: ThrottleConfig) -> Member:
    """This member's record renewed at `now`, joining (or converting from low to normal) by the join rules.

    A member already in the row keeps its admission time unless it converts; a normal one never turns low (plan
    docstring). A newcomer waits join_delay when a member it must wait for is live: any other member for a low
    newcomer, another normal member for a normal one (or a low one converting).
    """
    live = [member for member in state.live(now) if member.id != member_id]
    mine = next((m for m in state.members if m.id == member_id and m.lease_until > now), None)
    low = low and (mine is None or mine.low)
    lease_until = now + config.lease_seconds
    if mine is not None and mine.low == low:
        return Member(member_id, mine.active_from, lease_until, low)
    waits_for = live if low else [member for member in live if not member.low]
    active_from = now + config.join_delay_seconds if waits_for else now
    return Member(member_id, active_from, lease_until, low)


def has_juniors(state: CoordinationState, now: float, config: ThrottleConfig) -> bool:
    """Whether a live member holds no slot because its pool has more members than slots (it waits for a leave)."""
    live = state.live(now)
    lows = sum(1 for member in live if member.low)
    normal_slots = config.max_in_flight - min(lows, config.reserve_slots)
    return lows > config.reserve_slots or len(live) - lows > normal_slots


def next_in_line(state: CoordinationState, member_id: str, now: float, config: ThrottleConfig) -> bool:
    """Whether this member is its pool's first junior: admitted, no slot, and the next to get one when a senior
    leaves (it watches the row between heartbeats, so a slot handed over is used within a watch interval)."""
    live = state.live(now)
    me = next((member for member in live if member.id == member_id), None)
    if me is None or me.active_from > now:
        return False
    pool = [member for member in live if member.low == me.low]
    _, slots = _pool_budget(me.low, live, now, config)
    return pool.index(me) == slots


def fallback_share(last_known_members: int, config: ThrottleConfig, *, low: bool = False) -> Share:
    """The conservative share used while the coordination row cannot be refreshed (a low member's: within the
    reserve, since the normal members may be using all the rest)."""
    divisor = max(config.fallback_instances, last_known_members)
    rate = min(config.rate / divisor, config.reserve_rate) if low else config.rate / divisor
    return Share(rate=rate, slots=1, members=last_known_members, fallback=True)


def _slots_for(rank: int, members: int, slots: int) -> int:
    """Slots of the member at `rank` among `members`: an even split, seniors get the remainder.

    Beyond `slots` members the juniors get none (they wait until a senior leaves).
    """
    base, extra = divmod(slots, members)
    return base + (1 if rank < extra else 0)
