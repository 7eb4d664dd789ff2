from __future__ import annotations

import typer

from kservectl.cli.common import (
    ClusterOpt,
    ConfigOpt,
    Output,
    OutputOpt,
    ProviderOpt,
    RegionOpt,
    emit,
    make_context,
)


def command(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create the whole platform, phase by phase; a second run changes nothing.

    With --provider local: an MLflow tracking server, the example model (or model.uri) trained,
    registered and served by MLServer on this machine, then tested over V2 and /invocations.
    """
    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="up",
                          quiet=output is not Output.table)
    if ctx.config.provider != "local":
        from kservectl.cli.pending import not_available

        not_available("up --provider eks", "the one-command platform work (up/plan/cleanup)")
    from kservectl.local import platform

    result = platform.up(ctx)
    data = {"provider": "local", "cluster": ctx.cluster, "tracking_uri": result.tracking_uri,
            "actions": result.actions, "models": result.models,
            "test": result.report.as_dict() if result.report else None}

    def draw() -> None:
        from kservectl.cli.local_views import draw_up

        draw_up(ctx.cluster, result)

    emit(data, output, table=draw)
    if result.report is not None and not result.report.ok:
        raise typer.Exit(1)
