"""Key Vault reads and token-endpoint calls per access-token lifetime, measured on live worker processes.

Three worker processes, delegated mode (the admin signs in through the HTTP endpoints), a deep queue of GET jobs,
and the sandbox issuing access tokens that live 300 s + 10 s: the product never uses a token with less than five
minutes left, so every token is usable for about 10 s and a 50-second run sees several lifetimes. Refreshes are
`refresh_token` grants (the Key Vault credential's own tokens are `client_credentials` grants, counted apart).
Lifetimes in the run = 1 (the sign-in's token, usable from the start) + the refresh_token grants.
"""

from __future__ import annotations

import time
from typing import Any

from bench.world import BenchWorld, requests_by_status, unique_prefix
from localworld.sign_in import sign_in

MIN_VALIDITY_SECONDS = 300  # shared.tokens.DEFAULT_MIN_VALIDITY


def token_lifetimes(
    world: BenchWorld, processes: int = 3, usable_seconds: float = 10.0, run_seconds: float = 50.0
) -> dict[str, Any]:
    """Run, then divide the sandbox's counters by the lifetimes that passed."""
    world.reset(rate_limit=400, window_seconds=20, latency_ms=20, jitter_ms=20)
    prefix = unique_prefix("l")
    settings = world.app_settings(
        prefix,
        proxied=False,
        BC_AUTH_MODE="delegated",
        BC_RATE_LIMIT_REQUESTS="400",
        BC_RATE_LIMIT_WINDOW_SECONDS="20",
        BC_RATE_SAFETY_MARGIN="0.03",
        BC_JOB_AUTHORIZATION_RECHECK_SECONDS="5",
    )
    with world.instances(settings, processes) as pool:
        world.sandbox.admin("/entra/token-lifetime", {"seconds": MIN_VALIDITY_SECONDS + usable_seconds})
        sign_in(pool.base_url, pool.function_key, world.sandbox.env["LOCAL_CA_BUNDLE"])
        before = world.sandbox.stats()
        world.enqueue(world.get_jobs(int(20 * (run_seconds + 20)), prefix))
        time.sleep(run_seconds)
        after = world.sandbox.stats()
    reads = int(after["vault"]["reads"]) - int(before["vault"]["reads"])
    writes = int(after["vault"]["writes"]) - int(before["vault"]["writes"])
    grants = {
        k: int(v) - int(before["entra"]["token_calls"].get(k, 0))
        for k, v in after["entra"]["token_calls"].items()
    }
    lifetimes = 1 + grants.get("refresh_token", 0)  # the sign-in's token, then one per refresh
    return {
        "processes": processes,
        "token_usable_seconds": usable_seconds,
        "run_seconds": run_seconds,
        "lifetimes": lifetimes,
        "key_vault_reads": reads,
        "key_vault_writes": writes,
        "key_vault_reads_per_lifetime_per_process": round(reads / lifetimes / processes, 2),
        "token_endpoint_calls": grants,
        "bc_statuses": dict(sorted(requests_by_status(after).items())),
    }
