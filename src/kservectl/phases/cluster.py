"""Phase ``cluster``: the EKS cluster, created by eksctl from a rendered ClusterConfig.

``create`` reads the real state first (EKS ``DescribeCluster`` and the CloudFormation stacks
``eksctl-<name>-*``) and then either reuses an ACTIVE cluster (reporting where it differs from
the config), recovers a failed create (eksctl cannot resume one: its stacks stay in
ROLLBACK_COMPLETE and a re-run fails with AlreadyExists) by deleting the failed stacks, or runs
``eksctl create cluster``. It then waits until every node is Ready, makes the encrypted gp3
StorageClass the default and installs the Cluster Autoscaler (``phases/autoscaler.py``).

``delete`` refuses while a LoadBalancer Service or a PVC remains (they hold NLBs and EBS
volumes that ``eksctl delete cluster`` would strand), then runs ``eksctl delete cluster --wait``.

The small Helm helpers at the end are shared by the AWS phases (Cluster Autoscaler, AWS Load
Balancer Controller): read the release first, upgrade only when chart version or values differ.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl import __version__, aws, paths
from kservectl.context import Context
from kservectl.errors import AwsError, KservectlError, KubeError, WaitTimeout
from kservectl.kube import Obj, Ref, condition
from kservectl.phases.base import LiveValues, PhasePlan, Step
from kservectl.render import Renderer
from kservectl.runner import helm_wait_flags

PHASE = "cluster"
NODEGROUP = "ng-default"
CONFIG_FILE = "cluster.yaml"
STORAGECLASS_FILE = "storageclass-gp3.yaml"
STORAGECLASS = "gp3"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
OWNER_TAG = "kservectl.io/cluster"
EKSCTL_CLUSTER_TAG = "alpha.eksctl.io/cluster-name"
AUTOSCALER_TAG = "k8s.io/cluster-autoscaler/enabled"

# CloudFormation states of a create that failed and cannot be resumed by eksctl.
FAILED_STACK_STATES = frozenset({"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED",
                                 "UPDATE_ROLLBACK_FAILED"})
BUSY_CLUSTER_STATES = frozenset({"CREATING", "UPDATING", "DELETING", "PENDING"})
# StorageClass fields the API server refuses to change after creation.
IMMUTABLE_CLASS_FIELDS = ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode")

Confirm = Callable[[str], None]


# -- rendering --------------------------------------------------------------------------------
def values(ctx: Context) -> dict[str, Any]:
    c = ctx.config
    return {
        "kservectl_version": __version__,
        "cluster": c.cluster,
        "nodes": c.nodes,
        "nodegroup": NODEGROUP,
        # An EKS add-on version: eksctl installs the newest vX.Y.Z-eksbuild.N containing it.
        "ebs_csi_version": c.versions.ebs_csi_driver,
        "ebs_csi_values": {
            # volumes the driver creates carry kubernetes.io/cluster/<name>=owned and our tag
            "controller": {
                "k8sTagClusterId": c.cluster.name,
                "extraVolumeTags": {OWNER_TAG: c.cluster.name},
            }
        },
    }


def render_cluster_config(ctx: Context, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render("eksctl/cluster.yaml.j2", values(ctx))


def render_storage_class(ctx: Context, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render("storageclass/gp3.yaml.j2", {
        "kservectl_version": __version__, "cluster": ctx.cluster, "name": STORAGECLASS,
    })


def storage_class(ctx: Context) -> Obj:
    import yaml

    return yaml.safe_load(render_storage_class(ctx))


def rendered_root(ctx: Context) -> Path:
    """Where ``create``/``delete`` keep the files they hand to the tools (as ``plan`` shows them)."""
    return paths.cluster_dir(ctx.cluster) / "rendered"


def kubeconfig_path(ctx: Context) -> Path:
    return ctx.kubeconfig or paths.kubeconfig_path(ctx.cluster)


def config_path(ctx: Context, root: Path | None = None) -> Path:
    return (root or rendered_root(ctx)) / PHASE / CONFIG_FILE


def create_argv(ctx: Context, root: Path | None = None) -> list[str]:
    return ["eksctl", "create", "cluster", "-f", str(config_path(ctx, root)),
            "--kubeconfig", str(kubeconfig_path(ctx))]


def delete_argv(ctx: Context, root: Path | None = None) -> list[str]:
    return ["eksctl", "delete", "cluster", "-f", str(config_path(ctx, root)), "--wait"]


def write_kubeconfig_argv(ctx: Context) -> list[str]:
    return ["eksctl", "utils", "write-kubeconfig", "--cluster", ctx.cluster, "--region", ctx.region,
            "--kubeconfig", str(kubeconfig_path(ctx))]


def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    from kservectl.phases import autoscaler

    files = {CONFIG_FILE: render_cluster_config(ctx), STORAGECLASS_FILE: render_storage_class(ctx)}
    steps = [
        Step(PHASE, "check whether the cluster or a failed create of it exists", "aws",
             calls=("eks:DescribeCluster", "cloudformation:DescribeStacks")),
        Step(PHASE, "create the EKS cluster (about 20 minutes)", "tool",
             command=tuple(create_argv(ctx, root)), files=(f"{PHASE}/{CONFIG_FILE}",)),
        Step(PHASE, f"wait until all {ctx.config.nodes.desired} nodes are Ready", "kube",
             calls=("watch nodes",)),
        Step(PHASE, f"make StorageClass {STORAGECLASS} (encrypted, ebs.csi.aws.com) the default", "kube",
             calls=(f"apply StorageClass {STORAGECLASS}",), files=(f"{PHASE}/{STORAGECLASS_FILE}",)),
        Step(PHASE, "mark gp2 (and any other default StorageClass) not default", "kube",
             calls=(f"patch StorageClass gp2 {DEFAULT_CLASS}=false",)),
    ]
    if ctx.config.cluster.autoscaler:
        files[autoscaler.VALUES_FILE] = autoscaler.render_values(ctx)
        steps += autoscaler.steps(ctx, root)
    nodes = ctx.config.nodes
    return PhasePlan(
        phase=PHASE,
        summary=f"EKS {ctx.config.cluster.kubernetes_version} cluster {ctx.cluster} in {ctx.region} "
        f"({nodes.desired} x {nodes.instance_type}, {nodes.min}-{nodes.max} nodes"
        f"{' with the Cluster Autoscaler' if ctx.config.cluster.autoscaler else ''}, OIDC, default gp3)",
        files=files,
        steps=steps,
    )


def write_rendered(ctx: Context, root: Path | None = None) -> list[Path]:
    """Render this phase's files into ``root/cluster/`` (default: the cluster's state folder)."""
    from kservectl.phases import plan as plan_phase

    root = root or rendered_root(ctx)
    return plan_phase.write([plan(ctx, LiveValues(), root)], root)


# -- reading the real state -------------------------------------------------------------------
@dataclass(frozen=True)
class Stack:
    name: str
    stack_id: str
    status: str
    reason: str
    owned: bool  # tagged as this cluster's (eksctl's cluster-name tag or ours)

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.name} is {self.status}{why}"


@dataclass
class ClusterState:
    """What exists in AWS. ``kind``: absent, active, failed or busy."""

    kind: str
    cluster: dict[str, Any] | None = None
    stacks: list[Stack] = field(default_factory=list)
    detail: str = ""

    @property
    def status(self) -> str:
        return (self.cluster or {}).get("status", "ABSENT")


def describe_cluster(ctx: Context) -> dict[str, Any] | None:
    """EKS DescribeCluster, or None when there is no such cluster."""
    eks = ctx.aws.client("eks")
    try:
        return aws.call("eks:DescribeCluster", eks.describe_cluster, name=ctx.cluster)["cluster"]
    except AwsError as exc:
        if exc.code == "ResourceNotFoundException":
            return None
        raise


def eksctl_stacks(ctx: Context) -> list[Stack]:
    """The live CloudFormation stacks eksctl made for this cluster (``eksctl-<name>-*``)."""
    cfn = ctx.aws.client("cloudformation")
    prefix = f"eksctl-{ctx.cluster}-"
    cluster_stack = f"{prefix}cluster"
    found: list[Stack] = []
    token: str | None = None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = aws.call("cloudformation:DescribeStacks", cfn.describe_stacks, **kwargs)
        for stack in page.get("Stacks", []):
            name = stack["StackName"]
            if not name.startswith(prefix) or stack["StackStatus"] == "DELETE_COMPLETE":
                continue
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
            owned = ctx.cluster in (tags.get(EKSCTL_CLUSTER_TAG), tags.get(OWNER_TAG))
            if not owned and name != cluster_stack:
                continue  # eksctl-<name>-... of another cluster whose name starts like ours
            found.append(Stack(name, stack["StackId"], stack["StackStatus"],
                               stack.get("StackStatusReason") or "", owned))
        token = page.get("NextToken")
        if not token:
            break
    found.sort(key=lambda s: (s.name == cluster_stack, s.name))  # the cluster stack last
    return found


def first_failure(ctx: Context, stack: Stack) -> str:
    """The earliest FAILED stack event's reason: the root cause, not the rollback noise."""
    cfn = ctx.aws.client("cloudformation")
    try:
        events = aws.call("cloudformation:DescribeStackEvents", cfn.describe_stack_events,
                          StackName=stack.stack_id)["StackEvents"]
    except AwsError:
        return ""
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")
              and e.get("ResourceStatusReason") and "cancelled" not in e["ResourceStatusReason"].lower()]
    if not failed:
        return ""
    failed.sort(key=lambda e: e.get("Timestamp") or 0)
    event = failed[0]
    return f"{event.get('LogicalResourceId', '?')}: {event['ResourceStatusReason']}"


