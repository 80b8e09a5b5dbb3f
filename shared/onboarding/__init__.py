"""Onboarding a connection: the admin-consent link and its callback, the per-connection sign-in link, and the
check that names the fix of the first thing that stops the connection from running jobs (docs/operations.md,
"Connecting a customer's environment").

    consent   Entra's admin-consent URL, its one-time state, Entra's answer
    check     ConnectionCheck: token -> environment -> BC accepts the token -> company -> a read
    probe     the check's BC requests (ClientProbe)
    service   Onboarding: the above wired to the process's auth services and registry
"""
