"""``kservectl cleanup`` on EKS: the whole platform torn down in dependency order, so that
nothing billed is left behind.

``eksctl delete cluster`` alone strands what Kubernetes created in AWS: the NLBs of LoadBalancer
Services (and their security groups), the ALBs of Ingresses, and the EBS volumes of PVCs (it
does not delete PVCs at all); a VPC then fails to delete while they hold ENIs. So the order is
(each step reuses the phases' own uninstall/delete functions where they exist):

1. ``inventory``: read what the cluster holds (InferenceServices, LoadBalancer Services and
   Ingresses with their load balancers' DNS names, PVCs with their EBS volume ids) before
   anything is deleted;
2. ``models``: every InferenceService (``serve.delete``; others' namespaces too), while the
   KServe controller that removes their finalizers still runs;
3. ``load-balancers``: every LoadBalancer Service and Ingress, then a wait until they are gone
   from the cluster *and* ELBv2 (``DescribeLoadBalancers`` by DNS name and by the controller's
   tags ``elbv2.k8s.aws/cluster`` + ``service.k8s.aws/stack``) reports their load balancers
   deleted;
4. ``mlflow``: ``mlflow.uninstall`` with its PVC (before the other PVCs: a PVC in use by a pod
   stays Terminating, ``kubernetes.io/pvc-protection``);
5. ``volumes``: every remaining PVC, then a wait until EC2 (``DescribeVolumes`` by the PV's volume
   handle) reports their EBS volumes deleted; a PV whose reclaimPolicy is Retain keeps its volume
   (reported with the command that deletes it);
6. ``kserve``: ``kserve.uninstall`` (KServe, Knative Serving + Kourier, cert-manager);
7. ``autoscaler``: the Cluster Autoscaler's Helm release;
8. ``alb``: ``alb.uninstall``, the AWS Load Balancer Controller last among in-cluster components
   (removed before the Services, it would strand their NLBs and finalizers), with its IRSA role
   and IAM policy;
9. ``cluster``: ``cluster.delete`` (``eksctl delete cluster --wait``); the control-plane log group
   ``/aws/eks/<name>/cluster`` that eksctl keeps is kept too (audit logs outlive the cluster on
   purpose) and, when it exists, reported with the ``aws logs delete-log-group`` command that
   deletes just it, and the ``cleanup --orphans`` dry run that lists everything else left behind
   (not its ``--yes`` command: that deletes all it finds, e.g. the volumes of Retain PVs kept here);
10. ``storage``: ``storage.delete``, kservectl's IAM roles and policies, and the S3 bucket only
    with ``delete_data``.

It keeps going past a failure: a step whose prerequisite failed is skipped and says why; every
failure is reported at the end with the manual step that finishes it (and ``cleanup --orphans``
to find what is left). When the cluster is already gone, the in-cluster steps are "not needed"
and the AWS ones still run. With ``ctx.dry_run`` nothing is called but reads: each step says
what it would do, from the inventory when the cluster can be read.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kservectl import aws
from kservectl.context import Context
from kservectl.errors import KservectlError, KubeError
from kservectl.kube import Obj, Ref
from kservectl.phases import cluster
from kservectl.phases.base import LiveValues, Step
from kservectl.runner import helm_major, helm_wait_flags

PHASE = "cleanup"

# What AWS Load Balancer Controller tags its load balancers with (LBC docs, annotations.md).
LB_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
SERVICE_STACK_TAG = "service.k8s.aws/stack"
INGRESS_STACK_TAG = "ingress.k8s.aws/stack"
INGRESS_GROUP = "alb.ingress.kubernetes.io/group.name"
EBS_CSI_DRIVER = "ebs.csi.aws.com"

LOG_GROUP = "/aws/eks/{cluster}/cluster"  # EKS writes the control-plane logs there; eksctl keeps it (eksctl#1018)
PVC_NAME_TAG = "kubernetes.io/created-for/pvc/name"  # set by the EBS CSI driver on every volume it provisions
PVC_NAMESPACE_TAG = "kubernetes.io/created-for/pvc/namespace"
USABLE_CLUSTER_STATES = ("ACTIVE", "UPDATING")  # the API server answers while EKS updates the cluster

DONE, FAILED, SKIPPED, NOT_NEEDED, WOULD = "done", "failed", "skipped", "not needed", "would run"
PASSED = (DONE, NOT_NEEDED, WOULD)  # a step after one of these may run


class StepFailed(KservectlError):
    """A teardown step failed; ``manual`` is what finishes it by hand."""

    def __init__(self, message: str, *, manual: str) -> None:
        super().__init__(message)
        self.manual = manual


# -- what the cluster holds ------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    """A Kubernetes object that owns an AWS load balancer: a LoadBalancer Service or an Ingress."""

    kind: str
    namespace: str
    name: str
    hostnames: tuple[str, ...] = ()
    stack: str = ""  # the controller's stack tag value (ns/name, or the Ingress group)

    @property
    def ref(self) -> Ref:
        api = "v1" if self.kind == "Service" else "networking.k8s.io/v1"
        return Ref(api, self.kind, self.name, self.namespace)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Claim:
    """A PVC with the EBS volume behind it."""

    namespace: str
    name: str
    volume: str | None = None  # the PV name
    volume_id: str | None = None  # vol-...
    reclaim: str | None = None  # Delete | Retain

    @property
    def label(self) -> str:
        return f"PVC {self.namespace}/{self.name}"


@dataclass
class Inventory:
    inference_services: list[tuple[str, str]] = field(default_factory=list)
    holders: list[Holder] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"inference_services": [f"{ns}/{name}" for ns, name in self.inference_services],
                "load_balancers": [{"object": h.label, "hostnames": list(h.hostnames)} for h in self.holders],
                "volumes": [{"pvc": f"{c.namespace}/{c.name}", "volume_id": c.volume_id, "reclaim": c.reclaim}
                            for c in self.claims]}


def _items(ctx: Context, api_version: str, kind: str) -> list[Obj]:
    """Every object of a kind in every namespace; none when the API does not serve the kind (its
    CRD is not installed)."""
    try:
        items, _ = ctx.kube.list(api_version, kind)
    except KubeError as exc:
        if exc.status == 404:
            return []
        raise
    return items


def _hostnames(obj: Obj) -> tuple[str, ...]:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(h for h in (e.get("hostname") or e.get("ip") for e in ingress) if h)


def holders(ctx: Context) -> list[Holder]:
    found: list[Holder] = []
    for svc in _items(ctx, "v1", "Service"):
        if (svc.get("spec") or {}).get("type") == "LoadBalancer":
            meta = svc["metadata"]
            ns = meta.get("namespace", "default")
            found.append(Holder("Service", ns, meta["name"], _hostnames(svc), f"{ns}/{meta['name']}"))
    for ing in _items(ctx, "networking.k8s.io/v1", "Ingress"):
        meta = ing["metadata"]
        ns = meta.get("namespace", "default")
        group = (meta.get("annotations") or {}).get(INGRESS_GROUP)
        found.append(Holder("Ingress", ns, meta["name"], _hostnames(ing), group or f"{ns}/{meta['name']}"))
    return sorted(found, key=lambda h: (h.kind, h.namespace, h.name))


def _volume_id(pv: Obj) -> str | None:
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    if csi.get("driver") == EBS_CSI_DRIVER and csi.get("volumeHandle"):
        return str(csi["volumeHandle"])
    legacy = (spec.get("awsElasticBlockStore") or {}).get("volumeID")  # aws://<zone>/vol-...
    return str(legacy).rsplit("/", 1)[-1] if legacy else None


def claims(ctx: Context) -> list[Claim]:
    volumes = {pv["metadata"]["name"]: pv for pv in _items(ctx, "v1", "PersistentVolume")}
    found: list[Claim] = []
    for pvc in _items(ctx, "v1", "PersistentVolumeClaim"):
        meta = pvc["metadata"]
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        pv = volumes.get(pv_name or "")
        found.append(Claim(meta.get("namespace", "default"), meta["name"], pv_name,
                           _volume_id(pv) if pv else None,
                           (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") if pv else None))
    return sorted(found, key=lambda c: (c.namespace, c.name))


def read_inventory(ctx: Context) -> Inventory:
    from kservectl.phases import serve

    isvcs = [((i["metadata"].get("namespace") or ""), i["metadata"]["name"])
             for i in _items(ctx, serve.API_VERSION, serve.KIND)]
    return Inventory(sorted(isvcs), holders(ctx), claims(ctx))


# -- before anything is deleted ---------------------------------------------------------------------
@dataclass
class Preflight:
    """What the confirmation shows, read with no change: the account, the cluster, the inventory."""

    account_id: str
    caller_arn: str
    cluster_status: str | None  # None: no such EKS cluster
    bucket: str
    inventory: Inventory | None = None
    inventory_error: str | None = None

    @property
    def in_cluster(self) -> bool:
        """Can the in-cluster steps run (the cluster's API answers)?"""
        return self.cluster_status in USABLE_CLUSTER_STATES

    def skip_reason(self, ctx: Context) -> str:
        if self.cluster_status is None:
            return f"no EKS cluster {ctx.cluster} in {ctx.region}: nothing in the cluster to remove"
        return (f"EKS cluster {ctx.cluster} is {self.cluster_status}, not ACTIVE: its API cannot be used, so "
                f"nothing in the cluster is removed first (`kservectl cleanup --orphans --cluster {ctx.cluster} "
                f"--region {ctx.region}` finds what it held once it is gone)")

    def as_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "caller_arn": self.caller_arn,
                "cluster_status": self.cluster_status or "ABSENT", "bucket": self.bucket,
                "inventory": self.inventory.as_dict() if self.inventory else None,
                "inventory_error": self.inventory_error}


