"""Deterministic GUIDs and secrets from the sandbox's seeded random generator."""

from __future__ import annotations

import random
import string
import uuid


def guid(rng: random.Random) -> str:
    """A version-4-shaped GUID drawn from `rng` (the same seed gives the same ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def secret(rng: random.Random, length: int = 40) -> str:
    """A client-secret-shaped string (Entra secrets use letters, digits and ~._-)."""
    alphabet = string.ascii_letters + string.digits + "~._-"
    return "".join(rng.choice(alphabet) for _ in range(length))
