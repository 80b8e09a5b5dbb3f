"""Local-only tooling: run function_app.py without the Functions host, start Azurite, run the demo."""