def preflight(ctx: Context) -> Preflight:
    """Read-only: the caller's account (STS), the EKS cluster, and — when its kubeconfig is here —
    what the cluster holds. Writes nothing (not even a kubeconfig)."""
    from kservectl.phases import storage

    sts = ctx.aws.client("sts")
    ident = aws.call("sts:GetCallerIdentity", sts.get_caller_identity)
    found = cluster.describe_cluster(ctx)
    pre = Preflight(account_id=ident["Account"], caller_arn=ident.get("Arn", ""),
                    cluster_status=(found or {}).get("status") if found is not None else None,
                    bucket=storage.bucket_name(ctx, ident["Account"]))
    if pre.in_cluster and cluster.kubeconfig_path(ctx).is_file():
        try:
            pre.inventory = read_inventory(ctx)
        except KservectlError as exc:
            pre.inventory_error = exc.one_line()
    return pre


def question(ctx: Context, pre: Preflight, *, delete_data: bool) -> str:
    """The confirmation: the account id and the cluster, and what goes."""
    where = f"in {ctx.region} (AWS account {pre.account_id})"
    data = (f"and the S3 bucket {pre.bucket} with every model and artifact" if delete_data
            else f"(the S3 bucket {pre.bucket} is kept; --delete-data deletes it)")
    if not pre.in_cluster:
        state = "does not exist" if pre.cluster_status is None else f"is {pre.cluster_status}"
        return (f"EKS cluster {ctx.cluster!r} {where} {state}. Delete what kservectl made for it in AWS: "
                f"its IAM roles and policies {data}?")
    held = ""
    if pre.inventory is not None:
        inv = pre.inventory
        held = (f" ({_count(len(inv.inference_services), 'InferenceService')}, "
                f"{_count(len(inv.holders), 'load balancer')}, {_count(len(inv.claims), 'volume')}"
                f"{', MLflow database included' if inv.claims else ''})")
    return (f"Delete EKS cluster {ctx.cluster!r} {where} with everything on it{held}, "
            f"and kservectl's IAM roles and policies {data}?")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- the steps ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    name: str
    action: str
    needs: tuple[str, ...]
    in_cluster: bool
    run: Callable[[], list[str]]
    preview: Callable[[], list[str]]
    manual: str


