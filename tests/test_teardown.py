"""``kservectl cleanup`` on EKS (phases/teardown.py) against moto (AWS, in-process), the
Kubernetes emulator (the cluster) and the recording fake eksctl/helm (kubectl is simulated: the
release manifests it deletes cannot be fetched offline). The test acts as the controllers:

- the AWS Load Balancer Controller: when a LoadBalancer Service or an Ingress marked with its
  finalizer is deleted, it deletes the moto NLB/ALB behind its hostname after a delay, then removes
  the finalizer (``lbc_running=False``: nothing happens, as when the controller is gone);
- the EBS CSI driver: when a PVC is deleted, it deletes the PV and the moto volume after a delay.

Every change is recorded on one timeline (Kubernetes deletes, tool commands, mutating AWS calls,
what the simulated controllers did), so the tests assert the order of the teardown.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from kservectl import aws, config, iam, paths
from kservectl.context import Context
from kservectl.events import RecordingReporter
from kservectl.phases import alb, kserve, storage, teardown
from kservectl.phases.base import LiveValues
from kservectl.runner import Runner, RunResult
from kservectl.settings import DEFAULT_SETTINGS, Backoff

REGION = "us-west-2"
CLUSTER = "prod"
OTHER = "prod-2"
ACCOUNT = "123456789012"  # moto's
ISVC = "serving.kserve.io/v1beta1"
LBC_FINALIZER = "service.k8s.aws/resources"
LBC_INGRESS_FINALIZER = "ingress.k8s.aws/resources"

FAST = DEFAULT_SETTINGS.with_(
    waits=dataclasses.replace(DEFAULT_SETTINGS.waits, load_balancer_deleted=10.0, volumes_deleted=10.0,
                              poll_interval=0.05, watch_chunk=0.5, inference_service_ready=10.0,
                              deployment_available=10.0, pvc_bound=10.0),
    tool_retry=Backoff(attempts=1, initial=0.01, maximum=0.01),
    aws_retry=Backoff(attempts=2, initial=0.01, maximum=0.01),
)


def short(settings=FAST, **waits: float):
    return settings.with_(waits=dataclasses.replace(settings.waits, **waits))


# -- the timeline and the simulated controllers ------------------------------------------------------------
class Timeline(list):
    lock = threading.Lock()

    def add(self, entry: str) -> None:
        with self.lock:
            self.append(entry)

    def index_of(self, prefix: str) -> int:
        for i, entry in enumerate(self):
            if entry.startswith(prefix):
                return i
        raise AssertionError(f"{prefix!r} is not on the timeline: {list(self)}")


class Controllers:
    """The AWS Load Balancer Controller and the EBS CSI driver, simulated (see the module docstring)."""

    def __init__(self, kube, timeline: Timeline, *, delay_s: float = 0.1, lbc_running: bool = True,
                 csi_running: bool = True) -> None:
        self.kube, self.timeline, self.delay_s = kube, timeline, delay_s
        self.lbc_running, self.csi_running = lbc_running, csi_running
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="controller")
        self.futures: list[concurrent.futures.Future] = []
        kube.emulator.add_listener(self._on_event)

    def _on_event(self, event) -> None:  # on the emulator's loop: hand the work to a thread
        obj = event.object
        meta = obj.get("metadata") or {}
        plural = event.resource.plural
        if plural == "services" and event.type == "MODIFIED" and meta.get("deletionTimestamp") \
                and LBC_FINALIZER in (meta.get("finalizers") or []) and self.lbc_running:
            self.futures.append(self.pool.submit(self._delete_load_balancer, obj))
        if plural == "ingresses" and event.type == "MODIFIED" and meta.get("deletionTimestamp") \
                and LBC_INGRESS_FINALIZER in (meta.get("finalizers") or []) and self.lbc_running:
            self.futures.append(self.pool.submit(self._delete_load_balancer, obj, "networking.k8s.io/v1", "Ingress"))
        if plural == "persistentvolumeclaims" and event.type == "DELETED" and self.csi_running:
            self.futures.append(self.pool.submit(self._delete_volume, obj))

    def _delete_load_balancer(self, obj: dict[str, Any], api_version: str = "v1", kind: str = "Service") -> None:
        time.sleep(self.delay_s)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        hosts = [i.get("hostname") for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
            if lb["DNSName"] in hosts:
                elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
                self.timeline.add(f"controller deleted load balancer {lb['LoadBalancerName']}")
        meta = obj["metadata"]
        self.kube.patch(api_version, kind, meta["name"], meta["namespace"], {"metadata": {"finalizers": None}})

    def _delete_volume(self, pvc: dict[str, Any]) -> None:
        time.sleep(self.delay_s)
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        pv = self.kube.find("v1", "PersistentVolume", pv_name) if pv_name else None
        if pv is None or pv["spec"].get("persistentVolumeReclaimPolicy") == "Retain":
            return
        self.kube.delete("v1", "PersistentVolume", pv_name, missing_ok=True)
        volume_id = pv["spec"]["csi"]["volumeHandle"]
        boto3.client("ec2", region_name=REGION).delete_volume(VolumeId=volume_id)
        self.timeline.add(f"csi deleted volume {volume_id}")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for future in self.futures:
            future.result()  # a broken simulation fails the test


def words(argv: list[str]) -> str:
    if argv[0] == "kubectl":
        verb = next(a for a in argv[1:] if a in ("apply", "delete", "version"))
        files = [argv[i + 1].rsplit("/", 1)[-1] for i, a in enumerate(argv) if a == "-f"]
        return " ".join(["kubectl", verb, *files])
    return " ".join(argv[:3])


@dataclass
class RecordingRunner(Runner):
    """The real runner (eksctl and helm are the recording fakes on PATH); kubectl is simulated
    (it deletes the namespace of the release manifest it is given). Every mutating command goes
    on the timeline; ``eksctl delete cluster`` also deletes the moto EKS cluster, as eksctl would."""

    timeline: Timeline = field(default_factory=Timeline)
    kube: Any = None

    def version(self, tool: str) -> tuple[int, ...]:
        return (1, 34, 5) if tool == "kubectl" else super().version(tool)

    def run(self, argv, *, mutating: bool = True, **kwargs: Any) -> RunResult:  # type: ignore[override]
        argv = [str(a) for a in argv]
        if mutating:
            self.timeline.add(words(argv))
        if argv[0] == "kubectl":
            for manifest, namespace in (("kourier.yaml", "kourier-system"), ("serving-core.yaml", "knative-serving")):
                if any(a.endswith(manifest) for a in argv):
                    self.kube.delete("v1", "Namespace", namespace, missing_ok=True)
            return RunResult(argv, 0, "", "", 0.0)
        result = super().run(argv, mutating=mutating, **kwargs)
        if argv[:3] == ["eksctl", "delete", "cluster"]:
            boto3.client("eks", region_name=REGION).delete_cluster(name=CLUSTER)
        return result


# -- the world ---------------------------------------------------------------------------------------------
@dataclass
class World:
    kube: Any
    tools: Any
    timeline: Timeline
    controllers: Controllers
    ids: dict[str, str]

    def context(self, *, settings=FAST, dry_run: bool = False, kubeconfig: Path | None = None,
                **flags: Any) -> Context:
        loaded = config.load(env={}, flags={"cluster.name": CLUSTER, "cluster.region": REGION, **flags})
        ctx = Context(config=loaded.config, settings=settings, reporter=RecordingReporter(), dry_run=dry_run,
                      kubeconfig=kubeconfig or self.kube.kubeconfig, command="cleanup")
        if not dry_run:
            ctx.runner = RecordingRunner(settings=settings, timeline=self.timeline, kube=self.kube,
                                         log_path=ctx.log_path)
        ctx.aws.observers.append(lambda service, op: self.timeline.add(f"aws {op}") if aws.is_mutating(op) else None)
        if not (kubeconfig or self.kube.kubeconfig).is_file():
            return ctx
        real_delete = ctx.kube.delete

        def delete(ref):
            self.timeline.add(f"delete {ref}")
            return real_delete(ref)

        ctx.kube.delete = delete
        return ctx

    # what exists afterwards
    def load_balancers(self) -> list[str]:
        return [lb["LoadBalancerName"] for lb in boto3.client("elbv2", region_name=REGION)
                .describe_load_balancers()["LoadBalancers"]]

    def volumes(self) -> list[str]:
        return [v["VolumeId"] for v in boto3.client("ec2", region_name=REGION).describe_volumes()["Volumes"]]

    def buckets(self) -> list[str]:
        return [b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]]

    def roles(self) -> list[str]:
        return [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]

    def policies(self) -> list[str]:
        return [p["PolicyName"] for p in boto3.client("iam").list_policies(Scope="Local")["Policies"]]

    def helm_releases(self) -> list[str]:
        return [r["name"] for r in self.tools.releases()]

    def mutating_aws(self) -> list[str]:
        return [e for e in self.timeline if e.startswith("aws ")]


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def build_aws(*, cluster_exists: bool = True) -> dict[str, str]:
    """The AWS side: the EKS cluster, the gateway NLB and the MLflow volume of ``prod``, kservectl's
    IAM roles/policies and bucket, and decoys of ``prod-2``."""
    ec2 = boto3.client("ec2", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    iam_client = boto3.client("iam")
    s3 = boto3.client("s3", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]
    if cluster_exists:
        boto3.client("eks", region_name=REGION).create_cluster(
            name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={"subnetIds": subnets})

    def nlb(name: str, tags: dict[str, str]) -> dict[str, Any]:
        return elbv2.create_load_balancer(Name=name, Subnets=subnets, Type="network", Scheme="internet-facing",
                                          Tags=tag_list(tags))["LoadBalancers"][0]

    def volume(tags: dict[str, str]) -> str:
        return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10, VolumeType="gp3", TagSpecifications=[
            {"ResourceType": "volume", "Tags": tag_list(tags)}])["VolumeId"]

    gateway = nlb("k8s-kourier-kourier-0a1b2c", {teardown.LB_CLUSTER_TAG: CLUSTER, iam.OWNER_TAG: CLUSTER,
                                                teardown.SERVICE_STACK_TAG: "kourier-system/kourier"})
    decoy_nlb = nlb("k8s-kourier-kourier-9z8y7x", {teardown.LB_CLUSTER_TAG: OTHER,
                                                  teardown.SERVICE_STACK_TAG: "kourier-system/kourier"})
    ids = {"vpc": vpc, "gateway_dns": gateway["DNSName"], "gateway": gateway["LoadBalancerName"],
           "gateway_arn": gateway["LoadBalancerArn"], "decoy_nlb": decoy_nlb["LoadBalancerName"],
           "mlflow_volume": volume({iam.OWNER_TAG: CLUSTER, "kubernetes.io/created-for/pvc/name": "mlflow-data"}),
           "decoy_volume": volume({iam.OWNER_TAG: OTHER, "kubernetes.io/created-for/pvc/name": "mlflow-data"})}
    ctx = Context(config=config.load(env={}, flags={"cluster.name": CLUSTER, "cluster.region": REGION}).config)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.example/id/X"}}]})
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                                   "Resource": "*"}]})
    for sa in storage.service_accounts(ctx, LiveValues(account_id=ACCOUNT)).values():
        arn = iam_client.create_policy(PolicyName=sa.policy_name, Path=iam.IAM_PATH, PolicyDocument=document,
                                       Tags=tag_list(iam.owner_tags(CLUSTER)))["Policy"]["Arn"]
        iam_client.create_role(RoleName=sa.role_name, Path=iam.IAM_PATH, AssumeRolePolicyDocument=trust,
                               Tags=tag_list(iam.owner_tags(CLUSTER)))
        iam_client.attach_role_policy(RoleName=sa.role_name, PolicyArn=arn)
    iam_client.create_policy(PolicyName=alb.policy_name(CLUSTER), PolicyDocument=document,
                             Tags=tag_list(iam.owner_tags(CLUSTER)))
    ids["decoy_role"] = iam.resource_name(OTHER, storage.MLFLOW)
    iam_client.create_role(RoleName=ids["decoy_role"], Path=iam.IAM_PATH, AssumeRolePolicyDocument=trust,
                           Tags=tag_list(iam.owner_tags(OTHER)))
    for name, owner in ((storage.bucket_name(ctx, ACCOUNT), CLUSTER),
                        (f"kservectl-{OTHER}-{ACCOUNT}-{REGION}", OTHER)):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(iam.owner_tags(owner))})
        s3.put_object(Bucket=name, Key="mlflow-artifacts/1/model/MLmodel", Body=b"flavors: {}")
    ids["bucket"] = storage.bucket_name(ctx, ACCOUNT)
    ids["decoy_bucket"] = f"kservectl-{OTHER}-{ACCOUNT}-{REGION}"
    return ids


def build_cluster(kube, ids: dict[str, str], *, reclaim: str = "Delete") -> None:
    """The cluster side: an InferenceService, the Kourier LoadBalancer Service (with the controller's
    finalizer and the NLB's hostname), MLflow with its PVC on an EBS volume."""
    for ns in ("models", "mlflow", "kourier-system", "knative-serving", "kserve", "cert-manager"):
        kube.ensure_namespace(ns)
    kube.create({"apiVersion": ISVC, "kind": "InferenceService", "metadata": {"name": "wine", "namespace": "models"},
                 "spec": {"predictor": {"model": {"modelFormat": {"name": "mlflow"}}}}})
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "kourier", "namespace": "kourier-system", "finalizers": [LBC_FINALIZER]},
                 "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]},
                 "status": {"loadBalancer": {"ingress": [{"hostname": ids["gateway_dns"]}]}}})
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other", "namespace": "models"},
                 "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}})
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mlflow", "namespace": "mlflow"},
                 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "mlflow"}}, "template": {
                     "metadata": {"labels": {"app": "mlflow"}},
                     "spec": {"containers": [{"name": "mlflow", "image": "ghcr.io/mlflow/mlflow:v3.15.2-full"}]}}}})
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mlflow", "namespace": "mlflow"},
                 "spec": {"type": "ClusterIP", "ports": [{"port": 5000}]}})
    kube.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-mlflow"},
                 "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                          "persistentVolumeReclaimPolicy": reclaim, "storageClassName": "gp3",
                          "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": ids["mlflow_volume"]}}})
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "mlflow-data", "namespace": "mlflow"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "volumeName": "pv-mlflow",
                          "resources": {"requests": {"storage": "10Gi"}}},
                 "status": {"phase": "Bound"}})


