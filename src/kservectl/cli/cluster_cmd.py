"""``kservectl cluster create|delete|status|render``: the EKS cluster (eksctl)."""

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
    RegionOpt,
    YesOpt,
    add_status_command,
    confirm,
    emit,
    make_context,
)

app = typer.Typer(help="The EKS cluster (eksctl).", no_args_is_help=True)

VersionOpt = Annotated[str | None, typer.Option(
    "--kubernetes-version", help='EKS Kubernetes version such as "1.34" [config cluster.kubernetes_version].',
    show_default=False)]
InstanceTypeOpt = Annotated[str | None, typer.Option(
    "--instance-type", help="Node instance type [config nodes.instance_type].", show_default=False)]
NodesOpt = Annotated[int | None, typer.Option("--nodes", help="Desired node count [config nodes.desired].",
                                              show_default=False)]
NodesMinOpt = Annotated[int | None, typer.Option("--nodes-min", help="Minimum node count [config nodes.min].",
                                                 show_default=False)]
NodesMaxOpt = Annotated[int | None, typer.Option("--nodes-max", help="Maximum node count [config nodes.max].",
                                                 show_default=False)]
ZonesOpt = Annotated[str | None, typer.Option(
    "--zones", help="Comma-separated availability zones [config cluster.availability_zones; "
    "default: eksctl's choice].", show_default=False)]
AutoscalerOpt = Annotated[bool | None, typer.Option(
    "--autoscaler/--no-autoscaler",
    help="Install the Cluster Autoscaler [config cluster.autoscaler; default on].", show_default=False)]

# option -> (config key, flag name shown in errors)
_CONFIG_FLAGS = {
    "kubernetes_version": ("cluster.kubernetes_version", "--kubernetes-version"),
    "instance_type": ("nodes.instance_type", "--instance-type"),
    "nodes": ("nodes.desired", "--nodes"),
    "nodes_min": ("nodes.min", "--nodes-min"),
    "nodes_max": ("nodes.max", "--nodes-max"),
    "zones": ("cluster.availability_zones", "--zones"),
    "autoscaler": ("cluster.autoscaler", "--autoscaler"),
}


def _overrides(**options: Any) -> tuple[dict[str, Any], dict[str, str]]:
    flags = {_CONFIG_FLAGS[name][0]: value for name, value in options.items()}
    names = {key: flag for key, flag in _CONFIG_FLAGS.values()}
    return flags, names


@app.command("render")
def render(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    kubernetes_version: VersionOpt = None,
    instance_type: InstanceTypeOpt = None,
    nodes: NodesOpt = None,
    nodes_min: NodesMinOpt = None,
    nodes_max: NodesMaxOpt = None,
    zones: ZonesOpt = None,
    autoscaler: AutoscalerOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the ClusterConfig to this file.",
                                             dir_okay=False)] = None,
) -> None:
    """Print the eksctl ClusterConfig that `cluster create` would use (no AWS call)."""
    from kservectl.phases import cluster as phase

    flags, names = _overrides(kubernetes_version=kubernetes_version, instance_type=instance_type, nodes=nodes,
                              nodes_min=nodes_min, nodes_max=nodes_max, zones=zones, autoscaler=autoscaler)
    ctx, _ = make_context(cluster=cluster, region=region, config=config, command="cluster render",
                          flags=flags, flag_names=names, quiet=True)
    text = phase.render_cluster_config(ctx)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")


@app.command("create")
def create(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    kubernetes_version: VersionOpt = None,
    instance_type: InstanceTypeOpt = None,
    nodes: NodesOpt = None,
    nodes_min: NodesMinOpt = None,
    nodes_max: NodesMaxOpt = None,
    zones: ZonesOpt = None,
    autoscaler: AutoscalerOpt = None,
    dry_run: DryRunOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="If a previous create failed, delete its stacks "
                                      "without asking and create again.")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create the EKS cluster, or reuse it when it is ACTIVE (reporting drift from the config).

    Then: nodes Ready, gp3 as the default StorageClass, the Cluster Autoscaler. A failed earlier
    create is explained; with --yes its stacks are deleted and the cluster is created again.
    """
    from kservectl.phases import cluster as phase

    flags, names = _overrides(kubernetes_version=kubernetes_version, instance_type=instance_type, nodes=nodes,
                              nodes_min=nodes_min, nodes_max=nodes_max, zones=zones, autoscaler=autoscaler)
    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="cluster create", flags=flags, flag_names=names)
    result = phase.create(ctx, yes=yes)
    emit(result, output, table=lambda: _draw_actions(result, "create"))


add_status_command(
    app, "cluster", "cluster",
    "Show the cluster: EKS state, version, endpoint, node groups, nodes Ready, add-ons.",
    lambda data: _draw_status(data),  # defined below
)


@app.command("delete")
def delete(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Delete the cluster with `eksctl delete cluster --wait`.

    Refuses while a LoadBalancer Service or a PVC remains: they hold load balancers and EBS
    volumes that deleting the cluster would leave behind.
    """
    from kservectl.phases import cluster as phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="cluster delete")
    result = phase.delete(ctx, confirm=lambda question: confirm(question, yes))
    emit(result, output, table=lambda: _draw_actions(result, "delete"))


def _draw_actions(result: dict[str, Any], verb: str) -> None:
    prefix = "(dry run) " if result.get("dry_run") else ""
    typer.echo(f"{prefix}cluster {verb}: {result['cluster']} in {result['region']}")
    for action in result.get("actions", []):
        typer.echo(f"  - {action}")
    for command in result.get("would_run", []):
        typer.echo(f"  - would run: {command}")
    for item in result.get("drift", []):
        typer.echo(f"  ! drift: {item['message']}")
    for item in result.get("left_behind", []):
        typer.echo(f"  ! left behind: {item}")
    if result.get("dry_run") and result.get("files"):
        typer.echo("rendered files (what the commands above use):")
        for path in result["files"]:
            typer.echo(f"  {path}")
    if verb == "create" and not result.get("dry_run"):
        typer.echo(f"kubeconfig: {result['kubeconfig']}")


def _draw_status(data: dict[str, Any]) -> None:
    from kservectl.cli.console import table

    typer.echo(f"cluster {data['cluster']} in {data['region']}: {data.get('state')}")
    if not data.get("exists"):
        for stack in data.get("stacks", []):
            typer.echo(f"  stack {stack['name']}: {stack['status']} {stack['reason']}".rstrip())
        if data.get("hint"):
            typer.echo(data["hint"])
        return
    for key in ("version", "platform_version", "endpoint", "vpc_id", "oidc_issuer", "default_storage_class"):
        typer.echo(f"  {key}: {data.get(key)}")
    nodes = data.get("nodes") or {}
    ready = nodes.get("error") or f"{nodes.get('ready')}/{nodes.get('total')} Ready"
    typer.echo(f"  nodes: {ready}")
    groups = data.get("nodegroups")
    if isinstance(groups, list):
        table("node groups", ["name", "status", "instance types", "min", "desired", "max"],
              [(g["name"], g["status"], ",".join(g["instance_types"]), g["min"], g["desired"], g["max"])
               for g in groups])
    addons = data.get("addons")
    if isinstance(addons, list):
        table("add-ons", ["name", "version", "status"],
              [(a["name"], a["version"], a["status"]) for a in addons])
    elif isinstance(addons, dict):
        typer.echo(f"  add-ons: {addons.get('error')}")
    if "autoscaler" in data:
        typer.echo(f"  cluster autoscaler: {data['autoscaler']}")
    for item in data.get("drift", []):
        typer.echo(f"  ! drift: {item['message']}")
