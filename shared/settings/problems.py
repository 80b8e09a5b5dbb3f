"""What a bad setting is, told to an admin: `SettingProblem` (the setting, what is wrong, how to fix it), the
`Impact` it has, and `InvalidSettingsError` carrying them. Both loading (shared/settings/model.py) and the
cold-start checks (shared/settings/checks.py) report in these terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.errors import SettingsError


class Impact(StrEnum):
    """What a setting problem breaks (functions that need it answer 500 naming it)."""

    TOKENS = "tokens"  # the token lifecycle: every auth route, the timer, the job pipeline
    SIGN_IN = "sign_in"  # GET /api/auth/login (delegated mode)
    STORAGE = "storage"  # Table and queue storage
    BC = "bc"  # calls to Business Central
    APP = "app"  # the whole app (a value that could not be read at all)


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One bad or missing setting: its name, what is wrong, how to fix it. Never holds a setting's value."""

    setting: str
    problem: str
    fix: str
    impact: Impact = Impact.APP

    def __str__(self) -> str:
        return f"{self.setting} {self.problem}: {self.fix}"


class InvalidSettingsError(SettingsError):
    """Settings the app cannot work with; `problems` names each setting and its fix."""

    def __init__(self, problems: Sequence[SettingProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings: " + "; ".join(str(problem) for problem in self.problems))

    @property
    def settings(self) -> list[str]:
        """The names of the bad settings, in order, without repeats."""
        return list(dict.fromkeys(problem.setting for problem in self.problems))
