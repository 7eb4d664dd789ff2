"""The kservectl command tree. Help is generated from this Typer app (plain, fast help: rich
is imported only where tables and progress are drawn)."""

from __future__ import annotations

import importlib

import typer

from kservectl.cli import config_cmd, doctor_cmd, plan_cmd, version_cmd
from kservectl.cli.common import ClusterOpt, ConfigOpt, KservectlGroup, RegionOpt
from kservectl.cli.groups import pending_group
from kservectl.cli.pending import not_available

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

# Commands and groups built by later work live in their own modules, one per command
# (``kservectl/cli/<name>_cmd.py`` exposing ``command`` for a top-level command or ``app`` for a
# group). Until a module exists, the command is registered as pending: it says it is not
# available yet and fails.
_TOP = {
    "up": ("Create the whole platform, phase by phase (resumable).", "the one-command platform work (up/plan/cleanup)"),
    "url": ("Print the gateway, MLflow and model endpoints.", "the serve/test/url work"),
    "status": ("Show the whole platform's state.", "the one-command platform work (up/plan/cleanup)"),
    "test": ("Test served models over V2 and /invocations.", "the serve/test/url work"),
    "cleanup": ("Tear the platform down; --orphans finds what a cluster left behind.",
                "the one-command platform work (up/plan/cleanup)"),
    "logs": ("Show the logs of a model or a platform component.", "the one-command platform work (up/plan/cleanup)"),
}
_GROUPS = {
    "cluster": ("The EKS cluster (eksctl).", {"create": "Create the EKS cluster.", "delete": "Delete the cluster.",
                                              "status": "Show the cluster.", "render": "Print the ClusterConfig."},
                "the AWS phases work (cluster/alb/storage)"),
    "alb": ("The AWS Load Balancer Controller.", {"install": "Install it.", "uninstall": "Uninstall it.",
                                                   "status": "Show it."}, "the AWS phases work (cluster/alb/storage)"),
    "kserve": ("cert-manager, Knative + Kourier and KServe.", {"install": "Install them.",
                                                               "uninstall": "Uninstall them.", "status": "Show them."},
               "the KServe phase work"),
    "storage": ("The S3 artifact bucket and IRSA roles.", {"create": "Create them.", "delete": "Delete them.",
                                                           "status": "Show them."},
                "the AWS phases work (cluster/alb/storage)"),
    "mlflow": ("The MLflow tracking server and registry.", {"install": "Install it.", "uninstall": "Uninstall it.",
                                                            "status": "Show it.", "url": "Print its URL."},
               "the MLflow phase work"),
    "serve": ("Models served as KServe InferenceServices.", {
        "deploy": "Deploy a model.", "list": "List served models.", "status": "Show a served model.",
        "delete": "Delete a served model.", "promote": "Move all traffic to the canary.",
        "rollback": "Return traffic to the previous revision.", "example": "Train and register the example model."},
        "the serve/test/url work"),
}


def _built(name: str):
    try:
        return importlib.import_module(f"kservectl.cli.{name}_cmd")
    except ModuleNotFoundError as exc:
        if exc.name == f"kservectl.cli.{name}_cmd":
            return None
        raise


def _pending_top(command: str, arrives_with: str):
    def handler(cluster: ClusterOpt = None, region: RegionOpt = None, config: ConfigOpt = None) -> None:
        not_available(command, arrives_with)

    return handler


for _name, (_help, _with) in _TOP.items():
    _mod = _built(_name)
    if _mod is not None:
        app.command(_name)(_mod.command)
    else:
        app.command(_name, help=f"{_help} (not available yet)")(_pending_top(_name, _with))

for _name, (_help, _verbs, _with) in _GROUPS.items():
    _mod = _built(_name)
    group = _mod.app if _mod is not None else pending_group(_name, _help, _verbs, _with)
    app.add_typer(group, name=_name, help=_help)


def main() -> None:
    app(prog_name="kservectl")
