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
        from kservectl.cli.pending import not_available

        not_available("status --provider eks", "the one-command platform work (up/plan/cleanup)")
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