def seed_releases(tools, ctx: Context) -> None:
    """Helm releases as ``up`` would have left them (nothing of this goes on the timeline)."""
    tools.add_repo("eks", alb.REPO_URL)
    tools.add_repo("autoscaler", "https://kubernetes.github.io/autoscaler")
    argvs = [kserve.helm_install_argv(ctx, rel, None, 4) for key, rel in kserve.releases(ctx).items()
             if key != "metrics-server"]
    argvs += [["helm", "upgrade", "--install", name, chart, "--namespace", "kube-system"] for name, chart in (
        ("aws-load-balancer-controller", "eks/aws-load-balancer-controller"),
        ("cluster-autoscaler", "autoscaler/cluster-autoscaler"))]
    with concurrent.futures.ThreadPoolExecutor(len(argvs)) as pool:  # the fakes lock their state
        assert [r.returncode for r in pool.map(lambda argv: tools.run(*argv), argvs)] == [0] * len(argvs)
    tools.add_cluster(CLUSTER, REGION)


@pytest.fixture
def world(mock_aws, kube, fake_tools):
    ids = build_aws()
    build_cluster(kube, ids)
    timeline = Timeline()
    controllers = Controllers(kube, timeline)
    w = World(kube, fake_tools, timeline, controllers, ids)
    seed_releases(fake_tools, w.context())
    fake_tools.log_path.write_text("")  # forget the seeding
    timeline.clear()
    yield w
    controllers.close()