@dataclass
class StepResult:
    name: str
    action: str
    status: str
    details: list[str] = field(default_factory=list)
    error: str | None = None
    manual: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "action": self.action, "status": self.status, "details": self.details,
                "error": self.error, "manual_step": self.manual}


@dataclass
class Report:
    cluster: str
    region: str
    account_id: str
    dry_run: bool
    delete_data: bool
    steps: list[StepResult] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failures

    def orphans_command(self) -> str:
        return f"kservectl cleanup --orphans --cluster {self.cluster} --region {self.region}"

    def log_group_delete_command(self) -> str:
        """The command that deletes the kept control-plane log group, and nothing else."""
        return (f"aws logs delete-log-group --region {self.region} --log-group-name "
                f"{LOG_GROUP.format(cluster=self.cluster)}")

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "region": self.region, "account_id": self.account_id,
                "dry_run": self.dry_run, "delete_data": self.delete_data, "ok": self.ok,
                "steps": [s.as_dict() for s in self.steps], "kept": self.kept, "notes": self.notes,
                "failures": [{"step": s.name, "status": s.status, "error": s.error, "manual_step": s.manual}
                             for s in self.steps if s.status in (FAILED, SKIPPED)],
                "next": None if self.ok or self.dry_run else self.orphans_command()}

    def lines(self) -> list[str]:
        head = "Would tear down" if self.dry_run else "Teardown of"
        out = [f"{head} cluster {self.cluster} in {self.region} (AWS account {self.account_id}):"]
        for number, s in enumerate(self.steps, 1):
            out.append(f"{number:>2}. {s.name}: {s.status} — {s.action}")
            out += [f"      {line}" for line in s.details]
            if s.error:
                out.append(f"      error: {s.error}")
        out += [f"kept: {item}" for item in self.kept]
        out += [f"note: {note}" for note in self.notes]
        if self.dry_run:
            out.append("Dry run: nothing was deleted.")
        elif self.ok:
            out.append(f"Done: cluster {self.cluster} and kservectl's resources are gone.")
        else:
            unfinished = [s for s in self.steps if s.status in (FAILED, SKIPPED)]
            out.append(f"{_count(len(self.failures), 'step')} failed; finish by hand:")
            out += [f"  - {s.name} ({s.status}): {s.manual}" for s in unfinished]
            out.append(f"Then find anything left behind with: {self.orphans_command()}")
        return out