def detect(ctx: Context) -> ClusterState:
    cluster = describe_cluster(ctx)
    stacks = eksctl_stacks(ctx)
    status = (cluster or {}).get("status")
    if status == "ACTIVE":
        return ClusterState("active", cluster, stacks, f"cluster {ctx.cluster} is ACTIVE")
    if status in BUSY_CLUSTER_STATES:
        return ClusterState("busy", cluster, stacks, f"cluster {ctx.cluster} is {status}")
    failed = [s for s in stacks if s.status in FAILED_STACK_STATES]
    busy = [s for s in stacks if s.status.endswith("_IN_PROGRESS")]
    if busy and not failed:
        return ClusterState("busy", cluster, stacks, "; ".join(s.describe() for s in busy))
    if status == "FAILED" or failed:
        what = [f"EKS cluster {ctx.cluster} is FAILED"] if status == "FAILED" else []
        return ClusterState("failed", cluster, stacks, "; ".join(what + [s.describe() for s in failed]))
    if stacks:  # stacks left over without a cluster also make a create fail with AlreadyExists
        return ClusterState("failed", cluster, stacks,
                            "left-over stacks without a cluster: " + "; ".join(s.describe() for s in stacks))
    if cluster is not None:
        return ClusterState("failed", cluster, stacks, f"cluster {ctx.cluster} is {status}")
    return ClusterState("absent", None, [], f"no cluster {ctx.cluster} in {ctx.region}")


