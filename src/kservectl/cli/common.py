"""Shared options, context building, output formats and error handling for every command."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kservectl.errors import Aborted, KservectlError


class Output(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class Provider(enum.StrEnum):
    eks = "eks"
    local = "local"


ClusterOpt = Annotated[
    str | None,
    typer.Option("--cluster", "-c", help="Cluster name [config cluster.name, env KSERVECTL_CLUSTER].",
                 show_default=False),
]
RegionOpt = Annotated[
    str | None,
    typer.Option("--region", "-r", help="AWS region [config cluster.region, env KSERVECTL_REGION].",
                 show_default=False),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file [env KSERVECTL_CONFIG; default ./kservectl.yaml].",
                 show_default=False, dir_okay=False),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would change; change nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ProviderOpt = Annotated[
    Provider | None,
    typer.Option("--provider", "-p", help="Where the platform runs [config provider; default eks].",
                 show_default=False),
]


class KservectlGroup(TyperGroup):
    """Turns project errors into one line on stderr and their exit code (2 for bad input)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KservectlError as exc:
            fail(exc)
        except KeyboardInterrupt:
            fail(Aborted("interrupted; the state is resumable, run the command again to continue"))


def fail(exc: KservectlError) -> None:
    typer.echo(f"Error: {exc.one_line()}", err=True)
    raise typer.Exit(exc.exit_code)


def make_context(
    *,
    cluster: str | None = None,
    region: str | None = None,
    config: Path | None = None,
    provider: Provider | None = None,
    dry_run: bool = False,
    command: str = "kservectl",
    flags: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    quiet: bool = False,
):
    """Load and validate the config (flags > env > file > defaults) and build the Context."""
    from kservectl import config as config_mod
    from kservectl.context import Context

    all_flags: dict[str, Any] = {"cluster.name": cluster, "cluster.region": region,
                                 "provider": provider.value if provider else None}
    all_flags.update(flags or {})
    names = {"cluster.name": "--cluster", "cluster.region": "--region", "provider": "--provider"}
    names.update(flag_names or {})
    loaded = config_mod.load(config_path=config, env=os.environ, flags=all_flags, flag_names=names)
    from kservectl.cli.console import ConsoleReporter

    reporter = ConsoleReporter(quiet=quiet)
    ctx = Context(config=loaded.config, dry_run=dry_run, command=command, reporter=reporter)
    reporter.redactor = ctx.redactor
    return ctx, loaded


def emit(data: Any, output: Output, table: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON or YAML on stdout, or call ``table`` to draw it for people."""
    if output is Output.json:
        typer.echo(json.dumps(data, indent=2, default=str))
    elif output is Output.yaml:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    elif table is not None:
        table()
    else:
        typer.echo(json.dumps(data, indent=2, default=str))


def confirm(question: str, yes: bool) -> None:
    """Ask before destroying anything; ``--yes`` answers for scripts. No terminal: refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        from kservectl.errors import UsageError

        raise UsageError(f"{question.rstrip('?')} needs confirmation and there is no terminal to ask",
                         hint="re-run with --yes")
    if not typer.confirm(question, default=False, err=True):
        raise Aborted("nothing was changed")


def add_status_command(app: typer.Typer, group: str, phase: str, help: str,
                       draw: Callable[[dict[str, Any]], None]) -> None:
    """Register ``<group> status``: the phase's read-only ``status(ctx)``, printed as data or drawn.

    Every group's status verb has this shape; ``phase`` names the module under
    ``kservectl.phases`` (imported when the command runs, so ``--help`` stays fast).
    """

    def status(
        cluster: ClusterOpt = None,
        region: RegionOpt = None,
        config: ConfigOpt = None,
        output: OutputOpt = Output.table,
    ) -> None:
        import importlib

        module = importlib.import_module(f"kservectl.phases.{phase}")
        ctx, _ = make_context(cluster=cluster, region=region, config=config, command=f"{group} status", quiet=True)
        data = module.status(ctx)
        emit(data, output, table=lambda: draw(data))

    status.__doc__ = help
    app.command("status")(status)
