"""SandboxConfig defaults follow BC's documented limits; the time scale compresses them; the CLI maps onto it."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from sandbox.__main__ import config_from, parse_args


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


def test_custom_apis_default_to_one_and_must_be_publisher_group_version() -> None:
    """contoso/app/v1.0 is served by default; an entry that is not publisher/group/version is refused."""
    assert SandboxConfig().bc_custom_apis == ("contoso/app/v1.0",)
    assert SandboxConfig(bc_custom_apis=("fabrikam/sales/beta",)).bc_custom_apis == ("fabrikam/sales/beta",)
    for bad in ("v1.0", "contoso/app", "contoso/app/1.0", "contoso/app/v1.0/extra", "con toso/app/v1.0"):
        with pytest.raises(ValueError, match="publisher/group/version"):
            SandboxConfig(bc_custom_apis=(bad,))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ("contoso/app/v1.0",)),
        (
            ["--bc-custom-api", "fabrikam/sales/v2.0", "--bc-custom-api", "contoso/app/v1.0"],
            ("fabrikam/sales/v2.0", "contoso/app/v1.0"),
        ),
        (["--bc-custom-api", ""], ()),
    ],
)
def test_cli_custom_apis_replace_the_default(argv: list[str], expected: tuple[str, ...]) -> None:
    """--bc-custom-api is repeatable and replaces the default; an empty value serves none."""
    config = config_from(parse_args(["--write-env", "x.env", *argv]))
    assert config.bc_custom_apis == expected


def test_cli_sets_the_webhook_debounce_and_collection_threshold() -> None:
    args = ["--write-env", "x.env", "--bc-webhook-delay-seconds", "2", "--bc-webhook-max-notifications", "50"]
    config = config_from(parse_args(args))
    assert (config.bc_webhook_delay_seconds, config.bc_webhook_max_notifications) == (2.0, 50)