def teardown_with(world: World, ctx: Context, *, delete_data: bool = False) -> teardown.Report:
    return teardown.run(ctx, teardown.preflight(ctx), delete_data=delete_data)


# -- the order ------------------------------------------------------------------------------------------------
def test_the_platform_goes_in_dependency_order_and_waits_for_aws_before_the_next_step(world):
    report = teardown_with(world, world.context())

    assert report.ok, report.lines()
    assert [(s.name, s.status) for s in report.steps] == [
        ("inventory", "done"), ("models", "done"), ("load-balancers", "done"), ("mlflow", "done"),
        ("volumes", "done"), ("kserve", "done"), ("autoscaler", "done"), ("alb", "done"), ("cluster", "done"),
        ("storage", "done")]
    t = world.timeline
    order = [
        "delete InferenceService models/wine",
        "delete Service kourier-system/kourier",
        f"controller deleted load balancer {world.ids['gateway']}",  # waited for: AWS says it is gone
        "delete Deployment mlflow/mlflow",
        "delete PersistentVolumeClaim mlflow/mlflow-data",
        f"csi deleted volume {world.ids['mlflow_volume']}",  # waited for: EC2 says it is gone
        "helm uninstall kserve-runtime-configs",
        "helm uninstall kserve",
        "helm uninstall kserve-crd",
        "kubectl delete kourier.yaml",
        "helm uninstall cert-manager",
        "helm uninstall cluster-autoscaler",
        "helm uninstall aws-load-balancer-controller",  # the controller last in the cluster
        "aws DeletePolicy",  # its IAM policy
        "eksctl delete cluster",
        "aws DeleteRole",  # then kservectl's IAM roles
    ]
    positions = [t.index_of(entry) for entry in order]
    assert positions == sorted(positions), list(t)
    # nothing deleted through AWS before the cluster's own objects were gone, but the LBC policy
    assert all(e in ("aws DeletePolicy", "aws DeletePolicyVersion") for e in world.mutating_aws()
               [:world.mutating_aws().index("aws DeletePolicy") + 1])
    assert world.helm_releases() == []
    assert world.tools.clusters() == []
    lb_step = next(s for s in report.steps if s.name == "load-balancers")
    assert f"network load balancer {world.ids['gateway']} ({world.ids['gateway_arn']}) deleted" in lb_step.details
    volume_step = next(s for s in report.steps if s.name == "volumes")
    assert f"EBS volume {world.ids['mlflow_volume']} deleted" in volume_step.details