def tasks(ctx: Context, pre: Preflight, *, delete_data: bool, report: Report) -> list[Task]:
    """The ordered steps (see the module docstring), each with what runs it, what a dry run says,
    and the manual step that finishes it if it fails."""
    from kservectl.phases import alb, autoscaler, kserve, mlflow, serve, storage

    kubeconfig = cluster.kubeconfig_path(ctx)
    kubectl = f"kubectl --kubeconfig {kubeconfig}"
    state: dict[str, Inventory] = {}

    # 1. inventory
    def run_inventory() -> list[str]:
        if pre.inventory is None:
            if pre.inventory_error:
                raise KubeError(pre.inventory_error)
            actions: list[str] = []
            cluster.ensure_kubeconfig(ctx, actions)
            pre.inventory = read_inventory(ctx)
            return actions + _inventory_lines(pre.inventory)
        return _inventory_lines(pre.inventory)

    def preview_inventory() -> list[str]:
        if pre.inventory is not None:
            state["inventory"] = pre.inventory
            return _inventory_lines(pre.inventory)
        why = pre.inventory_error or f"no kubeconfig at {kubeconfig} (a dry run writes none)"
        return [f"cannot list what the cluster holds: {why}; a real run writes the kubeconfig first "
                f"(`{shlex.join(cluster.write_kubeconfig_argv(ctx))}`)"]

    # 2. models
    def run_models() -> list[str]:
        done = []
        models_ns = ctx.config.namespaces.models
        for ns, name in [((i["metadata"].get("namespace") or ""), i["metadata"]["name"])
                         for i in _items(ctx, serve.API_VERSION, serve.KIND)]:
            if ns == models_ns:
                serve.delete(ctx, name, wait=True)
            else:
                ref = Ref(serve.API_VERSION, serve.KIND, name, ns)
                ctx.kube.delete(ref)
                ctx.kube.wait_deleted(ref, what=f"InferenceService {ns}/{name} to be deleted",
                                      timeout=ctx.settings.waits.inference_service_ready)
            done.append(f"deleted InferenceService {ns}/{name}")
        return done or ["no InferenceService"]

    def preview_models() -> list[str]:
        inv = state.get("inventory")
        if inv is None:
            return ["would delete every InferenceService"]
        return [f"would delete InferenceService {ns}/{name}" for ns, name in inv.inference_services] or \
            ["no InferenceService"]

    # 3. load balancers
    def preview_lbs() -> list[str]:
        inv = state.get("inventory")
        if inv is None:
            return ["would delete every LoadBalancer Service and Ingress and wait until AWS reports their "
                    "load balancers deleted"]
        return [f"would delete {h.label}{_at(h)} and wait until AWS reports its load balancer deleted"
                for h in inv.holders] or ["no LoadBalancer Service or Ingress"]

    # 4. mlflow
    def run_mlflow() -> list[str]:
        result = mlflow.uninstall(ctx, delete_data=True)
        lines = [f"deleted {item}" for item in result["deleted"]]
        return lines or [f"MLflow is not installed in namespace {result['namespace']}"]

    def preview_mlflow() -> list[str]:
        ns = ctx.config.namespaces.mlflow
        return [f"would uninstall MLflow from namespace {ns} with its PVC {mlflow.PVC_NAME} "
                "(experiments, runs and the registry's database go with the cluster; the artifacts are in S3)"]

    # 5. volumes
    def preview_volumes() -> list[str]:
        inv = state.get("inventory")
        if inv is None:
            return ["would delete every PVC and wait until EC2 reports their EBS volumes deleted"]
        lines = []
        for c in inv.claims:
            if c.reclaim == "Retain":
                lines.append(f"would delete {c.label}; its EBS volume {c.volume_id} is kept (reclaimPolicy Retain)")
            else:
                vol = f"its EBS volume {c.volume_id}" if c.volume_id else "its volume"
                lines.append(f"would delete {c.label} and wait until {vol} is deleted")
        return lines or ["no PVC"]

    # 6. kserve
    def run_kserve() -> list[str]:
        result = kserve.uninstall(ctx)
        lines = [f"{s['step']}: {s['result']}" for s in result["steps"] if not s["result"].startswith("unchanged")]
        failures = result.get("failures") or []
        if failures:
            raise StepFailed("; ".join(f"{f['step']}: {f['error']}" for f in failures),
                             manual="; ".join(f["manual_cleanup"] for f in failures))
        return lines or ["KServe, Knative and cert-manager are not installed"]

    def preview_kserve() -> list[str]:
        rel = kserve.releases(ctx)
        names = ", ".join(rel[k].name for k in ("kserve-runtime-configs", "kserve-resources", "kserve-crd"))
        return [f"would uninstall the Kourier gateway Service (waiting for its NLB), the KServe releases "
                f"({names}), Knative Serving + net-kourier (kubectl delete -f their release manifests), "
                "metrics-server if installed, cert-manager, and the kservectl namespaces"]

    # 7. autoscaler
    def autoscaler_argv() -> list[str]:
        return ["helm", "uninstall", autoscaler.RELEASE, "--namespace", autoscaler.NAMESPACE,
                *helm_wait_flags(helm_major(ctx.runner), ctx.settings.tools.helm, rollback=False),
                "--kubeconfig", str(kubeconfig)]

    def run_autoscaler() -> list[str]:
        if cluster.helm_release(ctx, autoscaler.RELEASE, autoscaler.NAMESPACE) is None:
            return ["the Cluster Autoscaler is not installed"]
        ctx.runner.run(autoscaler_argv(), timeout=ctx.settings.tools.helm)
        return [f"helm release {autoscaler.NAMESPACE}/{autoscaler.RELEASE} uninstalled"]

    # 8. the load balancer controller
    def run_alb() -> list[str]:
        return alb.uninstall(ctx)["actions"]

    def preview_alb() -> list[str]:
        return [f"would uninstall helm release {alb.NAMESPACE}/{alb.RELEASE}, delete its IRSA service account "
                f"(eksctl) and the IAM policy {alb.policy_name(ctx.cluster)} if tagged "
                f"{cluster.OWNER_TAG}={ctx.cluster}"]

    # 9. the cluster
    def run_cluster() -> list[str]:
        result = cluster.delete(ctx)
        for item in result.get("left_behind") or []:
            if LOG_GROUP.format(cluster=ctx.cluster) not in item:
                report.kept.append(item)
            elif log_group_exists(ctx):  # none when control-plane logging was off: nothing to keep
                report.kept.append(f"CloudWatch log group {LOG_GROUP.format(cluster=ctx.cluster)} (eksctl keeps "
                                   f"it): `{report.log_group_delete_command()}` deletes just it; "
                                   f"`{report.orphans_command()}` (a dry run) lists everything else left behind")
        return result["actions"]

    def preview_cluster() -> list[str]:
        if pre.cluster_status is None:
            return [f"would delete any eksctl stacks left for {ctx.cluster} "
                    f"(`{shlex.join(cluster.delete_argv(ctx))}`) or find none"]
        return [f"would run: {shlex.join(cluster.delete_argv(ctx))}"]

    # 10. kservectl's IAM roles and policies, and the bucket with --delete-data
    def run_storage() -> list[str]:
        result = storage.delete(ctx, delete_data=delete_data)
        lines = []
        for change in result["changes"]:
            if change["action"] == "keep":
                report.kept.append(f"{change['resource']}: {change['detail']}")
            lines.append(" ".join(filter(None, [change["action"], change["resource"],
                                                f"({change['detail']})" if change["detail"] else ""])))
        return lines

    def preview_storage() -> list[str]:
        sas = storage.service_accounts(ctx, LiveValues(account_id=pre.account_id)).values()
        lines = [f"would delete IAM role {sa.role_name} and policy {sa.policy_name} (if tagged "
                 f"{cluster.OWNER_TAG}={ctx.cluster})" for sa in sas]
        if delete_data:
            lines.append(f"would empty and delete the S3 bucket {pre.bucket} (only if tagged "
                         f"{cluster.OWNER_TAG}={ctx.cluster})")
        else:
            lines.append(f"would keep the S3 bucket {pre.bucket} (--delete-data deletes it)")
        return lines

    def run_lbs() -> list[str]:
        return remove_load_balancers(ctx)

    def run_volumes() -> list[str]:
        return remove_volumes(ctx, pre.inventory or Inventory(), report)

    region = f"--region {ctx.region}"
    return [
        Task("inventory", "read what the cluster holds (InferenceServices, load balancers, volumes)", (), True,
             run_inventory, preview_inventory,
             f"make the cluster's API reachable (`eksctl utils write-kubeconfig --cluster {ctx.cluster} {region} "
             f"--kubeconfig {kubeconfig}`) and run `kservectl cleanup` again"),
        Task("models", "delete every InferenceService", ("inventory",), True, run_models, preview_models,
             f"`{kubectl} delete inferenceservices --all --all-namespaces`"),
        Task("load-balancers", "delete every LoadBalancer Service and Ingress, and wait until AWS reports their "
             "load balancers deleted", ("inventory",), True, run_lbs, preview_lbs,
             f"delete the LoadBalancer Services and Ingresses (`{kubectl} get svc,ingress -A`), then the load "
             f"balancers tagged {LB_CLUSTER_TAG}={ctx.cluster} (EC2 console > Load Balancers)"),
        Task("mlflow", "uninstall MLflow with its PVC", ("inventory",), True, run_mlflow, preview_mlflow,
             f"`{kubectl} delete namespace {ctx.config.namespaces.mlflow}`"),
        Task("volumes", "delete every PVC, and wait until EC2 reports their EBS volumes deleted", ("inventory",),
             True, run_volumes, preview_volumes,
             f"`{kubectl} delete pvc --all --all-namespaces`, then delete the volumes tagged "
             f"{cluster.OWNER_TAG}={ctx.cluster} (`aws ec2 delete-volume --volume-id <id> {region}`)"),
        Task("kserve", "uninstall KServe, Knative Serving + Kourier and cert-manager", ("inventory", "models"), True,
             run_kserve, preview_kserve, f"`kservectl kserve uninstall --cluster {ctx.cluster} {region} --yes`"),
        Task("autoscaler", "uninstall the Cluster Autoscaler", ("inventory",), True, run_autoscaler,
             lambda: [f"would run: helm uninstall {autoscaler.RELEASE} --namespace {autoscaler.NAMESPACE} "
                      "(if installed)"],
             f"`helm uninstall {autoscaler.RELEASE} --namespace {autoscaler.NAMESPACE} --kubeconfig {kubeconfig}`"),
        Task("alb", "uninstall the AWS Load Balancer Controller (last in the cluster), its IRSA role and IAM "
             "policy", ("load-balancers",), False, run_alb, preview_alb,
             f"`kservectl alb uninstall --cluster {ctx.cluster} {region} --yes`"),
        Task("cluster", "delete the EKS cluster (eksctl delete cluster --wait)", ("load-balancers", "volumes"),
             False, run_cluster, preview_cluster,
             f"`eksctl delete cluster --name {ctx.cluster} {region} --wait` (if a stack fails to delete, the "
             "CloudFormation console names the resource that holds it)"),
        Task("storage", "delete kservectl's IAM roles and policies"
             + (" and the S3 bucket" if delete_data else " (the S3 bucket is kept)"), ("cluster",), False,
             run_storage, preview_storage,
             f"`kservectl storage delete --cluster {ctx.cluster} {region}"
             f"{' --delete-data' if delete_data else ''} --yes`"),
    ]


