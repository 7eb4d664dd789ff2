"""``kservectl doctor``: is this machine ready for ``up``? Tools, AWS identity, kube context,
Python and packages. Returns data; the CLI draws it."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

from kservectl import __version__, paths
from kservectl.context import Context
from kservectl.errors import KservectlError
from kservectl.runner import TOOLS

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    required: bool  # a failure here makes `up` impossible


@dataclass(frozen=True)
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == FAIL and c.required for c in self.checks)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "kservectl": __version__, "checks": [asdict(c) for c in self.checks]}


PACKAGES = ("typer", "rich", "boto3", "kubernetes", "pyyaml", "jinja2", "mlflow", "tenacity", "httpx",
            "mlserver", "mlserver-mlflow", "scikit-learn")
LOCAL_EXTRA = ("mlserver", "mlserver-mlflow", "scikit-learn")


def run(ctx: Context) -> Report:
    eks = ctx.config.provider == "eks"
    checks: list[Check] = [
        Check("python", OK if sys.version_info >= (3, 11) else FAIL,
              f"{platform.python_version()} ({sys.executable})", True),
    ]
    for tool in TOOLS:
        checks.append(_tool(ctx, tool, required=eks))
    checks.extend(_packages(local=not eks))
    checks.append(_aws_identity(ctx, required=eks))
    checks.append(_kube_context(ctx))
    return Report(checks)


def _tool(ctx: Context, tool: str, required: bool) -> Check:
    try:
        version = ctx.runner.version(tool)
        return Check(tool, OK, ".".join(map(str, version)), required)
    except KservectlError as exc:
        return Check(tool, FAIL if required else WARN, exc.one_line(), required)


def _packages(local: bool) -> list[Check]:
    out = []
    for name in PACKAGES:
        in_extra = name in LOCAL_EXTRA
        try:
            version = metadata.version(name)
            out.append(Check(f"package {name}", OK, version, in_extra and local))
        except metadata.PackageNotFoundError:
            if in_extra:
                out.append(Check(f"package {name}", FAIL if local else WARN,
                                 "not installed (pip install 'kservectl[local]')", local))
            else:
                out.append(Check(f"package {name}", FAIL, "not installed (reinstall kservectl)", True))
    return out


def _aws_identity(ctx: Context, required: bool) -> Check:
    from kservectl import aws

    try:
        sts = ctx.aws.client("sts", fail_fast=True)
        ident = aws.call("sts:GetCallerIdentity", sts.get_caller_identity)
        return Check("aws identity", OK, f"account {ident['Account']} as {ident['Arn']} in {ctx.region}", required)
    except KservectlError as exc:
        return Check("aws identity", FAIL if required else WARN, exc.one_line(), required)


def _kube_context(ctx: Context) -> Check:
    path = ctx.kubeconfig or paths.kubeconfig_path(ctx.cluster)
    if not path.is_file():
        return Check("kube context", WARN, f"no kubeconfig at {path} yet (written by `kservectl cluster create`)",
                     False)
    try:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        current = data.get("current-context") or "(none)"
        servers = [c.get("cluster", {}).get("server", "?") for c in data.get("clusters") or []]
        return Check("kube context", OK, f"{current} at {', '.join(servers) or '?'} ({path})", False)
    except Exception as exc:  # an unreadable kubeconfig is a warning, not a crash
        return Check("kube context", WARN, f"cannot read {path}: {exc}", False)