def test_what_is_not_ours_survives_and_the_bucket_stays_without_delete_data(world):
    report = teardown_with(world, world.context())

    assert report.ok
    assert world.load_balancers() == [world.ids["decoy_nlb"]]
    assert world.volumes() == [world.ids["decoy_volume"]]
    assert sorted(world.buckets()) == sorted([world.ids["bucket"], world.ids["decoy_bucket"]])
    assert world.roles() == [world.ids["decoy_role"]]
    assert world.policies() == []
    assert any(world.ids["bucket"] in k and "--delete-data" in k for k in report.kept)
    assert world.kube.find("v1", "Service", "other", "models") is not None  # a ClusterIP Service: no AWS resource
    assert "aws DeleteBucket" not in world.timeline


def test_the_control_plane_log_group_is_kept_with_the_command_that_deletes_just_it(world):
    logs = boto3.client("logs", region_name=REGION)
    for name in ("/aws/eks/prod/cluster", "/aws/eks/prod-2/cluster"):
        logs.create_log_group(logGroupName=name)  # EKS writes them; eksctl never deletes them

    report = teardown_with(world, world.context())

    assert report.ok, report.lines()
    delete = "aws logs delete-log-group --region us-west-2 --log-group-name /aws/eks/prod/cluster"
    review = "kservectl cleanup --orphans --cluster prod --region us-west-2"
    kept = [k for k in report.kept if "/aws/eks/" in k]
    assert kept == [f"CloudWatch log group /aws/eks/prod/cluster (eksctl keeps it): `{delete}` deletes just it; "
                    f"`{review}` (a dry run) lists everything else left behind"]
    assert f"kept: {kept[0]}" in report.lines()
    # the orphans' --yes command deletes all that search finds (the Retain volumes too), never offered for this
    assert not [line for line in report.lines() if "--orphans" in line and "--yes" in line]
    names = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/eks/")["logGroups"]]
    assert names == ["/aws/eks/prod-2/cluster", "/aws/eks/prod/cluster"]  # cleanup itself deleted neither
    # ... and that command deletes ours and only ours (moto stands in for the AWS CLI: the same call)
    argv = delete.split()
    region, name = argv[argv.index("--region") + 1], argv[argv.index("--log-group-name") + 1]
    assert argv[:3] == ["aws", "logs", "delete-log-group"]
    boto3.client("logs", region_name=region).delete_log_group(logGroupName=name)
    names = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/eks/")["logGroups"]]
    assert names == ["/aws/eks/prod-2/cluster"]


def test_no_log_group_is_reported_kept_when_control_plane_logging_made_none(world):
    report = teardown_with(world, world.context())
    assert report.ok, report.lines()
    assert not [k for k in report.kept if "log group" in k]


def test_delete_data_deletes_our_bucket_and_only_ours(world):
    report = teardown_with(world, world.context(), delete_data=True)

    assert report.ok, report.lines()
    assert world.buckets() == [world.ids["decoy_bucket"]]
    assert world.timeline.index_of("eksctl delete cluster") < world.timeline.index_of("aws DeleteBucket")


def test_a_second_cleanup_finds_nothing_left_and_changes_nothing(world):
    assert teardown_with(world, world.context()).ok
    world.timeline.clear()
    report = teardown_with(world, world.context())
    assert report.ok
    assert [s.status for s in report.steps][:7] == ["not needed"] * 7
    assert world.timeline == []
    assert "no cluster prod in us-west-2: nothing to delete" in next(s for s in report.steps
                                                                        if s.name == "cluster").details


