"""One home for every default: a policy the settings feed has no default of its own for a value a setting gives it,
so each number is written once, in shared/settings/model.py.

Why this form rather than "each policy's defaults equal the settings' defaults": equal copies still mean two places
to change and two numbers for a reader to trust, and a test that keeps them equal only reports drift after the fact.
A policy field without a default cannot drift, and mypy refuses a policy built without the settings' numbers. Which
fields a setting feeds is found, not listed: each numeric setting is changed alone and the policies built again, so a
setting wired into a policy later is checked too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING

import pytest

from shared.bc.factory import throttle_config_from_settings
from shared.jobs.deadletter import PoisonRetry
from shared.jobs.policy import JobPolicy
from shared.settings import InvalidSettingsError, Settings, load_settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Build = Callable[[Settings], "DataclassInstance"]

# Every policy built from the settings, by the function the app builds it with.
POLICIES: dict[str, Build] = {
    "JobPolicy": lambda settings: JobPolicy.from_settings(settings.jobs),
    "PoisonRetry": lambda settings: PoisonRetry.from_settings(settings.jobs),
    "ThrottleConfig": throttle_config_from_settings,
}


def numeric_settings() -> Iterator[tuple[str, int | float]]:
    """Each numeric setting (its environment name) with its default."""
    defaults = load_settings({})
    for group_name in Settings.model_fields:
        group = getattr(defaults, group_name)
        for name, field in type(group).model_fields.items():
            value = getattr(group, name)
            if field.alias and isinstance(value, int | float) and not isinstance(value, bool):
                yield field.alias, value


def variants() -> Iterator[Settings]:
    """The default settings with one numeric setting changed (a hundredth, half, double: whichever is valid)."""
    for alias, value in numeric_settings():
        for candidate in (value / 100, value / 2, value * 2):
            changed = int(candidate) if isinstance(value, int) else candidate
            if changed == value:
                continue
            try:
                yield load_settings({alias: str(changed)})
            except InvalidSettingsError:
                continue


def fed_fields(build: Build) -> set[str]:
    """The fields of the policy `build` makes that change when some setting changes."""
    baseline = build(load_settings({}))
    return {
        field.name
        for settings in variants()
        for field in fields(baseline)
        if getattr(build(settings), field.name) != getattr(baseline, field.name)
    }


def repeated_defaults(name: str, build: Build) -> list[str]:
    """`name.field` for each field a setting feeds that also has a default of its own (a default written twice)."""
    own = {field.name: field for field in fields(build(load_settings({})))}
    return sorted(
        f"{name}.{field}"
        for field in fed_fields(build)
        if own[field].default is not MISSING or own[field].default_factory is not MISSING
    )


@pytest.mark.parametrize(("name", "build"), POLICIES.items(), ids=POLICIES)
def test_no_policy_repeats_a_default_of_the_settings(name: str, build: Build) -> None:
    """A value a setting gives a policy has its default in the settings only; the policy is fed by some setting."""
    assert fed_fields(build)
    assert repeated_defaults(name, build) == []


@dataclass(frozen=True, kw_only=True)
class _Repeating:
    max_attempts: int = 8
    tries: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> _Repeating:
        return cls(max_attempts=settings.jobs.max_attempts)


def test_the_check_finds_a_default_written_twice() -> None:
    """Self-test: a policy repeating BC_JOB_MAX_ATTEMPTS's default is caught; its own constant is not."""
    assert repeated_defaults("_Repeating", _Repeating.from_settings) == ["_Repeating.max_attempts"]
