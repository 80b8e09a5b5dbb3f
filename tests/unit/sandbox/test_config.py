"""SandboxConfig defaults follow BC's documented limits; the time scale compresses them."""

from __future__ import annotations

from sandbox import SandboxConfig


def test_defaults_are_bcs_documented_limits() -> None:
    """6,000 requests per 5 minutes, 5 in flight, 95 queued, 8-minute queue timeout, 100 operations per batch."""
    config = SandboxConfig()
    assert (config.bc_rate_limit, config.bc_effective_window_seconds) == (6000, 300)
    assert (config.bc_max_in_flight, config.bc_max_queue, config.bc_effective_queue_timeout_seconds) == (
        5,
        95,
        480,
    )
    assert config.bc_max_batch_operations == 100


def test_time_scale_compresses_window_and_queue_timeout() -> None:
    """A time scale of 60 turns BC's 5-minute window into 5 seconds and the 8-minute queue timeout into 8."""
    config = SandboxConfig(bc_time_scale=60)
    assert config.bc_effective_window_seconds == 5
    assert config.bc_effective_queue_timeout_seconds == 8
