"""The status page's HTML: one server-rendered document, no script, no external asset, every value escaped.

The only style is the inline <style> below; the Content-Security-Policy allows exactly it (by hash) and nothing
else (`default-src 'none'`; forms may post only to this app, `form-action 'self'`), so an injected tag could neither
run nor load anything. The page is never cached, never sends a Referer and never holds a key: its sign-in form
asks for a host key.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bcjobs import JobState
from shared.auth import ConnectionStatus, Health
from shared.changes.feed_status import FeedStatus, feed_section_body
from shared.ops.per_connection import ConnectionView
from shared.ops.snapshot import Failure, JobCounts, QueueReading, Snapshot, ThrottleUsage
from shared.tokens import AuthMode

STYLE = """
:root{color-scheme:light;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--muted:#57606a;--line:#d0d7de}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
header{padding:18px 28px;background:#fff;border-bottom:1px solid var(--line)}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:var(--muted);font-size:13px}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px;padding:20px 28px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px}
section.wide{grid-column:1/-1}
h2{margin:0 0 10px;font-size:16px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:nowrap}
.when{white-space:nowrap}
.scroll{overflow-x:auto}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:13px;font-weight:600;color:#fff}
.ok{background:var(--ok)}.warn{background:var(--warn)}.bad{background:var(--bad)}
.note{color:var(--muted);font-size:13px;margin:8px 0 0}
.problem{color:var(--bad)}
form.action{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-top:10px}
form.action input{font:inherit;padding:5px 8px;border:1px solid var(--line);border-radius:6px;min-width:16em}
form.action button{font:inherit;padding:6px 14px;border:0;border-radius:6px;background:#0969da;color:#fff;
font-weight:600;cursor:pointer}
""".strip()

STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_BADGES = {
    Health.OK: "ok",
    Health.DEGRADED: "warn",
    Health.NOT_AUTHORIZED: "warn",
    Health.REAUTHORIZATION_REQUIRED: "bad",
    Health.CREDENTIALS_REJECTED: "bad",
}
_STATE_ORDER = [state.value for state in JobState]


def sign_in_needed(status: ConnectionStatus | None) -> bool:
    """An admin's sign-in would fix the connection: delegated mode, nobody signed in or the grant died."""
    return (
        status is not None
        and status.mode is AuthMode.DELEGATED
        and status.health in (Health.NOT_AUTHORIZED, Health.REAUTHORIZATION_REQUIRED)
    )


# The sign-in route (auth_login) is authLevel function: the host lets in a host key (valid for every function),
# the master key or a key of auth_login itself, never a key made for status_page only ("Understand keys",
# learn.microsoft.com/azure/azure-functions/function-keys-how-to). The page cannot tell which kind opened it, so
# it never echoes the caller's key (a link with it would fail for a status_page key): a form asks for a host key
# and sends it to the sign-in route only (the CSP's form-action 'self').
SIGN_IN_ACTION = "/api/auth/login"
KEY_COMMAND = (
    "az functionapp keys list -g <resource group> -n <function app> --query functionKeys.default -o tsv"
)


@dataclass(frozen=True, slots=True)
class Target:
    """Which BC environment and company the jobs go to (from the settings; the connection status does not hold
    them)."""

    environment: str
    company: str | None


def render(snapshot: Snapshot, target: Target | None = None) -> str:
    """The whole page; with more connections than the settings' one, a line for each comes first."""
    generated = _when(snapshot.generated_at)
    many = bool(snapshot.connections)
    sections = [
        _connections(snapshot.connections, snapshot.generated_at, snapshot.problems),
        _connection(snapshot.connection, snapshot.generated_at, snapshot.problems, target, many),
        _jobs(snapshot.jobs, snapshot.problems),
        _queues(snapshot.queues, snapshot.generated_at, snapshot.problems),
        _throttle(snapshot.throttle, snapshot.problems),
        _failures(snapshot.failures, snapshot.jobs is not None, many),
        _change_feed(snapshot.change_feed, snapshot.generated_at, snapshot.problems),
    ]
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>\n"
        "<title>Business Central integration: status</title>\n"
        f"<style>{STYLE}</style></head>\n<body>\n"
        "<header><h1>Business Central integration</h1>"
        f"<p>Status as of {_e(generated)}. Reload the page for fresh figures.</p></header>\n"
        f"<main>\n{''.join(sections)}</main>\n</body></html>"
    )


def _connection(
    status: ConnectionStatus | None,
    now: datetime,
    problems: Mapping[str, str],
    target: Target | None,
    many: bool = False,
) -> str:
    title = "Connection of the app settings" if many else "Connection"
    if status is None:
        return _section(title, _problem("connection", problems))
    body = _dl([*_connection_rows(status, now), *_target_rows(target), *_cached_token_note(status, now)])
    if sign_in_needed(status):
        body += _sign_in_action()
    return _section(title, body)


def _connections(views: Sequence[ConnectionView], now: datetime, problems: Mapping[str, str]) -> str:
    """One line per connection (only when there is more than the settings' one, or the registry failed)."""
    if not views:
        return (
            _section("Connections", _problem("connections", problems), wide=True)
            if "connections" in problems
            else ""
        )
    head = (
        "<tr><th>Connection</th><th>Health</th><th>Environment, company</th><th>Token expires</th>"
        "<th>BC throttle</th><th>Jobs, last hour</th><th>Jobs, last day</th><th>Last failure</th>"
        "<th>Next step</th></tr>\n"
    )
    rows = "".join(_connection_line(view, now) for view in views)
    note = (
        "<p class='note'>Each connection has its own token, health and BC budget (connections of one environment "
        "and app share a budget); jobs count by the connection they name, older jobs under the settings' one.</p>"
    )
    return _section(
        f"Connections ({len(views)})",
        f"<div class='scroll'><table>{head}{rows}</table></div>\n{note}",
        wide=True,
    )


def _connection_line(view: ConnectionView, now: datetime) -> str:
    status = view.status
    place = view.environment + (f", {view.company}" if view.company else "")
    cells = [
        f"<code>{_e(view.name)}</code>" + (" (app settings)" if view.from_settings else ""),
        _health_badge(view),
        _e(place),
        _e(_expiry(status.expires_on, now) if status is not None else "not known"),
        _e(_budget_use(view)),
        _e(_state_counts(view.jobs.hour)),
        _e(_state_counts(view.jobs.day)),
        _e(_latest_failure(view.failures)),
        _e(_line_next_step(view)),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>\n"


def _health_badge(view: ConnectionView) -> str:
    if not view.enabled:
        return "<span class='badge warn'>disabled</span>"
    if view.status is None:
        return "<span class='badge warn'>unknown</span>"
    health = view.status.health
    return f"<span class='badge {_BADGES.get(health, 'warn')}'>{_e(health.value)}</span>"


def _budget_use(view: ConnectionView) -> str:
    row = view.throttle
    if row is None:
        return "no instance has used it yet" if view.problem is None or "throttle" not in view.problem else ""
    paused = f"; paused until {_when(row.paused_until)}" if row.paused_until else ""
    return f"{row.members} instance(s) sharing it{paused}"


def _state_counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{counts[state]} {state}" for state in sorted(counts, key=_state_rank))


def _latest_failure(failures: Sequence[Failure]) -> str:
    if not failures:
        return "none in the last day"
    latest = failures[0]
    when = _when(latest.finished_at) if latest.finished_at else ""
    return f"{latest.job_id} {latest.state} {latest.code or ''} {when}".replace("  ", " ").strip()


def _line_next_step(view: ConnectionView) -> str:
    if not view.enabled:
        return f'enable it again: PUT /api/connections/{view.name} with "enabled": true'
    step = view.status.next_step if view.status is not None else None
    return "; ".join(part for part in (step, view.problem) if part) or "none"


def _connection_rows(status: ConnectionStatus, now: datetime) -> list[tuple[str, str]]:
    """The connection's facts as (label, escaped HTML) rows; error, retry time and next step only when known."""
    badge = f"<span class='badge {_BADGES.get(status.health, 'warn')}'>{_e(status.health.value)}</span>"
    rows = [
        ("Health", badge),
        ("Connection", _e(status.connection)),
        ("Mode", _e(_mode(status.mode))),
        ("Account", _e(_account(status))),
        ("Tenant", _e(status.tenant_id or "not known yet")),
        ("Token expires", _e(_expiry(status.expires_on, now))),
        ("Last refresh", _e(_when(status.last_refresh_at) if status.last_refresh_at else "none recorded")),
    ]
    if status.last_error_code:
        error = f"{status.last_error_code}: {status.last_error_message or ''}".strip().rstrip(":")
        at = f" ({_when(status.last_error_at)})" if status.last_error_at else ""
        rows.append(("Last error", _e(error + at)))
    if status.backoff_until:
        rows.append(("Next try", _e(_when(status.backoff_until))))
    if status.next_step:
        rows.append(("Next step", _e(status.next_step)))
    return rows


def _target_rows(target: Target | None) -> list[tuple[str, str]]:
    if target is None:
        return []
    company = target.company or "the environment's only company"
    return [("Environment", _e(target.environment)), ("Company", _e(company))]


def _cached_token_note(status: ConnectionStatus, now: datetime) -> list[tuple[str, str]]:
    """Re-authorization needed, yet the cached access token is still valid: jobs go on until it expires."""
    if (
        status.health is not Health.REAUTHORIZATION_REQUIRED
        or not status.expires_on
        or status.expires_on <= now
    ):
        return []
    note = (
        f"still served by the cached access token until it expires ({_expiry(status.expires_on, now)}); "
        "after that they wait, without failing, until an admin signs in again"
    )
    return [("Jobs", _e(note))]


def _sign_in_action() -> str:
    return (
        f"<form class='action' method='get' action='{SIGN_IN_ACTION}'>"
        "<input type='password' name='code' required autocomplete='off' aria-label='Host key' "
        "placeholder='Host key'><button type='submit'>Sign in to Business Central</button></form>"
        "<p class='note'>The sign-in needs a host key, valid for every function "
        f"(<code>{_e(KEY_COMMAND)}</code>); a key made only for this page is refused there.</p>"
        "<p class='note'>Sign in as the BC integration user; this page shows the result afterwards.</p>"
    )


def _jobs(counts: JobCounts | None, problems: Mapping[str, str]) -> str:
    if counts is None:
        return _section("Jobs", _problem("jobs", problems))
    states = sorted(set(counts.day) | set(counts.hour), key=_state_rank)
    if not states:
        return _section("Jobs", "<p>No job was received or changed in the last day.</p>")
    rows = "".join(
        f"<tr><td>{_e(state)}</td><td class='n'>{counts.hour.get(state, 0)}</td>"
        f"<td class='n'>{counts.day.get(state, 0)}</td></tr>\n"
        for state in states
    )
    total = (
        f"<tr><th>all</th><td class='n'>{sum(counts.hour.values())}</td>"
        f"<td class='n'>{sum(counts.day.values())}</td></tr>"
    )
    note = "<p class='note'>By the state each job is in now, among jobs changed in the period.</p>"
    if counts.truncated:
        note += "<p class='note'>More jobs changed than the page reads; the figures are a lower bound.</p>"
    table = f"<table><tr><th>State</th><th>Last hour</th><th>Last day</th></tr>\n{rows}{total}</table>\n"
    return _section("Jobs", table + note)


def _queues(readings: Sequence[QueueReading], now: datetime, problems: Mapping[str, str]) -> str:
    del now
    rows = "".join(
        f"<tr><td><code>{_e(r.name)}</code></td><td class='n'>{r.depth}</td>"
        f"<td>{_e(_age(r.oldest_age_seconds))}</td></tr>\n"
        for r in readings
    )
    missing = "".join(_problem(key, problems) for key in problems if key.startswith("queue "))
    poison = next((r for r in readings if r.name.endswith("-poison")), None)
    note = ""
    if poison is not None and poison.depth:
        note = (
            "<p class='note problem'>Messages are waiting in the poison queue: the poison handler records each "
            "as a dead-lettered job; if the count stays, see docs/operations.md (alert bc-jobs-poisoned).</p>"
        )
    table = (
        f"<table><tr><th>Queue</th><th>Messages</th><th>Oldest visible</th></tr>\n{rows}</table>\n"
        if rows
        else ""
    )
    return _section("Queues", table + missing + note)


def _throttle(usage: ThrottleUsage | None, problems: Mapping[str, str]) -> str:
    if usage is None:
        return _section("BC throttle", _problem("throttle", problems))
    window = f"{usage.window_seconds:g} s"
    rows = [
        (
            "Budget",
            _e(f"{usage.budget} requests per {window} ({usage.requests} less {usage.safety_margin:.0%})"),
        ),
        ("In flight", _e(f"at most {usage.max_in_flight} at a time, all instances together")),
        ("Instances sharing it", _e(str(usage.members) if usage.members is not None else "none active")),
        (
            "Sent by this instance",
            _e(f"{usage.sent_here} in the last {window} ({usage.throttled_here} got 429)"),
        ),
        (
            "Paused",
            _e(f"until {_when(usage.paused_until)} (BC's Retry-After)" if usage.paused_until else "no"),
        ),
    ]
    extra = _problem("throttle", problems) if "throttle" in problems else ""
    return _section("BC throttle", _dl(rows) + extra)


def _failures(failures: Sequence[Failure], known: bool, many: bool = False) -> str:
    if not known:
        return _section(
            "Latest failures", "<p>Not available (the jobs table could not be read).</p>", wide=True
        )
    if not failures:
        return _section("Latest failures", "<p>No job failed in the last day.</p>", wide=True)
    head = (
        "<tr><th>When</th><th>Job</th>"
        + ("<th>Connection</th>" if many else "")
        + "<th>State</th><th>Operation</th><th>Code</th><th>BC code</th>"
        "<th>HTTP</th><th>Request ids (for BC support)</th><th>Message</th></tr>\n"
    )
    rows = "".join(_failure_row(f, many) for f in failures)
    note = (
        "<p class='note'>The client request id is ours (header client-request-id); the BC request id is BC's. "
        "GET /api/jobs/{jobId} shows every request of a job.</p>"
    )
    return _section(
        "Latest failures", f"<div class='scroll'><table>{head}{rows}</table></div>\n{note}", wide=True
    )


def _failure_row(failure: Failure, many: bool = False) -> str:
    ids = "<br>".join(
        f"{label} <code>{_e(value)}</code>"
        for label, value in (("ours", failure.client_request_id), ("BC", failure.bc_request_id))
        if value
    )
    message = failure.message if len(failure.message) <= 160 else failure.message[:157] + "..."
    cells = [
        f"<span class='when'>{_e(_when(failure.finished_at) if failure.finished_at else '')}</span>",
        f"<code>{_e(failure.job_id)}</code>",
        *([_e(failure.connection or "(app settings)")] if many else []),
        _e(failure.state),
        _e(failure.operation),
        _e(failure.code or ""),
        _e(failure.bc_code or ""),
        _e(str(failure.status) if failure.status is not None else ""),
        ids,
        _e(message),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>\n"


def _change_feed(status: FeedStatus | None, now: datetime, problems: Mapping[str, str]) -> str:
    """BC webhook subscriptions per watch with their expiry, and each connection's use of BC's 200 (issue 22)."""
    if status is None:  # not read (collect), or unreadable (the problem says why)
        return (
            _section("Change feed", _problem("change feed", problems), wide=True)
            if problems.get("change feed")
            else ""
        )
    return _section("Change feed: BC subscriptions", feed_section_body(status, now), wide=True)


def _section(title: str, body: str, *, wide: bool = False) -> str:
    css = " class='wide'" if wide else ""
    return f"<section{css}><h2>{_e(title)}</h2>\n{body}</section>\n"


def _dl(rows: Iterable[tuple[str, str]]) -> str:
    return "<dl>\n" + "".join(f"<dt>{_e(name)}</dt><dd>{value}</dd>\n" for name, value in rows) + "</dl>\n"


def _problem(key: str, problems: Mapping[str, str]) -> str:
    reason = problems.get(key, "not available")
    return f"<p class='problem'>{_e(key[:1].upper() + key[1:])}: {_e(reason)}</p>"


def _state_rank(state: str) -> int:
    return _STATE_ORDER.index(state) if state in _STATE_ORDER else len(_STATE_ORDER)


def _account(status: ConnectionStatus) -> str:
    if status.account:
        return status.account
    if status.mode is AuthMode.CLIENT_CREDENTIALS:
        return "none: the app registration calls BC as itself"
    return "nobody has signed in yet"


def _mode(mode: AuthMode) -> str:
    if mode is AuthMode.DELEGATED:
        return "delegated (an admin signed in once; the refresh token is rotated)"
    return "client credentials (the app registration itself)"


def _expiry(expires_on: datetime | None, now: datetime) -> str:
    if expires_on is None:
        return "no token"
    minutes = int((expires_on - now).total_seconds() // 60)
    relative = f"in {minutes} min" if minutes >= 0 else f"expired {-minutes} min ago"
    return f"{_when(expires_on)} ({relative})"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none visible"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else ""


def _e(text: str) -> str:
    return html.escape(text, quote=True)
