"""The pinned compatibility matrix: one version per component, each with the source that says
these versions work together. Config may override a pin (``versions.<component>``); ``doctor``
and ``status`` compare what is installed with these pins.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    version: str
    source: str


PINS: dict[str, Pin] = {
    "kubernetes": Pin(
        "1.34",
        "eksctl v0.230.0 default (pkg/apis/eksctl.io/v1alpha5/types.go); EKS standard support 1.32-1.35",
    ),
    "kserve": Pin(
        "v0.20.0",
        "kserve/kserve tag v0.20.0 (2026-08-06); charts kserve-crd, kserve-resources, kserve-runtime-configs",
    ),
    "knative_serving": Pin(
        "1.21.1",
        "pinned by KServe v0.20.0 (hack/setup kserve-deps.env); Knative mode needs Kubernetes >= 1.32",
    ),
    "net_kourier": Pin(
        "1.21.0",
        "net-kourier is released with each Knative Serving minor; matches knative_serving 1.21",
    ),
    "cert_manager": Pin(
        "v1.17.0",
        "pinned by KServe v0.20.0 (kserve-deps.env); KServe needs >= 1.15.0",
    ),
    "aws_load_balancer_controller": Pin(
        "v3.5.0",
        "kubernetes-sigs/aws-load-balancer-controller v3.5.0 (2026-08-03); "
        "chart eks/aws-load-balancer-controller 3.5.0",
    ),
    "aws_load_balancer_controller_chart": Pin(
        "3.5.0",
        "aws/eks-charts Chart.yaml (chart jumped 1.17.x -> 3.x with controller v3, aws/eks-charts#1312)",
    ),
    "ebs_csi_driver": Pin(
        "v1.64.0",
        "kubernetes-sigs/aws-ebs-csi-driver tags (Aug 2026); installed as the EKS add-on aws-ebs-csi-driver",
    ),
    "mlserver_image": Pin(
        "docker.io/seldonio/mlserver:1.7.1",
        "KServe v0.20.0 config/runtimes/kustomization.yaml (the Helm chart default 1.5.0 is overridden)",
    ),
    "mlflow_image": Pin(
        "ghcr.io/mlflow/mlflow:v3.15.2-full",
        "mlflow/mlflow docker/README.md: -full images (boto3, DB drivers, auth) exist from v3.9.0",
    ),
    "cluster_autoscaler_chart": Pin(
        "9.53.0",
        "kubernetes/autoscaler gh-pages index.yaml: chart cluster-autoscaler 9.53.0 = appVersion "
        "1.34.2 (2025-12-04), the newest chart for Kubernetes 1.34 (9.54.0+ ship 1.35); "
        "README: 1.34.x needs 9.51.0+",
    ),
    "metrics_server_chart": Pin(
        "3.14.0",
        "kubernetes-sigs/metrics-server release metrics-server-helm-chart-3.14.0 (app v0.9.0); "
        "installed by `kserve install --mode standard` for the HPA",
    ),
    "eksctl": Pin("0.230.0", "eksctl-io/eksctl v0.230.0 (2026-08-13): the ClusterConfig schema kservectl renders for"),
}


def pinned(component: str) -> str:
    return PINS[component].version
