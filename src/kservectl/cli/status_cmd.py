from __future__ import annotations

import typer

from kservectl.cli.common import ClusterOpt, ConfigOpt, Output, OutputOpt, ProviderOpt, RegionOpt, emit, make_context


def command(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show the whole platform's state; exit 1 when something is not ready."""
    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="status",
                          quiet=output is not Output.table)
    if ctx.config.provider != "local":
        _eks(ctx, output)
        return
    from kservectl.local import platform

    data = platform.status(ctx)

    def draw() -> None:
        from kservectl.cli.console import table

        if not data["components"]:
            typer.echo(f"Nothing runs for {ctx.cluster!r} on this machine (start it with `kservectl up -p local`).")
            return
        table(f"local platform {ctx.cluster!r} ({data['state_dir']})", ["component", "pid", "port", "ready", "url"],
              [(c["component"], c["pid"], c["port"], "yes" if c["ready"] else "NO", c["url"])
               for c in data["components"]])

    emit(data, output, table=draw)
    if not data["ready"]:
        raise typer.Exit(1)


def _eks(ctx, output: Output) -> None:
    """One table of the whole platform on EKS (phases/platform_status.py); exit 1 unless all is ready."""
    from kservectl.phases import platform_status

    ctx.reporter.quiet = True  # the table says it all: no progress, no tool output (warnings still show)
    data = platform_status.status(ctx)

    def draw() -> None:
        from kservectl.cli.console import table

        table(f"platform {ctx.cluster!r} in {ctx.region}", ["component", "version", "ready", "details"],
              [(r["component"], r["version"], "yes" if r["ready"] else "NO", r["detail"]) for r in data["components"]])
        for note in data["notes"]:
            typer.echo(f"note: {note}")
        not_ready = [r["component"] for r in data["components"] if not r["ready"]]
        typer.echo("Everything is ready." if not not_ready else f"Not ready: {', '.join(not_ready)}.")

    emit(data, output, table=draw)
    if not data["ready"]:
        raise typer.Exit(1)
