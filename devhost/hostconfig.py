"""host.json, the parts devhost honours: extensions.queues, extensions.http.routePrefix, functionTimeout.

Defaults follow the queue-trigger docs (learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue
#host-json): batchSize 16 (1..32), newBatchThreshold batchSize/2 on one core, maxDequeueCount 5,
visibilityTimeout 0, maxPollingInterval 1 min (at least 100 ms), messageEncoding base64.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from devhost.errors import ConfigError

# .NET TimeSpan text as host.json writes it: [d.]hh:mm:ss[.fffffff]
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d{1,7})?)$")


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET TimeSpan string such as "00:00:30" or "1.02:00:00.5"; raise ValueError otherwise."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"not a TimeSpan (expected [d.]hh:mm:ss): {text!r}")
    return timedelta(
        days=int(match["days"] or 0),
        hours=int(match["h"]),
        minutes=int(match["m"]),
        seconds=float(match["s"]),
    )


def _timespan(value: Any) -> Any:
    return parse_timespan(value) if isinstance(value, str) else value


TimeSpan = Annotated[timedelta, BeforeValidator(_timespan)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class QueueOptions(_Section):
    """extensions.queues: how queue triggers poll, run in parallel and give up."""

    batch_size: int = Field(default=16, alias="batchSize", ge=1, le=32)
    new_batch_threshold_setting: int | None = Field(default=None, alias="newBatchThreshold", ge=0)
    max_dequeue_count: int = Field(default=5, alias="maxDequeueCount", ge=1)
    visibility_timeout: TimeSpan = Field(default=timedelta(0), alias="visibilityTimeout")
    max_polling_interval: TimeSpan = Field(
        default=timedelta(minutes=1), alias="maxPollingInterval", ge=timedelta(milliseconds=100)
    )
    message_encoding: Literal["base64", "none"] = Field(default="base64", alias="messageEncoding")

    @property
    def new_batch_threshold(self) -> int:
        """The configured threshold, or batchSize/2 (the host's default with one vCPU, as on Consumption)."""
        if self.new_batch_threshold_setting is not None:
            return self.new_batch_threshold_setting
        return self.batch_size // 2


class HttpOptions(_Section):
    """extensions.http."""

    route_prefix: str = Field(default="api", alias="routePrefix")


class Extensions(_Section):
    """extensions."""

    queues: QueueOptions = QueueOptions()
    http: HttpOptions = HttpOptions()


class HostConfig(_Section):
    """The whole of host.json that devhost reads."""

    extensions: Extensions = Extensions()
    function_timeout: TimeSpan | None = Field(default=None, alias="functionTimeout")

    @property
    def queues(self) -> QueueOptions:
        """Shortcut to extensions.queues."""
        return self.extensions.queues

    @property
    def route_prefix(self) -> str:
        """extensions.http.routePrefix without surrounding slashes ("" serves routes at the root)."""
        return self.extensions.http.route_prefix.strip("/")


def parse_host_config(text: str, source: str = "host.json") -> HostConfig:
    """Validate host.json text; a bad value raises ConfigError naming the key."""
    try:
        data = json.loads(text)
        return HostConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_host_config(path: Path) -> HostConfig:
    """Read host.json from path; a missing file means all defaults."""
    if not path.exists():
        return HostConfig()
    return parse_host_config(path.read_text(encoding="utf-8"), str(path))
