"""`bcjobs`: send BC jobs and follow them from a terminal or a script (`python -m bcjobs`, or the `bcjobs` script).

    bcjobs enqueue a.json b.jsonl      JSON (an object or an array) or JSONL; a progress bar; every bad line reported
    bcjobs show JOB_ID                 state, attempts, result, error with BC's code, the BC requests as a table
    bcjobs show JOB_ID --all-items     a large batch: every item's outcome (the job row keeps only the first failing)
    bcjobs list --state failed --since 2h
    bcjobs wait JOB_ID --timeout 600
    bcjobs results --follow
    bcjobs results --peek              print what is on bc-results without taking it off
    bcjobs enqueue a.json --connection fabrikam     jobs that name no connection run on `fabrikam`
    bcjobs list --connection fabrikam
    bcjobs connections list            the BC connections (through the Function app: --api-url, --function-key)
    bcjobs connections put fabrikam --tenant-id fabrikam.onmicrosoft.com --environment production \
        --client-id GUID --client-secret-stdin < secret.txt
    bcjobs connections show fabrikam | bcjobs connections delete fabrikam
    bcjobs changes --connection contoso --entity-set customers --follow    BC's changes, from the change log
    bcjobs watches put customers --connection fabrikam --entity-set customers --include-data
    bcjobs watches list --connection fabrikam | bcjobs watches delete customers --connection fabrikam

Storage: `--connection-string` / env `JobsStorage`, or `--queue-service-uri` + `--table-service-uri` (env
`JobsStorage__queueServiceUri`, `JobsStorage__tableServiceUri`) with DefaultAzureCredential; `--table-prefix` /
env `BC_TABLE_PREFIX`. Human-readable output by default; `--json` prints JSON for scripts.

Exit codes: 0 done (wait: the job succeeded) · 1 done, but not everything went well (enqueue: some jobs rejected
or not sent; wait: the job ended failed, rejected, expired or dead-lettered) · 2 usage error (bad option, unreadable
file, no storage configured) · 3 storage unreachable or refused (network, credential, role, missing queue or table)
· 4 no such job (show) · 5 wait timed out · 130 interrupted.

The package: `commands` (the Typer app and its five job commands), `connection_commands` (`bcjobs connections`,
which talks to the Function app's /api/connections rather than to storage), `change_commands` (`bcjobs changes`,
the change log through /api/changes), `storage` (the storage options, declared once, and
the client they build), `render` (all rich and JSON output), `durations` (`--since`), `exits` (exit codes).
"""

from bcjobs.cli.commands import app
from bcjobs.cli.exits import ExitCode

__all__ = ["ExitCode", "app", "main"]


def main() -> None:
    """Console entry point (`bcjobs`, `python -m bcjobs`)."""
    app()
