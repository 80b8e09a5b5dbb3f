"""The Function app: applies the logging policy, checks the settings once, creates the app and registers the
Blueprints; `close_services` lets a local host close the SDK clients on shutdown."""

import azure.functions as func

from shared.logging_setup import configure_logging
from shared.settings import log_settings_problems, telemetry_settings
from shared.telemetry import configure_telemetry
from shared.triggers import (
    admin_page,
    auth_http,
    change_timers,
    changes_expansion,
    changes_http,  # change feed (issue 22): feed
    changes_receiver,
    connections_http,
    connections_onboarding,
    health_check,
    jobs_queue,
    jobs_status,
    jobs_submit,
    telemetry_sample,
    token_refresh,
    watches_http,
)

configure_logging()  # before any function runs: every log record is redacted at creation
# Azure Monitor, once, only when APPLICATIONINSIGHTS_CONNECTION_STRING is set (read before, and whatever becomes of,
# the other settings: the cold-start check's ERROR is exported too)
configure_telemetry(telemetry_settings().connection_string)
log_settings_problems()  # cold start: one ERROR naming each bad setting and its fix (health says degraded)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health_check.bp)
app.register_functions(auth_http.bp)
app.register_functions(token_refresh.bp)
app.register_functions(jobs_queue.bp)
app.register_functions(jobs_status.bp)
app.register_functions(jobs_submit.bp)
app.register_functions(admin_page.bp)
app.register_functions(telemetry_sample.bp)
app.register_functions(connections_http.bp)  # connections registry API (issue 21)
app.register_functions(connections_onboarding.bp)  # consent, check, sign-in of a connection (issue 21)
app.register_functions(changes_http.bp)  # change feed (issue 22): GET /api/changes
# The change feed's receiver and expansion (issue 22, `receiver`)
app.register_functions(changes_receiver.bp)
app.register_functions(changes_expansion.bp)
# -- change feed: watches, subscription manager, reconciliation (issue 22, subs) --
app.register_functions(change_timers.bp)
app.register_functions(watches_http.bp)
# -- end change feed (subs) --


async def close_services() -> None:
    """Close the running loop's SDK clients (devhost awaits this before its loop ends; jobs first, they use auth)."""
    # imported here, not at the top: `import function_app` (the host's indexing at every cold start) stays light
    from shared.auth import close_auth_services
    from shared.changes.compose import close_change_services  # change feed (issue 22): feed
    from shared.changes.directories import close_change_directories
    from shared.changes.inbound import close_receiver_services
    from shared.connections.compose import close_registry_services
    from shared.jobs import close_front_door, close_job_services
    from shared.jobs.connections_admin import close_connections_admin

    await close_front_door()
    await close_receiver_services()  # the change feed's receiver queue (issue 22)
    await close_connections_admin()  # connections registry API (issue 21)
    await close_change_directories()  # change feed stores (issue 22, subs): they use auth's Key Vault
    await close_job_services()
    await close_change_services()  # change feed (issue 22)
    await close_registry_services()  # after the jobs and the connections API, which use it
    await close_auth_services()