def nodegroups(ctx: Context) -> list[dict[str, Any]]:
    eks = ctx.aws.client("eks")
    names = aws.call("eks:ListNodegroups", eks.list_nodegroups, clusterName=ctx.cluster).get("nodegroups", [])
    return [aws.call("eks:DescribeNodegroup", eks.describe_nodegroup, clusterName=ctx.cluster,
                     nodegroupName=name)["nodegroup"] for name in sorted(names)]


def drift(ctx: Context, cluster: dict[str, Any], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where the running cluster differs from the config. kservectl reports it; it does not
    change a running cluster (each item says how to)."""
    out: list[dict[str, Any]] = []
    c, n = ctx.config.cluster, ctx.config.nodes

    def item(key: str, want: Any, have: Any, hint: str) -> None:
        out.append({"field": key, "config": want, "cluster": have,
                    "message": f"{key}: config says {want}, the cluster has {have} ({hint})"})

    have_version = str(cluster.get("version", ""))
    if have_version and have_version != c.kubernetes_version:
        newer = _minor(c.kubernetes_version) > _minor(have_version)
        hint = (f"upgrade with `eksctl upgrade cluster --name {ctx.cluster} --region {ctx.region} "
                f"--version {c.kubernetes_version} --approve`" if newer else "EKS cannot downgrade a cluster")
        item("cluster.kubernetes_version", c.kubernetes_version, have_version, hint)
    group = next((g for g in groups if g.get("nodegroupName") == NODEGROUP), None)
    if group is None:
        have = ", ".join(g.get("nodegroupName", "?") for g in groups) or "none"
        item("nodegroup", NODEGROUP, have, f"create it with `eksctl create nodegroup -f {config_path(ctx)}`")
        return out
    scaling = group.get("scalingConfig") or {}
    scale = (f"`eksctl scale nodegroup --cluster {ctx.cluster} --region {ctx.region} --name {NODEGROUP} "
             f"--nodes {n.desired} --nodes-min {n.min} --nodes-max {n.max}`")
    for key, want, have in (("nodes.min", n.min, scaling.get("minSize")),
                            ("nodes.max", n.max, scaling.get("maxSize"))):
        if have is not None and have != want:
            item(key, want, have, f"change with {scale}")
    desired = scaling.get("desiredSize")
    if desired is not None and desired != n.desired and not (c.autoscaler and n.min <= desired <= n.max):
        item("nodes.desired", n.desired, desired, f"change with {scale}")
    types = group.get("instanceTypes") or []
    if types and n.instance_type not in types:
        item("nodes.instance_type", n.instance_type, ",".join(types),
             "the instance type of a node group cannot change: create a new node group")
    if c.autoscaler and AUTOSCALER_TAG not in (group.get("tags") or {}):
        item("cluster.autoscaler", True, "node group without the cluster-autoscaler tags",
             "the Cluster Autoscaler will not find it: add the tags k8s.io/cluster-autoscaler/enabled and "
             f"k8s.io/cluster-autoscaler/{ctx.cluster} to its Auto Scaling group")
    return out


def _minor(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


# -- create -------------------------------------------------------------------------------------
def require_tools(ctx: Context, *tools: str) -> dict[str, str]:
    """Check each tool before anything changes, with the runner's version check (the one ``up``
    and ``doctor`` use): a missing or too-old tool stops the verb with one line and the install
    hint (``ToolMissingError``, exit 2). Returns the versions found."""
    return {tool: ".".join(map(str, ctx.runner.version(tool))) for tool in tools}


def lists_commands(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """In a dry run, add ``would_run``: every mutating command line the run recorded, in order."""

    @functools.wraps(fn)
    def wrapper(ctx: Context, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = fn(ctx, *args, **kwargs)
        if ctx.dry_run:
            result["would_run"] = [shlex.join(argv) for argv in getattr(ctx.runner, "recorded", [])]
        return result

    return wrapper


@lists_commands
def create(ctx: Context, *, yes: bool = False) -> dict[str, Any]:
    """Create (or reuse, or recover) the cluster, then nodes Ready, default gp3, autoscaler."""
    from kservectl.phases import autoscaler

    report = ctx.reporter
    result: dict[str, Any] = {"cluster": ctx.cluster, "region": ctx.region, "dry_run": ctx.dry_run,
                              "actions": [], "drift": [], "kubeconfig": str(kubeconfig_path(ctx))}
    actions: list[str] = result["actions"]
    files = write_rendered(ctx)
    result["files"] = [str(p) for p in files]
    report.step(PHASE, f"checking cluster {ctx.cluster} in {ctx.region}")
    state = detect(ctx)
    result["state"] = state.kind
    expected_nodes = ctx.config.nodes.desired

    if state.kind == "busy":
        raise KservectlError(
            f"{state.detail}; another operation is in progress",
            hint="wait for it to finish (see the CloudFormation console), then run this again")
    require_tools(ctx, "eksctl", *(["helm"] if ctx.config.cluster.autoscaler else []))
    if state.kind == "failed":
        recover_failed(ctx, state, yes=yes, actions=actions)
    if state.kind in ("absent", "failed"):
        argv = create_argv(ctx)
        report.step(PHASE, f"{'(plan) would create' if ctx.dry_run else 'creating'} cluster {ctx.cluster} "
                    f"with eksctl (about 20 minutes)")
        ctx.runner.run(argv, timeout=ctx.settings.tools.eksctl_create, retry=False)
        actions.append(f"would create cluster {ctx.cluster} with eksctl" if ctx.dry_run
                       else "ran: " + shlex.join(argv))
        result["created"] = not ctx.dry_run
    else:
        assert state.cluster is not None
        version = state.cluster.get("version")
        report.info(f"cluster {ctx.cluster} is ACTIVE (Kubernetes {version}): reusing it")
        actions.append(f"reused the ACTIVE cluster {ctx.cluster}")
        groups = nodegroups(ctx)
        finished = finish_interrupted_create(ctx, state.cluster, groups)
        if finished:
            actions.extend(finished)
            groups = groups if ctx.dry_run else nodegroups(ctx)
        result["drift"] = drift(ctx, state.cluster, groups)
        for item in result["drift"]:
            report.warn(f"drift: {item['message']}")
        for stack in state.stacks:
            if stack.status in FAILED_STACK_STATES:
                report.warn(f"{stack.describe()}: delete it (`aws cloudformation delete-stack --stack-name "
                            f"{stack.name} --region {ctx.region}`) before creating what it held again")
        # the node groups' own desired sizes (the autoscaler may have moved them)
        expected_nodes = sum((g.get("scalingConfig") or {}).get("desiredSize", 0) for g in groups)
        ensure_kubeconfig(ctx, actions)

    if ctx.dry_run and (state.kind != "active" or not kubeconfig_path(ctx).is_file()):
        # Nothing to read in Kubernetes yet: say what would follow.
        actions.append(f"would wait until {expected_nodes} nodes are Ready")
        actions.append(f"would make StorageClass {STORAGECLASS} the default and gp2 not default")
        if ctx.config.cluster.autoscaler:
            result["autoscaler"] = autoscaler.install(ctx, cluster_exists=False)
            actions.extend(result["autoscaler"]["actions"])
        return result

    if ctx.dry_run:  # look once, do not wait
        items, _ = ctx.kube.list("v1", "Node")
        actions.append(f"nodes now: {all_nodes_ready(expected_nodes)(items)[1]}")
    else:
        wait_for_nodes(ctx, expected_nodes)
        actions.append(f"{expected_nodes} nodes Ready")
    actions.extend(ensure_storage_classes(ctx))
    if ctx.config.cluster.autoscaler:
        result["autoscaler"] = autoscaler.install(ctx)
        actions.extend(result["autoscaler"]["actions"])
    else:
        actions.append("Cluster Autoscaler off (cluster.autoscaler=false)")
    return result


def finish_interrupted_create(ctx: Context, found: dict[str, Any], groups: list[dict[str, Any]]) -> list[str]:
    """A create stopped after the control plane (Ctrl-C, a lost terminal): CloudFormation finished
    the cluster, but eksctl never made its OIDC provider, add-ons and node group, and eksctl cannot
    resume a create. A cluster kservectl made (tagged) that has no node group at all is finished
    with eksctl's own commands, each of which skips what exists; anything else stays drift."""
    if groups or (found.get("tags") or {}).get(OWNER_TAG) != ctx.cluster:
        return []
    ctx.reporter.warn(f"cluster {ctx.cluster} has no node group: its create was interrupted; "
                      "finishing it (OIDC provider, add-ons, node group)")
    cfg = str(config_path(ctx))
    done = []
    for argv in (["eksctl", "utils", "associate-iam-oidc-provider", "-f", cfg, "--approve"],
                 ["eksctl", "create", "addon", "-f", cfg],
                 ["eksctl", "create", "nodegroup", "-f", cfg]):
        ctx.reporter.step(PHASE, f"{'(plan) would run' if ctx.dry_run else 'running'}: {shlex.join(argv)}")
        ctx.runner.run(argv, timeout=ctx.settings.tools.eksctl_create, retry=False)
        done.append(("would run: " if ctx.dry_run else "ran: ") + shlex.join(argv))
    return done


