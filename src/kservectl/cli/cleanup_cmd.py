from __future__ import annotations

from typing import Annotated

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


def command(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    orphans: Annotated[bool, typer.Option(
        "--orphans", help="Find what the cluster left behind in AWS, by ownership evidence only; "
                          "a dry run unless --yes (needs AWS only: works after the cluster is gone).")] = False,
    delete_data: Annotated[bool, typer.Option("--delete-data", help="Also delete the MLflow store and "
                                              "artifacts (EKS: the S3 bucket; the cluster's volumes go with "
                                              "the cluster).")] = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Tear the platform down in dependency order; S3 artifacts (EKS) or the MLflow store (local)
    stay unless --delete-data."""
    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider,
                          dry_run=dry_run and not orphans,
                          command="cleanup --orphans" if orphans else "cleanup", quiet=output is not Output.table)
    if orphans:
        _orphans(ctx, yes=yes and not dry_run, delete_data=delete_data, output=output)
        return
    if ctx.config.provider != "local":
        _eks(ctx, yes=yes, delete_data=delete_data, output=output)
        return
    if dry_run:
        from kservectl.errors import UsageError

        raise UsageError("--dry-run is for the EKS provider and --orphans; with --provider local nothing is "
                         "deleted without --yes anyway", hint="run `kservectl status --provider local` to see "
                         "what runs")
    from kservectl.local import platform

    what = "stop every local process of" + (" and DELETE the data of" if delete_data else "")
    confirm(f"{what} {ctx.cluster!r}?", yes)
    data = platform.cleanup(ctx, delete_data=delete_data)

    def draw() -> None:
        if not data["stopped"] and not data["deleted"]:
            typer.echo(f"Nothing was running for {ctx.cluster!r}; nothing to do.")
        for item in data["stopped"]:
            typer.echo(f"stopped {item}")
        for item in data["deleted"]:
            typer.echo(f"deleted {item}")
        for item in data["kept"]:
            typer.echo(f"kept {item} (pass --delete-data to remove it)")

    emit(data, output, table=draw)


def _orphans(ctx, *, yes: bool, delete_data: bool, output: Output) -> None:
    """Dry run by default (exit 0): every orphan with its full id, evidence and monthly cost.
    With --yes, deletes exactly what it printed, in dependency order, in the account it showed."""
    from kservectl import orphans as lib

    found = lib.search(ctx)
    if not yes:
        emit(found.as_dict(), output, table=lambda: [typer.echo(line) for line in found.lines()])
        return
    report = lib.delete(ctx, found.orphans, account_id=found.account_id, delete_data=delete_data)
    emit({"search": found.as_dict(), "delete": report.as_dict()}, output,
         table=lambda: [typer.echo(line) for line in [*found.lines(), "", *report.lines()]])
    if not report.ok:
        raise typer.Exit(1)


def _eks(ctx, *, yes: bool, delete_data: bool, output: Output) -> None:
    """The platform torn down in dependency order (phases/teardown.py). Confirms with the account
    id and the cluster; a dry run lists the ordered steps and deletes nothing. Exit 1 when a step
    failed (each failure is listed with the manual step that finishes it)."""
    from kservectl.phases import teardown

    pre = teardown.preflight(ctx)
    if not ctx.dry_run:
        confirm(teardown.question(ctx, pre, delete_data=delete_data), yes)
    report = teardown.run(ctx, pre, delete_data=delete_data)
    data = {**report.as_dict(), "preflight": pre.as_dict()}
    emit(data, output, table=lambda: [typer.echo(line) for line in report.lines()])
    if not report.ok:
        raise typer.Exit(1)
