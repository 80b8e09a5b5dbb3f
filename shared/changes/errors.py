"""The change feed's errors (rooted at shared.errors.IntegrationError).

IntegrationError
└── ChangeFeedError
    └── ChangeLogUnavailableError   the change log table or the bc-changes queue failed (retry later)
"""

from __future__ import annotations

from shared.errors import IntegrationError


class ChangeFeedError(IntegrationError):
    """Something the change feed could not do."""


class ChangeLogUnavailableError(ChangeFeedError):
    """Storage (the change log table, the echoes table or the bc-changes queue) failed; `cause` is the SDK error's
    type name. The caller's message is delivered again, and the publish repeats without a second id."""

    def __init__(self, operation: str, cause: str) -> None:
        self.cause = cause
        super().__init__(f"change log: {operation} failed ({cause}); storage trouble, retried on redelivery")
