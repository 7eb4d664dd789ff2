from __future__ import annotations

from typing import Annotated

import typer

from kservectl.cli.common import (
    ClusterOpt,
    ConfigOpt,
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
                                              "artifacts (EKS: the bucket and volumes).")] = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Tear the platform down. Keeps the MLflow store and artifacts unless --delete-data."""
    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider,
                          command="cleanup --orphans" if orphans else "cleanup", quiet=output is not Output.table)
    if orphans:
        _orphans(ctx, yes=yes, delete_data=delete_data, output=output)
        return
    if ctx.config.provider != "local":
        from kservectl.cli.pending import not_available

        not_available("cleanup --provider eks", "the one-command platform work (up/plan/cleanup)")
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
