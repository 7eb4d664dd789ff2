"""The Cluster Autoscaler, part of ``cluster create`` (on by default; ``cluster.autoscaler=false``
turns it off).

Helm chart ``autoscaler/cluster-autoscaler`` (pinned in the matrix) with auto-discovery of the
node group's Auto Scaling group by its tags (the ClusterConfig sets them) and the IRSA
ServiceAccount ``kube-system/cluster-autoscaler`` that eksctl creates from the ClusterConfig's
``iam.serviceAccounts`` entry (``wellKnownPolicies.autoScaler``). Pods that do not fit add nodes
up to ``nodes.max``; idle nodes are removed down to ``nodes.min``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kservectl import __version__
from kservectl.context import Context
from kservectl.errors import KservectlError
from kservectl.kube import Ref, deployment_available
from kservectl.matrix import pinned
from kservectl.phases import cluster
from kservectl.phases.base import Step
from kservectl.render import Renderer
from kservectl.runner import local_helm_major

RELEASE = "cluster-autoscaler"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
DEPLOYMENT = "cluster-autoscaler"  # fullnameOverride in the values
REPO_NAME = "autoscaler"
REPO_URL = "https://kubernetes.github.io/autoscaler"
CHART = f"{REPO_NAME}/cluster-autoscaler"
VALUES_FILE = "autoscaler-values.yaml"  # Helm values, not a Kubernetes manifest
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def chart_version() -> str:
    return pinned("cluster_autoscaler_chart")


def render_values(ctx: Context, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render("autoscaler/values.yaml.j2", {
        "kservectl_version": __version__, "cluster": ctx.cluster, "region": ctx.region,
        "chart_version": chart_version(), "fullname": DEPLOYMENT, "service_account": SERVICE_ACCOUNT,
    })


def release(ctx: Context, root: Path | None = None) -> cluster.HelmRelease:
    import yaml

    values_file = (root or cluster.rendered_root(ctx)) / cluster.PHASE / VALUES_FILE
    return cluster.HelmRelease(
        name=RELEASE, namespace=NAMESPACE, chart=CHART, version=chart_version(), repo_name=REPO_NAME,
        repo_url=REPO_URL, values_file=values_file, values=yaml.safe_load(render_values(ctx)),
    )


def steps(ctx: Context, root: Path) -> list[Step]:
    rel = release(ctx, root)
    install = cluster.helm_install_argv(ctx, rel, local_helm_major(ctx.settings))
    repo_add, repo_update = cluster.helm_repo_argvs(rel)
    return [
        Step(cluster.PHASE, "add the Cluster Autoscaler chart repository", "tool", command=tuple(repo_add)),
        Step(cluster.PHASE, "refresh the chart index", "tool", command=tuple(repo_update)),
        Step(cluster.PHASE, f"install the Cluster Autoscaler (chart {rel.version}; Helm 3 gets --wait "
             "--atomic)", "tool", command=tuple(install), files=(f"{cluster.PHASE}/{VALUES_FILE}",)),
        Step(cluster.PHASE, f"wait until Deployment {NAMESPACE}/{DEPLOYMENT} is Available", "kube",
             calls=(f"watch Deployment {NAMESPACE}/{DEPLOYMENT}",)),
    ]


def ensure_service_account(ctx: Context, actions: list[str]) -> None:
    """The IRSA ServiceAccount must exist before the chart runs (the chart does not create it).
    eksctl makes it at cluster create; a cluster created with the autoscaler off gets it now."""
    sa = ctx.kube.get("v1", "ServiceAccount", SERVICE_ACCOUNT, NAMESPACE)
    if sa is not None and ((sa.get("metadata") or {}).get("annotations") or {}).get(ROLE_ANNOTATION):
        return
    argv = ["eksctl", "create", "iamserviceaccount", "-f", str(cluster.config_path(ctx)),
            "--include", f"{NAMESPACE}/{SERVICE_ACCOUNT}", "--override-existing-serviceaccounts", "--approve"]
    ctx.runner.run(argv, retry=False)
    would = "would be " if ctx.dry_run else ""
    actions.append(f"ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT} {would}created by eksctl (IRSA)")


def install(ctx: Context, *, cluster_exists: bool = True) -> dict[str, Any]:
    """Install or upgrade the release when it differs, then wait until it is Available."""
    rel = release(ctx)
    actions: list[str] = []
    cluster.require_tools(ctx, "helm", *(["eksctl"] if cluster_exists else []))
    ctx.reporter.step(cluster.PHASE, f"Cluster Autoscaler (chart {rel.chart} {rel.version})")
    if cluster_exists:
        ensure_service_account(ctx, actions)
    outcome = cluster.ensure_helm_release(ctx, rel, cluster_exists=cluster_exists)
    would = "would be " if ctx.dry_run and outcome != "unchanged" else ""
    actions.append(f"Cluster Autoscaler {would}{outcome} (chart {rel.version})")
    if not ctx.dry_run:
        timeout = ctx.settings.waits.deployment_available
        ctx.kube.wait_for(Ref("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE), deployment_available,
                          what=f"Deployment {NAMESPACE}/{DEPLOYMENT} (Cluster Autoscaler) to be Available",
                          timeout=timeout)
        actions.append(f"Deployment {NAMESPACE}/{DEPLOYMENT} Available")
    return {"release": rel.name, "chart_version": rel.version, "result": outcome, "actions": actions}


def status(ctx: Context) -> dict[str, Any]:
    try:
        dep = ctx.kube.get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE)
    except KservectlError as exc:
        return {"error": exc.one_line()}
    if dep is None:
        return {"installed": False}
    ok, detail = deployment_available(dep)
    return {"installed": True, "available": ok, "detail": detail, "pinned_chart": chart_version()}
