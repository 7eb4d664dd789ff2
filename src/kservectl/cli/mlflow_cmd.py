"""``kservectl mlflow install|uninstall|status|url``: the MLflow tracking server and registry."""

from __future__ import annotations

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

app = typer.Typer(help="The MLflow tracking server and registry.", no_args_is_help=True)

PublicOpt = Annotated[
    bool | None,
    typer.Option(
        "--public/--private",
        help="Expose MLflow through an internet-facing NLB (limited to exposure.source_ranges, always "
        "with basic auth), or keep it private (ClusterIP; reach it with port-forward) "
        "[config mlflow.public; default private].",
        show_default=False,
    ),
]


@app.command("install")
def install(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    public: PublicOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Install or converge MLflow and wait until it answers; a second run changes nothing.

    Needs the cluster (kubeconfig) and AWS credentials (account id for the bucket and role
    names); run `kservectl storage create` first so the bucket and the IRSA role exist.
    """
    from kservectl.phases import mlflow

    ctx, _ = make_context(
        cluster=cluster,
        region=region,
        config=config,
        dry_run=dry_run,
        command="mlflow install",
        flags={"mlflow.public": public},
        flag_names={"mlflow.public": "--public" if public else "--private"},
    )
    result = mlflow.install(ctx)

    def draw() -> None:
        for change in result["changes"]:
            typer.echo(f"{change['action']:>14}  {change['object']}")
        if result["dry_run"]:
            typer.echo("(dry run) nothing was changed")
            return
        typer.echo(f"health: {result['health']}")
        _draw_access(result)

    emit(result, output, table=draw)


@app.command("uninstall")
def uninstall(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    delete_data: Annotated[
        bool,
        typer.Option(
            "--delete-data",
            help="Also delete the PVC (runs, registry, users), the auth Secret, the namespace and "
            "MLflow's artifacts under its prefix in the S3 bucket, if the bucket is tagged for this cluster "
            "(needs --yes); refused while an InferenceService loads a model from there. The bucket itself "
            "stays: `kservectl storage delete`.",
        ),
    ] = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Remove the MLflow server. Keeps its data (PVC and S3 artifacts) unless --delete-data --yes."""
    from kservectl.phases import mlflow

    ctx, _ = make_context(
        cluster=cluster, region=region, config=config, dry_run=dry_run, command="mlflow uninstall"
    )
    if delete_data and not dry_run:
        mlflow.check_delete_artifacts(ctx)  # a refusal comes before the question, not after the yes
        confirm(
            f"Delete MLflow's data in cluster {ctx.cluster} (the PVC with every run, model version and "
            "user, and MLflow's artifacts in S3: logged models, including those served)?",
            yes,
        )
    result = mlflow.uninstall(ctx, delete_data=delete_data, delete_artifacts=delete_data)

    def draw() -> None:
        verb = "would delete" if result["dry_run"] else "deleted"
        for item in result["deleted"]:
            typer.echo(f"{verb}  {item}")
        for item in result["kept"]:
            typer.echo(f"kept  {item}")
        if not result["deleted"]:
            typer.echo("nothing to delete: MLflow is not installed")

    emit(result, output, table=draw)


add_status_command(
    app, "mlflow", "mlflow",
    "Show the Deployment, PVC, Service, health and the tracking URI to use (no secrets).",
    lambda data: _draw_status(data),  # defined below
)


def _draw_status(result: dict[str, Any]) -> None:
    from kservectl.cli.console import table

    if not result["installed"]:
        typer.echo(
            f"MLflow is not installed in namespace {result['namespace']} (`kservectl mlflow install`)"
        )
        return
    dep, pvc, svc = result["deployment"], result["pvc"], result["service"]
    rows = [
        ("deployment", "Available" if dep["available"] else dep["detail"]),
        (
            "image",
            dep["image"] + ("" if dep["image_matches_config"] else f" (config: {dep['pinned_image']})"),
        ),
        ("backend store", dep["backend_store"]),
        ("artifacts", dep["artifacts_destination"] or ""),
        (
            "volume",
            f"{pvc['name']} {pvc['size']} {pvc['storage_class']}: {pvc['phase']}" if pvc else "none",
        ),
        (
            "service",
            f"{svc['type']}" + (f" {svc['hostname']}" if svc and svc["hostname"] else "")
            if svc
            else "missing",
        ),
        ("auth", "basic auth (admin)" if result["auth"] else "none (private)"),
        ("health", ("ok: " if result["health"]["ok"] else "FAILING: ") + result["health"]["detail"]),
    ]
    if "public_health" in result:
        rows.append(("public health", result["public_health"]["detail"]))
    table(f"MLflow in namespace {result['namespace']}", ["", ""], rows)
    _draw_access(result)


@app.command("url")
def url(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    show_password: Annotated[
        bool,
        typer.Option(
            "--show-password", help="Also print the admin password of a public (basic-auth) server."
        ),
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Print how to reach MLflow: the port-forward command, the in-cluster and public URLs."""
    from kservectl.phases import mlflow

    ctx, _ = make_context(cluster=cluster, region=region, config=config, command="mlflow url", quiet=True)
    result = mlflow.url(ctx, show_password=show_password)

    def draw() -> None:
        _draw_access(result)
        if result["auth"]:
            typer.echo(f"export MLFLOW_TRACKING_USERNAME={result['username']}")
            if "password" in result:
                typer.echo(f"export MLFLOW_TRACKING_PASSWORD={result['password']}")
            else:
                typer.echo("# the password: kservectl mlflow url --show-password")

    emit(result, output, table=draw)


def _draw_access(result: dict[str, Any]) -> None:
    typer.echo(f"in-cluster URL: {result['in_cluster_url']}")
    if result.get("public_url"):
        typer.echo(f"public URL:     {result['public_url']}")
        typer.echo(f"export MLFLOW_TRACKING_URI={result['public_url']}")
    else:
        typer.echo(f"from this machine: {result['port_forward']}")
        typer.echo("export MLFLOW_TRACKING_URI=http://localhost:5000")