# -- waiting, and what a timeout says --------------------------------------------------------------------------
def test_a_load_balancer_that_is_never_deleted_times_out_naming_it_and_blocks_the_cluster_delete(world):
    world.controllers.lbc_running = False  # the controller is gone: nobody deletes the NLB
    ctx = world.context(settings=short(load_balancer_deleted=0.5))

    report = teardown_with(world, ctx)

    assert not report.ok
    status = {s.name: s for s in report.steps}
    lbs = status["load-balancers"]
    assert lbs.status == "failed"
    assert "timed out after 0.5s waiting for the load balancers of 1 object to be deleted" in lbs.error
    assert "Service kourier-system/kourier is being deleted, held by finalizers service.k8s.aws/resources" in lbs.error
    assert f"network load balancer {world.ids['gateway']} ({world.ids['gateway_arn']}) is active" in lbs.error
    assert f"aws elbv2 delete-load-balancer --load-balancer-arn {world.ids['gateway_arn']}" in lbs.manual
    # what does not depend on it still ran; what does was skipped, saying why
    assert [status[n].status for n in ("models", "mlflow", "volumes", "autoscaler")] == ["done"] * 4
    assert status["kserve"].status == "failed"  # its own gateway step waits for the same NLB, and says so
    assert status["kserve"].error.startswith("gateway Service and its NLB: timed out")
    assert "helm uninstall cert-manager" in world.timeline  # ...and KServe's uninstall went on past it
    for name in ("alb", "cluster"):
        assert status[name].status == "skipped"
        assert status[name].details == ["skipped: it needs step load-balancers, which failed"]
    assert status["storage"].status == "skipped"
    assert status["storage"].details == ["skipped: it needs step cluster, which was skipped"]
    assert "helm uninstall aws-load-balancer-controller" not in world.timeline
    assert "eksctl delete cluster" not in world.timeline
    lines = report.lines()
    assert "  - load-balancers (failed): " + lbs.manual in lines
    assert any(line.startswith("  - cluster (skipped): `eksctl delete cluster --name prod --region us-west-2 --wait`")
               for line in lines)
    assert lines[-1] == "Then find anything left behind with: kservectl cleanup --orphans --cluster prod " \
                        "--region us-west-2"
    assert report.as_dict()["next"] == "kservectl cleanup --orphans --cluster prod --region us-west-2"


def test_an_ingress_alb_is_waited_for_until_aws_reports_it_deleted_before_the_next_step(world):
    ec2 = boto3.client("ec2", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [world.ids["vpc"]]}])["Subnets"]]
    alb = elbv2.create_load_balancer(Name="k8s-web-site-0a1b2c3d4e", Subnets=subnets, Type="application",
                                     Scheme="internet-facing", Tags=tag_list({teardown.LB_CLUSTER_TAG: CLUSTER,
                                                                              teardown.INGRESS_STACK_TAG: "web/site"})
                                     )["LoadBalancers"][0]
    world.kube.ensure_namespace("web")
    world.kube.create({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {
        "name": "site", "namespace": "web", "finalizers": [LBC_INGRESS_FINALIZER]},
        "spec": {"ingressClassName": "alb", "rules": []},
        "status": {"loadBalancer": {"ingress": [{"hostname": alb["DNSName"]}]}}})
    world.controllers.delay_s = 0.5  # the controller takes its time: cleanup must wait for it
    ctx = world.context()

    report = teardown_with(world, ctx)

    assert report.ok, report.lines()
    t = world.timeline
    # the Ingress deleted, then (waited for) AWS reports its ALB gone, and only then the next step
    assert t.index_of("delete Ingress web/site") < t.index_of("controller deleted load balancer k8s-web-site") \
        < t.index_of("delete Deployment mlflow/mlflow")
    step = next(s for s in report.steps if s.name == "load-balancers")
    assert step.details[:2] == [f"deleted Ingress web/site ({alb['DNSName']})",
                                f"deleted Service kourier-system/kourier ({world.ids['gateway_dns']})"]
    assert f"application load balancer k8s-web-site-0a1b2c3d4e ({alb['LoadBalancerArn']}) deleted" in step.details
    assert world.load_balancers() == [world.ids["decoy_nlb"]]
    waits = [m for m in ctx.reporter.messages("waiting") if m.startswith("the load balancers of 2 objects")]
    assert any(f"application load balancer k8s-web-site-0a1b2c3d4e ({alb['LoadBalancerArn']}) is active" in m
               for m in waits)  # it said what it waited for


def test_a_volume_that_is_never_deleted_times_out_naming_it(world):
    world.controllers.csi_running = False
    report = teardown_with(world, world.context(settings=short(volumes_deleted=0.5)))
    step = next(s for s in report.steps if s.name == "volumes")
    assert step.status == "failed"
    assert f"EBS volume {world.ids['mlflow_volume']} is available" in step.error
    assert f"aws ec2 delete-volume --volume-id {world.ids['mlflow_volume']} --region us-west-2" in step.manual
    assert next(s for s in report.steps if s.name == "cluster").status == "skipped"


