"""The secrets sweep: nothing the soak produced may hold a token, a secret, a PKCE verifier or an auth code.

Evidence is text by source (worker log lines, this process's log records, every Table row, every queue message,
every HTTP answer). It is searched for the exact values the run handed around (the client secret, every access
and refresh token Key Vault ever held for the connection, the sign-in's authorization code and PKCE verifier)
and for their shapes (any JWT; the sandbox's refresh-token and code formats), so a token the run never saw by
value is caught too. Findings name the kind and the source, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SHAPES = {
    "a JWT (access or ID token)": re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\."),
    "a refresh token (sandbox format)": re.compile(r"0\.A[A-Za-z0-9_-]{100,}"),
    "an authorization code (sandbox format)": re.compile(r"1\.A[A-Za-z0-9_-]{100,}"),
}
MIN_SECRET_LENGTH = 8  # shorter values would match by chance


@dataclass
class Evidence:
    """Texts by source."""

    sources: dict[str, list[str]] = field(default_factory=dict)

    def add(self, source: str, texts: Iterable[str]) -> None:
        self.sources.setdefault(source, []).extend(texts)

    def counts(self) -> dict[str, int]:
        return {source: len(texts) for source, texts in self.sources.items()}


def token_secrets(token_sets: Iterable[str]) -> dict[str, str]:
    """Name -> value of every token in Key Vault token-set versions (JSON objects)."""
    found: dict[str, str] = {}
    for n, text in enumerate(sorted(set(token_sets))):
        try:
            value = json.loads(text)
        except ValueError:
            found[f"token set #{n} (not JSON)"] = text
            continue
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            if "token" in key.lower() and isinstance(item, str) and item:
                found[f"{key} of token set #{n}"] = item
    return found


def sweep(evidence: Evidence, secrets: dict[str, str]) -> list[str]:
    """Descriptions of every secret value or secret shape found, by source (never the value)."""
    wanted = {name: value for name, value in secrets.items() if len(value) >= MIN_SECRET_LENGTH}
    findings: list[str] = []
    for source, texts in sorted(evidence.sources.items()):
        whole = "\n\x00\n".join(texts)
        findings += [f"{name} in {source}" for name, value in sorted(wanted.items()) if value in whole]
        findings += [f"{shape} in {source}" for shape, pattern in SHAPES.items() if pattern.search(whole)]
    return findings
