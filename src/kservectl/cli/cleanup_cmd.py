from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
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
    account: Annotated[str | None, typer.Option(
        "--account", help="Pin the AWS account (12 digits): refuse, changing nothing, when the credentials "
                          "belong to another. With --orphans --yes it is needed when there is no terminal to "
                          "confirm the account; the dry run prints the command with it.",
        show_default=False)] = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Tear the platform down in dependency order; S3 artifacts (EKS) or the MLflow store (local)
    stay unless --delete-data."""
    from kservectl.errors import UsageError

    if account is not None and not ACCOUNT_ID.match(account):
        raise UsageError(f"--account {account!r} is not an AWS account id", hint="give the 12 digits, e.g. "
                         "--account 123456789012 (the dry run prints it)")
    if orphans and yes and not dry_run and account is None and not sys.stdin.isatty():
        raise UsageError("cleanup --orphans --yes needs --account ACCOUNT_ID when there is no terminal to confirm "
                         "the AWS account; nothing was searched or deleted",
                         hint="run the dry run (without --yes) first: it prints the exact command, with the account")
    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider,
                          dry_run=dry_run and not orphans,
                          command="cleanup --orphans" if orphans else "cleanup", quiet=output is not Output.table)
    if orphans:
        _orphans(ctx, yes=yes and not dry_run, account=account, delete_data=delete_data, output=output,
                 config=config)
        return
    if ctx.config.provider != "local":
        _eks(ctx, yes=yes, account=account, delete_data=delete_data, output=output)
        return
    if account is not None:
        raise UsageError("--account is for AWS (the EKS provider and --orphans); --provider local has no account",
                         hint="drop --account")
    if dry_run:
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


ACCOUNT_ID = re.compile(r"^\d{12}$")


def delete_command(ctx, account_id: str, config: Path | None) -> str:
    """The exact command that deletes what the dry run listed, pinned to the account it ran in."""
    return shlex.join([*_cleanup_argv(ctx, config, "--orphans"), "--yes", "--account", account_id])


def _cleanup_argv(ctx, config: Path | None, *flags: str) -> list[str]:
    argv = ["kservectl", "cleanup", *flags, "--cluster", ctx.cluster, "--region", ctx.region]
    return argv + (["--config", str(config)] if config is not None else [])


def _orphans(ctx, *, yes: bool, account: str | None, delete_data: bool, output: Output,
             config: Path | None) -> None:
    """Dry run by default (exit 0): every orphan with its full id, evidence and monthly cost, the
    account, and the exact ``--yes --account <id>`` command. With --yes: the account is pinned by
    --account (refused, exit 2, when the credentials belong to another) or, without it, confirmed at
    the terminal; then the orphans of this search are deleted in dependency order."""
    from kservectl import orphans as lib

    found = lib.search(ctx, account_id=account)  # a pinned account is checked before anything is listed
    # While the EKS cluster still runs, --yes refuses (ClusterStillRunning): no command to print then
    command = delete_command(ctx, found.account_id, config) if found.orphans and not found.cluster_alive else None
    if not yes:
        def draw() -> None:
            for line in found.lines():
                typer.echo(line)
            if found.orphans and found.cluster_alive:
                typer.echo(f"Dry run: nothing was deleted. No delete command: EKS cluster {ctx.cluster} still runs "
                           f"({found.cluster_status}), so `--yes` would refuse. Tear it down with "
                           f"`{shlex.join(_cleanup_argv(ctx, config))}`, then run this dry run again.")
            elif command:
                what = "it" if len(found.orphans) == 1 else f"these {len(found.orphans)}"
                typer.echo(f"Dry run: nothing was deleted. To delete {what} in account {found.account_id}, run:")
                typer.echo(f"  {command}")
                if any(o.holds_data for o in found.orphans):
                    typer.echo("  (add --delete-data to delete the S3 bucket and the data in it too)")

        emit({**found.as_dict(), "delete_command": command}, output, table=draw)
        return
    if output is Output.table:
        for line in found.lines():
            typer.echo(line)
    if account is None and found.orphans:  # --yes at a terminal, no pin: the account is confirmed by hand
        what = "this orphan" if len(found.orphans) == 1 else f"these {len(found.orphans)} orphans"
        confirm(f"Delete {what} of cluster {ctx.cluster!r} in {ctx.region}, AWS account {found.account_id}?", False)
    report = lib.delete(ctx, found.orphans, account_id=account or found.account_id, delete_data=delete_data)
    emit({"search": found.as_dict(), "delete": report.as_dict()}, output,
         table=lambda: [typer.echo(line) for line in ["", *report.lines()]])
    if not report.ok:
        raise typer.Exit(1)


def _eks(ctx, *, yes: bool, account: str | None, delete_data: bool, output: Output) -> None:
    """The platform torn down in dependency order (phases/teardown.py). Confirms with the account
    id and the cluster; a dry run lists the ordered steps and deletes nothing. Exit 1 when a step
    failed (each failure is listed with the manual step that finishes it)."""
    from kservectl.phases import teardown

    pre = teardown.preflight(ctx)
    if account is not None:
        from kservectl.orphans import check_account

        check_account(pre.account_id, account, untouched="nothing was deleted")
    if not ctx.dry_run:
        confirm(teardown.question(ctx, pre, delete_data=delete_data), yes)
    report = teardown.run(ctx, pre, delete_data=delete_data)
    data = {**report.as_dict(), "preflight": pre.as_dict()}
    emit(data, output, table=lambda: [typer.echo(line) for line in report.lines()])
    if not report.ok:
        raise typer.Exit(1)