def test_a_pvc_whose_pv_is_gone_is_matched_to_its_volume_by_the_csi_drivers_tags(world):
    ec2 = boto3.client("ec2", region_name=REGION)

    def volume(cluster: str) -> str:
        return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[{
            "ResourceType": "volume", "Tags": tag_list({teardown.PVC_NAME_TAG: "scratch",
                                                        teardown.PVC_NAMESPACE_TAG: "models",
                                                        iam.OWNER_TAG: cluster})}])["VolumeId"]

    ours, theirs = volume(CLUSTER), volume(OTHER)
    world.kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": "scratch", "namespace": "models"},
                       "spec": {"volumeName": "pv-already-gone", "resources": {"requests": {"storage": "1Gi"}}}})
    report = teardown_with(world, world.context(settings=short(volumes_deleted=0.5)))
    step = next(s for s in report.steps if s.name == "volumes")
    assert step.status == "failed"  # nobody deletes it here: the wait names it
    assert f"EBS volume {ours} is available" in step.error and theirs not in step.error


def test_a_volume_tagged_shared_with_this_cluster_is_not_taken_for_a_pvcs_volume(mock_aws):
    ec2 = boto3.client("ec2", region_name=REGION)

    def volume(tags: dict[str, str]) -> str:
        return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[{
            "ResourceType": "volume", "Tags": tag_list({teardown.PVC_NAME_TAG: "scratch",
                                                        teardown.PVC_NAMESPACE_TAG: "models", **tags})}])["VolumeId"]

    owned = volume({f"kubernetes.io/cluster/{CLUSTER}": "owned"})
    volume({f"kubernetes.io/cluster/{CLUSTER}": "shared"})
    ctx = Context(config=config.load(env={}, flags={"cluster.name": CLUSTER, "cluster.region": REGION}).config)
    assert teardown.volumes_by_tags(ctx, [teardown.Claim("models", "scratch")]) == {("models", "scratch"): owned}


def test_a_retained_volume_is_kept_reported_with_its_delete_command_and_not_waited_for(mock_aws, kube, fake_tools):
    ids = build_aws()
    build_cluster(kube, ids, reclaim="Retain")
    timeline = Timeline()
    controllers = Controllers(kube, timeline)
    w = World(kube, fake_tools, timeline, controllers, ids)
    seed_releases(fake_tools, w.context())
    try:
        report = teardown_with(w, w.context(settings=short(volumes_deleted=0.5)))
    finally:
        controllers.close()
    assert report.ok, report.lines()
    assert ids["mlflow_volume"] in w.volumes()
    assert any(f"EBS volume {ids['mlflow_volume']} of PVC mlflow/mlflow-data" in k and "Retain" in k
               and f"aws ec2 delete-volume --volume-id {ids['mlflow_volume']}" in k for k in report.kept)


# -- keep going ------------------------------------------------------------------------------------------------
def test_a_failing_step_does_not_stop_the_rest_and_the_report_says_how_to_finish_it(world):
    world.tools.script([{"tool": "helm", "argv_prefix": ["uninstall", "kserve", "--namespace"],
                         "stderr": "Error: uninstallation completed with 1 error(s): secrets is forbidden\n",
                         "exit_code": 1}])

    report = teardown_with(world, world.context())

    status = {s.name: s for s in report.steps}
    assert status["kserve"].status == "failed"
    assert "helm release kserve" in status["kserve"].error and "secrets is forbidden" in status["kserve"].error
    assert status["kserve"].manual == "helm uninstall kserve -n kserve"
    # KServe's failure blocks nothing after it: the cluster and IAM still went
    assert [status[n].status for n in ("autoscaler", "alb", "cluster", "storage")] == ["done"] * 4
    assert "helm uninstall cert-manager" in world.timeline  # kserve.uninstall itself kept going too
    assert "eksctl delete cluster" in world.timeline
    lines = report.lines()
    assert "1 step failed; finish by hand:" in lines
    assert "  - kserve (failed): helm uninstall kserve -n kserve" in lines
    assert lines[-1].endswith("kservectl cleanup --orphans --cluster prod --region us-west-2")


def test_an_unreachable_cluster_api_fails_the_inventory_and_skips_what_needs_it(mock_aws, kube, fake_tools, tmp_path):
    ids = build_aws()
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(kube.kubeconfig.read_text().replace(str(kube.port), "1"))
    timeline = Timeline()
    w = World(kube, fake_tools, timeline, Controllers(kube, timeline), ids)
    ctx = w.context(kubeconfig=dead, settings=FAST.with_(kube_request_timeout=2.0))
    report = teardown_with(w, ctx)
    status = {s.name: s.status for s in report.steps}
    assert status == {"inventory": "failed", "models": "skipped", "load-balancers": "skipped", "mlflow": "skipped",
                      "volumes": "skipped", "kserve": "skipped", "autoscaler": "skipped", "alb": "skipped",
                      "cluster": "skipped", "storage": "skipped"}
    inventory = report.steps[0]
    assert "cannot reach the Kubernetes API" in inventory.error
    assert "eksctl utils write-kubeconfig --cluster prod --region us-west-2" in inventory.manual
    assert w.mutating_aws() == [] and timeline == []
    assert ids["gateway"] in w.load_balancers()


