"""Moved to testkit/auth_stores.py (shared with bench/). This re-export keeps tests/*/auth importing until their
rewrite imports testkit.auth_stores directly; delete it then (nothing else imports it)."""

from testkit.auth_stores import MemoryRecordStore, MemoryTokenStore

__all__ = ["MemoryRecordStore", "MemoryTokenStore"]
