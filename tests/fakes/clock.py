"""Moved to testkit/clock.py (shared with bench/). This re-export keeps tests/*/auth importing until their
rewrite imports testkit.clock directly; delete it then (nothing else imports it)."""

from testkit.clock import START, ManualClock, ShiftedClock, VirtualClock

__all__ = ["START", "ManualClock", "ShiftedClock", "VirtualClock"]