# -- the cluster is already gone --------------------------------------------------------------------------------
def test_when_the_cluster_is_gone_the_in_cluster_steps_are_not_needed_and_the_aws_ones_still_run(
        mock_aws, kube, fake_tools, isolated_env):
    ids = build_aws(cluster_exists=False)
    timeline = Timeline()
    w = World(kube, fake_tools, timeline, Controllers(kube, timeline), ids)
    ctx = w.context(kubeconfig=isolated_env / "no-such-kubeconfig")

    pre = teardown.preflight(ctx)
    report = teardown.run(ctx, pre)

    assert pre.cluster_status is None and pre.inventory is None
    assert report.ok, report.lines()
    status = {s.name: s for s in report.steps}
    for name in ("inventory", "models", "load-balancers", "mlflow", "volumes", "kserve", "autoscaler"):
        assert status[name].status == "not needed"
        assert status[name].details == ["no EKS cluster prod in us-west-2: nothing in the cluster to remove"]
    assert report.notes == ["no EKS cluster prod in us-west-2: nothing in the cluster to remove; "
                            "the AWS steps still run"]
    assert "IAM policy " in " ".join(status["alb"].details)
    assert status["cluster"].details == ["no cluster prod in us-west-2: nothing to delete"]
    assert w.policies() == [] and w.roles() == [ids["decoy_role"]]
    assert fake_tools.calls() == []  # no tool: nothing in a cluster to reach
    assert not any(e.startswith("delete ") for e in timeline)
    question = teardown.question(ctx, pre, delete_data=False)
    assert "EKS cluster 'prod' in us-west-2 (AWS account 123456789012) does not exist" in question


# -- the dry run --------------------------------------------------------------------------------------------------
def test_a_dry_run_lists_the_ordered_steps_with_what_each_would_delete_and_changes_nothing(world):
    ctx = world.context(dry_run=True)

    report = teardown_with(world, ctx)

    assert report.dry_run and report.ok
    assert [s.name for s in report.steps] == ["inventory", "models", "load-balancers", "mlflow", "volumes", "kserve",
                                              "autoscaler", "alb", "cluster", "storage"]
    assert {s.status for s in report.steps} == {"would run"}
    text = "\n".join(report.lines())
    assert "would delete InferenceService models/wine" in text
    assert f"would delete Service kourier-system/kourier ({world.ids['gateway_dns']}) and wait until AWS reports " \
           "its load balancer deleted" in text
    assert f"would delete PVC mlflow/mlflow-data and wait until its EBS volume {world.ids['mlflow_volume']} " \
           "is deleted" in text
    assert "would run: eksctl delete cluster -f " in text
    assert f"would keep the S3 bucket {world.ids['bucket']} (--delete-data deletes it)" in text
    assert text.endswith("Dry run: nothing was deleted.")
    # no mutating call of any kind
    assert world.timeline == []
    assert world.tools.calls() == []
    assert world.kube.find(ISVC, "InferenceService", "wine", "models") is not None
    assert world.ids["gateway"] in world.load_balancers() and world.ids["mlflow_volume"] in world.volumes()


def test_the_steps_are_plan_data(world):
    ctx = world.context(dry_run=True)
    steps = teardown.steps(ctx, teardown.preflight(ctx), delete_data=True)
    assert [s.kind for s in steps] == ["kube"] * 7 + ["aws"] * 3
    assert steps[-1].describe() == "will delete kservectl's IAM roles and policies and the S3 bucket"


# -- the confirmation and the CLI ---------------------------------------------------------------------------------
@pytest.fixture
def cli_world(world, isolated_env, monkeypatch, tmp_path):
    """The world as the CLI sees it: the kubeconfig where kservectl keeps it, the fakes on PATH and
    a stub kubectl (the release manifests it would delete cannot be fetched offline) that records
    its argv."""
    world.kube.install_kubeconfig(paths.kubeconfig_path(CLUSTER))
    stub = tmp_path / "bin" / "kubectl"
    stub.parent.mkdir()
    stub.write_text(f"""#!{sys.executable}
import json, sys
with open({str(tmp_path / "kubectl.log")!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "version" in sys.argv:
    print(json.dumps({{"clientVersion": {{"gitVersion": "v1.34.5"}}}}))
""")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{world.tools.bin_dir}:{stub.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("COLUMNS", "200")
    return world


ARGS = ("cleanup", "--cluster", CLUSTER, "--region", REGION)


def test_cleanup_refuses_without_yes_and_a_terminal_showing_the_account_and_the_cluster(cli, cli_world):
    result = cli(*ARGS)
    assert result.exit_code == 2
    error = " ".join(result.stderr.split())
    assert "Delete EKS cluster 'prod' in us-west-2 (AWS account 123456789012)" in error
    assert "1 InferenceService, 1 load balancer, 1 volume, MLflow database included" in error
    assert "needs confirmation and there is no terminal to ask (re-run with --yes)" in error
    assert cli_world.tools.calls() == []
    assert cli_world.kube.find(ISVC, "InferenceService", "wine", "models") is not None


def test_cleanup_asks_on_a_terminal_and_a_no_changes_nothing(cli, cli_world, monkeypatch):
    from types import SimpleNamespace

    from kservectl.cli import common

    monkeypatch.setattr(common, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))  # a terminal
    result = cli(*ARGS, "--delete-data", input="n\n")
    assert result.exit_code == 130
    assert "AWS account 123456789012" in result.stderr and "'prod'" in result.stderr
    assert f"and the S3 bucket {cli_world.ids['bucket']} with every model and artifact" in " ".join(
        result.stderr.split())
    assert cli_world.tools.calls() == []
    assert cli_world.ids["bucket"] in cli_world.buckets()


