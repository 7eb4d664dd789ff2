"""``kservectl serve deploy|list|status|delete|promote|rollback|example``: MLflow models as
KServe InferenceServices."""

from __future__ import annotations

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
    YesOpt,
    confirm,
    emit,
    make_context,
)

app = typer.Typer(help="Models served as KServe InferenceServices.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="InferenceService name (the <name> in /v2/models/<name>/infer).",
                                        show_default=False)]
OptionalNameArg = Annotated[str | None, typer.Argument(help="InferenceService name [config model.name].",
                                                       show_default=False)]
TrackingOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                 help="MLflow tracking URI [default: the cluster's public MLflow].",
                 show_default=False),
]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Do not wait until KServe reports Ready.")]


@app.command("deploy")
def deploy(
    name: OptionalNameArg = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="models:/<name>/<version>, models:/<name>@<alias> or models:/m-<id> "
        "[config model.uri; default: the example's latest version].", show_default=False)] = None,
    storage_uri: Annotated[str | None, typer.Option(
        "--storage-uri", help="s3:// folder holding MLmodel (instead of --model).",
        show_default=False)] = None,
    canary_percent: Annotated[int | None, typer.Option(
        "--canary-percent",
        help="Send N% of traffic to the new model (knative mode; the service must be live).",
        show_default=False)] = None,
    min_replicas: Annotated[int | None, typer.Option(
        "--min-replicas",
        help="Minimum replicas; 0 scales to zero (knative mode) [config model.min_replicas].",
        show_default=False)] = None,
    max_replicas: Annotated[int | None, typer.Option(
        "--max-replicas", help="Maximum replicas [config model.max_replicas].", show_default=False)] = None,
    scale_target: Annotated[int | None, typer.Option(
        "--scale-target", help="Autoscaling target per replica [config model.scale_target].",
        show_default=False)] = None,
    scale_metric: Annotated[str | None, typer.Option(
        "--scale-metric", help="concurrency, rps, cpu or memory [config model.scale_metric].",
        show_default=False)] = None,
    cpu: Annotated[str | None, typer.Option("--cpu", help="CPU request = limit [config model.cpu].",
                                            show_default=False)] = None,
    memory: Annotated[str | None, typer.Option(
        "--memory", help="Memory request = limit [config model.memory].", show_default=False)] = None,
    tracking_uri: TrackingOpt = None,
    artifacts_destination: Annotated[str | None, typer.Option(
        "--artifacts-destination", envvar="MLFLOW_ARTIFACTS_DESTINATION",
        help="The MLflow server's --artifacts-destination (maps mlflow-artifacts:/ to s3://) "
        "[default: read from the MLflow Deployment].", show_default=False)] = None,
    no_version_check: Annotated[bool, typer.Option(
        "--no-version-check", help="Do not compare the model's MLflow/Python/library versions with the "
        "runtime's (e.g. when its S3 folder is not readable from here).")] = False,
    no_wait: NoWaitOpt = False,
    port: Annotated[int, typer.Option("--port", help="Local provider: the model server's port (0: a free one; "
                                      "default: keep the model's port).")] = 0,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Deploy a model (or a new version of it) and wait until KServe reports it Ready.

    With --provider local: serve it with MLServer on this machine (its own port)."""
    from kservectl.phases import serve

    flags = {"model.min_replicas": min_replicas, "model.max_replicas": max_replicas,
             "model.scale_target": scale_target, "model.scale_metric": scale_metric, "model.cpu": cpu,
             "model.memory": memory}
    names = {"model.min_replicas": "--min-replicas", "model.max_replicas": "--max-replicas",
             "model.scale_target": "--scale-target", "model.scale_metric": "--scale-metric",
             "model.cpu": "--cpu", "model.memory": "--memory"}
    if name is not None:
        flags["model.name"] = name
        names["model.name"] = "NAME"
    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run, provider=provider,
                          command="serve deploy", flags=flags, flag_names=names,
                          quiet=output is not Output.table)
    if ctx.config.provider == "local":
        result = _deploy_local(ctx, name, model, storage_uri, canary_percent, port, dry_run)
        emit(result, output, table=lambda: _draw_local_deploy(result))
        return
    result = serve.deploy(ctx, name, model=model, storage_uri=storage_uri, canary_percent=canary_percent,
                          tracking_uri=tracking_uri, artifacts_dest=artifacts_destination, wait=not no_wait,
                          check_versions=not no_version_check)

    def draw() -> None:
        prefix = "(dry run) " if dry_run else ""
        typer.echo(f"{prefix}{result['action']}: InferenceService {result['namespace']}/{result['name']} "
                   f"serving {result['model_uri']}")
        typer.echo(f"  storageUri: {result['storage_uri']}")
        if result.get("canary_percent") is not None:
            typer.echo(f"  canary: {result['canary_percent']}% of traffic to the new model")
        if result["findings"]:
            typer.echo(f"  version check: {len(result['findings'])} findings (warnings above)")
        for note in result["notes"]:
            typer.echo(f"  note: {note}")
        if dry_run and result.get("rendered"):
            typer.echo("\n" + result["rendered"].rstrip())
        if result.get("service"):
            _draw_services([result["service"]])

    emit(result, output, table=draw)


@app.command("list")
def list_(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List served models: URL, readiness, revisions and traffic split."""
    from kservectl.phases import serve

    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="serve list",
                          quiet=True)
    if ctx.config.provider == "local":
        from kservectl.local import platform

        services = platform.list_services(ctx)
    else:
        services = serve.list_services(ctx)

    def draw() -> None:
        if not services:
            typer.echo(_nothing_served(ctx))
            return
        _draw_services(services)

    emit({"namespace": None if ctx.config.provider == "local" else ctx.config.namespaces.models,
          "provider": ctx.config.provider, "services": services}, output, table=draw)


