"""What the demo's steps share: its options, the context they hand on and the error a failing step raises."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from localworld.azurite import AzuriteEndpoints
from localworld.errors import WorldError

if TYPE_CHECKING:
    from rich.console import Console

    from demo.workload import Company, Expectation, Workload
    from localworld.instances import InstancePool
    from localworld.proxy import CountingProxy
    from localworld.sandbox import SandboxProcess


class DemoError(WorldError):
    """A demo step failed; the message says what was expected and what happened."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How big the run is and how the world behaves (`python -m demo --help`)."""

    jobs: int = 300  # distinct jobs sent through the app client (duplicates and invalid messages come on top)
    workers: int = 2  # devhost processes running function_app.py
    mode: Literal["delegated", "s2s"] = "delegated"
    # S2S only: `federated` deploys no client secret; the sandbox's app registration has none either and trusts the
    # site's user-assigned identity as its federated credential (docs/operations.md, "No secret").
    credential: Literal["secret", "federated"] = "secret"
    seed: int = 1
    timeout_seconds: float = 150.0  # for every job to reach a terminal state once sent
    progress: bool = True  # live progress bar (only on a terminal)
    keep: bool = False  # leave Azurite up at the end to inspect the jobs with the CLI
    bc_latency_ms: float = 20.0
    bc_latency_jitter_ms: float = 30.0
    token_lifetime_seconds: int = 3600
    # Faults of the main run (shares of BC requests); one ambiguous write and one token expiry come on top.
    rate_429: float = 0.03
    rate_503: float = 0.01
    rate_504: float = 0.005
    rate_drop: float = 0.005
    retry_after_seconds: int = 1
    bc_webhook_delay_seconds: float = 2.0  # BC's debounce before it notifies (30 s in BC), short for the demo

    def sandbox_flags(self) -> list[str]:
        """`python -m sandbox` flags for this run."""
        return [
            "--seed",
            str(self.seed),
            "--token-lifetime",
            str(self.token_lifetime_seconds),
            "--bc-latency-ms",
            str(self.bc_latency_ms),
            "--bc-latency-jitter-ms",
            str(self.bc_latency_jitter_ms),
            *(["--federated-app", "0"] if self.credential == "federated" else []),
            "--bc-webhook-delay-seconds",
            str(self.bc_webhook_delay_seconds),
        ]

    def fault_rates(self) -> dict[str, Any]:
        """The body of the sandbox's /bc/faults for the main run."""
        return {
            "rate_429": self.rate_429,
            "rate_503": self.rate_503,
            "rate_504": self.rate_504,
            "rate_drop": self.rate_drop,
            "retry_after_seconds": self.retry_after_seconds,
        }


@dataclass
class DemoContext:
    """What the steps hand on to each other."""

    cleanup: ExitStack
    options: DemoOptions = field(default_factory=DemoOptions)
    out: Callable[[str], None] = print  # the transcript
    console: Console | None = None  # where live progress goes (None: no live display)
    azurite: AzuriteEndpoints | None = None
    sandbox: SandboxProcess | None = None
    workers: InstancePool | None = None
    proxies: tuple[CountingProxy, CountingProxy] | None = None  # queue, table
    log_dir: Path | None = None
    failed: bool = False  # a step failed: the workers' logs are kept (demo.steps._keep_logs)
    base_url: str = ""
    function_key: str = field(default="", repr=False)
    sandbox_env: dict[str, str] = field(default_factory=dict, repr=False)
    # The app settings the workers run function_app.py with.
    app_environment: dict[str, str] = field(default_factory=dict, repr=False)
    company: Company | None = None  # what discovery found
    discovery_expectations: list[Expectation] = field(default_factory=list)  # the draft invoices
    workload: Workload | None = None
    sent_at: dict[str, datetime] = field(default_factory=dict)  # job id -> when the client sent it first
    stats_before: dict[str, Any] = field(default_factory=dict)  # sandbox counters when the main run began
    stats_run: dict[str, Any] = field(default_factory=dict)  # ... when the main run began
    token_runs_out: float = 0.0  # monotonic time at which the token passes the product's minimum validity
    token_writes: int = (
        0  # Key Vault writes right after the admin's refresh (a later one: the workers refreshed)
    )
    stats_after: dict[str, Any] = field(default_factory=dict)  # ... and when every job was final
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # the jobs Table at the end, by job id
    run_seconds: float = 0.0
    events: list[str] = field(default_factory=list)  # what happened during the run (faults, token expiry)
    figures: dict[str, Any] = field(default_factory=dict)  # the summary; printed as a table and one JSON line
    feed: Any = None  # demo.feed.FeedConsumer once the admin watches customers
    checks: list[str] = field(default_factory=list)  # checks that passed
    problems: list[str] = field(default_factory=list)  # checks that failed

    def storage_options(self) -> dict[str, Any]:
        """SDK options for the demo's own storage clients (the app's and the checker's, which keep Azurite's
        connection string: they are not the deployed app): trust the sandbox CA when Azurite serves HTTPS."""
        if self.azurite is not None and self.azurite.scheme == "https":
            return {"connection_verify": self.sandbox_env["LOCAL_CA_BUNDLE"]}
        return {}

    def discovery_ids(self) -> list[str]:
        """Job ids of the discovery lists and the invoice creates (sent before the main run)."""
        return [e.job_id for e in self.discovery_expectations] + [
            job_id for job_id in self.sent_at if job_id.startswith("demo-discover-")
        ]
