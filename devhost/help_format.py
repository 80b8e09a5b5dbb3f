"""One `--help` style for the local tools (devhost, make dev, the demo, the soak): every option shows its default."""

from __future__ import annotations

import argparse


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None: the help says what unset means;
    a flag: off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required or action.default is False:
            return action.help
        return super()._get_help_string(action)
