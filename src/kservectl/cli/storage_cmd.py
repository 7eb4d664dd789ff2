"""``kservectl storage create|delete|status``: the S3 artifact bucket and the IRSA roles."""

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

app = typer.Typer(help="The S3 artifact bucket and IRSA roles.", no_args_is_help=True)

ServiceAccountsOpt = Annotated[
    bool | None,
    typer.Option(
        "--service-accounts/--no-service-accounts",
        help="Apply the two IRSA ServiceAccounts to the cluster. Default: only when the cluster's "
        "kubeconfig exists ($KSERVECTL_HOME/<cluster>/kubeconfig); the mlflow and serve phases "
        "apply them too.",
        show_default=False,
    ),
]
DeleteDataOpt = Annotated[
    bool,
    typer.Option("--delete-data", help="Also delete the bucket and every object version in it "
                 "(needs --yes)."),
]


@app.command("create")
def create(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    service_accounts: ServiceAccountsOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create or converge the artifact bucket, its IAM policies and the IRSA roles.

    Needs AWS credentials only (no eksctl, kubectl or kubeconfig); the cluster and its IAM OIDC
    provider must exist. A second run changes nothing.
    """
    from kservectl.phases import storage

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="storage create")
    result = storage.create(ctx, with_service_accounts=service_accounts)

    def draw() -> None:
        _draw_changes(result, "create")
        typer.echo(f"artifact root: {result['artifact_root']}")
        from kservectl.cli.console import table

        table("IRSA service accounts", ["service account", "IAM role"],
              [(f"{sa['namespace']}/{sa['name']}", sa["role_arn"]) for sa in result["service_accounts"]])
        if result["service_accounts_skipped"]:
            typer.echo(f"ServiceAccounts not applied: {result['service_accounts_skipped']}")
        for item in result["service_accounts_applied"]:
            typer.echo(f"{item['resource']}: {item['result']}")

    emit(result, output, table=draw)


@app.command("delete")
def delete(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    delete_data: DeleteDataOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Delete the IRSA roles and policies this cluster owns (by tag); keep the bucket unless
    --delete-data --yes is given, and then only if it carries this cluster's tag."""
    from kservectl.errors import UsageError
    from kservectl.phases import storage

    ctx, _ = make_context(cluster=cluster, region=region, config=config, dry_run=dry_run,
                          command="storage delete")
    if delete_data and not yes and not dry_run:
        raise UsageError("--delete-data deletes the artifact bucket and every object version in it",
                         hint="add --yes to confirm, or --dry-run to see what would be deleted")
    if not dry_run:
        what = "the IRSA roles, policies and the artifact bucket with all its data" if delete_data else \
            "the IRSA roles and policies"
        confirm(f"Delete {what} of cluster {ctx.cluster} in {ctx.region}?", yes)
    result = storage.delete(ctx, delete_data=delete_data)
    emit(result, output, table=lambda: _draw_changes(result, "delete"))


add_status_command(
    app, "storage", "storage",
    "Show the bucket and each of its settings, the policies, the roles and their trust.",
    lambda data: _draw_status(data),  # defined below
)


def _draw_changes(result: dict[str, Any], verb: str) -> None:
    from kservectl.cli.console import table

    prefix = "(dry run) " if result["dry_run"] else ""
    typer.echo(f"{prefix}storage {verb} for cluster {result['cluster']} in {result['region']} "
               f"(account {result['account_id']}), bucket {result['bucket']}")
    if result.get("blocked_by"):
        typer.echo(f"a real run would stop here: {result['blocked_by']}")
    changes = result["changes"]
    acted = [c for c in changes if c["action"] not in ("keep", "skip")]
    if not acted:
        typer.echo("nothing to change: everything is already as desired" if verb == "create"
                   else "nothing to delete")
    heading = "would change" if result["dry_run"] else "changed"
    if changes:
        table(heading, ["resource", "action", "detail"],
              [(c["resource"], c["action"], c["detail"]) for c in changes])


def _draw_status(result: dict[str, Any]) -> None:
    from kservectl.cli.console import table

    typer.echo(f"storage of cluster {result['cluster']} in {result['region']} "
               f"(account {result['account_id']}): {'ok' if result['ok'] else 'NOT ok'}")
    oidc = result["oidc"]
    typer.echo(f"OIDC provider: {oidc['provider_arn'] or oidc['problem']}")
    bucket = result["bucket"]
    rows = [("name", bucket["name"]), ("exists", _yes(bucket["exists"]))]
    if bucket.get("problem"):
        rows.append(("problem", bucket["problem"]))
    for key in ("region", "owner", "versioning", "encryption", "public_access_blocked", "tls_only",
                "noncurrent_version_days"):
        if key in bucket:
            value = bucket[key]
            rows.append((key.replace("_", " "), _yes(value) if isinstance(value, bool) else
                         ("none" if value is None else value)))
    if "tags" in bucket:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in bucket["tags"].items()) or "none"))
    table("artifact bucket", ["property", "value"], rows)
    table("IAM policies", ["component", "name", "exists", "owner", "as desired"],
          [(p["component"], p["name"], _yes(p["exists"]), p.get("owner") or "", _yes(p.get("matches")))
           for p in result["policies"]])
    table("IRSA roles", ["service account", "role", "exists", "owner", "trust as desired"],
          [(r["service_account"], r["name"], _yes(r["exists"]), r.get("owner") or "",
            _yes(r.get("trust_matches"))) for r in result["roles"]])
    for r in result["roles"]:  # full lines: subjects are too long for a table cell
        if r["exists"]:
            typer.echo(f"role {r['name']} trusts {', '.join(r['trust_subjects']) or 'no service account'} "
                       f"(audience {', '.join(r['trust_audiences']) or 'none'}); "
                       f"policies: {', '.join(r['attached_policies']) or 'none'}")


def _yes(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"
