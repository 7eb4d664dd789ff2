"""Tables for the local provider's commands."""

from __future__ import annotations

import typer

from kservectl.cli.console import table


def draw_up(cluster: str, result) -> None:
    did = ", ".join(result.actions) if result.actions else "nothing to do: everything was already running"
    typer.echo(f"Local platform {cluster!r}: {did}.")
    typer.echo(f"MLflow tracking server: {result.tracking_uri}")
    for m in result.models:  # plain lines: URLs are copied, never folded or cut
        typer.echo(f"Model {m['name']} ({m['model_uri']}):")
        typer.echo(f"  V2:          {m['v2_infer']}")
        typer.echo(f"  invocations: {m['invocations']}")
    report = result.report
    if report is not None:
        table(f"kservectl test {report.target.model}", ["check", "HTTP", "latency ms", "rows → predictions", "result"],
              [(c.name, c.status or "-", f"{c.latency_ms:.1f}" if c.latency_ms is not None else "-",
                f"{c.rows_sent} → {c.predictions}" if c.rows_sent is not None else "-",
                "ok" if c.ok else ("skipped" if c.skipped else f"FAIL {c.detail}")) for c in report.checks])
        typer.echo(report.verdict())
    typer.echo(f"Stop everything with: {_program()} cleanup --provider local --cluster {cluster} --yes")


def _program() -> str:
    """How the user ran kservectl (`.venv/bin/kservectl` from `make demo`), so the hint pastes as is."""
    import os
    import sys

    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "kservectl"
    return argv0 if os.sep in argv0 and not os.path.isabs(argv0) else "kservectl"
