"""Drawing for people: a reporter that writes progress to stderr (stdout stays clean for
``--output json``) and table helpers. rich is imported only here, and only when used."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from kservectl.events import Reporter
from kservectl.redact import Redactor


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


#: Output piped to a file or a program: lines as long as their content (a URL or an ARN split
#: across lines is no use to grep), unless COLUMNS says otherwise.
PIPED_WIDTH = 400


def stdout_console():
    import os

    from rich.console import Console

    # Never truncate ids or ARNs: soft-wrap instead of cropping, also when not a terminal.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH
    return Console(highlight=False, soft_wrap=True, width=width)


class ConsoleReporter(Reporter):
    """Progress on stderr. Every line goes through ``redactor`` (the context's: it knows the
    secrets the phases generated, and masks what looks like a credential)."""

    def __init__(self, quiet: bool = False, redactor: Redactor | None = None) -> None:
        self.quiet = quiet
        self.redactor = redactor or Redactor()
        self._console = None
        self._last_wait: tuple[str, str] | None = None

    @property
    def console(self):
        if self._console is None:
            self._console = stderr_console()
        return self._console

    def _print(self, text: str, style: str | None = None) -> None:
        if self.quiet:
            return
        self.console.print(self.redactor.text(text), style=style, markup=False)

    def info(self, message: str) -> None:
        self._print(message)

    def warn(self, message: str) -> None:
        message = self.redactor.text(message)
        if self._console is None and not sys.stderr.isatty():
            print(f"Warning: {message}", file=sys.stderr)
            return
        self.console.print(f"Warning: {message}", style="yellow", markup=False)

    def step(self, phase: str, message: str) -> None:
        self._print(f"[{phase}] {message}", style="bold")

    def waiting(self, what: str, detail: str) -> None:
        if self._last_wait == (what, detail):
            return
        self._last_wait = (what, detail)
        self._print(f"  waiting for {what}: {detail}", style="cyan")

    def tool_line(self, tool: str, stream: str, line: str) -> None:
        self._print(f"  {tool}| {line}", style="dim")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    # Text, not str: rich would read "[min-max]" or a "[bold]" in a value as markup.
    t = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        t.add_column(Text(column), overflow="fold")
    for row in rows:
        t.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    stdout_console().print(t)
