"""``kservectl status`` on EKS (phases/platform_status.py): one table of the whole platform from
each phase's own status function, against moto (the cluster, its node group, the gateway NLB,
the bucket and IRSA roles made by ``storage.apply``), the Kubernetes emulator (what the charts and
manifests run, as Available Deployments and ready webhook endpoints) and the fake helm (the
releases). A ready platform exits 0; anything not ready exits 1; a component whose read fails
shows the error in its own row and the rest still shows; a missing cluster is said plainly."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import kmock
import pytest
from botocore.exceptions import ClientError

from kservectl import config, paths
from kservectl.context import Context
from kservectl.errors import AwsError
from kservectl.phases import alb, kserve, platform_status, storage

REGION = "us-west-2"
CLUSTER = "prod"
ACCOUNT = "123456789012"
ISVC = "serving.kserve.io/v1beta1"
ARGS = ("status", "--cluster", CLUSTER, "--region", REGION)


def make_ctx(kube=None) -> Context:
    loaded = config.load(env={}, flags={"cluster.name": CLUSTER, "cluster.region": REGION})
    return Context(config=loaded.config, kubeconfig=kube.kubeconfig if kube else None)


def available(name: str, namespace: str, *, labels: dict[str, str] | None = None, ready: bool = True,
              containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"replicas": 1, "readyReplicas": 1 if ready else 0,
                              "availableReplicas": 1 if ready else 0,
                              "conditions": [{"type": "Available", "status": "True" if ready else "False",
                                              "reason": "MinimumReplicasAvailable" if ready
                                              else "MinimumReplicasUnavailable"}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [{"name": name, "image": f"example/{name}"}]}}},
            "status": status}


def endpoints(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
            "subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 443}]}]}


def build_aws(ctx: Context) -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    eks = boto3.client("eks", region_name=REGION)
    eks.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    n = ctx.config.nodes
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="ng-default", nodeRole=f"arn:aws:iam::{ACCOUNT}:role/n",
                         subnets=subnets, instanceTypes=[n.instance_type],
                         scalingConfig={"minSize": n.min, "maxSize": n.max, "desiredSize": n.desired},
                         tags={"k8s.io/cluster-autoscaler/enabled": "true"})
    issuer = eks.describe_cluster(name=CLUSTER)["cluster"]["identity"]["oidc"]["issuer"]
    try:
        boto3.client("iam").create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"],
                                                            ThumbprintList=["9" * 40])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
    storage.apply(ctx)
    alb.ensure_policy(ctx)
    nlb = boto3.client("elbv2", region_name=REGION).create_load_balancer(
        Name="k8s-kourier-kourier-0a1b2c", Subnets=subnets, Type="network", Scheme="internet-facing")
    return {"gateway_dns": nlb["LoadBalancers"][0]["DNSName"]}


def build_cluster(kube, ctx: Context, gateway_dns: str) -> None:
    v = ctx.config.versions
    for ns in ("cert-manager", "knative-serving", "kourier-system", "kserve", "mlflow", "models"):
        kube.ensure_namespace(ns)
    for i in range(2):
        kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"ip-10-0-0-{i}"},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    objs = [available("cluster-autoscaler", "kube-system"),
            available("aws-load-balancer-controller", "kube-system"),
            endpoints(alb.WEBHOOK_SERVICE, "kube-system"),
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                "name": alb.SERVICE_ACCOUNT, "namespace": "kube-system",
                "annotations": {alb.ROLE_ANNOTATION: f"arn:aws:iam::{ACCOUNT}:role/lbc"}}}]
    objs += [available(n, "cert-manager") for n in kserve.CERT_MANAGER_DEPLOYMENTS]
    objs.append(endpoints(kserve.CERT_MANAGER_WEBHOOK, "cert-manager"))
    objs += [available(n, "knative-serving", labels={"app.kubernetes.io/version": v.knative_serving})
             for n in kserve.KNATIVE_DEPLOYMENTS]
    objs.append(available("3scale-kourier-gateway", "kourier-system",
                          labels={"app.kubernetes.io/version": v.net_kourier}))
    objs += [available("kserve-controller-manager", "kserve"), endpoints(kserve.KSERVE_WEBHOOK, "kserve"),
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": kserve.RECORD, "namespace": "kserve"},
              "data": {"mode": "knative"}},
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-domain",
                                                                    "namespace": "knative-serving"},
              "data": {"example.com": ""}},
             {"apiVersion": "v1", "kind": "Service", "metadata": {
                 "name": "kourier", "namespace": "kourier-system",
                 "annotations": {kserve.ANN_TYPE: "external", kserve.ANN_SCHEME: "internet-facing"}},
              "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
              "status": {"loadBalancer": {"ingress": [{"hostname": gateway_dns}]}}},
             available("mlflow", "mlflow", containers=[{
                 "name": "mlflow", "image": v.mlflow_image,
                 "args": ["server", "--backend-store-uri", "sqlite:////mlflow/mlflow.db"]}]),
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mlflow", "namespace": "mlflow"},
              "spec": {"type": "ClusterIP", "ports": [{"port": 5000}]}},
             {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "mlflow-data",
                                                                              "namespace": "mlflow"},
              "spec": {"storageClassName": "gp3", "resources": {"requests": {"storage": "10Gi"}}},
              "status": {"phase": "Bound"}}]
    for obj in objs:
        kube.create(obj)
    kube.create({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": kserve.KNATIVE_CRDS[0], "labels": {"app.kubernetes.io/version":
                                                                          v.knative_serving}},
                 "spec": {"group": "serving.knative.dev", "scope": "Namespaced",
                          "names": {"plural": "services", "kind": "Service"},
                          "versions": [{"name": "v1", "served": True, "storage": True}]}})
    kube.create({"apiVersion": ISVC, "kind": "InferenceService", "metadata": {
        "name": "wine", "namespace": "models", "annotations": {"kservectl.io/model-uri": "models:/wine/3"}},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 3, "canaryTrafficPercent": 10,
                               "model": {"modelFormat": {"name": "mlflow"}}}},
        "status": {"url": "http://wine-predictor.models.example.com",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "components": {"predictor": {"traffic": [
                       {"revisionName": "wine-predictor-00002", "percent": 10, "latestRevision": True},
                       {"revisionName": "wine-predictor-00001", "percent": 90}]}}}})
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "wine-predictor-00002-abc", "namespace": "models",
        "labels": {"serving.kserve.io/inferenceservice": "wine"}},
        "spec": {"containers": [{"name": "kserve-container"}]}, "status": {"phase": "Running"}})
    # MLflow answers its /health through the API server's service proxy (what it answers: kube.health)
    kube.health = kmock.Response(status=200, payload=b"OK")
    proxy_health = re.compile(r"/api/v1/namespaces/mlflow/services/mlflow:5000/proxy/health")
    kube.on_loop(lambda emulator: emulator["get", proxy_health] << (lambda: kube.health))


def seed_releases(tools, ctx: Context) -> None:
    tools.add_repo("eks", alb.REPO_URL)
    for key, rel in kserve.releases(ctx).items():
        if key != "metrics-server":
            assert tools.run(*kserve.helm_install_argv(ctx, rel, None, 4)).returncode == 0
    assert tools.run("helm", "upgrade", "--install", alb.RELEASE, alb.CHART, "--version", alb.chart_version(),
                     "--namespace", alb.NAMESPACE).returncode == 0


EBS_CSI = {"name": "aws-ebs-csi-driver", "version": "v1.64.0-eksbuild.1", "status": "ACTIVE", "issues": []}


@pytest.fixture
def platform(mock_aws, kube, fake_tools, isolated_env, monkeypatch):
    """A ready platform ``prod``; the kubeconfig where kservectl keeps it. (moto has no EKS add-on
    API: the add-ons read answers what EKS would.)"""
    from kservectl.phases import cluster

    monkeypatch.setattr(cluster, "addons", lambda ctx: [dict(EBS_CSI)])
    ctx = make_ctx(kube)
    ids = build_aws(ctx)
    build_cluster(kube, ctx, ids["gateway_dns"])
    seed_releases(fake_tools, ctx)
    kube.install_kubeconfig(paths.kubeconfig_path(CLUSTER))
    kube.ids = ids
    return kube


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["component"]: r for r in data["components"]}


def test_a_ready_platform_is_one_table_of_every_component_and_exits_0(cli, platform):
    result = cli(*ARGS)
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    for component in ("EKS cluster", "nodes", "cluster-autoscaler", "aws-load-balancer-controller", "cert-manager",
                      "knative-serving", "net-kourier", "kserve-crd", "kserve-resources", "kserve-runtime-configs",
                      "gateway NLB", "mlflow", "storage", "model wine"):
        assert component in out, component
    assert "http://wine-predictor.models.example.com" in out
    assert "wine-predictor-00002 10% (latest), wine-predictor-00001 90%" in out
    assert platform.ids["gateway_dns"] in out
    assert "Everything is ready." in out


def test_json_has_a_row_per_component_with_version_and_readiness(cli, platform):
    result = cli(*ARGS, "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ready"] is True and data["cluster"] == CLUSTER
    by = rows(data)
    ctx = make_ctx()
    assert by["kserve-resources"]["version"] == kserve.releases(ctx)["kserve-resources"].version
    assert by["net-kourier"]["version"] == ctx.config.versions.net_kourier
    assert by["mlflow"]["version"] == ctx.config.versions.mlflow_image.rsplit(":", 1)[-1]
    assert by["nodes"]["detail"].startswith("2/2 Ready; ng-default")
    model = by["model wine"]
    assert model["url"] == "http://wine-predictor.models.example.com" and model["replicas"] == 1
    assert model["version"] == "models:/wine/3"
    assert model["traffic"][0] == {"revision": "wine-predictor-00002", "percent": 10, "latest": True, "tag": None}
    assert "details" in data and data["details"]["storage"]["ok"] is True


def test_a_component_that_is_not_ready_makes_status_exit_1_and_says_which(cli, platform):
    platform.patch_status("apps/v1", "Deployment", "kserve-controller-manager", "kserve", {
        "availableReplicas": 0, "readyReplicas": 0,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                        "message": "Deployment does not have minimum availability."}]})
    result = cli(*ARGS, "-o", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ready"] is False
    row = rows(data)["kserve-resources"]
    assert row["ready"] is False and "0/1 replicas available" in row["detail"]
    assert rows(data)["mlflow"]["ready"] is True  # the rest is still shown as it is
    table = cli(*ARGS)
    assert table.exit_code == 1 and "Not ready: kserve-resources." in table.stdout


def test_a_failing_read_shows_its_error_in_its_row_and_the_rest_still_shows(cli, platform, monkeypatch):
    def broken(ctx):
        raise AwsError("s3:GetBucketPolicy", "AccessDenied", "not authorized to perform s3:GetBucketPolicy")

    monkeypatch.setattr(storage, "status", broken)
    platform.fail_next("list", ISVC, "InferenceService", code=500, reason="InternalError",
                       message="etcdserver: request timed out", times=10)  # more than kservectl retries a read
    result = cli(*ARGS, "-o", "json")
    assert result.exit_code == 1
    by = rows(json.loads(result.stdout))
    assert by["storage"] == {"component": "storage", "version": "", "ready": False,
                             "detail": "error: AWS s3:GetBucketPolicy failed with AccessDenied: not authorized to "
                                       "perform s3:GetBucketPolicy"}
    assert by["models"]["ready"] is False and "etcdserver: request timed out" in by["models"]["detail"]
    assert by["mlflow"]["ready"] is True and by["EKS cluster"]["ready"] is True


def test_an_unhealthy_mlflow_is_not_ready_with_what_its_health_check_answered(platform):
    platform.health = kmock.Response(status=503, payload=b"upstream connect error")
    data = platform_status.status(make_ctx(platform))
    row = rows(data)["mlflow"]
    assert row["ready"] is False and "answered 503" in row["detail"]


def test_a_gateway_without_a_domain_is_not_ready_and_says_ingress_not_configured(platform):
    platform.patch("v1", "ConfigMap", "config-domain", "knative-serving", {"data": {"example.com": None}})
    row = rows(platform_status.status(make_ctx(platform)))["gateway NLB"]
    assert row["ready"] is False and "no domain configured (404 IngressNotConfigured)" in row["detail"]


def test_a_missing_cluster_is_said_plainly_with_exit_1(cli, mock_aws):
    result = cli(*ARGS)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == ("Error: EKS cluster 'prod' does not exist in us-west-2 (create the platform "
                                     "with `kservectl up --cluster prod --region us-west-2`)")
    assert "Traceback" not in result.stderr


def test_status_reads_only(platform):
    ctx = make_ctx(platform)
    seen: list[str] = []
    ctx.aws.observers.append(lambda service, op: seen.append(op))
    writes: list[str] = []
    platform.emulator.add_listener(lambda event: writes.append(f"{event.type} {event.name}"))
    platform_status.status(ctx)
    from kservectl.aws import is_mutating

    assert [op for op in seen if is_mutating(op)] == []
    assert writes == []


def test_status_local_still_works(cli):
    result = cli("status", "--provider", "local")
    assert result.exit_code == 1
    assert "Nothing runs for 'kservectl' on this machine" in result.stdout


def test_status_reads_the_cluster_and_region_from_a_config_file(cli, platform, tmp_path):
    conf = tmp_path / "platform.yaml"
    conf.write_text(f"cluster:\n  name: {CLUSTER}\n  region: {REGION}\n")
    result = cli("status", "--config", str(conf), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["cluster"] == CLUSTER
