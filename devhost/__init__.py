"""The local Functions host: runs function_app.py without Core Tools, as Flex Consumption would (`python -m
devhost`); its HTTP routes, timers, queue triggers and worker processes."""
