"""A worker process for the concurrency test: N concurrent token() calls once its parent says "go".

Run as `python -m tests.integration.auth.token_child N` with the app's settings in the environment. Prints
"ready" once its services are built, waits for a line on stdin, then prints one JSON line: how many calls
succeeded, the error class names, and short SHA-256 fingerprints of the tokens (never a token).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

from shared.auth import auth_services, close_auth_services


async def main(callers: int) -> None:
    """Build the services, signal readiness, wait for go, call token() concurrently, report."""
    services = await auth_services()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    results = await asyncio.gather(
        *(services.manager.token() for _ in range(callers)), return_exceptions=True
    )
    tokens = [r for r in results if not isinstance(r, BaseException)]
    report = {
        "ok": len(tokens),
        "errors": sorted({type(r).__name__ for r in results if isinstance(r, BaseException)}),
        "fingerprints": sorted({hashlib.sha256(t.value.encode()).hexdigest()[:16] for t in tokens}),
    }
    print(json.dumps(report), flush=True)
    await close_auth_services()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
