"""The timers' log lines: usage per connection, and the two alerts (no live subscription, reconciliation behind)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from shared.changes.reconcile import WatchRun
from shared.changes.subscription_manager import ConnectionRun
from shared.changes.upkeep import Outcome
from shared.triggers.change_timers import RECONCILE_BEHIND, _log_reconciled, _log_subscriptions


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, str(vars(r).get("event"))) for r in caplog.records]


def test_a_watch_left_without_a_subscription_is_an_error_event(caplog: pytest.LogCaptureFixture) -> None:
    run = ConnectionRun("contoso", created=1, failures=("watch 'items': limit",), ours=1, total=200,
                        unsubscribed=("items",))  # fmt: skip
    with caplog.at_level(logging.INFO):
        _log_subscriptions(Outcome("contoso", "subscriptions", result=run))

    assert (logging.ERROR, "changes.watch_unsubscribed") in events(caplog)
    usage = next(r for r in caplog.records if vars(r).get("event") == "changes.subscriptions")
    assert (vars(usage)["ours"], vars(usage)["total"], vars(usage)["limit"]) == (1, 200, 200)


def test_a_reconciliation_after_a_long_gap_is_an_error_event(caplog: pytest.LogCaptureFixture) -> None:
    late = WatchRun("contoso", "customers", since_last=RECONCILE_BEHIND + timedelta(minutes=1))
    on_time = WatchRun("contoso", "customers", since_last=timedelta(minutes=15))
    with caplog.at_level(logging.INFO):
        _log_reconciled(Outcome("contoso", "customers", result=late))
        _log_reconciled(Outcome("contoso", "customers", result=on_time))

    assert events(caplog).count((logging.ERROR, "changes.reconcile_behind")) == 1
    assert events(caplog).count((logging.INFO, "changes.reconciled")) == 2


def test_a_failed_connection_is_an_error_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        _log_subscriptions(Outcome("contoso", "subscriptions", error="BC is down"))
    assert events(caplog) == [(logging.ERROR, "changes.subscriptions_failed")]
