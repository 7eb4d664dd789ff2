"""Project error types.

Every failure that crosses a layer boundary is one of these; library exceptions are wrapped
with their cause chained (``raise X(...) from exc``). The CLI turns them into one line on
stderr and the exit code they carry. Nothing here prints or exits. A message never carries a
credential: what looks like one (a URL's password, an access key) is masked when it is made.
"""

from __future__ import annotations

from collections.abc import Sequence

from kservectl.redact import scrub


class KservectlError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; ``hint`` is the next step."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Messages often quote a library's error, which may quote a URL with its password.
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def hint(self) -> str | None:
        return self._hint

    @hint.setter
    def hint(self, value: str | None) -> None:  # also when a caller adds a hint later
        self._hint = scrub(value) if value else value

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class UsageError(KservectlError):
    """Bad input from the user: exit 2, and nothing was created or called."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value is invalid. Names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, *, source: str | None = None) -> None:
        shown = repr(value)
        where = f" (from {source})" if source else ""
        super().__init__(f"{field}={shown}{where} is invalid: {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed


class ToolMissingError(UsageError):
    """A required external tool (eksctl, helm, kubectl) is missing or too old."""


class ExtraMissingError(UsageError):
    """An optional Python extra is not installed."""


class ToolError(KservectlError):
    """An external tool failed. Carries argv, exit code and the tail of its stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stderr_tail: Sequence[str],
        *,
        transient: bool = False,
        log_path: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail)
        self.transient = transient
        self.log_path = log_path
        last = self.stderr_tail[-1].strip() if self.stderr_tail else "no output"
        what = reason or f"exited with code {returncode}"
        message = f"`{' '.join(self.argv)}` {what}: {last}"
        super().__init__(message, hint=f"full output in {log_path}" if log_path else None)


class ToolTimeout(ToolError):
    """An external tool ran past its timeout and was stopped."""


class AwsError(KservectlError):
    """An AWS API call failed permanently (after the configured retries)."""

    def __init__(self, operation: str, code: str, message: str, *, hint: str | None = None) -> None:
        self.operation = operation
        self.code = code
        super().__init__(f"AWS {operation} failed with {code}: {message}", hint=hint)


class KubeError(KservectlError):
    """A Kubernetes API call failed."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        self.status = status
        super().__init__(message, hint=hint)


class WaitTimeout(KservectlError):
    """A wait ran past its deadline. ``pending`` explains what was still not ready."""

    def __init__(self, what: str, timeout_s: float, pending: Sequence[str]) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.pending = list(pending)
        detail = "; ".join(self.pending) if self.pending else "no status reported"
        super().__init__(f"timed out after {timeout_s:g}s waiting for {what}: {detail}")


class Aborted(KservectlError):
    """The user declined a confirmation, or pressed Ctrl-C."""

    exit_code = 130