def steps(ctx: Context, pre: Preflight, *, delete_data: bool) -> list[Step]:
    """The ordered steps as plan data (what ``--dry-run`` lists)."""
    report = Report(ctx.cluster, ctx.region, pre.account_id, True, delete_data)
    return [Step(PHASE, t.action, "kube" if t.in_cluster else "aws") for t in
            tasks(ctx, pre, delete_data=delete_data, report=report)]


def run(ctx: Context, pre: Preflight, *, delete_data: bool = False) -> Report:
    """Tear down in order, keep going past failures, report everything (see the module docstring).
    With ``ctx.dry_run`` each step only says what it would do."""
    report = Report(ctx.cluster, ctx.region, pre.account_id, ctx.dry_run, delete_data)
    if not pre.in_cluster:
        report.notes.append(pre.skip_reason(ctx) + "; the AWS steps still run")
    status: dict[str, StepResult] = {}
    for task in tasks(ctx, pre, delete_data=delete_data, report=report):
        result = StepResult(task.name, task.action, DONE)
        report.steps.append(result)
        status[task.name] = result
        blocked = [status[n] for n in task.needs if n in status and status[n].status not in PASSED]
        if task.in_cluster and not pre.in_cluster:
            result.status = NOT_NEEDED
            result.details = [pre.skip_reason(ctx)]
            continue
        if blocked:
            first = blocked[0]
            result.status = SKIPPED
            result.details = [f"skipped: it needs step {first.name}, which "
                              + ("failed" if first.status == FAILED else "was skipped")]
            result.manual = task.manual
            continue
        if ctx.dry_run:
            result.status = WOULD
            try:
                result.details = task.preview()
            except KservectlError as exc:
                result.details = [f"(cannot tell: {exc.one_line()})"]
            continue
        ctx.reporter.step(PHASE, f"{task.name}: {task.action}")
        try:
            result.details = task.run()
        except StepFailed as exc:
            _fail(ctx, result, exc.one_line(), exc.manual)
        except KservectlError as exc:
            _fail(ctx, result, exc.one_line(), task.manual)
        except Exception as exc:  # keep going: a teardown that stops half way leaves more behind
            _fail(ctx, result, f"unexpected {type(exc).__name__}: {exc}", task.manual)
    return report