def test_cleanup_yes_tears_everything_down_and_prints_each_step(cli, cli_world):
    result = cli(*ARGS, "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("Teardown of cluster prod in us-west-2 (AWS account 123456789012):")
    assert " 3. load-balancers: done" in out and "10. storage: done" in out
    assert f"kept: S3 bucket {cli_world.ids['bucket']}" in out
    assert "Done: cluster prod and kservectl's resources are gone." in out
    assert cli_world.load_balancers() == [cli_world.ids["decoy_nlb"]]


def test_cleanup_dry_run_json_lists_the_steps_needs_no_confirmation_and_deletes_nothing(cli, cli_world):
    result = cli(*ARGS, "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["ok"] is True and data["next"] is None
    assert [s["step"] for s in data["steps"]][:3] == ["inventory", "models", "load-balancers"]
    assert data["preflight"]["account_id"] == ACCOUNT
    assert data["preflight"]["inventory"]["load_balancers"] == [
        {"object": "Service kourier-system/kourier", "hostnames": [cli_world.ids["gateway_dns"]]}]
    assert cli_world.tools.calls() == []
    assert cli_world.kube.find(ISVC, "InferenceService", "wine", "models") is not None


def test_cleanup_exits_1_when_a_step_failed_and_lists_the_manual_steps(cli, cli_world):
    cli_world.tools.script([{"tool": "helm", "argv_prefix": ["uninstall", "cluster-autoscaler"],
                             "stderr": "Error: release: not found\n", "exit_code": 1}])
    result = cli(*ARGS, "--yes", "-o", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["failures"] == [{"step": "autoscaler", "status": "failed",
                                 "error": next(s["error"] for s in data["steps"] if s["step"] == "autoscaler"),
                                 "manual_step": f"`helm uninstall cluster-autoscaler --namespace kube-system "
                                                f"--kubeconfig {paths.kubeconfig_path(CLUSTER)}`"}]
    assert data["next"] == "kservectl cleanup --orphans --cluster prod --region us-west-2"


def test_cleanup_local_still_works_and_refuses_a_dry_run(cli):
    result = cli("cleanup", "--provider", "local", "--yes")
    assert result.exit_code == 0
    assert "Nothing was running for 'kservectl'; nothing to do." in result.stdout
    refused = cli("cleanup", "--provider", "local", "--dry-run")
    assert refused.exit_code == 2 and "--dry-run is for the EKS provider" in refused.stderr
    no_account = cli("cleanup", "--provider", "local", "--yes", "--account", ACCOUNT)
    assert no_account.exit_code == 2 and "--account is for AWS" in no_account.stderr


def test_cleanup_pinned_to_another_account_refuses_before_anything_is_deleted(cli, cli_world):
    result = cli(*ARGS, "--yes", "--account", "111111111111")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: refusing: the AWS credentials belong to account 123456789012, not the pinned account 111111111111; "
        "nothing was deleted (use the credentials of account 111111111111 (AWS_PROFILE / aws.profile))")
    assert cli_world.tools.calls() == [] and cli_world.timeline == []
    assert cli_world.kube.find(ISVC, "InferenceService", "wine", "models") is not None
    pinned = cli(*ARGS, "--dry-run", "--account", ACCOUNT)
    assert pinned.exit_code == 0, pinned.stderr


def test_cleanup_orphans_dry_run_flag_never_deletes_even_with_yes(cli, mock_aws):
    ec2 = boto3.client("ec2", region_name=REGION)
    vol = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, TagSpecifications=[
        {"ResourceType": "volume", "Tags": tag_list({iam.OWNER_TAG: CLUSTER})}])["VolumeId"]
    result = cli(*ARGS, "--orphans", "--yes", "--dry-run")
    assert result.exit_code == 0
    assert vol in result.stdout
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [vol]


# -- pieces ---------------------------------------------------------------------------------------------------------
def test_a_load_balancer_belongs_to_a_holder_by_dns_or_by_this_clusters_stack_tags():
    ctx = Context(config=config.load(env={}, flags={"cluster.name": CLUSTER}).config)
    holder = teardown.Holder("Service", "kourier-system", "kourier", ("abc.elb.amazonaws.com",),
                             "kourier-system/kourier")

    def lb(dns: str, **tags: str) -> teardown.LoadBalancer:
        return teardown.LoadBalancer("n", "arn", dns, "active", "network", tuple(tags.items()))

    assert teardown.belongs(ctx, lb("ABC.elb.amazonaws.com"), [holder]) is holder
    provisioning = lb("", **{teardown.LB_CLUSTER_TAG: CLUSTER, teardown.SERVICE_STACK_TAG: "kourier-system/kourier"})
    assert teardown.belongs(ctx, provisioning, [holder]) is holder
    other = lb("", **{teardown.LB_CLUSTER_TAG: OTHER, teardown.SERVICE_STACK_TAG: "kourier-system/kourier"})
    assert teardown.belongs(ctx, other, [holder]) is None
    assert teardown.belongs(ctx, lb("xyz.elb.amazonaws.com", **{teardown.LB_CLUSTER_TAG: CLUSTER}), [holder]) is None


def test_ingresses_are_holders_with_their_group_as_stack(kube):
    kube.ensure_namespace("web")
    kube.create({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {
        "name": "site", "namespace": "web", "annotations": {teardown.INGRESS_GROUP: "shared"}},
        "spec": {"rules": []}, "status": {"loadBalancer": {"ingress": [{"hostname": "alb.example"}]}}})
    ctx = Context(config=config.load(env={}).config, kubeconfig=kube.kubeconfig)
    assert teardown.holders(ctx) == [teardown.Holder("Ingress", "web", "site", ("alb.example",), "shared")]


def test_cleanup_reads_the_cluster_and_region_from_a_config_file(cli, cli_world, tmp_path):
    conf = tmp_path / "platform.yaml"
    conf.write_text(f"cluster:\n  name: {CLUSTER}\n  region: {REGION}\n")
    result = cli("cleanup", "--config", str(conf), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Would tear down cluster {CLUSTER} in {REGION} (AWS account {ACCOUNT}):")
