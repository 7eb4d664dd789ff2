"""``kservectl alb install|uninstall|status``: the AWS Load Balancer Controller."""

from __future__ import annotations

from typing import Any

import typer

from kservectl.cli.common import (
    ClusterOpt,
    ConfigOpt,
    DryRunOpt,
    Output,
    OutputOpt,
    RegionOpt,
    YesOpt,
    add_status_command,
    confirm,
    emit,
    make_context,
)

app = typer.Typer(help="The AWS Load Balancer Controller.", no_args_is_help=True)


@app.command("install")
def install(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Install the controller: its IAM policy, the IRSA ServiceAccount and the Helm release.

    Waits until the Deployment is Available and its webhook has endpoints. Safe to run again:
    only what differs is changed.
    """
    from kservectl.phases import alb as phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="alb install")
    result = phase.install(ctx)
    emit(result, output, table=lambda: _draw(result, "install"))


@app.command("uninstall")
def uninstall(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Remove the controller, its IRSA role and its IAM policy.

    Refuses while LoadBalancer Services or Ingresses exist: their load balancers would be stranded.
    """
    from kservectl.phases import alb as phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="alb uninstall")
    result = phase.uninstall(ctx, confirm=lambda question: confirm(question, yes))
    emit(result, output, table=lambda: _draw(result, "uninstall"))


add_status_command(
    app, "alb", "alb",
    "Show the controller: Deployment readiness, chart/app version against the pin, IAM policy.",
    lambda data: _draw_status(data),  # defined below
)


def _draw(result: dict[str, Any], verb: str) -> None:
    prefix = "(dry run) " if result.get("dry_run") else ""
    typer.echo(f"{prefix}alb {verb}: cluster {result['cluster']} in {result['region']}")
    for action in result.get("actions", []):
        typer.echo(f"  - {action}")
    for command in result.get("would_run", []):
        typer.echo(f"  - would run: {command}")


def _draw_status(data: dict[str, Any]) -> None:
    typer.echo(f"AWS Load Balancer Controller on cluster {data['cluster']} in {data['region']}")
    dep = data.get("deployment") or {}
    if "error" in dep:
        typer.echo(f"  deployment: {dep['error']}")
    elif dep.get("exists"):
        state = "Available" if dep["available"] else dep["detail"]
        typer.echo(f"  deployment: {dep['ready']} ready, {state}")
        typer.echo(f"  webhook endpoints ready: {data.get('webhook_ready')}")
        typer.echo(f"  IRSA role: {data.get('role_arn')}")
    else:
        typer.echo("  deployment: not installed")
    rel = data.get("release") or {}
    pin = data["pinned"]
    if rel.get("chart_version"):
        mark = "" if rel.get("matches_pin") else f" (pinned: chart {pin['chart']})"
        typer.echo(f"  release: chart {rel['chart_version']}, app {rel.get('app_version')}, "
                   f"{rel.get('status')}{mark}")
    else:
        typer.echo(f"  release: {rel.get('error') or 'not installed'} (pinned: chart {pin['chart']}, "
                   f"app {pin['app']})")
    policy = data.get("policy") or {}
    if policy.get("exists"):
        same = "matches" if policy.get("matches_shipped") else "differs from"
        typer.echo(f"  IAM policy: {policy['arn']} ({policy['version']}; {same} the shipped document)")
    else:
        typer.echo(f"  IAM policy: {policy.get('arn')} does not exist")