def _fail(ctx: Context, result: StepResult, error: str, manual: str) -> None:
    result.status = FAILED
    result.error = ctx.redactor.text(error)
    result.manual = manual
    ctx.reporter.warn(f"{PHASE} step {result.name} failed: {result.error}")


def _inventory_lines(inv: Inventory) -> list[str]:
    return [f"{_count(len(inv.inference_services), 'InferenceService')}, "
            f"{_count(len(inv.holders), 'load balancer holder')} "
            f"({', '.join(h.label for h in inv.holders) or 'none'}), "
            f"{_count(len(inv.claims), 'PVC')} ({', '.join(c.label for c in inv.claims) or 'none'})"]


def _at(holder: Holder) -> str:
    return f" ({', '.join(holder.hostnames)})" if holder.hostnames else ""


def log_group_exists(ctx: Context) -> bool:
    """Does the cluster's control-plane log group exist? (True when it cannot be read: say it may.)"""
    name = LOG_GROUP.format(cluster=ctx.cluster)
    logs = ctx.aws.client("logs")
    try:
        groups = aws.call("logs:DescribeLogGroups", logs.describe_log_groups, logGroupNamePrefix=name)
    except KservectlError:
        return True
    return any(g.get("logGroupName") == name for g in groups.get("logGroups") or [])


# -- load balancers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadBalancer:
    name: str
    arn: str
    dns: str
    state: str
    kind: str  # network | application | classic
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)

    def describe(self) -> str:
        return f"{self.kind} load balancer {self.name} ({self.arn or self.dns}) is {self.state}"


