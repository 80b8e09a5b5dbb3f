"""Settings precedence and exporting settings to the process environment (and back)."""

from __future__ import annotations

import uuid

import pytest

from devhost.environment import (
    EnvironmentOverlay,
    merge_settings,
    process_environment,
    worker_environment,
)


def test_environment_wins_over_the_settings_file() -> None:
    """A key in both takes the environment's value; keys in one only are kept."""
    merged = merge_settings({"A": "file", "B": "file"}, {"B": "env", "C": "env"})
    assert merged == {"A": "file", "B": "env", "C": "env"}


def test_overlay_exports_then_restores() -> None:
    """apply() sets the variables; restore() removes added ones and leaves the environment as it was."""
    name = f"DEVHOST_TEST_{uuid.uuid4().hex.upper()}"
    overlay = EnvironmentOverlay({name: "value"})
    overlay.apply()
    assert process_environment()[name] == "value"
    overlay.restore()
    assert name not in process_environment()


def test_worker_environment_is_the_settings_plus_what_a_process_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker sees the app settings and PATH, not the rest of devhost's own environment."""
    monkeypatch.setenv("DEVHOST_TEST_NOT_A_SETTING", "x")
    environment = worker_environment({"BC_ENVIRONMENT": "sandbox", "PATH": "/from/settings"})
    assert environment["BC_ENVIRONMENT"] == "sandbox"
    assert environment["PATH"] == "/from/settings"  # a setting wins over devhost's own
    assert "DEVHOST_TEST_NOT_A_SETTING" not in environment
    assert worker_environment({})["PATH"] == process_environment()["PATH"]
