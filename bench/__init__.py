"""Benchmarks that print figures as JSON; never pass/fail tests."""