def load_balancers(ctx: Context) -> list[LoadBalancer]:
    """Every ELBv2 load balancer (with its tags) and classic ELB in the region."""
    elbv2 = ctx.aws.client("elbv2")

    def pages(client: Any, op: str, key: str) -> list[dict[str, Any]]:
        return [item for page in client.get_paginator(op).paginate() for item in page.get(key) or []]

    found = aws.call("elasticloadbalancing:DescribeLoadBalancers", pages, elbv2, "describe_load_balancers",
                     "LoadBalancers")
    arns = [lb["LoadBalancerArn"] for lb in found]
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        answer = aws.call("elasticloadbalancing:DescribeTags", elbv2.describe_tags,
                          ResourceArns=arns[start:start + 20])
        for entry in answer.get("TagDescriptions") or []:
            tags[entry["ResourceArn"]] = {t["Key"]: t.get("Value", "") for t in entry.get("Tags") or []}
    out = [LoadBalancer(lb["LoadBalancerName"], lb["LoadBalancerArn"], lb.get("DNSName", ""),
                        (lb.get("State") or {}).get("Code", "unknown"), lb.get("Type", "elbv2"),
                        tuple(sorted(tags.get(lb["LoadBalancerArn"], {}).items()))) for lb in found]
    classic = aws.call("elasticloadbalancing:DescribeLoadBalancers (classic)", pages, ctx.aws.client("elb"),
                       "describe_load_balancers", "LoadBalancerDescriptions")
    out += [LoadBalancer(lb["LoadBalancerName"], "", lb.get("DNSName", ""), "active", "classic") for lb in classic]
    return out


def belongs(ctx: Context, lb: LoadBalancer, to: list[Holder]) -> Holder | None:
    """The holder whose load balancer this is: by DNS name, or by the controller's tags naming this
    cluster and the holder's stack (a load balancer still provisioning has no hostname yet)."""
    for holder in to:
        if lb.dns and lb.dns.lower() in (h.lower() for h in holder.hostnames):
            return holder
        if lb.tag(LB_CLUSTER_TAG) == ctx.cluster and holder.stack and holder.stack in (
                lb.tag(SERVICE_STACK_TAG), lb.tag(INGRESS_STACK_TAG)):
            return holder
    return None


def remove_load_balancers(ctx: Context) -> list[str]:
    """Delete every LoadBalancer Service and Ingress, then wait until they are gone from the cluster
    and AWS reports their load balancers deleted (one deadline: ``waits.load_balancer_deleted``)."""
    current = holders(ctx)
    if not current:
        return ["no LoadBalancer Service or Ingress"]
    doomed = [lb for lb in load_balancers(ctx) if belongs(ctx, lb, current)]
    lines: list[str] = []
    for holder in current:
        if ctx.kube.delete(holder.ref):
            lines.append(f"deleted {holder.label}{_at(holder)}")
    timeout = ctx.settings.waits.load_balancer_deleted
    deadline = ctx.clock.monotonic() + timeout
    what = f"the load balancers of {_count(len(current), 'object')} to be deleted"
    while True:
        left_objects = [(h, obj) for h in current
                        if (obj := ctx.kube.get(h.ref.api_version, h.kind, h.name, h.namespace)) is not None]
        left_lbs = [lb for lb in load_balancers(ctx) if belongs(ctx, lb, current)]
        if not left_objects and not left_lbs:
            break
        pending = [_still(h, obj) for h, obj in left_objects] + [lb.describe() for lb in left_lbs]
        if ctx.clock.monotonic() >= deadline:
            manual = [f"`aws elbv2 delete-load-balancer --load-balancer-arn {lb.arn} --region {ctx.region}`"
                      if lb.arn else f"`aws elb delete-load-balancer --load-balancer-name {lb.name} "
                      f"--region {ctx.region}`" for lb in left_lbs]
            kubectl = f"kubectl --kubeconfig {cluster.kubeconfig_path(ctx)} -n"
            manual += [f"remove the finalizers of {h.label} once its load balancer is gone "
                       f"(`{kubectl} {h.namespace} patch {h.kind.lower()} {h.name} --type merge "
                       "-p '{\"metadata\":{\"finalizers\":null}}'`)" for h, _ in left_objects]
            raise StepFailed(f"timed out after {timeout:g}s waiting for {what}: {'; '.join(pending)}",
                             manual="; ".join(manual))
        ctx.reporter.waiting(what, "; ".join(pending))
        ctx.clock.sleep(min(ctx.settings.waits.poll_interval, max(deadline - ctx.clock.monotonic(), 0)))
    lines += [f"{lb.kind} load balancer {lb.name} ({lb.arn or lb.dns}) deleted" for lb in doomed]
    return lines