def recover_failed(ctx: Context, state: ClusterState, *, yes: bool, actions: list[str]) -> None:
    """Delete the stacks of a failed create so that ``eksctl create cluster`` can run again."""
    cluster_stack = next((s for s in state.stacks if s.name == f"eksctl-{ctx.cluster}-cluster"), None)
    failed = cluster_stack is not None and cluster_stack.status in FAILED_STACK_STATES
    cause = first_failure(ctx, cluster_stack) if cluster_stack is not None and failed else ""
    why = f"{state.detail}{f'; first failure: {cause}' if cause else ''}"
    unowned = [s.name for s in state.stacks if not s.owned]
    if unowned or not state.stacks:
        raise KservectlError(
            f"a previous create of cluster {ctx.cluster} failed ({why}) and kservectl cannot clear it: "
            + (f"stacks not tagged {EKSCTL_CLUSTER_TAG}={ctx.cluster}: {', '.join(unowned)}" if unowned
               else "the EKS cluster has no eksctl stacks"),
            hint="delete them in the CloudFormation/EKS console, then run this again")
    names = ", ".join(s.name for s in state.stacks)
    how = f"kservectl will delete the stacks {names}, then create the cluster again"
    if not yes and not ctx.dry_run:
        raise KservectlError(
            f"a previous create of cluster {ctx.cluster} failed ({why}); eksctl cannot resume it "
            f"(a re-run fails with AlreadyExists); {how}", hint="run again with --yes to do that")
    ctx.reporter.warn(f"a previous create failed ({why}); {how}")
    for stack in state.stacks:
        if ctx.dry_run:
            actions.append(f"would delete failed stack {stack.describe()}")
            continue
        delete_stack(ctx, stack)
        actions.append(f"deleted failed stack {stack.name} ({stack.status})")


