"""Jittered exponential backoff: one formula for every package; each package declares its own numbers."""

from __future__ import annotations

import random
from typing import Literal

_RNG = random.Random()  # noqa: S311 -- backoff jitter, not security


def exponential_backoff(
    attempt: int,
    base: float,
    cap: float,
    *,
    factor: float = 2.0,
    jitter: float = 0.0,
    spread: Literal["below", "around"] = "below",
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failure number `attempt` (1-based), never above `cap` nor below zero.

    nominal = min(cap, base * factor ** (attempt - 1)), u uniform in [0, 1), jitter a share 0..1:
      spread "below":  nominal * (1 - jitter * u)          -- only ever shortens (jitter 1 = "full jitter")
      spread "around": nominal * (1 + jitter * (2u - 1))   -- +-jitter around nominal, then capped
    """
    nominal = min(cap, base * factor ** max(0, attempt - 1))
    u = (rng if rng is not None else _RNG).random()
    shift = -u if spread == "below" else 2.0 * u - 1.0
    delay = nominal * (1.0 + jitter * shift)
    return max(0.0, min(cap, delay))
