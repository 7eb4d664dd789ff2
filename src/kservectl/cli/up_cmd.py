from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kservectl.cli.common import (
    ClusterOpt,
    ConfigOpt,
    DryRunOpt,
    Output,
    OutputOpt,
    ProviderOpt,
    RegionOpt,
    emit,
    make_context,
)

PHASES_HELP = "cluster, alb, kserve, storage, mlflow, serve or test"


def command(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    start: Annotated[str | None, typer.Option(
        "--from", metavar="PHASE", help=f"Start at this phase; earlier ones are taken as done ({PHASES_HELP}).",
        show_default=False)] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="PHASE", help="Run only this phase (repeatable).", show_default=False)] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", metavar="PHASE", help="Leave this phase out (repeatable).", show_default=False)] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Accept a destructive recovery: delete the stacks of a failed cluster create, "
        "replace the gateway NLB when exposure.scheme changed.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI for the serve and test phases [default: the cluster's public MLflow, else a "
        "kubectl port-forward kept open while up runs].", show_default=False)] = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create the whole platform, phase by phase; a second run changes nothing.

    EKS (the default): cluster, alb, kserve, storage, mlflow, serve (the configured model, or the
    example model trained and registered into the cluster's MLflow), test; independent work runs
    at the same time (the bucket and the IAM policies while eksctl creates the cluster). Every phase
    reads the real state first: after a failure or Ctrl-C, `up` again resumes.

    With --provider local: an MLflow tracking server, the example model (or model.uri) trained,
    registered and served by MLServer on this machine, then tested over V2 and /invocations.
    """
    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="up",
                          quiet=output is not Output.table)
    if ctx.config.provider != "local":
        _eks(ctx, config=config, start=start, only=only or [], skip=skip or [], yes=yes,
             tracking_uri=tracking_uri, dry_run=dry_run, output=output)
        return
    from kservectl.errors import UsageError

    for flag, used in (("--from", start), ("--only", only), ("--skip", skip), ("--dry-run", dry_run)):
        if used:
            raise UsageError(f"{flag} applies to the EKS provider; `up --provider local` always runs everything")
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


def _eks(ctx: Any, *, config: Path | None, start: str | None, only: list[str], skip: list[str],
         yes: bool, tracking_uri: str | None, dry_run: bool, output: Output) -> None:
    from kservectl.cli import up_view
    from kservectl.events import Reporter
    from kservectl.phases import up

    all_tasks = up.tasks(ctx, yes=yes)
    chosen = up.select(all_tasks, start=start, only=only, skip=skip)  # bad phase names: exit 2, nothing called
    if dry_run:
        _dry_run(ctx, chosen, output)
        return
    ctx.reporter = Reporter()  # progress goes to the view only
    view = up_view.UpView(all_tasks, {t.name for t in chosen}, live=None if output is Output.table else False)
    with view:
        result = up.run(ctx, yes=yes, start=start, only=only, skip=skip, tracking_uri=tracking_uri,
                        listener=view, config_path=config)
    data = result.as_dict()

    def draw() -> None:
        up_view.draw_summary(data)
        if result.ok:
            up_view.draw_urls(data["urls"])
            up_view.draw_cost(data["cost"], _cost_label(data["cost"], "what now runs"))
            typer.echo(f"\nthe platform is up; `{result.resume}` again changes nothing")
        else:  # what was made so far bills too
            up_view.draw_cost(data["cost"], _cost_label(data["cost"], "what exists now (up did not finish)"))

    emit(data, output, table=draw)
    up_view.draw_failure(data)
    if result.interrupted:
        raise typer.Exit(130)
    if not result.ok:
        raise typer.Exit(1)


def _cost_label(cost: dict[str, Any] | None, what: str) -> str:
    if cost and cost.get("basis") == "config":
        return "the configured platform (what exists could not be read)"
    return what


def _dry_run(ctx: Any, chosen: list[Any], output: Output) -> None:
    """Nothing changes: what each resource of the chosen phases would get (create, change, keep)."""
    from kservectl import costs
    from kservectl.cli import up_view
    from kservectl.phases import up

    phases = [p for p in dict.fromkeys(t.phase for t in chosen)]
    rows = up.diff(ctx, phases_=phases)
    cost = costs.platform_estimate(ctx.config).as_dict()
    data = {"provider": "eks", "cluster": ctx.cluster, "region": ctx.region, "dry_run": True, "phases": phases,
            "tasks": [{"task": t.name, "phase": t.phase, "needs": list(t.needs)} for t in chosen],
            "changes": rows, "cost": cost}

    def draw() -> None:
        typer.echo(f"(dry run) kservectl up for cluster {ctx.cluster} in {ctx.region} would converge:")
        up_view.draw_diff(rows)
        up_view.draw_cost(cost, "the platform once up")
        typer.echo("\n(dry run) nothing was changed")

    emit(data, output, table=draw)