def delete_stack(ctx: Context, stack: Stack) -> None:
    cfn = ctx.aws.client("cloudformation")
    ctx.reporter.step(PHASE, f"deleting stack {stack.name} ({stack.status})")
    aws.call("cloudformation:DeleteStack", cfn.delete_stack, StackName=stack.stack_id)
    timeout = ctx.settings.waits.stack_deleted
    deadline = ctx.clock.monotonic() + timeout
    while True:
        try:
            found = aws.call("cloudformation:DescribeStacks", cfn.describe_stacks,
                             StackName=stack.stack_id)["Stacks"]
        except AwsError as exc:
            if exc.code == "ValidationError":  # "Stack with id ... does not exist"
                return
            raise
        status = found[0]["StackStatus"] if found else "DELETE_COMPLETE"
        if status == "DELETE_COMPLETE":
            return
        if status == "DELETE_FAILED":
            reason = found[0].get("StackStatusReason") or first_failure(ctx, stack) or "no reason given"
            raise KservectlError(f"could not delete the failed stack {stack.name}: {reason}",
                                 hint="delete what it names in the AWS console, then run this again")
        if ctx.clock.monotonic() >= deadline:
            raise WaitTimeout(f"stack {stack.name} to be deleted", timeout, [f"{stack.name} is {status}"])
        ctx.reporter.waiting(f"stack {stack.name} to be deleted", status)
        ctx.clock.sleep(ctx.settings.waits.poll_interval)