def _still(holder: Holder, obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    finalizers = meta.get("finalizers") or []
    if meta.get("deletionTimestamp") and finalizers:
        return (f"{holder.label} is being deleted, held by finalizers {', '.join(finalizers)} (the AWS Load "
                "Balancer Controller removes them once it has deleted the load balancer: is it running? "
                "`kservectl logs load-balancer-controller`)")
    return f"{holder.label} still exists"


# -- volumes --------------------------------------------------------------------------------------------
def existing_volumes(ctx: Context, ids: list[str]) -> dict[str, str]:
    """Volume id -> state for the EBS volumes among ``ids`` that still exist."""
    if not ids:
        return {}
    ec2 = ctx.aws.client("ec2")
    found: dict[str, str] = {}
    for start in range(0, len(ids), 200):
        answer = aws.call("ec2:DescribeVolumes", ec2.describe_volumes,
                          Filters=[{"Name": "volume-id", "Values": ids[start:start + 200]}])
        for vol in answer.get("Volumes") or []:
            if vol.get("State") != "deleted":
                found[vol["VolumeId"]] = vol.get("State", "unknown")
    return found


def volumes_by_tags(ctx: Context, unknown: list[Claim]) -> dict[tuple[str, str], str]:
    """The EBS volumes of PVCs whose PV could not be read: the EBS CSI driver tags each volume with
    its PVC (``kubernetes.io/created-for/pvc/{namespace,name}``); only a volume that also names this
    cluster (``kservectl.io/cluster`` from the gp3 StorageClass, or ``kubernetes.io/cluster/<name>=owned``;
    ``=shared`` is no ownership) counts."""
    if not unknown:
        return {}
    ec2 = ctx.aws.client("ec2")
    answer = aws.call("ec2:DescribeVolumes", ec2.describe_volumes, Filters=[
        {"Name": f"tag:{PVC_NAME_TAG}", "Values": sorted({c.name for c in unknown})}])
    wanted = {(c.namespace, c.name) for c in unknown}
    found: dict[tuple[str, str], str] = {}
    for vol in answer.get("Volumes") or []:
        tags = {t["Key"]: t.get("Value", "") for t in vol.get("Tags") or []}
        key = (tags.get(PVC_NAMESPACE_TAG, ""), tags.get(PVC_NAME_TAG, ""))
        ours = tags.get(cluster.OWNER_TAG) == ctx.cluster or tags.get(f"kubernetes.io/cluster/{ctx.cluster}") == "owned"
        if key in wanted and ours:
            found[key] = vol["VolumeId"]
    return found


def remove_volumes(ctx: Context, known: Inventory, report: Report) -> list[str]:
    """Delete every PVC, then wait until the PVCs are gone and EC2 reports the EBS volumes of their
    PVs deleted (``waits.volumes_deleted``). The volumes of PVs with reclaimPolicy Retain are kept."""
    current = claims(ctx)
    by_name = {(c.namespace, c.name): c for c in known.claims}
    by_name.update({(c.namespace, c.name): c for c in current})  # fresher data wins
    tagged = volumes_by_tags(ctx, [c for c in by_name.values() if not c.volume_id])
    for key, volume_id in tagged.items():
        by_name[key] = dataclasses.replace(by_name[key], volume_id=volume_id)
    lines: list[str] = []
    for claim in current:
        if ctx.kube.delete(Ref("v1", "PersistentVolumeClaim", claim.name, claim.namespace)):
            lines.append(f"deleted {claim.label}")
    retained = [c for c in by_name.values() if c.reclaim == "Retain" and c.volume_id]
    for c in retained:
        report.kept.append(f"EBS volume {c.volume_id} of {c.label} (its PersistentVolume {c.volume} says "
                           f"reclaimPolicy Retain): `aws ec2 delete-volume --volume-id {c.volume_id} "
                           f"--region {ctx.region}` deletes it")
    watched = sorted({c.volume_id for c in by_name.values() if c.volume_id and c.reclaim != "Retain"})
    timeout = ctx.settings.waits.volumes_deleted
    deadline = ctx.clock.monotonic() + timeout
    what = f"{_count(len(current), 'PVC')} and {_count(len(watched), 'EBS volume')} to be deleted"
    while True:
        left_claims = [c for c in current if ctx.kube.get("v1", "PersistentVolumeClaim", c.name, c.namespace)]
        left_volumes = existing_volumes(ctx, watched)
        if not left_claims and not left_volumes:
            break
        pending = [f"{c.label} still exists (Terminating while a pod uses it: kubernetes.io/pvc-protection)"
                   for c in left_claims]
        pending += [f"EBS volume {vid} is {state}" for vid, state in sorted(left_volumes.items())]
        if ctx.clock.monotonic() >= deadline:
            kubectl = f"kubectl --kubeconfig {cluster.kubeconfig_path(ctx)} -n"
            manual = [f"delete the pods that still use {c.label} (`{kubectl} {c.namespace} describe pvc {c.name}` "
                      "shows them)" for c in left_claims]
            manual += [f"`aws ec2 delete-volume --volume-id {vid} --region {ctx.region}` (once it is available)"
                       for vid in sorted(left_volumes)]
            raise StepFailed(f"timed out after {timeout:g}s waiting for {what}: {'; '.join(pending)}",
                             manual="; ".join(manual))
        ctx.reporter.waiting(what, "; ".join(pending))
        ctx.clock.sleep(min(ctx.settings.waits.poll_interval, max(deadline - ctx.clock.monotonic(), 0)))
    lines += [f"EBS volume {vid} deleted" for vid in watched]
    return lines or ["no PVC"]
