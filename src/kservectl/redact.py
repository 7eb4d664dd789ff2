"""Secrets never reach a terminal, a log, a rendered file or an error message.

``Redactor`` masks values it was told about (a generated password) and values that look like
credentials (AWS access keys, ``password=...``, bearer tokens, URL user-info passwords).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "<redacted>"

_CREDENTIAL_WORD = r"(?:password|passwd|secret|token|api[_-]?key|access[_-]key)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + MASK),
    # key=value (flags, env, query strings): any key naming a credential, any value
    (re.compile(r"(?i)\b([\w.-]*" + _CREDENTIAL_WORD + r"[\w.-]*)(\"?\s*=\s*\"?)(?!<redacted>)([^\s\"',;&]+)"),
     r"\1\2" + MASK),
    # key: value (YAML, JSON, logs): a snake/kebab-case key ending in a credential word and a value
    # shaped like one (8+ characters with a digit or symbol), so that "ExpiredToken: The security
    # token ..." or "perform: secretsmanager:GetSecretValue" stay readable
    (re.compile(r"(?<![\w.-])([a-z0-9_.-]*" + _CREDENTIAL_WORD + r")(\"?\s*:\s*\"?)(?!<redacted>)"
                r"(?=[^\s\"',;]*[\d+/=_!@#$%^&*-])([^\s\"',;]{8,})"), r"\1\2" + MASK),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + MASK + "@"),
)

_SECRET_FLAGS = frozenset(
    {"--password", "--token", "--aws-secret-access-key", "--secret", "--client-secret", "--admin-password"}
)


def scrub(text: str) -> str:
    """Mask what looks like a credential (no list of known secrets needed)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Mask this exact value wherever it appears (ignores values too short to be secrets)."""
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return scrub(text)

    def argv(self, argv: Iterable[str]) -> list[str]:
        out: list[str] = []
        hide_next = False
        for item in argv:
            if hide_next:
                out.append(MASK)
                hide_next = False
                continue
            flag, eq, _ = item.partition("=")
            if flag in _SECRET_FLAGS:
                if eq:
                    out.append(f"{flag}={MASK}")
                else:
                    out.append(item)
                    hide_next = True
                continue
            out.append(self.text(item))
        return out