def ensure_kubeconfig(ctx: Context, actions: list[str]) -> None:
    """Write the per-cluster kubeconfig when it is missing (``create`` writes it otherwise)."""
    if kubeconfig_path(ctx).is_file():
        return
    argv = write_kubeconfig_argv(ctx)
    ctx.runner.run(argv)
    actions.append(("would write " if ctx.dry_run else "wrote ") + f"kubeconfig {kubeconfig_path(ctx)}")


def all_nodes_ready(expected: int):
    """At least ``expected`` nodes, and every node Ready."""

    def check(items: list[Obj]) -> tuple[bool, str]:
        ready = sorted(n["metadata"]["name"] for n in items if _ready(n))
        not_ready = sorted(n["metadata"]["name"] for n in items if not _ready(n))
        if len(ready) >= expected and not not_ready:
            return True, f"{len(ready)} nodes Ready"
        tail = f" (not Ready: {', '.join(not_ready)})" if not_ready else ""
        return False, f"{len(ready)}/{max(expected, len(items))} nodes Ready{tail}"

    return check


def wait_for_nodes(ctx: Context, expected: int) -> list[Obj]:
    timeout = ctx.settings.waits.nodes_ready
    ctx.reporter.step(PHASE, f"waiting until all {expected} nodes are Ready (up to {timeout:g}s)")
    return ctx.kube.wait_for_all("v1", "Node", None, all_nodes_ready(expected),
                                 what=f"{expected} nodes of cluster {ctx.cluster} to be Ready",
                                 timeout=timeout)


def _ready(node: Obj) -> bool:
    return (condition(node, "Ready") or {}).get("status") == "True"


def ensure_object(ctx: Context, obj: Obj) -> str:
    """Create, patch or keep one object; with ``ctx.dry_run`` only say which."""
    what = ctx.kube.diff(obj)
    if what == "create":
        if not ctx.dry_run:
            ctx.kube.create(obj)
        return "created"
    if what == "unchanged":
        return "unchanged"
    if not ctx.dry_run:
        fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
        ctx.kube.patch(Ref.of(obj), fields)
    return "changed"


def ensure_storage_classes(ctx: Context) -> list[str]:
    """gp3 (encrypted, EBS CSI, WaitForFirstConsumer, tagged) is the one default StorageClass."""
    would = "would be " if ctx.dry_run else ""
    desired = storage_class(ctx)
    current = ctx.kube.get("storage.k8s.io/v1", "StorageClass", STORAGECLASS)
    if current is not None:
        differs = [f for f in IMMUTABLE_CLASS_FIELDS if current.get(f) != desired.get(f)]
        if differs:
            raise KservectlError(
                f"StorageClass {STORAGECLASS} exists with other {', '.join(differs)} than kservectl's, and "
                "Kubernetes does not allow changing them",
                hint=f"delete it (`kubectl delete storageclass {STORAGECLASS}`; volumes stay) "
                     "and run this again")
    done = [f"StorageClass {STORAGECLASS} {would}{ensure_object(ctx, desired)}"]
    items, _ = ctx.kube.list("storage.k8s.io/v1", "StorageClass")
    for item in items:
        name = item["metadata"]["name"]
        annotations = item["metadata"].get("annotations") or {}
        if name == STORAGECLASS or annotations.get(DEFAULT_CLASS) != "true":
            continue
        if not ctx.dry_run:
            ctx.kube.patch(Ref("storage.k8s.io/v1", "StorageClass", name),
                           {"metadata": {"annotations": {DEFAULT_CLASS: "false"}}})
        done.append(f"StorageClass {name} {would}marked not default")
    return done


