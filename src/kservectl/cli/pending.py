"""Commands that exist in the CLI but whose behaviour has not been built yet. They say so and
exit 3; nothing pretends to succeed."""

from __future__ import annotations

from kservectl.errors import NotAvailableYet


def not_available(command: str, arrives_with: str) -> None:
    raise NotAvailableYet(f"`kservectl {command}` is not available yet", hint=f"it arrives with {arrives_with}")
