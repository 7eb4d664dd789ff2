"""``kservectl kserve install|uninstall|status``: cert-manager, Knative + Kourier (the gateway NLB)
and KServe. The work is done by ``kservectl.phases.kserve``; these commands read options, call it
and print the result."""

from __future__ import annotations

import enum
from typing import Annotated, Any

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

app = typer.Typer(help="cert-manager, Knative + Kourier and KServe.", no_args_is_help=True)


class Mode(enum.StrEnum):
    knative = "knative"
    standard = "standard"


ModeOpt = Annotated[
    Mode | None,
    typer.Option("--mode", help="knative (scale to zero, canary; models behind the Kourier NLB) or standard "
                 "(Deployments + HPA, no Knative) [config kserve.mode].", show_default=False),
]


@app.command("install")
def install(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    mode: ModeOpt = None,
    dry_run: DryRunOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept a change that replaces the gateway NLB "
                                      "(e.g. a new exposure.scheme).")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Install cert-manager, Knative + Kourier and KServe.

    In standard mode metrics-server replaces Knative and Kourier. A re-run changes only what
    differs; --dry-run prints the helm and kubectl command lines instead."""
    from kservectl.phases import kserve as kserve_phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="kserve install", flags={"kserve.mode": mode.value if mode else None},
                          flag_names={"kserve.mode": "--mode"})
    result = kserve_phase.install(ctx, yes=yes)

    def draw() -> None:
        _draw_steps(result)
        gateway = result.get("gateway")
        if result["dry_run"]:
            return
        if gateway and gateway.get("hostname"):
            listener = "TLS on 443" if gateway["tls"] else "plain HTTP on 80"
            typer.echo(f"\nGateway NLB ({gateway['scheme']}, {listener}): {gateway['hostname']}")
            if gateway.get("domain"):
                typer.echo(f"Model URLs: {'https' if gateway['tls'] else 'http'}://<model>-predictor.<namespace>."
                           f"{gateway['domain']}")
            typer.echo(f"Try: {gateway['example']}")
        elif result["mode"] == "standard":
            typer.echo("\nStandard mode: no gateway NLB; models are reached inside the cluster at "
                       "http://<model>-predictor.<namespace>.svc.cluster.local")

    emit(result, output, table=draw)


@app.command("uninstall")
def uninstall(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Uninstall them, the gateway NLB first.

    Deletes the gateway Service and waits until its NLB is gone, then KServe, Knative + Kourier
    (or metrics-server) and cert-manager. Every InferenceService goes with the KServe CRDs."""
    from kservectl.phases import kserve as kserve_phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="kserve uninstall")
    if not dry_run:
        confirm(f"Uninstall KServe, Knative, Kourier (and its NLB) and cert-manager from cluster "
                f"{ctx.cluster}? Every InferenceService is deleted with the KServe CRDs.", yes)
    result = kserve_phase.uninstall(ctx)

    def draw() -> None:
        _draw_steps(result)
        for failure in result["failures"]:
            typer.echo(f"\nFAILED {failure['step']}: {failure['error']}\n  clean up by hand: "
                       f"{failure['manual_cleanup']}", err=True)

    emit(result, output, table=draw)
    if result["failures"]:
        raise typer.Exit(1)


add_status_command(
    app, "kserve", "kserve",
    "Show versions against the pins, readiness and the gateway NLB.",
    lambda data: _draw_status(data),  # defined below
)


def _draw_status(result: dict[str, Any]) -> None:
    from kservectl.cli.console import table

    table(f"KServe on {result['cluster']} ({result['mode'] or 'not installed'})",
          ["component", "pinned", "installed", "as pinned", "ready", "detail"],
          [(c["component"], c["pinned"], c["installed"] or "-",
            "-" if c["installed"] is None else ("yes" if c["up_to_date"] else "DRIFT"),
            "yes" if c["ready"] else "NO", c["detail"]) for c in result["components"]])
    for line in result.get("drift") or []:
        typer.echo(f"drift: {line} (re-run `kservectl kserve install` to converge)")
    gateway = result.get("gateway")
    if gateway:
        typer.echo(f"gateway {gateway['service']}: {gateway.get('hostname') or 'no NLB hostname yet'} "
                   f"({gateway['scheme']}, {'TLS' if gateway['tls'] else 'HTTP'}, "
                   f"NLB {gateway.get('nlb_state', 'unknown')})")
        if gateway.get("domains"):
            typer.echo(f"model domain: {', '.join(gateway['domains'])}")


def _draw_steps(result: dict[str, Any]) -> None:
    prefix = "(dry run) " if result["dry_run"] else ""
    for warning in result.get("warnings") or []:
        typer.echo(f"Warning: {warning}", err=True)
    for step in result["steps"]:
        typer.echo(f"{prefix}{step['step']}: {step['result']}")
    if result["dry_run"]:
        commands = result.get("commands") or []
        typer.echo("\n(dry run) would run:" if commands else "\n(dry run) no helm or kubectl command needed")
        for command in commands:
            typer.echo(f"  {command}")
    elif not result.get("changed"):
        typer.echo("nothing to change")