# -- status -------------------------------------------------------------------------------------
def status(ctx: Context) -> dict[str, Any]:
    cluster = describe_cluster(ctx)
    out: dict[str, Any] = {"cluster": ctx.cluster, "region": ctx.region, "exists": cluster is not None}
    if cluster is None:
        stacks = eksctl_stacks(ctx)
        out["state"] = "ABSENT"
        out["stacks"] = [{"name": s.name, "status": s.status, "reason": s.reason} for s in stacks]
        if stacks:
            out["hint"] = ("stacks of a failed or half-deleted cluster remain: "
                           "`kservectl cluster create --yes` clears them and creates the cluster")
        return out
    vpc = cluster.get("resourcesVpcConfig") or {}
    out.update({
        "state": cluster.get("status"),
        "version": cluster.get("version"),
        "platform_version": cluster.get("platformVersion"),
        "endpoint": cluster.get("endpoint"),
        "vpc_id": vpc.get("vpcId"),
        "oidc_issuer": ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer"),
    })
    try:
        groups = nodegroups(ctx)
        out["nodegroups"] = [{
            "name": g.get("nodegroupName"), "status": g.get("status"),
            "instance_types": g.get("instanceTypes") or [],
            "min": (g.get("scalingConfig") or {}).get("minSize"),
            "max": (g.get("scalingConfig") or {}).get("maxSize"),
            "desired": (g.get("scalingConfig") or {}).get("desiredSize"),
        } for g in groups]
        out["drift"] = drift(ctx, cluster, groups)
    except AwsError as exc:
        out["nodegroups"] = {"error": exc.one_line()}
    out["addons"] = addons(ctx)
    out["nodes"] = _nodes(ctx)
    out["default_storage_class"] = _default_class(ctx)
    if ctx.config.cluster.autoscaler:
        from kservectl.phases import autoscaler

        out["autoscaler"] = autoscaler.status(ctx)
    return out


def addons(ctx: Context) -> list[dict[str, Any]] | dict[str, str]:
    eks = ctx.aws.client("eks")
    try:
        names = aws.call("eks:ListAddons", eks.list_addons, clusterName=ctx.cluster).get("addons", [])
        found = []
        for name in sorted(names):
            addon = aws.call("eks:DescribeAddon", eks.describe_addon, clusterName=ctx.cluster,
                             addonName=name)["addon"]
            issues = (addon.get("health") or {}).get("issues") or []
            found.append({"name": name, "version": addon.get("addonVersion"), "status": addon.get("status"),
                          "issues": [i.get("message") for i in issues]})
        return found
    except AwsError as exc:
        return {"error": exc.one_line()}


def _nodes(ctx: Context) -> dict[str, Any]:
    try:
        items, _ = ctx.kube.list("v1", "Node")
    except KservectlError as exc:
        return {"error": exc.one_line()}
    return {"total": len(items), "ready": sum(1 for n in items if _ready(n)),
            "not_ready": sorted(n["metadata"]["name"] for n in items if not _ready(n))}


