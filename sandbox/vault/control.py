"""Key Vault state (secrets with versions, soft-deleted secrets), knobs and counters; reachable as `sandbox.vault`."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field

from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig


@dataclass(slots=True)
class SecretVersion:
    """One version of a secret."""

    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    created: int
    updated: int

    def __repr__(self) -> str:
        return f"SecretVersion(version={self.version!r}, value='***')"


@dataclass(slots=True)
class StoredSecret:
    """All versions of a secret (oldest first) and, when soft-deleted, when."""

    versions: list[SecretVersion] = field(default_factory=list)
    deleted_at: int | None = None


class VaultControl:
    """Knobs and counters of the sandbox Key Vault, plus the secret store its endpoints use."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed + 2)
        self.secrets: dict[str, StoredSecret] = {}
        self.outage = False
        self.throttle_rate = 0.0
        self.retry_after_seconds = config.vault_retry_after_seconds
        self._throttle_next = 0
        self.reads = 0
        self.writes = 0
        self.responses: Counter[int] = Counter()
        self.callers: Counter[str] = Counter()  # authenticated requests by the token's appid (client id)

    # --- knobs -------------------------------------------------------------------------------------------
    def throttle_next(self, count: int = 1, retry_after_seconds: int | None = None) -> None:
        """Answer the next `count` authenticated requests with 429 (Retry-After per config)."""
        with self._lock:
            self._throttle_next += count
            if retry_after_seconds is not None:
                self.retry_after_seconds = retry_after_seconds

    def peek(self, name: str) -> str | None:
        """The current value of a secret without going through HTTP (None if absent or deleted)."""
        with self._lock:
            stored = self.secrets.get(name)
            if stored is None or stored.deleted_at is not None or not stored.versions:
                return None
            return stored.versions[-1].value

    def reset(self) -> None:
        """Clear secrets, knobs and counters."""
        with self._lock:
            self.secrets.clear()
            self.outage = False
            self.throttle_rate = 0.0
            self.retry_after_seconds = self._config.vault_retry_after_seconds
            self._throttle_next = 0
            self.reads = 0
            self.writes = 0
            self.responses.clear()
            self.callers.clear()

    def snapshot(self) -> dict[str, object]:
        """Counters and knobs as JSON for the admin endpoint."""
        with self._lock:
            return {
                "reads": self.reads,
                "writes": self.writes,
                "responses": {str(k): v for k, v in self.responses.items()},
                "callers": dict(self.callers),
                "outage": self.outage,
                "throttle_rate": self.throttle_rate,
                "secrets": sorted(name for name, s in self.secrets.items() if s.deleted_at is None),
            }

    # --- used by the endpoints -------------------------------------------------------------------------------
    def should_throttle(self) -> bool:
        """Whether this request gets a 429 (knob `throttle_next` first, then `throttle_rate`)."""
        with self._lock:
            if self._throttle_next > 0:
                self._throttle_next -= 1
                return True
            return self.throttle_rate > 0 and self._rng.random() < self.throttle_rate

    def count(self, write: bool, caller: str = "") -> None:
        """Count an authenticated request that reached the store, and who made it (the token's client id)."""
        with self._lock:
            self.callers[caller] += 1
            if write:
                self.writes += 1
            else:
                self.reads += 1

    def count_response(self, status: int) -> None:
        """Count a response by status."""
        with self._lock:
            self.responses[status] += 1

    def set_secret(
        self, name: str, value: str, content_type: str | None, tags: dict[str, str] | None, enabled: bool
    ) -> SecretVersion | None:
        """Add a version; None when the name is soft-deleted (Key Vault answers 409)."""
        now = int(self._clock.now())
        with self._lock:
            stored = self.secrets.setdefault(name, StoredSecret())
            if stored.deleted_at is not None:
                return None
            version = SecretVersion(
                uuid.UUID(int=self._rng.getrandbits(128)).hex, value, content_type, tags, enabled, now, now
            )
            stored.versions.append(version)
            return version

    def get_version(self, name: str, version: str | None) -> SecretVersion | None:
        """A version (latest when None) of a live secret."""
        with self._lock:
            stored = self.secrets.get(name)
            if stored is None or stored.deleted_at is not None or not stored.versions:
                return None
            if not version:
                return stored.versions[-1]
            return next((v for v in stored.versions if v.version == version), None)

    def live(self, name: str) -> StoredSecret | None:
        """A secret that is not deleted."""
        with self._lock:
            stored = self.secrets.get(name)
            return stored if stored is not None and stored.deleted_at is None else None

    def deleted(self, name: str) -> StoredSecret | None:
        """A soft-deleted secret."""
        with self._lock:
            stored = self.secrets.get(name)
            return stored if stored is not None and stored.deleted_at is not None else None

    def delete(self, name: str) -> StoredSecret | None:
        """Soft-delete a secret."""
        with self._lock:
            stored = self.secrets.get(name)
            if stored is None or stored.deleted_at is not None:
                return None
            stored.deleted_at = int(self._clock.now())
            return stored

    def purge(self, name: str) -> bool:
        """Remove a soft-deleted secret for good."""
        with self._lock:
            stored = self.secrets.get(name)
            if stored is None or stored.deleted_at is None:
                return False
            del self.secrets[name]
            return True

    def recover(self, name: str) -> StoredSecret | None:
        """Undo a soft delete."""
        with self._lock:
            stored = self.secrets.get(name)
            if stored is None or stored.deleted_at is None:
                return None
            stored.deleted_at = None
            return stored

    def names(self) -> list[str]:
        """Names of live secrets, sorted."""
        with self._lock:
            return sorted(name for name, s in self.secrets.items() if s.deleted_at is None)
