from __future__ import annotations

from typing import Annotated

import typer

from kservectl.cli.common import ClusterOpt, ConfigOpt, ProviderOpt, RegionOpt, make_context


def command(
    name: Annotated[str, typer.Argument(
        metavar="COMPONENT|MODEL",
        help="A component (mlflow, kserve-controller, activator, kourier, load-balancer-controller, "
             "cert-manager, cluster-autoscaler) or an InferenceService name (model/NAME when it is both).",
        show_default=False)],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming new lines (Ctrl-C stops).")] = False,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only lines newer than this, e.g. 30s, 5m, 2h, 1h30m.", show_default=False)] = None,
    tail: Annotated[int, typer.Option("--tail", help="Lines per container to start with; -1 for all.")] = 100,
    container: Annotated[str | None, typer.Option(
        "--container", help="The container to show (default: the component's own, e.g. kserve-container).",
        show_default=False)] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", help="Prefix each line with its time.")] = False,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
) -> None:
    """Show the logs of a model or a platform component; explains a pod that is not running."""
    from kservectl.phases import logs

    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="logs")
    options = logs.Options(follow=follow, since_seconds=logs.parse_duration(since) if since is not None else None,
                           tail=None if tail < 0 else tail, container=container, timestamps=timestamps)

    def out(line: str) -> None:
        typer.echo(ctx.redactor.text(line))

    def note(line: str) -> None:
        typer.echo(ctx.redactor.text(line), err=True)

    if ctx.config.provider == "local":
        logs.show_local(ctx, name, options, out=out, note=note)
        return
    target = logs.resolve(ctx, name)
    result = logs.show(ctx, target, options, out=out, note=note)
    if not result.found or (result.errors and not result.lines):
        raise typer.Exit(1)
