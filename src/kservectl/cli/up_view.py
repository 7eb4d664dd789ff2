"""How ``kservectl up`` draws for people: a thin renderer of ``phases.up.Event`` records.

On a terminal, one rich ``Live`` view on stderr: a row per task with its state, elapsed time and
current step, and below it the last lines of the tool output of the task that spoke last.
Elsewhere (a pipe, CI, ``--output json``), plain lines on stderr: each task's start, steps,
retries, warnings and end; tool output stays in the log file. Afterwards: the summary table of
timings, the URLs, the monthly cost, or the failure with the command that resumes.
rich is imported only here.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import typer

SYMBOLS = {"pending": "·", "running": "…", "done": "✓", "failed": "✗", "interrupted": "■",
           "not started": "-", "excluded": "skipped"}
TAIL_LINES = 5


@dataclass
class _Row:
    name: str
    phase: str
    describe: str
    state: str = "pending"
    started: float | None = None
    ended: float | None = None
    step: str = ""
    attempt: int = 1

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended or now) - self.started


@dataclass
class UpView:
    """A listener for ``up.run``; use as a context manager around the run."""

    tasks: Sequence[Any]  # up.Task (name, phase, describe); all of them, chosen or not
    chosen: set[str]
    live: bool | None = None  # None: a rich Live view when stderr is a terminal
    rows: dict[str, _Row] = field(default_factory=dict)
    tails: dict[str, deque[str]] = field(default_factory=dict)  # per task: its last tool output lines
    tail_task: str = ""  # the task that spoke last
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _live: Any = None
    _console: Any = None

    def __post_init__(self) -> None:
        for t in self.tasks:
            self.rows[t.name] = _Row(t.name, t.phase, t.describe,
                                     state="pending" if t.name in self.chosen else "excluded")
        if self.live is None:
            self.live = sys.stderr.isatty()

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> UpView:
        from kservectl.cli.console import stderr_console

        self._console = stderr_console()
        if self.live:
            from rich.live import Live

            self._live = Live(console=self._console, get_renderable=self.render, refresh_per_second=4,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    # -- events ------------------------------------------------------------------------------------
    def __call__(self, event: Any) -> None:
        now = time.monotonic()
        with self._lock:
            row = self.rows.get(event.task)
            if row is None:
                return
            kind = event.kind
            if kind == "start":
                row.state, row.started, row.ended = "running", now, None
            elif kind == "step":
                row.step = event.text
            elif kind == "retry":
                row.attempt = event.attempt
                row.step = f"retrying: {event.text}"
            elif kind in ("done", "failed", "interrupted", "not started"):
                row.state = kind
                row.ended = now if row.started is not None else None
            elif kind == "line":
                self.tails.setdefault(event.task, deque(maxlen=TAIL_LINES)).append(event.text)
                self.tail_task = event.task
            elif kind == "wait":
                row.step = event.text
        if not self.live:
            self._plain(event)

    def _plain(self, event: Any) -> None:
        kind, task, text = event.kind, event.task, event.text
        line = {
            "start": f"[{task}] started: {text}",
            "step": f"[{task}] {text}",
            "retry": f"[{task}] transient failure: {text}",
            "warn": f"[{task}] warning: {text}",
            "done": f"[{task}] done in {text}",
            "failed": f"[{task}] FAILED: {text}",
            "interrupted": f"[{task}] interrupted",
        }.get(kind)
        if line is not None:
            self._console.print(line, markup=False, highlight=False)

    # -- drawing -----------------------------------------------------------------------------------
    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("", "phase", "state", "time", "current step"):
            table.add_column(column, overflow="ellipsis", no_wrap=True)
        with self._lock:
            rows = list(self.rows.values())
            speaker = self.tail_task
            tail = list(self.tails.get(speaker, ()))
        for row in rows:
            elapsed = row.elapsed(now)
            state = row.state + (f" (attempt {row.attempt})" if row.attempt > 1 and row.state == "running" else "")
            style = {"done": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}.get(row.state)
            table.add_row(SYMBOLS.get(row.state, ""), row.name, Text(state, style=style or ""),
                          _duration(elapsed) if elapsed is not None else "",
                          Text(row.step[:110] if row.state == "running" else "", style="dim"))
        parts: list[Any] = [table]
        if tail:
            parts.append(Text(f"\n{speaker} output:", style="bold"))
            parts.extend(Text("  " + line[:160], style="dim") for line in tail)
        return Group(*parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


# -- after the run -----------------------------------------------------------------------------------
def draw_summary(data: dict[str, Any]) -> None:
    from kservectl.cli.console import table

    timing = data["timing"]
    table("kservectl up: phase timings", ["task", "phase", "state", "time", "attempts", "needs"],
          [(t["task"], t["phase"], t["state"], _duration(t["elapsed_s"]) if t["elapsed_s"] is not None else "-",
            t["attempts"] or "-", ", ".join(t["needs"]) or "-") for t in data["tasks"]])
    chain = " → ".join(timing["critical_path"]) or "-"
    typer.echo(f"wall time {_duration(timing['wall_s'])}; one phase after another would take "
               f"{_duration(timing['sequential_s'])}; critical path {_duration(timing['critical_path_s'] or 0)} "
               f"({chain})")


def draw_urls(urls: dict[str, Any] | None) -> None:
    if not urls:
        return
    if "error" in urls:
        typer.echo(f"\nURLs: not readable ({urls['error']}); try `kservectl url`")
        return
    gateway = urls.get("gateway") or {}
    typer.echo(f"\ngateway (Kourier NLB): {gateway.get('hostname') or 'no load balancer address yet'}")
    m = urls.get("mlflow") or {}
    if m.get("url"):
        typer.echo(f"MLflow: {m['url']}")
    elif m.get("port_forward"):
        typer.echo(f"MLflow: private; run `{m['port_forward']}`, then open {m['port_forward_url']}")
    for s in urls.get("services") or []:
        typer.echo(f"model {s['name']}: {s.get('v2_infer_url') or s.get('url') or 'no URL yet'}"
                   + (f" (Host: {s['host_header']})" if s.get("host_header") else ""))
        if s.get("curl_v2"):
            typer.echo(f"  {s['curl_v2']}")


def draw_cost(cost: dict[str, Any] | None, what: str = "what now runs") -> None:
    """The monthly total and one line per priced item (``up``: what exists, read from AWS)."""
    if not cost:
        return
    total = cost["total"]
    marked = " (includes estimates: the price table has no figures for this region)" if cost["estimate"] else ""
    typer.echo(f"\nestimated cost of {what}: ${total['monthly']:.2f}/month, ${total['daily']:.2f}/day, "
               f"${total['hourly']:.4f}/hour{marked}; prices as of {cost['prices_as_of']}")
    for note in cost.get("notes") or []:
        typer.echo(f"  note: {note}")
    for item in cost["items"]:
        amount = "price unknown" if item["monthly"] is None else f"${item['monthly']:.2f}/month"
        quantity = f" x {item['quantity']:g}" if item["quantity"] != 1 else ""
        detail = f" ({item['detail']})" if item.get("detail") else ""
        typer.echo(f"  {item['resource']}{quantity}: {amount}{detail}")
    typer.echo("  not included: traffic-dependent charges (NLCU, NAT data, logs, S3, data transfer)")


def draw_failure(data: dict[str, Any]) -> None:
    """The failed phase, its step, the last tool output, the log and the resume command (stderr)."""
    f = data["failure"]
    if f is None:
        return
    err = typer.get_text_stream("stderr")
    what = "was interrupted" if data["interrupted"] else "failed"
    lines = [f"\nup {what} in phase {f['phase']} (task {f['task']})"
             + (f" at step: {f['step']}" if f.get("step") else "")]
    if f.get("error"):
        lines.append(f"  error: {f['error']}")
    for other in f.get("others") or []:
        lines.append(f"  also {other['state']}: {other['task']}: {other['error']}")
    if f.get("tool_output"):
        lines.append("  last tool output:")
        lines += [f"    {line if len(line) <= 200 else line[:197] + '...'}" for line in f["tool_output"]]
    lines.append(f"  log: {f['log']}")
    lines.append(f"  resume with: {f['resume']}")
    err.write("\n".join(lines) + "\n")


def draw_diff(rows: list[dict[str, str]], cost: dict[str, Any] | None = None) -> None:
    from kservectl.cli.console import table

    table("what exists already", ["phase", "resource", "action", "detail"],
          [(r["phase"], r["resource"], r["action"], r.get("detail", "")) for r in rows])
    counts = {a: sum(1 for r in rows if r["action"] == a) for a in ("create", "change", "keep", "unknown")}
    typer.echo(", ".join(f"{n} to {a}" if a in ("create", "change") else f"{n} {a}"
                         for a, n in counts.items() if n))


def draw_costs(cost: dict[str, Any]) -> None:
    """Per resource, per hour, day and month; each price's source and date as a numbered note;
    ``*`` marks a price taken from another region's figure."""
    from kservectl.cli.console import table

    def money(value: float | None, digits: int = 2) -> str:
        return "unknown" if value is None else f"${value:.{digits}f}"

    def cited(item: dict[str, Any]) -> str:
        return f"{item['source']} ({item['date']})"

    sources: dict[str, int] = {}
    for item in cost["items"]:
        sources.setdefault(cited(item), len(sources) + 1)
    table(f"estimated cost in {cost['region']} ({cost['currency']}, price table of {cost['prices_as_of']})",
          ["resource", "qty", "per hour", "per day", "per month", "source"],
          [(i["resource"] + ("*" if i["estimate"] else ""), f"{i['quantity']:g}", money(i["hourly"], 4),
            money(i["daily"]), money(i["monthly"]), f"[{sources[cited(i)]}]") for i in cost["items"]])
    total = cost["total"]
    typer.echo(f"total: ${total['hourly']:.4f}/hour, ${total['daily']:.2f}/day, ${total['monthly']:.2f}/month"
               + (" (estimate)" if cost["estimate"] else ""))
    if cost["estimate"]:
        typer.echo(f"* estimate: the price table has no figure for {cost['region']}; its us-east-1 price is used")
    for text, number in sources.items():
        typer.echo(f"[{number}] {text}")
    if cost.get("unknown"):
        typer.echo(f"not priced (not in the table): {', '.join(cost['unknown'])}")
    typer.echo("not included: " + "; ".join(cost["not_included"]))