def _default_class(ctx: Context) -> str | None:
    try:
        items, _ = ctx.kube.list("storage.k8s.io/v1", "StorageClass")
    except KservectlError:
        return None
    defaults = [i["metadata"]["name"] for i in items
                if (i["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    return ",".join(sorted(defaults)) or None


# -- delete -------------------------------------------------------------------------------------
def aws_holders(ctx: Context, *, ingresses: bool = False) -> list[str]:
    """Kubernetes objects that hold AWS resources outside the cluster's stacks: LoadBalancer
    Services (NLBs), PersistentVolumeClaims (EBS volumes) and, if asked, Ingresses (ALBs)."""
    held: list[str] = []
    services, _ = ctx.kube.list("v1", "Service")
    for svc in services:
        if (svc.get("spec") or {}).get("type") == "LoadBalancer":
            meta = svc["metadata"]
            held.append(f"Service {meta.get('namespace')}/{meta['name']} (LoadBalancer)")
    if ingresses:
        items, _ = ctx.kube.list("networking.k8s.io/v1", "Ingress")
        held += [f"Ingress {i['metadata'].get('namespace')}/{i['metadata']['name']}" for i in items]
    else:
        claims, _ = ctx.kube.list("v1", "PersistentVolumeClaim")
        held += [f"PVC {c['metadata'].get('namespace')}/{c['metadata']['name']}" for c in claims]
    return sorted(held)


@lists_commands
def delete(ctx: Context, *, confirm: Confirm | None = None) -> dict[str, Any]:
    """``eksctl delete cluster --wait``, only when nothing in the cluster still holds AWS resources."""
    result: dict[str, Any] = {"cluster": ctx.cluster, "region": ctx.region, "dry_run": ctx.dry_run,
                              "actions": []}
    cluster = describe_cluster(ctx)
    stacks = eksctl_stacks(ctx)
    if cluster is None and not stacks:
        result["actions"].append(f"no cluster {ctx.cluster} in {ctx.region}: nothing to delete")
        result["deleted"] = False
        return result
    require_tools(ctx, "eksctl")
    if cluster is not None and cluster.get("status") == "ACTIVE":
        ensure_kubeconfig(ctx, result["actions"])
        try:
            held = aws_holders(ctx)
        except KubeError as exc:
            if not (ctx.dry_run and not kubeconfig_path(ctx).is_file()):
                raise KservectlError(
                    f"cannot check cluster {ctx.cluster} for LoadBalancer Services and PVCs before "
                    f"deleting it: {exc.one_line()}",
                    hint="make the API reachable, or delete the cluster with eksctl yourself") from exc
            held = []
            result["actions"].append(
                "would check for LoadBalancer Services and PVCs once the kubeconfig exists")
        if held:
            raise KservectlError(
                f"cluster {ctx.cluster} still holds AWS resources that deleting it would strand: "
                f"{', '.join(held)}",
                hint="delete them first (`kservectl cleanup` does it in order), then run this again")
    write_rendered(ctx)
    if confirm is not None and not ctx.dry_run:
        confirm(f"Delete EKS cluster {ctx.cluster} in {ctx.region} and everything eksctl created for it?")
    argv = delete_argv(ctx)
    ctx.reporter.step(PHASE, f"{'(plan) would delete' if ctx.dry_run else 'deleting'} cluster {ctx.cluster}")
    ctx.runner.run(argv, timeout=ctx.settings.tools.eksctl_delete, retry=False)
    result["actions"].append(f"would delete cluster {ctx.cluster} with eksctl" if ctx.dry_run
                             else "ran: " + shlex.join(argv))
    result["deleted"] = not ctx.dry_run
    if not ctx.dry_run:
        kubeconfig = paths.kubeconfig_path(ctx.cluster)
        if kubeconfig.is_file():
            kubeconfig.unlink()
            result["actions"].append(f"removed the stale kubeconfig {kubeconfig}")
        result["left_behind"] = [f"CloudWatch log group /aws/eks/{ctx.cluster}/cluster (eksctl keeps it): `aws logs "
                                 f"delete-log-group --region {ctx.region} --log-group-name "
                                 f"/aws/eks/{ctx.cluster}/cluster` deletes just it; `kservectl cleanup --orphans "
                                 f"-c {ctx.cluster} -r {ctx.region}` (a dry run) lists everything else left behind"]
    return result


# -- helm releases (shared by the AWS phases) -----------------------------------------------------
@dataclass(frozen=True)
class HelmRelease:
    name: str
    namespace: str
    chart: str  # repo/chart
    version: str
    repo_name: str
    repo_url: str
    values_file: Path
    values: dict[str, Any]

    @property
    def chart_name(self) -> str:
        return self.chart.split("/", 1)[-1]


def helm_repo_argvs(rel: HelmRelease) -> list[list[str]]:
    return [["helm", "repo", "add", rel.repo_name, rel.repo_url, "--force-update"],
            ["helm", "repo", "update", rel.repo_name]]


def helm_install_argv(ctx: Context, rel: HelmRelease, major: int) -> list[str]:
    return ["helm", "upgrade", "--install", rel.name, rel.chart, "--version", rel.version,
            "--namespace", rel.namespace, "--values", str(rel.values_file),
            "--kubeconfig", str(kubeconfig_path(ctx)),
            *helm_wait_flags(major, ctx.settings.waits.deployment_available)]


def helm_major(ctx: Context) -> int:
    return ctx.runner.version("helm")[0]


def helm_release(ctx: Context, name: str, namespace: str, *, retry: bool = True) -> dict[str, Any] | None:
    """The release as ``helm list`` shows it (name, status, chart, app_version), or None.
    ``retry=False`` for status reads: an unreachable cluster should answer at once."""
    result = ctx.runner.run(["helm", "list", "--namespace", namespace, "--filter", f"^{name}$",
                             "--output", "json", "--kubeconfig", str(kubeconfig_path(ctx))],
                            mutating=False, retry=retry)
    try:
        releases = json.loads(result.stdout or "[]") or []
    except ValueError:
        return None
    return next((r for r in releases if r.get("name") == name), None)


def helm_values(ctx: Context, name: str, namespace: str) -> dict[str, Any]:
    result = ctx.runner.run(["helm", "get", "values", name, "--namespace", namespace, "--output", "json",
                             "--kubeconfig", str(kubeconfig_path(ctx))], mutating=False)
    try:
        return json.loads(result.stdout or "null") or {}
    except ValueError:
        return {}


def ensure_helm_release(ctx: Context, rel: HelmRelease, *, cluster_exists: bool = True) -> str:
    """``helm upgrade --install`` unless the deployed release already has this chart version and
    these values. Returns installed, upgraded or unchanged (with ``ctx.dry_run``: what would be)."""
    current = helm_release(ctx, rel.name, rel.namespace) if cluster_exists else None
    if (current is not None and current.get("status") == "deployed"
            and current.get("chart") == f"{rel.chart_name}-{rel.version}"
            and helm_values(ctx, rel.name, rel.namespace) == rel.values):
        return "unchanged"
    for argv in helm_repo_argvs(rel):
        ctx.runner.run(argv)
    argv = helm_install_argv(ctx, rel, helm_major(ctx))
    ctx.runner.run(argv, timeout=ctx.settings.tools.helm)
    return "upgraded" if current is not None else "installed"
