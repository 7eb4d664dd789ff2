"""The command groups whose behaviour arrives with later work. Each verb exists (so help is
complete) and says plainly that it is not available yet; nothing pretends to succeed."""

from __future__ import annotations

import typer

from kservectl.cli.common import ClusterOpt, ConfigOpt, RegionOpt
from kservectl.cli.pending import not_available


def pending_group(name: str, help: str, verbs: dict[str, str], arrives_with: str) -> typer.Typer:
    group = typer.Typer(help=help, no_args_is_help=True)
    for verb, verb_help in verbs.items():
        group.command(verb, help=f"{verb_help} (not available yet)")(_pending(f"{name} {verb}", arrives_with))
    return group


def _pending(command: str, arrives_with: str):
    def handler(cluster: ClusterOpt = None, region: RegionOpt = None, config: ConfigOpt = None) -> None:
        not_available(command, arrives_with)

    return handler
