"""Phase ``cluster``: the EKS cluster, created by eksctl from a rendered ClusterConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kservectl import __version__, paths
from kservectl.context import Context
from kservectl.phases.base import LiveValues, PhasePlan, Step
from kservectl.render import Renderer

NODEGROUP = "ng-default"
CONFIG_FILE = "cluster.yaml"


def values(ctx: Context) -> dict[str, Any]:
    c = ctx.config
    return {
        "kservectl_version": __version__,
        "cluster": c.cluster,
        "nodes": c.nodes,
        "nodegroup": NODEGROUP,
        "ebs_csi_values": {
            # volumes the driver creates carry kubernetes.io/cluster/<name>=owned and our tag
            "controller": {
                "k8sTagClusterId": c.cluster.name,
                "extraVolumeTags": {"kservectl.io/cluster": c.cluster.name},
            }
        },
    }


def render_cluster_config(ctx: Context, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render("eksctl/cluster.yaml.j2", values(ctx))


def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    config_path = root / "cluster" / CONFIG_FILE
    return PhasePlan(
        phase="cluster",
        summary=f"EKS {ctx.config.cluster.kubernetes_version} cluster {ctx.cluster} in {ctx.region} "
        f"({ctx.config.nodes.desired} x {ctx.config.nodes.instance_type}, OIDC)",
        files={CONFIG_FILE: render_cluster_config(ctx)},
        steps=[
            Step("cluster", "check whether the cluster exists", "aws", calls=("eks:DescribeCluster",)),
            Step("cluster", "create the EKS cluster", "tool",
                 command=("eksctl", "create", "cluster", "-f", str(config_path),
                          "--kubeconfig", str(paths.kubeconfig_path(ctx.cluster))),
                 files=(f"cluster/{CONFIG_FILE}",)),
            Step("cluster", "wait until every node is Ready", "kube", calls=("watch nodes",)),
        ],
    )
