"""Doubles and worker commands shared by tests/ and bench/; never imported by the product.

`tests/` and `bench/` may both import this package, but not each other; `shared/` and `bcjobs/` never import it
(tests/unit/core/test_boundaries.py checks all four rules).
"""
