"""host.json parsing: extensions.queues defaults and validation, routePrefix, TimeSpans."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from devhost.errors import ConfigError
from devhost.hostconfig import parse_host_config, parse_timespan


def test_defaults_follow_the_queue_trigger_docs() -> None:
    """Without extensions.queues: batch 16, threshold 8, 5 tries, no retry delay, 1 min polling, base64, /api."""
    config = parse_host_config('{"version": "2.0"}')
    queues = config.queues
    assert (queues.batch_size, queues.new_batch_threshold, queues.max_dequeue_count) == (16, 8, 5)
    assert queues.visibility_timeout == timedelta(0)
    assert queues.max_polling_interval == timedelta(minutes=1)
    assert queues.message_encoding == "base64"
    assert config.route_prefix == "api"
    assert config.function_timeout is None


def test_configured_values_are_read() -> None:
    """The product's host.json values come through, TimeSpans included."""
    text = json.dumps(
        {
            "functionTimeout": "00:10:00",
            "extensions": {
                "http": {"routePrefix": ""},
                "queues": {
                    "batchSize": 4,
                    "newBatchThreshold": 2,
                    "maxDequeueCount": 5,
                    "visibilityTimeout": "00:00:30",
                    "maxPollingInterval": "00:00:10",
                    "messageEncoding": "none",
                },
            },
        }
    )
    config = parse_host_config(text)
    assert (config.queues.batch_size, config.queues.new_batch_threshold) == (4, 2)
    assert config.queues.visibility_timeout == timedelta(seconds=30)
    assert config.queues.message_encoding == "none"
    assert config.route_prefix == ""
    assert config.function_timeout == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("queues", "complaint"),
    [
        ({"batchSize": 64}, "batchSize"),
        ({"maxPollingInterval": "00:00:00.05"}, "maxPollingInterval"),
        ({"messageEncoding": "utf8"}, "messageEncoding"),
        ({"visibilityTimeout": "thirty seconds"}, "visibilityTimeout"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_key(queues: dict[str, object], complaint: str) -> None:
    """batchSize > 32, polling under 100 ms, unknown encodings and bad TimeSpans are ConfigErrors."""
    with pytest.raises(ConfigError, match=complaint):
        parse_host_config(json.dumps({"extensions": {"queues": queues}}))


def test_timespan_formats() -> None:
    """hh:mm:ss, fractions and a day part parse; other text does not."""
    assert parse_timespan("00:00:00.5") == timedelta(milliseconds=500)
    assert parse_timespan("1.02:03:04") == timedelta(days=1, hours=2, minutes=3, seconds=4)
    with pytest.raises(ValueError, match="TimeSpan"):
        parse_timespan("30s")
