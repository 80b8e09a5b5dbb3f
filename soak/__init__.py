"""The chaos soak: the product under load, faults and restarts on the local world, measured end to end.

`python -m soak` (`make soak`) runs several devhost worker processes of function_app.py against a file-backed
Azurite and an in-process sandbox, sends thousands of jobs of every operation (5 % of them twice, some through
the HTTP front door, some malformed or already past their deadline), and meanwhile injects BC faults, a Key
Vault outage, an Entra outage, a worker SIGKILL, an Azurite restart, a BC outage and tokens that die at BC. It
checks invariants while it runs and prints one JSON line of figures at the end. `tests/integration/reliability`
runs a 60-second version and sweeps everything it produced for secrets.
"""
