"""The kservectl command tree. Help is generated from this Typer app (plain, fast help: rich
is imported only where tables and progress are drawn)."""

from __future__ import annotations

import importlib

import typer

from kservectl.cli import config_cmd, doctor_cmd, plan_cmd, version_cmd
from kservectl.cli.common import KservectlGroup

app = typer.Typer(
    name="kservectl",
    help="Stand up and operate an ML serving platform: EKS + KServe + MLflow, or the same flow locally.",
    cls=KservectlGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("version")(version_cmd.version)
app.command("plan")(plan_cmd.plan)
app.command("doctor")(doctor_cmd.doctor)
app.add_typer(config_cmd.app, name="config")

# One module per command (``<name>_cmd.py``): ``command`` for a top-level command, ``app`` for a
# group. Help lists them in this order.
for _name in ("up", "url", "status", "test", "cleanup", "logs"):
    app.command(_name)(importlib.import_module(f"kservectl.cli.{_name}_cmd").command)

for _name in ("cluster", "alb", "kserve", "storage", "mlflow", "serve"):
    _mod = importlib.import_module(f"kservectl.cli.{_name}_cmd")
    app.add_typer(_mod.app, name=_name, help=_mod.app.info.help)


def main() -> None:
    app(prog_name="kservectl")