@app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="InferenceService name (default: all).",
                                               show_default=False)] = None,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show one served model (or all): URL, readiness, KServe's conditions, revisions, traffic."""
    from kservectl.phases import serve

    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider,
                          command="serve status", quiet=True)
    if ctx.config.provider == "local":
        result = _status_local(ctx, name)
    else:
        result = serve.status(ctx, name)
    services = result["services"] if name is None else [result]

    def draw() -> None:
        if not services:
            typer.echo(_nothing_served(ctx))
            return
        _draw_services(services)
        if ctx.config.provider == "local":
            return
        from kservectl.cli.console import table

        for s in services:
            revisions = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in s["revisions"].items() if v)
            typer.echo(f"{s['name']} revisions: {revisions or 'none yet'}")
            table(f"{s['name']}: conditions", ["type", "status", "reason", "message"],
                  [(c["type"], c["status"], c["reason"], c["message"]) for c in s["conditions"]])

    emit(result, output, table=draw)


@app.command("delete")
def delete(
    name: NameArg,
    no_wait: NoWaitOpt = False,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Delete a served model. The registered model and its S3 artifacts are kept."""
    from kservectl.phases import serve

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run, provider=provider,
                          command="serve delete", quiet=output is not Output.table)
    if ctx.config.provider == "local":
        from kservectl.local import platform

        if dry_run:
            result = {"action": "would delete", "name": name, "namespace": None, "kept": [], "notes": []}
        else:
            confirm(f"Stop serving {name!r} on this machine?", yes)
            result = platform.delete_model(ctx, name)
        emit(result, output, table=lambda: typer.echo(f"{result['action']}: local model {name}"))
        return
    if not dry_run:
        confirm(f"Delete InferenceService {ctx.config.namespaces.models}/{name}?", yes)
    result = serve.delete(ctx, name, wait=not no_wait)

    def draw() -> None:
        typer.echo(f"{result['action']}: InferenceService {result['namespace']}/{result['name']}")
        typer.echo(f"  kept: {', '.join(result['kept']) or 'no other InferenceServices'}")
        for note in result["notes"]:
            typer.echo(f"  note: {note}")

    emit(result, output, table=draw)


def _traffic_verb(verb: str, help: str) -> None:
    """Register ``serve promote`` / ``serve rollback``: one canary-traffic change, waited for."""

    def change(
        name: NameArg,
        no_wait: NoWaitOpt = False,
        cluster: ClusterOpt = None,
        region: RegionOpt = None,
        config: ConfigOpt = None,
        dry_run: DryRunOpt = False,
        output: OutputOpt = Output.table,
    ) -> None:
        from kservectl.phases import serve

        ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                              command=f"serve {verb}", quiet=output is not Output.table)
        result = getattr(serve, verb)(ctx, name, wait=not no_wait)
        emit(result, output, table=lambda: _draw_traffic_change(result))

    change.__doc__ = help
    app.command(verb)(change)


_traffic_verb("promote", "Move all traffic to the canary (the latest revision).")
_traffic_verb("rollback", """Return all traffic to the previous ready revision (canary at 0%).

    During a canary: back to the stable revision. After a promotion: back to the revision rolled
    out before it (KServe's previousRolledoutRevision). Waits until all traffic is there.""")


@app.command("example")
def example(
    tracking_uri: TrackingOpt = None,
    registered_name: Annotated[str, typer.Option("--name", help="Registered model name.")] = "wine",
    alias: Annotated[str | None, typer.Option("--alias", help="Point this alias (e.g. champion) at the new "
                                              "version.", show_default=False)] = None,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Train the wine classifier, log it to MLflow (signature, input example, cloudpickle) and
    register it; then check its versions against the serving runtime."""
    from kservectl.phases import serve

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="serve example", quiet=output is not Output.table)
    result = serve.example(ctx, tracking_uri=tracking_uri, registered_name=registered_name, alias=alias)

    def draw() -> None:
        if dry_run:
            typer.echo(f"(dry run) {result['action']} {result['registered_name']} "
                       f"at {result['tracking_uri']}")
            return
        typer.echo(f"registered {result['model_uri']} (run {result['run_id']}, "
                   f"accuracy {result['accuracy']:.3f}, {result['serialization_format']})")
        typer.echo(f"  logged model: {result['source']}")
        if result.get("artifact_uri"):
            typer.echo(f"  artifacts: {result['artifact_uri']}")
        if result["findings"]:
            typer.echo(f"  version check against {result['runtime']['name']}: "
                       f"{len(result['findings'])} findings (warnings above)")
        typer.echo(f"next: {result['next']}")

    emit(result, output, table=draw)


# -- drawing -------------------------------------------------------------------------------------
def _traffic_text(service: dict[str, Any]) -> str:
    parts = []
    for t in service.get("traffic") or []:
        label = t.get("tag") or ("latest" if t.get("latest") else "")
        parts.append(f"{t.get('revision')}{f' ({label})' if label else ''}: {t.get('percent')}%")
    return ", ".join(parts) or "-"


def _revisions_text(service: dict[str, Any]) -> str:
    """KServe's revisions: the latest ready one, the rolled-out one (where a canary's remaining
    traffic goes) and the one rolled out before it (where a rollback after a promotion goes)."""
    revisions = service.get("revisions") or {}
    latest = revisions.get("latest_ready") or revisions.get("latest_created")
    parts = [f"latest {latest}"] if latest else []
    rolled = revisions.get("latest_rolled_out")
    if rolled:
        parts.append(f"rolled out {rolled}")
    if revisions.get("previous_rolled_out"):
        parts.append(f"previous {revisions['previous_rolled_out']}")
    return ", ".join(parts) or "-"


def _draw_services(services: list[dict[str, Any]]) -> None:
    from kservectl.cli.console import table

    rows = []
    for s in services:
        model = s.get("model_uri") or s.get("storage_uri") or "-"
        if s.get("canary_percent") is not None and s.get("previous_model_uri"):
            model += f" (canary {s['canary_percent']}%, stable {s['previous_model_uri']})"
        replicas = f"{s.get('replicas') if s.get('replicas') is not None else '-'} " \
                   f"({s.get('min_replicas')}-{s.get('max_replicas')})"
        rows.append((s["name"], "yes" if s["ready"] else f"no: {s['detail']}", s.get("url") or "-", model,
                     replicas, _revisions_text(s), _traffic_text(s)))
    table(None, ["name", "ready", "url", "model", "replicas (min-max)", "revisions", "traffic"], rows)


def _draw_traffic_change(result: dict[str, Any]) -> None:
    typer.echo(f"{result['action']}: InferenceService {result['namespace']}/{result['name']}")
    for note in result.get("notes") or []:
        typer.echo(f"  {note}")
    if result.get("service"):
        _draw_services([result["service"]])


def _nothing_served(ctx) -> str:
    if ctx.config.provider == "local":
        return f"no models served locally for {ctx.cluster!r} (`kservectl up --provider local`)"
    return f"no InferenceServices in namespace {ctx.config.namespaces.models}"


def _deploy_local(ctx, name, model, storage_uri, canary_percent, port, dry_run) -> dict[str, Any]:
    from kservectl.errors import UsageError
    from kservectl.local import platform

    if storage_uri or canary_percent is not None:
        flag = "--storage-uri" if storage_uri else "--canary-percent"
        raise UsageError(f"{flag} is for KServe on EKS; the local provider serves registered models",
                         hint="use --model models:/<name>/<version> (a new version replaces the served one)")
    name = name or ctx.config.model.name
    model = model or ctx.config.model.uri
    if not model:
        raise UsageError("serve deploy --provider local needs --model models:/<name>/<version> (or model.uri)")
    if dry_run:
        return {"action": "would deploy", "name": name, "namespace": None, "model_uri": model,
                "storage_uri": None, "canary_percent": None, "findings": [], "notes": [], "service": None}
    return platform.deploy_model(ctx, name, model, port=port)


def _draw_local_deploy(result: dict[str, Any]) -> None:
    typer.echo(f"{result['action']}: local model {result['name']} serving {result['model_uri']}")
    service = result.get("service")
    if service:
        _draw_services([service])
        typer.echo(f"  V2:          {service['url']}/v2/models/{result['name']}/infer")
        typer.echo(f"  invocations: {service['url']}/invocations")


def _status_local(ctx, name: str | None) -> dict[str, Any]:
    from kservectl.errors import UsageError
    from kservectl.local import platform

    services = platform.list_services(ctx)
    if name is None:
        return {"provider": "local", "services": services}
    for service in services:
        if service["name"] == name:
            return service
    served = ", ".join(s["name"] for s in services) or "none"
    raise UsageError(f"model {name!r} is not served locally for {ctx.cluster!r} (served: {served})")
