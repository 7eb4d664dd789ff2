"""How the layers below the CLI report progress without printing: they call a ``Reporter``.

The CLI supplies one that draws on the terminal (rich, stderr); tests use ``RecordingReporter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Reporter:
    """Receives progress. The base class ignores everything."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def step(self, phase: str, message: str) -> None:
        pass

    def waiting(self, what: str, detail: str) -> None:
        pass

    def tool_line(self, tool: str, stream: str, line: str) -> None:
        pass


@dataclass
class RecordingReporter(Reporter):
    events: list[tuple[str, str]] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.events.append(("info", message))

    def warn(self, message: str) -> None:
        self.events.append(("warn", message))

    def step(self, phase: str, message: str) -> None:
        self.events.append(("step", f"{phase}: {message}"))

    def waiting(self, what: str, detail: str) -> None:
        self.events.append(("waiting", f"{what}: {detail}"))

    def tool_line(self, tool: str, stream: str, line: str) -> None:
        self.events.append(("tool", f"{tool} {stream}: {line}"))

    def messages(self, kind: str) -> list[str]:
        return [message for k, message in self.events if k == kind]
