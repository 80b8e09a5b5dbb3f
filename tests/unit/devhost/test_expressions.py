"""%SETTING% binding expressions."""

from __future__ import annotations

import pytest

from devhost.errors import ConfigError
from devhost.expressions import resolve_settings


def test_whole_and_embedded_references_are_resolved() -> None:
    """%NAME% is replaced wherever it appears; text without one is unchanged."""
    settings = {"SCHEDULE": "0 */5 * * * *", "ENV": "dev"}
    assert resolve_settings("%SCHEDULE%", settings) == "0 */5 * * * *"
    assert resolve_settings("bc-jobs-%ENV%", settings) == "bc-jobs-dev"
    assert resolve_settings("bc-jobs", settings) == "bc-jobs"


def test_unset_or_empty_setting_is_an_error_naming_it() -> None:
    """An unresolved reference raises ConfigError naming the setting, as the host fails the function."""
    with pytest.raises(ConfigError, match="MISSING_SCHEDULE"):
        resolve_settings("%MISSING_SCHEDULE%", {})
    with pytest.raises(ConfigError, match="EMPTY"):
        resolve_settings("%EMPTY%", {"EMPTY": ""})
