"""``cleanup --orphans``: find what a cluster left behind in AWS, and delete exactly that.

AWS only: no tool, no kubeconfig, and it works when the cluster itself is already gone.

Finding (``search(ctx) -> Search``, ``find(ctx) -> list[Orphan]``) reads every service the
platform touches, concurrently (one thread per finder over clients created up front): ELBv2 load
balancers and target groups, classic ELBs, the EKS cluster itself (when it exists but is not live,
e.g. FAILED) and its managed node groups, Auto Scaling groups, EC2 instances, EBS volumes, security
groups, ENIs, Elastic IPs, NAT gateways, CloudFormation stacks, IAM instance profiles, roles,
policies and OIDC providers, S3 buckets (the tags of every bucket in the region, a bounded number,
read in parallel) and CloudWatch log groups. A resource is this cluster's only on ownership evidence:

- a tag that EKS, the AWS Load Balancer Controller, the VPC CNI, the EBS CSI driver (with its
  cluster id), eksctl or kservectl put on what they create, naming this cluster exactly
  (``kubernetes.io/cluster/<name>=owned``, ``elbv2.k8s.aws/cluster``,
  ``alpha.eksctl.io/cluster-name``, ``eksctl.cluster.k8s.io/v1alpha1/cluster-name``,
  ``kservectl.io/cluster``, ``cluster.k8s.amazonaws.com/name``, ... see ``NAME_TAGS``); but for
  instances, Auto Scaling groups and EKS node groups only the tags of EKS, eksctl and kservectl
  (``COMPUTE_NAME_TAGS``: kops and self-managed clusters also tag their nodes
  ``kubernetes.io/cluster/<name>=owned`` / ``KubernetesCluster``), and instances and Auto Scaling
  groups only where an EKS cluster of this name still exists or an eksctl stack of it does; and
  for S3 buckets only ``kservectl.io/cluster`` (every bucket's tags are read);
- a record of the cluster's own CloudFormation stacks: a resource a stack of this cluster lists,
  or one CloudFormation tagged as created by such a stack;
- a name EKS or eksctl derives from the cluster name: the ``/aws/eks/<name>/`` log groups and the
  ``eksctl-<name>-cluster|nodegroup-*|addon-*|...`` stacks;
- for the OIDC provider also: the issuer of the (still existing) EKS cluster, or the trust policy
  of an IRSA role that is itself an orphan.

Tags such as ``ebs.csi.aws.com/cluster=true`` or ``kubernetes.io/created-for/pvc/name`` prove
nothing about *which* cluster: they only make a resource a look-alike. ``kubernetes.io/cluster/<name>
=shared`` says the cluster uses a resource it does not own: such a resource is counted apart as
"not owned, shared" and never deleted, whatever else it carries. A resource with evidence
for another cluster (``prod-2`` when looking for ``prod``: names match exactly, never by prefix)
is never this cluster's, even if it also carries this cluster's evidence. Look-alikes, other
clusters' resources and in-use resources are counted apart, never listed as orphans, never deleted.

Deleting (``delete(ctx, orphans, account_id=...)``) first checks that the credentials belong to
``account_id`` (the account pinned by the caller, or the one the search ran in), then deletes
exactly the given orphans, in the order given (``search`` sorts them by ``rank``), in dependency
order: load balancers (then wait until they are gone), EKS managed node groups, Auto Scaling groups
and instances (each waited for), the EKS cluster (wait), target groups, ENIs, NAT gateways (wait),
Elastic IPs, security groups (retrying DependencyViolation with bounded backoff), volumes, stacks
(nodegroup/addon stacks, wait, then the cluster stack), IAM instance profiles, roles, policies, the
OIDC provider, log groups, and the S3 buckets only with ``delete_data``. It keeps going past
failures and reports each with the manual step that finishes it. With ``ctx.dry_run`` it mutates
nothing and reports "would delete".
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kservectl import aws, costs, iam
from kservectl.context import Context
from kservectl.errors import AwsError, UsageError

PHASE = "orphans"
GLOBAL = "global"  # the region shown for IAM resources

# --------------------------------------------------------------------------- resource types

LOAD_BALANCER = "elbv2-load-balancer"
CLASSIC_ELB = "elb-classic-load-balancer"
NODEGROUP = "eks-nodegroup"
AUTOSCALING_GROUP = "autoscaling-group"
EC2_INSTANCE = "ec2-instance"
EKS_CLUSTER = "eks-cluster"
TARGET_GROUP = "elbv2-target-group"
NETWORK_INTERFACE = "network-interface"
NAT_GATEWAY = "nat-gateway"
ELASTIC_IP = "elastic-ip"
SECURITY_GROUP = "security-group"
VOLUME = "ebs-volume"
STACK = "cloudformation-stack"
INSTANCE_PROFILE = "iam-instance-profile"
ROLE = "iam-role"
POLICY = "iam-policy"
OIDC_PROVIDER = "iam-oidc-provider"
LOG_GROUP = "log-group"
BUCKET = "s3-bucket"

# Delete order. Both kinds of load balancer share a rank (deleted together, then waited for); the
# compute goes before the EKS cluster (node groups, then Auto Scaling groups, then instances), the
# cluster before the VPC pieces it holds (ENIs, security groups); a cluster's own stack comes after
# its nodegroup and addon stacks (rank + 1).
RANK: dict[str, int] = {
    LOAD_BALANCER: 10, CLASSIC_ELB: 10, NODEGROUP: 12, AUTOSCALING_GROUP: 14, EC2_INSTANCE: 16, EKS_CLUSTER: 18,
    TARGET_GROUP: 20, NETWORK_INTERFACE: 30, NAT_GATEWAY: 40,
    ELASTIC_IP: 50, SECURITY_GROUP: 60, VOLUME: 70, STACK: 80, INSTANCE_PROFILE: 90, ROLE: 100,
    POLICY: 110, OIDC_PROVIDER: 120, LOG_GROUP: 130, BUCKET: 140,
}
TYPES: tuple[str, ...] = tuple(RANK)

# --------------------------------------------------------------------------- evidence rules

CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"  # EKS, in-tree cloud provider, eksctl, CSI with cluster id
# ``owned``: the cluster's own resource; ``shared``: one the cluster uses but does not own (a VPC or
# subnet of several clusters) -- never this cluster's to delete.
CLUSTER_TAG_VALUES = ("owned", "shared")
OWNED, SHARED = CLUSTER_TAG_VALUES
# Tags whose value names the owning cluster.
NAME_TAGS: tuple[str, ...] = (
    iam.OWNER_TAG,  # kservectl.io/cluster: everything kservectl creates
    "elbv2.k8s.aws/cluster",  # AWS Load Balancer Controller: load balancers, target groups, its SGs
    "alpha.eksctl.io/cluster-name",  # eksctl: stacks and what they create, the OIDC provider
    "eksctl.cluster.k8s.io/v1alpha1/cluster-name",  # eksctl
    "cluster.k8s.amazonaws.com/name",  # Amazon VPC CNI: ENIs
    "aws:eks:cluster-name",  # EKS: the cluster security group
    "eks:cluster-name",  # EKS managed node groups
    "KubernetesCluster",  # the legacy in-tree cloud provider
)
# Compute (EC2 instances, Auto Scaling groups, EKS managed node groups) is this cluster's only on
# what EKS, eksctl and kservectl write: ``kubernetes.io/cluster/<name>=owned`` and
# ``KubernetesCluster=<name>`` are on the nodes of kops and self-managed clusters too, so on
# compute they only make a look-alike. And only where an EKS cluster of this name was: it still
# exists (any state) or an eksctl stack of it does (``_Scan.compute_evidence``).
COMPUTE_NAME_TAGS: tuple[str, ...] = (
    iam.OWNER_TAG, "alpha.eksctl.io/cluster-name", "eksctl.cluster.k8s.io/v1alpha1/cluster-name",
    "eks:cluster-name", "aws:eks:cluster-name",
)
# Tags that make a resource look related but prove nothing about which cluster owns it.
HINT_TAGS: tuple[str, ...] = (
    "ebs.csi.aws.com/cluster", "CSIVolumeName", "kubernetes.io/created-for/pvc/name",
    "kubernetes.io/created-for/pvc/namespace", "kubernetes.io/created-for/pv/name",
    "service.k8s.aws/stack", "service.k8s.aws/resource", "elbv2.k8s.aws/resource", "ingress.k8s.aws/stack",
    "ingress.k8s.aws/resource", "node.k8s.amazonaws.com/instance_id", "alpha.eksctl.io/eksctl-version",
    "alpha.eksctl.io/nodegroup-name", "eks:nodegroup-name", "k8s.io/cluster-autoscaler/enabled",
    iam.COMPONENT_TAG,
)
AUTOSCALER_TAG_PREFIX = "k8s.io/cluster-autoscaler/"  # <name>=owned|true: discovery, set by hand too: a hint
CFN_STACK_TAG = "aws:cloudformation:stack-name"
# The stacks eksctl makes for a cluster: eksctl-<cluster>-<kind>.
STACK_KINDS = r"(cluster|nodegroup-.+|addon-.+|podidentityrole-.+|fargate|oidc-provider|karpenter)"
LOG_GROUP_PREFIX = "/aws/eks/"
BUCKET_SIZE_PAGES = 10  # object-version pages (1000 each) listed to price a bucket; beyond: "at least"
BUCKET_PREFIX = "kservectl-"  # what every bucket name kservectl derives starts with (phases/storage.py)
BUCKET_TAG_READS = 1000  # at most this many buckets of the region have their tags read per search
BUCKET_READERS = 8  # threads reading bucket tags at once
BUCKET_PAGE = 1000  # ListBuckets MaxBuckets: a paginated request, so that AWS says each bucket's region
ELB_TAG_BATCH = 20  # DescribeTags takes at most 20 load balancers / target groups
S3_DELETE_BATCH = 1000
LIVE_CLUSTER_STATES = frozenset({"ACTIVE", "CREATING", "UPDATING", "PENDING"})

NOT_FOUND: dict[str, frozenset[str]] = {
    LOAD_BALANCER: frozenset({"LoadBalancerNotFound"}),
    CLASSIC_ELB: frozenset({"LoadBalancerNotFound", "AccessPointNotFound"}),
    NODEGROUP: frozenset({"ResourceNotFoundException"}),
    AUTOSCALING_GROUP: frozenset(),  # a ValidationError "not found": the deleter tells it apart
    EC2_INSTANCE: frozenset({"InvalidInstanceID.NotFound"}),
    EKS_CLUSTER: frozenset({"ResourceNotFoundException"}),
    TARGET_GROUP: frozenset({"TargetGroupNotFound"}),
    NETWORK_INTERFACE: frozenset({"InvalidNetworkInterfaceID.NotFound"}),
    NAT_GATEWAY: frozenset({"NatGatewayNotFound", "InvalidNatGatewayID.NotFound"}),
    ELASTIC_IP: frozenset({"InvalidAllocationID.NotFound"}),
    SECURITY_GROUP: frozenset({"InvalidGroup.NotFound"}),
    VOLUME: frozenset({"InvalidVolume.NotFound"}),
    STACK: frozenset(),
    INSTANCE_PROFILE: frozenset({"NoSuchEntity"}),
    ROLE: frozenset({"NoSuchEntity"}),
    POLICY: frozenset({"NoSuchEntity"}),
    OIDC_PROVIDER: frozenset({"NoSuchEntity"}),
    LOG_GROUP: frozenset({"ResourceNotFoundException"}),
    BUCKET: frozenset({"NoSuchBucket"}),
}


@dataclass(frozen=True)
class Evidence:
    """What a resource's tags and names say about its owner."""

    ours: tuple[str, ...] = ()  # why it is this cluster's
    others: tuple[str, ...] = ()  # other clusters it is (also) claimed by
    related: bool = False  # looks related (hint tags, the cluster's name in its name)
    shared: bool = False  # tagged kubernetes.io/cluster/<this cluster>=shared: used, not owned


def tag_evidence(tags: Mapping[str, str], cluster: str) -> Evidence:
    """The ownership evidence in a resource's tags, for ``cluster`` (exact names only).

    ``kubernetes.io/cluster/<cluster>=shared`` is no ownership: the cluster uses the resource
    (a VPC, a subnet, a security group of several clusters) without owning it; the result says
    ``shared`` and the resource is never this cluster's orphan, whatever else it carries. Any
    other cluster named in that tag, owned or shared, makes the resource another cluster's."""
    ours: list[str] = []
    others: set[str] = set()
    related = shared = False
    for key, value in sorted(tags.items()):
        if key.startswith(CLUSTER_TAG_PREFIX):
            name = key[len(CLUSTER_TAG_PREFIX):]
            if value not in CLUSTER_TAG_VALUES:
                related = True
            elif name != cluster:
                others.add(name)
            elif value == OWNED:
                ours.append(f"tag {key}={value}")
            else:
                shared = True
        elif key in NAME_TAGS:
            if value == cluster:
                ours.append(f"tag {key}={value}")
            elif value:
                others.add(value)
        elif key in HINT_TAGS or key.startswith(AUTOSCALER_TAG_PREFIX):
            related = True
    return Evidence(tuple(ours), tuple(sorted(others)), related or shared or bool(others), shared)


def ownership_tag(key: str) -> bool:
    """Is ``key`` a tag that names an owning cluster (``kubernetes.io/cluster/*`` or a ``NAME_TAGS`` one)?"""
    return key.startswith(CLUSTER_TAG_PREFIX) or key in NAME_TAGS


def stack_name_pattern(cluster: str) -> re.Pattern[str]:
    return re.compile(rf"^eksctl-{re.escape(cluster)}-{STACK_KINDS}$")


def name_mentions(name: str, cluster: str) -> bool:
    return bool(name) and cluster.lower() in name.lower()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Orphan:
    """A resource this cluster left behind. ``id`` is the full id or ARN (never shortened)."""

    type: str
    id: str
    region: str
    evidence: str
    monthly_cost: float | None  # None: the price is unknown
    rank: int
    name: str = ""
    detail: str = ""
    cost_note: str = ""
    holds_data: bool = False  # deleted only with delete_data (the artifact bucket)

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.rank, self.type, self.id)

    def arn_part(self, index: int) -> str:
        """A part of the resource path of the ARN (an EKS node group's: ``nodegroup/<cluster>/<name>/<id>``)."""
        parts = self.id.split(":", 5)[-1].split("/")
        return parts[index] if index < len(parts) else ""

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "name": self.name, "region": self.region,
                "evidence": self.evidence, "monthly_cost": _money(self.monthly_cost),
                "cost_note": self.cost_note, "rank": self.rank, "detail": self.detail,
                "holds_data": self.holds_data}


@dataclass
class Search:
    """The result of a search: the orphans in delete order and what was left apart."""

    cluster: str
    region: str
    account_id: str
    orphans: list[Orphan]
    lookalikes: dict[str, int] = field(default_factory=dict)  # type -> related, but no evidence
    shared: dict[str, int] = field(default_factory=dict)  # type -> kubernetes.io/cluster/<name>=shared
    other_clusters: dict[str, int] = field(default_factory=dict)  # type -> evidence for another cluster
    in_use: dict[str, int] = field(default_factory=dict)  # type -> this cluster's, but still attached
    errors: list[str] = field(default_factory=list)  # services that could not be searched
    cluster_status: str | None = None  # the EKS cluster's status when it still exists

    @property
    def complete(self) -> bool:
        return not self.errors

    @property
    def monthly_cost(self) -> float:
        return sum(o.monthly_cost for o in self.orphans if o.monthly_cost is not None)

    @property
    def cluster_alive(self) -> bool:
        return self.cluster_status in LIVE_CLUSTER_STATES

    def notes(self) -> list[str]:
        """One line per thing the user should know besides the orphans themselves."""
        lines: list[str] = []
        if self.cluster_alive:
            lines.append(f"EKS cluster {self.cluster} still exists ({self.cluster_status}): what is listed is "
                         "its live infrastructure, not orphans; run `kservectl cleanup` first")
        if self.lookalikes:
            n = sum(self.lookalikes.values())
            lines.append(f"{n} resource{_s(n)} look{'' if n != 1 else 's'} related but carr{'y' if n != 1 else 'ies'} "
                         f"no ownership evidence: not touched ({_by_type(self.lookalikes)})")
        if self.shared:
            n = sum(self.shared.values())
            lines.append(f"{n} resource{_s(n)} {'are' if n != 1 else 'is'} not owned, shared: tagged "
                         f"{CLUSTER_TAG_PREFIX}{self.cluster}={SHARED} (used by {self.cluster}, owned by none): "
                         f"not touched ({_by_type(self.shared)})")
        if self.other_clusters:
            n = sum(self.other_clusters.values())
            lines.append(f"{n} resource{_s(n)} belong{'' if n != 1 else 's'} to another cluster: not touched "
                         f"({_by_type(self.other_clusters)})")
        if self.in_use:
            n = sum(self.in_use.values())
            lines.append(f"{n} resource{_s(n)} of {self.cluster} {'are' if n != 1 else 'is'} still in use: not "
                         f"touched ({_by_type(self.in_use)})")
        for error in self.errors:
            lines.append(f"could not search {error}: the list may be incomplete")
        return lines

    def lines(self) -> list[str]:
        """Plain text, one orphan per line with its full id (for any output, terminal or not)."""
        out = [f"{len(self.orphans)} orphan{_s(len(self.orphans))} of cluster {self.cluster} in {self.region} "
               f"(account {self.account_id}), about ${self.monthly_cost:,.2f}/month:"]
        for o in self.orphans:
            cost = "cost unknown" if o.monthly_cost is None else f"${o.monthly_cost:,.2f}/month"
            if o.cost_note:
                cost += f" ({o.cost_note})"
            name = f" ({o.name})" if o.name and o.name not in o.id else ""
            data = " [holds data: deleted only with --delete-data]" if o.holds_data else ""
            out.append(f"  {o.type} {o.id}{name} in {o.region}: {o.evidence}; {cost}{data}")
        out += self.notes()
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "region": self.region, "account_id": self.account_id,
                "orphans": [o.as_dict() for o in self.orphans],
                "monthly_cost": round(self.monthly_cost, 2), "prices_as_of": costs.table().as_of,
                "lookalikes": dict(self.lookalikes), "shared": dict(self.shared),
                "other_clusters": dict(self.other_clusters),
                "in_use": dict(self.in_use), "errors": list(self.errors), "complete": self.complete,
                "cluster_status": self.cluster_status, "notes": self.notes()}


@dataclass(frozen=True)
class Outcome:
    orphan: Orphan
    status: str  # deleted | already gone | failed | kept | would delete
    detail: str = ""
    manual: str = ""  # the step that finishes a failed deletion by hand

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.orphan.type, "id": self.orphan.id, "name": self.orphan.name,
                "status": self.status, "detail": self.detail, "manual": self.manual}


@dataclass
class DeleteReport:
    cluster: str
    region: str
    account_id: str
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def attempted(self) -> list[Orphan]:
        """What was (or, in a dry run, would be) deleted, in order: the given list minus what was kept."""
        return [o.orphan for o in self.outcomes if o.status != "kept"]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [f"{o.status} {o.orphan.type} {o.orphan.id}" + (f": {o.detail}" if o.detail else "")
               for o in self.outcomes]
        if self.failures:
            out.append(f"{len(self.failures)} deletion{_s(len(self.failures))} failed; to finish by hand:")
            out += [f"  {o.orphan.type} {o.orphan.id}: {o.manual}" for o in self.failures]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "region": self.region, "account_id": self.account_id,
                "dry_run": self.dry_run, "outcomes": [o.as_dict() for o in self.outcomes],
                "failures": len(self.failures), "ok": self.ok}


class WrongAccount(UsageError):
    """The credentials changed account between the dry run and the deletion: nothing is deleted."""


class ClusterStillRunning(UsageError):
    """The EKS cluster still exists: its resources are not orphans."""


# --------------------------------------------------------------------------- search

SERVICES = ("sts", "ec2", "elbv2", "elb", "cloudformation", "eks", "autoscaling", "iam", "s3", "logs")


def find(ctx: Context) -> list[Orphan]:
    """The orphans of ``ctx.cluster`` in ``ctx.region``, in delete order."""
    return search(ctx).orphans


def check_account(current: str, expected: str, *, untouched: str = "nothing was searched or deleted") -> None:
    """Refuse (``WrongAccount``, exit 2) when the credentials belong to another account than ``expected``."""
    if current != expected:
        raise WrongAccount(
            f"refusing: the AWS credentials belong to account {current}, not the pinned account {expected}; "
            f"{untouched}",
            hint=f"use the credentials of account {expected} (AWS_PROFILE / aws.profile)")


def search(ctx: Context, *, account_id: str | None = None, only: Collection[str] | None = None) -> Search:
    """Search every service concurrently; read-only (no mutating call, also without dry run).
    With ``account_id`` (the pinned account), refuse first when the credentials belong to another.
    ``only`` narrows the search to these finders (``FINDERS`` names, e.g. for ``up``'s cost of
    what runs); the CloudFormation stacks are always read (other finders use them)."""
    clients = {service: ctx.aws.client(service) for service in SERVICES}  # created before the threads
    account = iam.call(ctx, "sts:GetCallerIdentity", clients["sts"].get_caller_identity)["Account"]
    if account_id is not None:
        check_account(account, account_id)
    ctx.reporter.step(PHASE, f"searching account {account}, region {ctx.region} for what cluster "
                      f"{ctx.cluster} left behind")
    unknown = set(only or ()) - set(FINDERS)
    if unknown:
        raise ValueError(f"no such orphan finder: {', '.join(sorted(unknown))}")
    finders = [(what, finder) for what, finder in FINDERS.items() if only is None or what in only]
    result = Search(ctx.cluster, ctx.region, account, [])
    with ThreadPoolExecutor(max_workers=len(finders) + 1, thread_name_prefix="orphans") as pool:
        stacks_future: Future[_Stacks] = pool.submit(_find_stacks, ctx, clients, account)
        scan = _Scan(ctx, clients, account, stacks_future)
        futures = [(what, pool.submit(finder, scan)) for what, finder in finders]
        found: list[_Found] = []
        try:
            stacks = stacks_future.result()
            found.append(stacks.found)
            result.cluster_status = stacks.cluster_status
        except AwsError as exc:
            result.errors.append(f"cloudformation stacks: {exc.one_line()}")
        for what, future in futures:
            try:
                found.append(future.result())
            except AwsError as exc:
                result.errors.append(f"{what}: {exc.one_line()}")
    lookalikes: Counter[str] = Counter()
    shared: Counter[str] = Counter()
    others: Counter[str] = Counter()
    in_use: Counter[str] = Counter()
    for part in found:
        result.orphans += part.orphans
        lookalikes.update(part.lookalikes)
        shared.update(part.shared)
        others.update(part.others)
        in_use.update(part.in_use)
        result.errors += part.incomplete
    result.orphans.sort(key=lambda o: o.sort_key)
    result.lookalikes, result.shared = dict(lookalikes), dict(shared)
    result.other_clusters, result.in_use = dict(others), dict(in_use)
    for error in result.errors:
        ctx.reporter.warn(f"could not search {error}")
    ctx.reporter.info(f"found {len(result.orphans)} orphan{_s(len(result.orphans))} of {ctx.cluster}")
    return result


@dataclass
class _Found:
    orphans: list[Orphan] = field(default_factory=list)
    lookalikes: Counter[str] = field(default_factory=Counter)
    shared: Counter[str] = field(default_factory=Counter)
    others: Counter[str] = field(default_factory=Counter)
    in_use: Counter[str] = field(default_factory=Counter)
    incomplete: list[str] = field(default_factory=list)  # what this finder could not read

    def admit(self, kind: str, evidence: Evidence) -> bool:
        """True when ``evidence`` makes the resource this cluster's; otherwise count it apart."""
        if evidence.others:
            self.others[kind] += 1
            return False
        if evidence.shared:
            self.shared[kind] += 1
            return False
        if not evidence.ours:
            if evidence.related:
                self.lookalikes[kind] += 1
            return False
        return True


@dataclass
class _Stacks:
    found: _Found = field(default_factory=_Found)
    ours: dict[str, str] = field(default_factory=dict)  # stack name -> evidence
    others: dict[str, str] = field(default_factory=dict)  # stack name -> the cluster it belongs to
    records: dict[str, str] = field(default_factory=dict)  # physical resource id -> our stack's name
    eksctl: list[str] = field(default_factory=list)  # our stacks with a name eksctl gives this cluster
    cluster_status: str | None = None
    issuer: str | None = None


class _Scan:
    """What every finder shares: the context, the clients, and (once known) the stacks."""

    def __init__(self, ctx: Context, clients: dict[str, Any], account: str, stacks: Future[_Stacks]) -> None:
        self.ctx = ctx
        self.cluster = ctx.cluster
        self.region = ctx.region
        self.clients = clients
        self.account = account
        self._stacks = stacks

    def stacks(self) -> _Stacks:
        try:
            return self._stacks.result()
        except AwsError:  # reported once by search(); finders go on with tags and names alone
            return _Stacks()

    def call(self, operation: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        return iam.call(self.ctx, operation, fn, **kwargs)

    def items(self, operation: str, client: Any, method: str, key: str, **kwargs: Any) -> list[Any]:
        def read() -> list[Any]:
            # inside the call: a botocore that cannot paginate ``method`` (OperationNotPageableError)
            # or does not know a parameter fails as an AwsError, which the search reports
            paginator = client.get_paginator(method)
            return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

        return self.call(operation, read)

    def evidence(self, tags: Mapping[str, str], *, name: str = "", ids: Iterable[str] = ()) -> Evidence:
        """Tags, the records of this cluster's stacks, and whether the name mentions the cluster."""
        found = tag_evidence(tags, self.cluster)
        ours, others = list(found.ours), set(found.others)
        related = found.related or name_mentions(name, self.cluster)
        stacks = self.stacks()
        for resource_id in ids:
            if resource_id in stacks.records:
                ours.append(f"listed by stack {stacks.records[resource_id]}")
                break
        created_by = tags.get(CFN_STACK_TAG)
        if created_by:
            if created_by in stacks.ours:
                ours.append(f"created by stack {created_by}")
            elif created_by in stacks.others:
                others.add(stacks.others[created_by])
            else:
                related = related or name_mentions(created_by, self.cluster)
        return Evidence(tuple(_unique(ours)), tuple(sorted(others)), related or bool(others), found.shared)

    def trusted_evidence(self, tags: Mapping[str, str], trusted: Collection[str], *, name: str = "",
                         ids: Iterable[str] = ()) -> Evidence:
        """``evidence`` where, of the ownership tags, only the ``trusted`` ones make a resource
        this cluster's (the stack rules still count). Every tag can still make it another
        cluster's or shared; one that would have made it ours makes it a look-alike."""
        full = self.evidence(tags, name=name, ids=ids)
        kept = {key: value for key, value in tags.items() if key in trusted or not ownership_tag(key)}
        strict = self.evidence(kept, name=name, ids=ids)
        return Evidence(strict.ours, full.others, full.related or bool(full.ours), full.shared)

    def eks_was_here(self) -> bool:
        """Did an EKS cluster of this name live here? It still exists (any state: a live one is
        refused by ``delete``), or an eksctl stack of it does."""
        stacks = self.stacks()
        return stacks.cluster_status is not None or bool(stacks.eksctl)

    def compute_evidence(self, tags: Mapping[str, str], *, name: str = "", ids: Iterable[str] = ()) -> Evidence:
        """Evidence for an instance or an Auto Scaling group: ``COMPUTE_NAME_TAGS`` or this
        cluster's stacks, and only where an EKS cluster of this name was (else a look-alike)."""
        evidence = self.trusted_evidence(tags, COMPUTE_NAME_TAGS, name=name, ids=ids)
        if evidence.ours and not self.eks_was_here():
            return dataclasses.replace(evidence, ours=(), related=True)
        return evidence

    def bucket_evidence(self, tags: Mapping[str, str], *, name: str) -> Evidence:
        """A bucket is this cluster's only on ``kservectl.io/cluster=<cluster>`` (every bucket's
        tags are read, so no other tag or record counts); another value makes it another
        cluster's, any other ownership tag a look-alike (``kubernetes.io/cluster/*`` naming
        another cluster, or ``=shared``, still keeps it apart)."""
        full = self.evidence(tags, name=name)
        owner = tags.get(iam.OWNER_TAG)
        ours = (f"tag {iam.OWNER_TAG}={owner}",) if owner == self.cluster else ()
        return Evidence(ours, full.others, full.related or bool(full.ours), full.shared)

    def orphan(self, kind: str, resource_id: str, evidence: Evidence, *, region: str | None = None,
               name: str = "", detail: str = "", cost: tuple[float | None, str] = (0.0, "no charge"),
               holds_data: bool = False, rank: int | None = None) -> Orphan:
        return Orphan(kind, resource_id, region or self.region, "; ".join(evidence.ours), cost[0],
                      RANK[kind] if rank is None else rank, name, detail, cost[1], holds_data)

    def cost(self, resource_type: str, *, extra: str = "", **size: Any) -> tuple[float | None, str]:
        found = costs.price(resource_type, self.region, **size)
        if found.unknown:
            return None, found.note
        notes = [extra] if extra else []
        if found.estimate:
            notes.append(f"estimate from {costs.table().baseline_region} prices")
        return found.monthly, "; ".join(notes)


def _find_stacks(ctx: Context, clients: dict[str, Any], account: str) -> _Stacks:
    scan = _Scan(ctx, clients, account, _done(_Stacks()))
    cf, eks = clients["cloudformation"], clients["eks"]
    result = _Stacks()
    cluster = iam.read(ctx, "eks:DescribeCluster", eks.describe_cluster, missing=("ResourceNotFoundException",),
                       name=ctx.cluster)
    if cluster is not None:
        result.cluster_status = cluster["cluster"].get("status")
        result.issuer = ((cluster["cluster"].get("identity") or {}).get("oidc") or {}).get("issuer")
    known = set(scan.items("eks:ListClusters", eks, "list_clusters", "clusters"))
    stacks = scan.items("cloudformation:DescribeStacks", cf, "describe_stacks", "Stacks")
    for stack in stacks:
        for key in ("alpha.eksctl.io/cluster-name", "eksctl.cluster.k8s.io/v1alpha1/cluster-name", iam.OWNER_TAG):
            value = iam.tag_dict(stack.get("Tags")).get(key)
            if value:
                known.add(value)
    pattern = stack_name_pattern(ctx.cluster)
    for stack in stacks:
        name, status = stack["StackName"], stack.get("StackStatus", "")
        if status == "DELETE_COMPLETE":
            continue
        found = tag_evidence(iam.tag_dict(stack.get("Tags")), ctx.cluster)
        ours, others = list(found.ours), list(found.others)
        if not ours and not others and pattern.match(name):
            owner = _longer_owner(name, ctx.cluster, known)
            if owner:
                others.append(owner)
            else:
                ours.append(f"name {name} (a stack name eksctl gives cluster {ctx.cluster})")
        if not ours and not others:
            owner = _cluster_stack_owner(name)
            if owner and owner != ctx.cluster and name_mentions(name, ctx.cluster):
                others.append(owner)
        evidence = Evidence(tuple(ours), tuple(others), found.related or bool(others) or
                            (name.startswith("eksctl-") and name_mentions(name, ctx.cluster)), found.shared)
        if not result.found.admit(STACK, evidence):
            if others:
                result.others[name] = others[0]
            continue
        result.ours[name] = "; ".join(ours)
        if pattern.match(name):
            result.eksctl.append(name)
        rank = RANK[STACK] + 1 if name.endswith("-cluster") else RANK[STACK]
        result.found.orphans.append(scan.orphan(STACK, stack["StackId"], evidence, name=name, detail=status,
                                                rank=rank))
    for name in result.ours:
        resources = scan.items("cloudformation:ListStackResources", cf, "list_stack_resources",
                               "StackResourceSummaries", StackName=name)
        for resource in resources:
            physical = resource.get("PhysicalResourceId")
            if physical:
                result.records[physical] = name
    return result


def _longer_owner(stack: str, cluster: str, known: Iterable[str]) -> str | None:
    """Another known cluster whose longer name also explains this stack's name
    (``eksctl-prod-2-cluster`` is cluster ``prod-2``'s, not ``prod``'s)."""
    for other in sorted(known, key=len, reverse=True):
        if other != cluster and len(other) > len(cluster) and stack_name_pattern(other).match(stack):
            return other
    owner = _cluster_stack_owner(stack)
    return owner if owner and owner != cluster else None


def _cluster_stack_owner(stack: str) -> str | None:
    match = re.match(r"^eksctl-(.+)-cluster$", stack)
    return match.group(1) if match else None


def _find_load_balancers(scan: _Scan) -> _Found:
    elbv2 = scan.clients["elbv2"]
    found = _Found()
    balancers = scan.items("elbv2:DescribeLoadBalancers", elbv2, "describe_load_balancers", "LoadBalancers")
    tags = _elbv2_tags(scan, [lb["LoadBalancerArn"] for lb in balancers])
    for lb in balancers:
        arn = lb["LoadBalancerArn"]
        evidence = scan.evidence(tags.get(arn, {}), name=lb["LoadBalancerName"], ids=(arn,))
        if not found.admit(LOAD_BALANCER, evidence):
            continue
        kind = lb.get("Type", "")
        item = {"network": "nlb", "application": "alb"}.get(kind, f"{kind}-load-balancer")
        extra = {"network": "+ NLCU usage", "application": "+ LCU usage"}.get(kind, "")
        found.orphans.append(scan.orphan(LOAD_BALANCER, arn, evidence, name=lb["LoadBalancerName"],
                                         detail=f"{kind}, {lb.get('Scheme', '')}, {lb.get('DNSName', '')}",
                                         cost=scan.cost(item, extra=extra)))
    return found


def _find_target_groups(scan: _Scan) -> _Found:
    elbv2 = scan.clients["elbv2"]
    found = _Found()
    groups = scan.items("elbv2:DescribeTargetGroups", elbv2, "describe_target_groups", "TargetGroups")
    tags = _elbv2_tags(scan, [tg["TargetGroupArn"] for tg in groups])
    for tg in groups:
        arn = tg["TargetGroupArn"]
        evidence = scan.evidence(tags.get(arn, {}), name=tg["TargetGroupName"], ids=(arn,))
        if found.admit(TARGET_GROUP, evidence):
            found.orphans.append(scan.orphan(TARGET_GROUP, arn, evidence, name=tg["TargetGroupName"]))
    return found


def _elbv2_tags(scan: _Scan, arns: list[str]) -> dict[str, dict[str, str]]:
    elbv2 = scan.clients["elbv2"]
    out: dict[str, dict[str, str]] = {}
    for batch in _batches(arns, ELB_TAG_BATCH):
        answer = scan.call("elbv2:DescribeTags", elbv2.describe_tags, ResourceArns=batch)
        for item in answer.get("TagDescriptions", []):
            out[item["ResourceArn"]] = iam.tag_dict(item.get("Tags"))
    return out


def _find_classic_elbs(scan: _Scan) -> _Found:
    elb = scan.clients["elb"]
    found = _Found()
    balancers = scan.items("elb:DescribeLoadBalancers", elb, "describe_load_balancers",
                           "LoadBalancerDescriptions")
    names = [lb["LoadBalancerName"] for lb in balancers]
    tags: dict[str, dict[str, str]] = {}
    for batch in _batches(names, ELB_TAG_BATCH):
        answer = scan.call("elb:DescribeTags", elb.describe_tags, LoadBalancerNames=batch)
        for item in answer.get("TagDescriptions", []):
            tags[item["LoadBalancerName"]] = iam.tag_dict(item.get("Tags"))
    for name in names:
        arn = f"arn:{iam.partition(scan.region)}:elasticloadbalancing:{scan.region}:{scan.account}:loadbalancer/{name}"
        evidence = scan.evidence(tags.get(name, {}), name=name, ids=(name, arn))
        if found.admit(CLASSIC_ELB, evidence):
            found.orphans.append(scan.orphan(CLASSIC_ELB, arn, evidence, name=name,
                                             cost=scan.cost("elb-classic", extra="+ per-GB processing")))
    return found


def _find_network_interfaces(scan: _Scan) -> _Found:
    ec2 = scan.clients["ec2"]
    found = _Found()
    for eni in scan.items("ec2:DescribeNetworkInterfaces", ec2, "describe_network_interfaces",
                          "NetworkInterfaces"):
        eni_id = eni["NetworkInterfaceId"]
        evidence = scan.evidence(iam.tag_dict(eni.get("TagSet")), name=eni.get("Description", ""), ids=(eni_id,))
        if eni.get("Status") != "available" or eni.get("RequesterManaged"):
            if evidence.ours and not evidence.others and not evidence.shared:
                found.in_use[NETWORK_INTERFACE] += 1
            continue
        if found.admit(NETWORK_INTERFACE, evidence):
            found.orphans.append(scan.orphan(NETWORK_INTERFACE, eni_id, evidence,
                                             detail=f"{eni.get('Description', '')} in {eni.get('SubnetId', '')}"))
    return found


def _find_nat_gateways(scan: _Scan) -> _Found:
    ec2 = scan.clients["ec2"]
    found = _Found()
    for nat in scan.items("ec2:DescribeNatGateways", ec2, "describe_nat_gateways", "NatGateways"):
        if nat.get("State") in ("deleted", "deleting"):
            continue
        nat_id = nat["NatGatewayId"]
        tags = iam.tag_dict(nat.get("Tags"))
        evidence = scan.evidence(tags, name=tags.get("Name", ""), ids=(nat_id,))
        if found.admit(NAT_GATEWAY, evidence):
            found.orphans.append(scan.orphan(NAT_GATEWAY, nat_id, evidence, name=tags.get("Name", ""),
                                             detail=f"{nat.get('State', '')} in {nat.get('SubnetId', '')}",
                                             cost=scan.cost("nat-gateway", extra="+ per-GB processing")))
    return found


def _find_addresses(scan: _Scan) -> _Found:
    ec2 = scan.clients["ec2"]
    found = _Found()
    for address in scan.call("ec2:DescribeAddresses", ec2.describe_addresses).get("Addresses", []):
        allocation = address.get("AllocationId")
        if not allocation:  # EC2-Classic addresses have none; kservectl never makes them
            continue
        tags = iam.tag_dict(address.get("Tags"))
        evidence = scan.evidence(tags, name=tags.get("Name", ""), ids=(allocation, address.get("PublicIp", "")))
        if found.admit(ELASTIC_IP, evidence):
            associated = address.get("NetworkInterfaceId") or address.get("InstanceId") or ""
            found.orphans.append(scan.orphan(
                ELASTIC_IP, allocation, evidence, name=address.get("PublicIp", ""),
                detail=f"associated with {associated}" if associated else "not associated",
                cost=scan.cost("public-ipv4")))
    return found


def _find_security_groups(scan: _Scan) -> _Found:
    ec2 = scan.clients["ec2"]
    found = _Found()
    for group in scan.items("ec2:DescribeSecurityGroups", ec2, "describe_security_groups", "SecurityGroups"):
        if group.get("GroupName") == "default":  # every VPC has one; it goes with the VPC
            continue
        group_id = group["GroupId"]
        evidence = scan.evidence(iam.tag_dict(group.get("Tags")), name=group.get("GroupName", ""), ids=(group_id,))
        if found.admit(SECURITY_GROUP, evidence):
            found.orphans.append(scan.orphan(SECURITY_GROUP, group_id, evidence, name=group.get("GroupName", ""),
                                             detail=f"in {group.get('VpcId', '')}"))
    return found


def _find_volumes(scan: _Scan) -> _Found:
    ec2 = scan.clients["ec2"]
    found = _Found()
    for volume in scan.items("ec2:DescribeVolumes", ec2, "describe_volumes", "Volumes"):
        volume_id = volume["VolumeId"]
        tags = iam.tag_dict(volume.get("Tags"))
        evidence = scan.evidence(tags, name=tags.get("Name", ""), ids=(volume_id,))
        if volume.get("State") != "available":
            if evidence.ours and not evidence.others and not evidence.shared:
                found.in_use[VOLUME] += 1
            continue
        if found.admit(VOLUME, evidence):
            kind, size = volume.get("VolumeType", ""), volume.get("Size", 0)
            pvc = tags.get("kubernetes.io/created-for/pvc/name")
            detail = f"{size} GiB {kind} in {volume.get('AvailabilityZone', '')}"
            if pvc:
                detail += f", PVC {tags.get('kubernetes.io/created-for/pvc/namespace', '?')}/{pvc}"
            found.orphans.append(scan.orphan(VOLUME, volume_id, evidence, name=tags.get("Name", ""), detail=detail,
                                             cost=scan.cost(f"ebs-{kind}", gb=size)))
    return found


def _find_eks(scan: _Scan) -> _Found:
    """The EKS cluster itself, when it exists but is not live (FAILED, DELETING): with no eksctl
    stack left it is found here, not through a stack, and its managed node groups with it. A live
    cluster is no orphan: ``search`` says it still exists and ``delete`` refuses."""
    eks = scan.clients["eks"]
    found = _Found()
    described = iam.read(scan.ctx, "eks:DescribeCluster", eks.describe_cluster,
                         missing=("ResourceNotFoundException",), name=scan.cluster)
    if described is None:
        return found
    cluster = described["cluster"]
    status = cluster.get("status", "")
    if status in LIVE_CLUSTER_STATES:
        return found
    arn = cluster["arn"]
    evidence = scan.evidence(cluster.get("tags") or {}, ids=(arn, scan.cluster))
    evidence = dataclasses.replace(evidence, ours=(f"EKS cluster {scan.cluster} itself ({status})",) + evidence.ours)
    if not found.admit(EKS_CLUSTER, evidence):
        return found
    found.orphans.append(scan.orphan(EKS_CLUSTER, arn, evidence, name=scan.cluster,
                                     detail=f"{status}, Kubernetes {cluster.get('version', '?')}",
                                     cost=scan.cost("eks-cluster", extra="control plane, while it exists")))
    for name in scan.items("eks:ListNodegroups", eks, "list_nodegroups", "nodegroups", clusterName=scan.cluster):
        described_ng = iam.read(scan.ctx, "eks:DescribeNodegroup", eks.describe_nodegroup,
                                missing=("ResourceNotFoundException",), clusterName=scan.cluster, nodegroupName=name)
        if described_ng is None:
            continue
        group = described_ng["nodegroup"]
        ng_evidence = scan.trusted_evidence(group.get("tags") or {}, COMPUTE_NAME_TAGS, name=name,
                                            ids=(group["nodegroupArn"],))
        ng_evidence = dataclasses.replace(ng_evidence,
                                          ours=(f"a node group of EKS cluster {scan.cluster}",) + ng_evidence.ours)
        if found.admit(NODEGROUP, ng_evidence):
            size = (group.get("scalingConfig") or {}).get("desiredSize", "?")
            types = ", ".join(group.get("instanceTypes") or []) or "?"
            found.orphans.append(scan.orphan(NODEGROUP, group["nodegroupArn"], ng_evidence, name=name,
                                             detail=f"{group.get('status', '')}, {size} x {types}",
                                             cost=(0.0, "its instances are priced apart")))
    return found


def _find_autoscaling_groups(scan: _Scan) -> _Found:
    """Auto Scaling groups of eksctl's unmanaged node groups and of EKS managed node groups (tagged
    ``alpha.eksctl.io/cluster-name``, ``eks:cluster-name``; see ``compute_evidence``)."""
    client = scan.clients["autoscaling"]
    found = _Found()
    for group in scan.items("autoscaling:DescribeAutoScalingGroups", client, "describe_auto_scaling_groups",
                            "AutoScalingGroups"):
        if group.get("Status"):  # "Delete in progress"
            continue
        name, arn = group["AutoScalingGroupName"], group["AutoScalingGroupARN"]
        tags = {t["Key"]: t.get("Value", "") for t in group.get("Tags") or []}
        evidence = scan.compute_evidence(tags, name=name, ids=(name, arn))
        if found.admit(AUTOSCALING_GROUP, evidence):
            found.orphans.append(scan.orphan(
                AUTOSCALING_GROUP, arn, evidence, name=name,
                detail=f"{len(group.get('Instances') or [])} instances, desired {group.get('DesiredCapacity', 0)}",
                cost=(0.0, "its instances are priced apart")))
    return found


INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]  # not shutting-down/terminated: going or gone


def _find_instances(scan: _Scan) -> _Found:
    """EC2 instances: the nodes (eksctl and EKS tag them with the cluster's name; see ``compute_evidence``)."""
    ec2 = scan.clients["ec2"]
    found = _Found()
    reservations = scan.items("ec2:DescribeInstances", ec2, "describe_instances", "Reservations",
                              Filters=[{"Name": "instance-state-name", "Values": INSTANCE_STATES}])
    for instance in [i for r in reservations for i in r.get("Instances", [])]:
        instance_id = instance["InstanceId"]
        tags = iam.tag_dict(instance.get("Tags"))
        evidence = scan.compute_evidence(tags, name=tags.get("Name", ""), ids=(instance_id,))
        if not found.admit(EC2_INSTANCE, evidence):
            continue
        kind, state = instance.get("InstanceType", ""), (instance.get("State") or {}).get("Name", "")
        cost = scan.cost(costs.INSTANCE, instance_type=kind) if state in ("pending", "running") else (
            0.0, f"{state}: no instance-hours (its volumes still bill)")
        group = tags.get("aws:autoscaling:groupName")
        found.orphans.append(scan.orphan(
            EC2_INSTANCE, instance_id, evidence, name=tags.get("Name", ""),
            detail=f"{kind}, {state}" + (f", in Auto Scaling group {group}" if group else ""), cost=cost))
    return found


def _find_log_groups(scan: _Scan) -> _Found:
    logs = scan.clients["logs"]
    found = _Found()
    ours = f"{LOG_GROUP_PREFIX}{scan.cluster}/"
    for group in scan.items("logs:DescribeLogGroups", logs, "describe_log_groups", "logGroups",
                            logGroupNamePrefix=f"{LOG_GROUP_PREFIX}{scan.cluster}"):
        name = group["logGroupName"]
        owner = name[len(LOG_GROUP_PREFIX):].split("/", 1)[0]
        if name.startswith(ours):
            evidence = Evidence((f"name {name} (a log group name EKS gives cluster {scan.cluster})",))
        elif owner != scan.cluster and "/" in name[len(LOG_GROUP_PREFIX):]:  # /aws/eks/prod-2/cluster
            evidence = Evidence(others=(owner,), related=True)
        else:  # /aws/eks/prod: not a name EKS gives
            evidence = Evidence(related=True)
        if found.admit(LOG_GROUP, evidence):
            arn = group.get("logGroupArn") or group.get("arn", "").removesuffix(":*")
            stored = float(group.get("storedBytes") or 0) / 2**30
            found.orphans.append(scan.orphan(LOG_GROUP, arn, evidence, name=name,
                                             detail=f"{stored:.3f} GiB stored",
                                             cost=scan.cost("cloudwatch-logs-storage", gb=stored)))
    return found


def _find_buckets(scan: _Scan) -> _Found:
    """Every bucket of the region has its tags read (ownership is the tag), so a bucket with a
    custom ``storage.bucket`` name is found with only the cluster and the region given. The names
    kservectl could have given this cluster's bucket (storage's derived name, the configured name,
    any ``kservectl-`` name and any name with the cluster's in it) are read first; at most
    ``BUCKET_TAG_READS`` buckets are read, ``BUCKET_READERS`` at a time, and what is left unread
    is reported (the search is then incomplete)."""
    from kservectl.phases import storage

    s3 = scan.clients["s3"]
    found = _Found()
    named = {storage.derive_bucket_name(scan.cluster, scan.account, scan.region)}
    if scan.ctx.config.storage.bucket:
        named.add(scan.ctx.config.storage.bucket)
    # A paginated request (MaxBuckets): AWS says each bucket's BucketRegion only then; where it
    # gives none (an older endpoint, an emulator), GetBucketLocation is asked instead
    listed = scan.items("s3:ListBuckets", s3, "list_buckets", "Buckets", BucketRegion=scan.region,
                        PaginationConfig={"PageSize": BUCKET_PAGE})
    regions = {b["Name"]: b.get("BucketRegion") for b in listed if b.get("BucketRegion") in (None, scan.region)}

    def likely(name: str) -> bool:
        return name in named or name.startswith(BUCKET_PREFIX) or name_mentions(name, scan.cluster)

    names = sorted(regions, key=lambda name: (not likely(name), name))
    if len(names) > BUCKET_TAG_READS:
        found.incomplete.append(
            f"s3 buckets: only {BUCKET_TAG_READS} of the {len(names)} buckets in {scan.region} had their tags "
            f"read (those kservectl could have named first); a bucket with another name may be missed")
        names = names[:BUCKET_TAG_READS]

    def read(name: str) -> dict[str, str] | None:
        """The bucket's tags; None when it is not in this region or gone."""
        if regions[name] is None:
            location = iam.read(scan.ctx, "s3:GetBucketLocation", s3.get_bucket_location,
                                missing=("NoSuchBucket",), Bucket=name)
            if location is None or _bucket_region(location.get("LocationConstraint")) != scan.region:
                return None  # another region's bucket is another region's cluster's
        tagging = iam.read(scan.ctx, "s3:GetBucketTagging", s3.get_bucket_tagging,
                           missing=("NoSuchTagSet", "NoSuchBucket"), Bucket=name)
        return iam.tag_dict((tagging or {}).get("TagSet"))

    unreadable: list[str] = []
    tags_of: dict[str, dict[str, str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(BUCKET_READERS, len(names))),
                            thread_name_prefix="orphans-s3") as pool:
        for name, future in [(name, pool.submit(read, name)) for name in names]:
            try:
                tags = future.result()
            except AwsError as exc:  # one unreadable bucket (a bucket policy denying us) is not the search
                unreadable.append(f"{name} ({exc.one_line()})")
                continue
            if tags is not None:
                tags_of[name] = tags
    if unreadable:
        more = f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        found.incomplete.append(f"s3 buckets: could not read {len(unreadable)} bucket{_s(len(unreadable))}: "
                                + "; ".join(unreadable[:3]) + more)
    for name, tags in tags_of.items():
        evidence = scan.bucket_evidence(tags, name=name)
        if name in named and not evidence.ours and not evidence.others and not evidence.shared:
            evidence = Evidence(related=True)  # the name kservectl would give it, yet untagged: not enough
        if found.admit(BUCKET, evidence):
            size, complete = _bucket_size(scan, name)
            gib = size / 2**30
            cost, note = scan.cost("s3-standard", gb=gib, extra="" if complete else "at least; listing cut short")
            found.orphans.append(scan.orphan(BUCKET, f"arn:{iam.partition(scan.region)}:s3:::{name}", evidence,
                                             name=name, detail=f"{'' if complete else '>= '}{gib:.3f} GiB",
                                             cost=(cost, note), holds_data=True))
    return found


def _bucket_region(constraint: str | None) -> str:
    if not constraint:
        return "us-east-1"
    return "eu-west-1" if constraint == "EU" else constraint


def _bucket_size(scan: _Scan, bucket: str) -> tuple[int, bool]:
    """Bytes of every object version (a bounded listing: ``BUCKET_SIZE_PAGES`` pages)."""
    s3 = scan.clients["s3"]

    def total() -> tuple[int, bool]:
        size = 0
        for n, page in enumerate(s3.get_paginator("list_object_versions").paginate(Bucket=bucket), start=1):
            size += sum(v.get("Size", 0) for v in page.get("Versions", []))
            if n >= BUCKET_SIZE_PAGES and page.get("IsTruncated"):
                return size, False
        return size, True

    return scan.call("s3:ListObjectVersions", total)


def _find_instance_profiles(scan: _Scan) -> _Found:
    client = scan.clients["iam"]
    found = _Found()
    records = scan.stacks().records
    for profile in scan.items("iam:ListInstanceProfiles", client, "list_instance_profiles", "InstanceProfiles"):
        name, arn = profile["InstanceProfileName"], profile["Arn"]
        if not _iam_candidate(scan, name, profile.get("Path", "/"), (name, arn), records):
            continue
        full = iam.read(scan.ctx, "iam:GetInstanceProfile", client.get_instance_profile,
                        missing=("NoSuchEntity",), InstanceProfileName=name)
        if full is None:
            continue
        evidence = scan.evidence(iam.tag_dict(full["InstanceProfile"].get("Tags")), name=name, ids=(name, arn))
        if found.admit(INSTANCE_PROFILE, evidence):
            roles = [r["RoleName"] for r in full["InstanceProfile"].get("Roles", [])]
            found.orphans.append(scan.orphan(INSTANCE_PROFILE, arn, evidence, region=GLOBAL, name=name,
                                             detail=f"roles: {', '.join(roles) or 'none'}"))
    return found


def _find_roles(scan: _Scan) -> _Found:
    """IAM roles, then the OIDC providers (an orphan IRSA role's trust names its provider)."""
    client = scan.clients["iam"]
    found = _Found()
    records = scan.stacks().records
    trusted: dict[str, str] = {}  # provider ARN -> an orphan role that trusts it
    for role in scan.items("iam:ListRoles", client, "list_roles", "Roles"):
        name, arn = role["RoleName"], role["Arn"]
        if not _iam_candidate(scan, name, role.get("Path", "/"), (name, arn), records):
            continue
        tags = scan.call("iam:ListRoleTags", client.list_role_tags, RoleName=name).get("Tags", [])
        evidence = scan.evidence(iam.tag_dict(tags), name=name, ids=(name, arn))
        providers = _federated(role.get("AssumeRolePolicyDocument"))
        regions = {_issuer_region(p) for p in providers} - {None}
        if evidence.ours and regions and scan.region not in regions:
            # IAM is global: an IRSA role trusting only another region's issuer is the role of a
            # same-named cluster in that region
            evidence = Evidence(others=(f"{scan.cluster} in {', '.join(sorted(regions))}",), related=True)
        if not found.admit(ROLE, evidence):
            continue
        found.orphans.append(scan.orphan(ROLE, arn, evidence, region=GLOBAL, name=name))
        for provider in providers:
            trusted.setdefault(provider, name)
    stacks = scan.stacks()
    listed = scan.call("iam:ListOpenIDConnectProviders", client.list_open_id_connect_providers)
    for entry in listed.get("OpenIDConnectProviderList", []):
        arn = entry["Arn"]
        tags = scan.call("iam:ListOpenIDConnectProviderTags", client.list_open_id_connect_provider_tags,
                         OpenIDConnectProviderArn=arn).get("Tags", [])
        evidence = scan.evidence(iam.tag_dict(tags), ids=(arn,))
        extra: list[str] = []
        if stacks.issuer and arn.endswith(f":oidc-provider/{iam.oidc_provider(stacks.issuer)}"):
            extra.append(f"issuer of EKS cluster {scan.cluster}")
        if arn in trusted:
            extra.append(f"trusted by IAM role {trusted[arn]} (an orphan)")
        if extra:
            evidence = dataclasses.replace(evidence, ours=evidence.ours + tuple(extra), related=True)
        region = _issuer_region(arn)
        if evidence.ours and region and region != scan.region:  # a same-named cluster of another region
            evidence = Evidence(others=(f"{scan.cluster} in {region}",), related=True)
        if found.admit(OIDC_PROVIDER, evidence):
            found.orphans.append(scan.orphan(OIDC_PROVIDER, arn, evidence, region=GLOBAL,
                                             name=arn.split(":oidc-provider/", 1)[-1]))
    return found


def _find_policies(scan: _Scan) -> _Found:
    client = scan.clients["iam"]
    found = _Found()
    records = scan.stacks().records
    for policy in scan.items("iam:ListPolicies", client, "list_policies", "Policies", Scope="Local"):
        name, arn = policy["PolicyName"], policy["Arn"]
        if not _iam_candidate(scan, name, policy.get("Path", "/"), (name, arn), records):
            continue
        tags = scan.call("iam:ListPolicyTags", client.list_policy_tags, PolicyArn=arn).get("Tags", [])
        evidence = scan.evidence(iam.tag_dict(tags), name=name, ids=(name, arn))
        if found.admit(POLICY, evidence):
            found.orphans.append(scan.orphan(POLICY, arn, evidence, region=GLOBAL, name=name,
                                             detail=f"attached {policy.get('AttachmentCount', 0)} times"))
    return found


def _iam_candidate(scan: _Scan, name: str, path: str, ids: Iterable[str], records: Mapping[str, str]) -> bool:
    """IAM lists no tags; only these are worth a tag read: kservectl's path, the cluster's name in
    the name, the name kservectl gives the load balancer controller's policy (at path ``/``, and
    shortened with a hash for long cluster names), or a stack record."""
    from kservectl.phases import alb

    return (path.startswith(iam.IAM_PATH) or name_mentions(name, scan.cluster) or name == alb.policy_name(scan.cluster)
            or any(i in records for i in ids))


def _issuer_region(provider_arn: str) -> str | None:
    """The region of an EKS OIDC provider (``oidc.eks.<region>.amazonaws.com/id/...``), if it is one."""
    match = re.search(r":oidc-provider/oidc\.eks\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/", provider_arn)
    return match.group(1) if match else None


def _federated(document: Any) -> list[str]:
    """The federated principals (OIDC provider ARNs) of a trust policy."""
    if not document:
        return []
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    out: list[str] = []
    for statement in statements:
        federated = (statement.get("Principal") or {}).get("Federated") if isinstance(
            statement.get("Principal"), dict) else None
        if isinstance(federated, str):
            out.append(federated)
        elif isinstance(federated, list):
            out += [f for f in federated if isinstance(f, str)]
    return out


# --------------------------------------------------------------------------- delete


def delete(ctx: Context, orphans: list[Orphan], *, account_id: str, delete_data: bool = False) -> DeleteReport:
    """Delete exactly ``orphans``, in the given order (a ``Search``'s order), after checking the
    account. Buckets (``holds_data``) only with ``delete_data``. Never raises for one resource:
    every failure becomes an ``Outcome`` with the manual step that finishes it."""
    sts = ctx.aws.client("sts")
    current = iam.call(ctx, "sts:GetCallerIdentity", sts.get_caller_identity)["Account"]
    if current != account_id:
        raise WrongAccount(
            f"refusing to delete: the AWS credentials now belong to account {current}, but the orphans were "
            f"found in account {account_id}; nothing was deleted",
            hint=f"use the credentials of account {account_id} (AWS_PROFILE / aws.profile) and run the dry run again")
    strays = [o for o in orphans if o.region not in (ctx.region, GLOBAL)]
    if strays:
        raise UsageError(f"refusing to delete: {strays[0].type} {strays[0].id} is in {strays[0].region}, "
                         f"not {ctx.region}; nothing was deleted", hint=f"run with --region {strays[0].region}")
    eks = ctx.aws.client("eks")
    live = iam.read(ctx, "eks:DescribeCluster", eks.describe_cluster, missing=("ResourceNotFoundException",),
                    name=ctx.cluster)
    status = live["cluster"].get("status") if live else None
    if status in LIVE_CLUSTER_STATES:
        raise ClusterStillRunning(
            f"refusing to delete: EKS cluster {ctx.cluster} still exists in {ctx.region} ({status}); its "
            "resources are not orphans; nothing was deleted",
            hint=f"tear it down first: kservectl cleanup --cluster {ctx.cluster} --region {ctx.region}")
    report = DeleteReport(ctx.cluster, ctx.region, account_id, ctx.dry_run)
    for group in _groups(orphans):
        report.outcomes += _delete_group(ctx, group, delete_data)
    if ctx.dry_run:
        ctx.reporter.info(f"(dry run) would delete {len(report.attempted)} orphan{_s(len(report.attempted))}")
    else:
        done = sum(1 for o in report.outcomes if o.status in ("deleted", "already gone"))
        failed = len(report.failures)
        ctx.reporter.info(f"deleted {done} orphan{_s(done)}; {failed} failure{_s(failed)}")
    return report


def _groups(orphans: list[Orphan]) -> Iterator[list[Orphan]]:
    """Consecutive orphans of one rank: deleted together, then waited for."""
    group: list[Orphan] = []
    for orphan in orphans:
        if group and orphan.rank != group[0].rank:
            yield group
            group = []
        group.append(orphan)
    if group:
        yield group


def _delete_group(ctx: Context, group: list[Orphan], delete_data: bool) -> list[Outcome]:
    outcomes: dict[str, Outcome] = {}
    pending: list[Orphan] = []
    if not ctx.dry_run and any(o.type == SECURITY_GROUP for o in group):
        _revoke_references(ctx, [o.id for o in group if o.type == SECURITY_GROUP])
    for orphan in group:
        if orphan.holds_data and not delete_data:
            outcomes[orphan.id] = Outcome(orphan, "kept", "holds data; pass --delete-data to delete it")
            ctx.reporter.info(f"keeping {orphan.type} {orphan.id}: it holds data (--delete-data deletes it)")
            continue
        if ctx.dry_run:
            outcomes[orphan.id] = Outcome(orphan, "would delete", orphan.evidence)
            ctx.reporter.step(PHASE, f"would delete {orphan.type} {orphan.id}")
            continue
        ctx.reporter.step(PHASE, f"deleting {orphan.type} {orphan.id}")
        try:
            state = DELETERS[orphan.type](ctx, orphan)
        except AwsError as exc:
            if exc.code in NOT_FOUND[orphan.type]:
                outcomes[orphan.id] = Outcome(orphan, "already gone")
            else:
                outcomes[orphan.id] = _failed(ctx, orphan, exc.one_line())
            continue
        if state == "pending":
            pending.append(orphan)
        else:
            outcomes[orphan.id] = Outcome(orphan, state)
    if pending:
        for orphan, problem in _wait_gone(ctx, pending).items():
            outcomes[orphan.id] = Outcome(orphan, "deleted") if problem is None else _failed(ctx, orphan, problem)
    return [outcomes[o.id] for o in group]


def _failed(ctx: Context, orphan: Orphan, problem: str) -> Outcome:
    step = manual_step(orphan)
    ctx.reporter.warn(f"could not delete {orphan.type} {orphan.id}: {problem}; by hand: {step}")
    return Outcome(orphan, "failed", problem, step)


def manual_step(orphan: Orphan) -> str:
    """The command(s) that finish a failed deletion by hand."""
    r, i, n = orphan.region, orphan.id, orphan.name
    steps = {
        LOAD_BALANCER: f"aws elbv2 delete-load-balancer --region {r} --load-balancer-arn {i} (if deletion "
                       "protection is on: aws elbv2 modify-load-balancer-attributes --attributes "
                       "Key=deletion_protection.enabled,Value=false first)",
        CLASSIC_ELB: f"aws elb delete-load-balancer --region {r} --load-balancer-name {n}",
        NODEGROUP: f"aws eks delete-nodegroup --region {r} --cluster-name {orphan.arn_part(1)} --nodegroup-name {n}, "
                   f"then aws eks wait nodegroup-deleted --region {r} --cluster-name {orphan.arn_part(1)} "
                   f"--nodegroup-name {n}",
        AUTOSCALING_GROUP: f"aws autoscaling delete-auto-scaling-group --region {r} --auto-scaling-group-name {n} "
                           "--force-delete",
        EC2_INSTANCE: f"aws ec2 terminate-instances --region {r} --instance-ids {i} (if termination protection "
                      f"is on: aws ec2 modify-instance-attribute --region {r} --instance-id {i} "
                      "--no-disable-api-termination first)",
        EKS_CLUSTER: f"delete its node groups and Fargate profiles first (aws eks list-nodegroups --region {r} "
                     f"--cluster-name {n}; aws eks list-fargate-profiles ...), then aws eks delete-cluster "
                     f"--region {r} --name {n}",
        TARGET_GROUP: f"aws elbv2 delete-target-group --region {r} --target-group-arn {i} (after the load "
                      "balancer whose listener uses it is gone)",
        NETWORK_INTERFACE: f"aws ec2 delete-network-interface --region {r} --network-interface-id {i} "
                           "(detach it first if it is attached)",
        NAT_GATEWAY: f"aws ec2 delete-nat-gateway --region {r} --nat-gateway-id {i}",
        ELASTIC_IP: f"aws ec2 disassociate-address --region {r} --public-ip {n} if it is still associated, "
                    f"then aws ec2 release-address --region {r} --allocation-id {i}",
        SECURITY_GROUP: f"find what still uses it (aws ec2 describe-network-interfaces --region {r} --filters "
                        f"Name=group-id,Values={i}, and rules of other groups that reference it), remove that, "
                        f"then aws ec2 delete-security-group --region {r} --group-id {i}",
        VOLUME: f"aws ec2 delete-volume --region {r} --volume-id {i} (detach it first if it is in use)",
        STACK: f"aws cloudformation describe-stack-events --region {r} --stack-name {i} names the resource "
               f"that blocks it; remove that, then aws cloudformation delete-stack --region {r} --stack-name {i}",
        INSTANCE_PROFILE: f"aws iam remove-role-from-instance-profile --instance-profile-name {n} --role-name "
                          f"<each role>, then aws iam delete-instance-profile --instance-profile-name {n}",
        ROLE: f"aws iam list-attached-role-policies --role-name {n} and detach each, delete its inline "
              f"policies, remove it from instance profiles, then aws iam delete-role --role-name {n}",
        POLICY: f"aws iam list-entities-for-policy --policy-arn {i} and detach it from each, delete its "
                f"non-default versions, then aws iam delete-policy --policy-arn {i}",
        OIDC_PROVIDER: f"aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {i}",
        LOG_GROUP: f"aws logs delete-log-group --region {r} --log-group-name {n}",
        BUCKET: f"empty every object version of s3://{n} (e.g. in the console: Empty), then "
                f"aws s3api delete-bucket --region {r} --bucket {n}",
    }
    return steps[orphan.type]


# -- one deleter per type: "deleted", or "pending" (deletion started; wait for it) --------------


def _ec2(ctx: Context) -> Any:
    return ctx.aws.client("ec2", fail_fast=True)


def _delete_load_balancer(ctx: Context, o: Orphan) -> str:
    elbv2 = ctx.aws.client("elbv2", fail_fast=True)
    iam.call(ctx, "elbv2:DeleteLoadBalancer", elbv2.delete_load_balancer, LoadBalancerArn=o.id)
    return "pending"


def _delete_classic_elb(ctx: Context, o: Orphan) -> str:
    elb = ctx.aws.client("elb", fail_fast=True)
    iam.call(ctx, "elb:DeleteLoadBalancer", elb.delete_load_balancer, LoadBalancerName=o.name)
    return "pending"


def _delete_nodegroup(ctx: Context, o: Orphan) -> str:
    eks, write = ctx.aws.client("eks"), ctx.aws.client("eks", fail_fast=True)
    cluster = o.arn_part(1)
    current = iam.call(ctx, "eks:DescribeNodegroup", eks.describe_nodegroup, clusterName=cluster,
                       nodegroupName=o.name)["nodegroup"]
    if current.get("status") != "DELETING":
        iam.call(ctx, "eks:DeleteNodegroup", write.delete_nodegroup, clusterName=cluster, nodegroupName=o.name)
    return "pending"


def _delete_autoscaling_group(ctx: Context, o: Orphan) -> str:
    # ForceDelete terminates the group's instances with it; the instances listed apart then go as
    # "already gone" or are waited for.
    client = ctx.aws.client("autoscaling", fail_fast=True)
    try:
        iam.call(ctx, "autoscaling:DeleteAutoScalingGroup", client.delete_auto_scaling_group,
                 AutoScalingGroupName=o.name, ForceDelete=True,
                 retry_if=_codes("ScalingActivityInProgress", "ResourceInUse"))
    except AwsError as exc:
        if exc.code == "ValidationError" and "not found" in exc.message:
            return "already gone"
        raise
    return "pending"


def _terminate_instance(ctx: Context, o: Orphan) -> str:
    iam.call(ctx, "ec2:TerminateInstances", _ec2(ctx).terminate_instances, InstanceIds=[o.id])
    return "pending"


def _delete_eks_cluster(ctx: Context, o: Orphan) -> str:
    eks, write = ctx.aws.client("eks"), ctx.aws.client("eks", fail_fast=True)
    current = iam.call(ctx, "eks:DescribeCluster", eks.describe_cluster, name=o.name)["cluster"]
    if current.get("status") != "DELETING":
        iam.call(ctx, "eks:DeleteCluster", write.delete_cluster, name=o.name)
    return "pending"


def _delete_target_group(ctx: Context, o: Orphan) -> str:
    elbv2 = ctx.aws.client("elbv2", fail_fast=True)
    iam.call(ctx, "elbv2:DeleteTargetGroup", elbv2.delete_target_group, TargetGroupArn=o.id,
             retry_if=_codes("ResourceInUse"))
    return "deleted"


def _delete_network_interface(ctx: Context, o: Orphan) -> str:
    iam.call(ctx, "ec2:DeleteNetworkInterface", _ec2(ctx).delete_network_interface, NetworkInterfaceId=o.id,
             retry_if=_codes("InvalidNetworkInterface.InUse"))
    return "deleted"


def _delete_nat_gateway(ctx: Context, o: Orphan) -> str:
    iam.call(ctx, "ec2:DeleteNatGateway", _ec2(ctx).delete_nat_gateway, NatGatewayId=o.id)
    return "pending"


def _release_address(ctx: Context, o: Orphan) -> str:
    # A NAT gateway frees its address a moment after it is deleted: InUse is retried, bounded.
    iam.call(ctx, "ec2:ReleaseAddress", _ec2(ctx).release_address, AllocationId=o.id,
             retry_if=_codes("InvalidIPAddress.InUse"))
    return "deleted"


def _delete_security_group(ctx: Context, o: Orphan) -> str:
    # DependencyViolation while an ENI or a load balancer that used the group is still going away
    # (eksctl#1960): bounded backoff on ctx.clock, each retry reported as "attempt i/N".
    iam.call(ctx, "ec2:DeleteSecurityGroup", _ec2(ctx).delete_security_group, GroupId=o.id,
             retry_if=_codes("DependencyViolation"))
    return "deleted"


def _revoke_references(ctx: Context, group_ids: list[str]) -> None:
    """Rules of the orphan security groups that reference one another would make each deletion a
    DependencyViolation: revoke those rules (only those, only in groups about to be deleted)."""
    ec2 = _ec2(ctx)
    doomed = set(group_ids)
    for group_id in group_ids:
        try:
            groups = aws.call("ec2:DescribeSecurityGroups", ec2.describe_security_groups,
                              GroupIds=[group_id])["SecurityGroups"]
        except AwsError:
            continue  # gone already, or unreadable: the deletion reports it
        for group in groups:
            for permissions, revoke, op in (
                (group.get("IpPermissions", []), ec2.revoke_security_group_ingress, "RevokeSecurityGroupIngress"),
                (group.get("IpPermissionsEgress", []), ec2.revoke_security_group_egress,
                 "RevokeSecurityGroupEgress"),
            ):
                refs = _references(permissions, doomed)
                if not refs:
                    continue
                ctx.reporter.step(PHASE, f"revoking {len(refs)} rule{_s(len(refs))} of {group_id} that reference "
                                  "other orphan security groups")
                try:
                    iam.call(ctx, f"ec2:{op}", revoke, GroupId=group_id, IpPermissions=refs)
                except AwsError as exc:
                    ctx.reporter.warn(f"could not revoke the rules of {group_id} that reference other orphan "
                                      f"groups: {exc.one_line()}")


def _references(permissions: list[dict[str, Any]], doomed: set[str]) -> list[dict[str, Any]]:
    out = []
    for permission in permissions:
        pairs = [{"GroupId": p["GroupId"]} for p in permission.get("UserIdGroupPairs", [])
                 if p.get("GroupId") in doomed]
        if pairs:
            rule = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
            out.append({**rule, "UserIdGroupPairs": pairs})
    return out


def _delete_volume(ctx: Context, o: Orphan) -> str:
    iam.call(ctx, "ec2:DeleteVolume", _ec2(ctx).delete_volume, VolumeId=o.id)
    return "deleted"


def _delete_stack(ctx: Context, o: Orphan) -> str:
    cf = ctx.aws.client("cloudformation", fail_fast=True)
    iam.call(ctx, "cloudformation:DeleteStack", cf.delete_stack, StackName=o.id)
    return "pending"


def _delete_instance_profile(ctx: Context, o: Orphan) -> str:
    client, write = ctx.aws.client("iam"), ctx.aws.client("iam", fail_fast=True)
    profile = iam.call(ctx, "iam:GetInstanceProfile", client.get_instance_profile,
                       InstanceProfileName=o.name)["InstanceProfile"]
    for role in profile.get("Roles", []):
        iam.call(ctx, "iam:RemoveRoleFromInstanceProfile", write.remove_role_from_instance_profile,
                 InstanceProfileName=o.name, RoleName=role["RoleName"])
    iam.call(ctx, "iam:DeleteInstanceProfile", write.delete_instance_profile, InstanceProfileName=o.name)
    return "deleted"


def _delete_role(ctx: Context, o: Orphan) -> str:
    client, write = ctx.aws.client("iam"), ctx.aws.client("iam", fail_fast=True)
    name = o.name
    for arn in iam.attached_policies(ctx, name):
        iam.call(ctx, "iam:DetachRolePolicy", write.detach_role_policy, RoleName=name, PolicyArn=arn)
    for policy in iam.call(ctx, "iam:ListRolePolicies", client.list_role_policies, RoleName=name)["PolicyNames"]:
        iam.call(ctx, "iam:DeleteRolePolicy", write.delete_role_policy, RoleName=name, PolicyName=policy)
    profiles = iam.call(ctx, "iam:ListInstanceProfilesForRole", client.list_instance_profiles_for_role,
                        RoleName=name)["InstanceProfiles"]
    for profile in profiles:
        iam.call(ctx, "iam:RemoveRoleFromInstanceProfile", write.remove_role_from_instance_profile,
                 InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    iam.call(ctx, "iam:DeleteRole", write.delete_role, RoleName=name)
    return "deleted"


def _delete_policy(ctx: Context, o: Orphan) -> str:
    client, write = ctx.aws.client("iam"), ctx.aws.client("iam", fail_fast=True)
    entities = iam.call(ctx, "iam:ListEntitiesForPolicy", client.list_entities_for_policy, PolicyArn=o.id)
    for role in entities.get("PolicyRoles", []):
        iam.call(ctx, "iam:DetachRolePolicy", write.detach_role_policy, RoleName=role["RoleName"], PolicyArn=o.id)
    for user in entities.get("PolicyUsers", []):
        iam.call(ctx, "iam:DetachUserPolicy", write.detach_user_policy, UserName=user["UserName"], PolicyArn=o.id)
    for group in entities.get("PolicyGroups", []):
        iam.call(ctx, "iam:DetachGroupPolicy", write.detach_group_policy, GroupName=group["GroupName"],
                 PolicyArn=o.id)
    versions = iam.call(ctx, "iam:ListPolicyVersions", client.list_policy_versions, PolicyArn=o.id)["Versions"]
    for version in versions:
        if not version["IsDefaultVersion"]:
            iam.call(ctx, "iam:DeletePolicyVersion", write.delete_policy_version, PolicyArn=o.id,
                     VersionId=version["VersionId"])
    iam.call(ctx, "iam:DeletePolicy", write.delete_policy, PolicyArn=o.id)
    return "deleted"


def _delete_oidc_provider(ctx: Context, o: Orphan) -> str:
    write = ctx.aws.client("iam", fail_fast=True)
    iam.call(ctx, "iam:DeleteOpenIDConnectProvider", write.delete_open_id_connect_provider,
             OpenIDConnectProviderArn=o.id)
    return "deleted"


def _delete_log_group(ctx: Context, o: Orphan) -> str:
    logs = ctx.aws.client("logs", fail_fast=True)
    iam.call(ctx, "logs:DeleteLogGroup", logs.delete_log_group, logGroupName=o.name)
    return "deleted"


def _delete_bucket(ctx: Context, o: Orphan) -> str:
    s3, write = ctx.aws.client("s3"), ctx.aws.client("s3", fail_fast=True)
    bucket = o.name
    attempts = ctx.settings.aws_retry.attempts
    for attempt in range(1, attempts + 1):
        _empty_bucket(ctx, s3, write, bucket)
        try:
            aws.call("s3:DeleteBucket", write.delete_bucket, Bucket=bucket)
            return "deleted"
        except AwsError as exc:  # a late writer added a version: empty it again
            if exc.code != "BucketNotEmpty" or attempt == attempts:
                raise
            ctx.reporter.warn(f"bucket {bucket} is not empty yet; emptying it again (attempt {attempt + 1}/{attempts})")
    return "deleted"  # pragma: no cover


def _empty_bucket(ctx: Context, s3: Any, write: Any, bucket: str) -> None:
    """Delete every object version and delete marker, and abort unfinished multipart uploads."""
    pages = aws.call("s3:ListObjectVersions",
                     lambda: list(s3.get_paginator("list_object_versions").paginate(Bucket=bucket)))
    keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
            for page in pages for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    for batch in _batches(keys, S3_DELETE_BATCH):
        answer = iam.call(ctx, "s3:DeleteObjects", write.delete_objects, Bucket=bucket,
                          Delete={"Objects": batch, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise AwsError("s3:DeleteObjects", first.get("Code", "Error"),
                           f"{len(errors)} of {len(batch)} versions in {bucket} were not deleted; first: "
                           f"{first.get('Key')} ({first.get('Message', '')})")
    uploads = aws.call("s3:ListMultipartUploads", s3.list_multipart_uploads, Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        aws.call("s3:AbortMultipartUpload", write.abort_multipart_upload, Bucket=bucket, Key=upload["Key"],
                 UploadId=upload["UploadId"])


DELETERS: dict[str, Callable[[Context, Orphan], str]] = {
    LOAD_BALANCER: _delete_load_balancer, CLASSIC_ELB: _delete_classic_elb, NODEGROUP: _delete_nodegroup,
    AUTOSCALING_GROUP: _delete_autoscaling_group, EC2_INSTANCE: _terminate_instance, EKS_CLUSTER: _delete_eks_cluster,
    TARGET_GROUP: _delete_target_group,
    NETWORK_INTERFACE: _delete_network_interface, NAT_GATEWAY: _delete_nat_gateway,
    ELASTIC_IP: _release_address, SECURITY_GROUP: _delete_security_group, VOLUME: _delete_volume,
    STACK: _delete_stack, INSTANCE_PROFILE: _delete_instance_profile, ROLE: _delete_role,
    POLICY: _delete_policy, OIDC_PROVIDER: _delete_oidc_provider, LOG_GROUP: _delete_log_group,
    BUCKET: _delete_bucket,
}


# -- waits: until AWS reports the resource gone ------------------------------------------------


def _gone(ctx: Context, o: Orphan) -> bool | str:
    """True once ``o`` is gone; False while it is still going; a string when its deletion failed."""
    try:
        if o.type == LOAD_BALANCER:
            aws.call("elbv2:DescribeLoadBalancers", ctx.aws.client("elbv2").describe_load_balancers,
                     LoadBalancerArns=[o.id])
            return False
        if o.type == CLASSIC_ELB:
            aws.call("elb:DescribeLoadBalancers", ctx.aws.client("elb").describe_load_balancers,
                     LoadBalancerNames=[o.name])
            return False
        if o.type == NODEGROUP:
            group = aws.call("eks:DescribeNodegroup", ctx.aws.client("eks").describe_nodegroup,
                             clusterName=o.arn_part(1), nodegroupName=o.name)["nodegroup"]
            if group.get("status") == "DELETE_FAILED":
                issues = (group.get("health") or {}).get("issues") or []
                return "node group deletion failed: " + ("; ".join(
                    f"{i.get('code', '')}: {i.get('message', '')}" for i in issues) or "no reason given")
            return False
        if o.type == EKS_CLUSTER:
            aws.call("eks:DescribeCluster", ctx.aws.client("eks").describe_cluster, name=o.name)
            return False
        if o.type == AUTOSCALING_GROUP:
            groups = aws.call("autoscaling:DescribeAutoScalingGroups",
                              ctx.aws.client("autoscaling").describe_auto_scaling_groups,
                              AutoScalingGroupNames=[o.name])["AutoScalingGroups"]
            return not groups
        if o.type == EC2_INSTANCE:
            reservations = aws.call("ec2:DescribeInstances", ctx.aws.client("ec2").describe_instances,
                                    InstanceIds=[o.id])["Reservations"]
            states = [(i.get("State") or {}).get("Name") for r in reservations for i in r.get("Instances", [])]
            return all(state == "terminated" for state in states)
        if o.type == NAT_GATEWAY:
            nats = aws.call("ec2:DescribeNatGateways", ctx.aws.client("ec2").describe_nat_gateways,
                            NatGatewayIds=[o.id])["NatGateways"]
            return not nats or nats[0].get("State") == "deleted"
        if o.type == STACK:
            stacks = aws.call("cloudformation:DescribeStacks", ctx.aws.client("cloudformation").describe_stacks,
                              StackName=o.id)["Stacks"]
            status = stacks[0].get("StackStatus", "") if stacks else "DELETE_COMPLETE"
            if status == "DELETE_FAILED":
                return f"stack deletion failed: {stacks[0].get('StackStatusReason', 'no reason given')}"
            return status == "DELETE_COMPLETE"
    except AwsError as exc:
        if exc.code in NOT_FOUND[o.type] or (o.type == STACK and "does not exist" in exc.message):
            return True
        raise
    raise AssertionError(f"no wait for {o.type}")  # pragma: no cover


def _deadline(ctx: Context, kind: str) -> float:
    waits = ctx.settings.waits
    if kind in (LOAD_BALANCER, CLASSIC_ELB):
        return waits.load_balancer_deleted
    if kind == NAT_GATEWAY:
        return waits.nat_gateway_deleted
    if kind in (NODEGROUP, EKS_CLUSTER):
        return waits.eks_deleted
    if kind in (AUTOSCALING_GROUP, EC2_INSTANCE):
        return waits.instances_terminated
    return waits.stack_deleted


def _wait_gone(ctx: Context, orphans: list[Orphan]) -> dict[Orphan, str | None]:
    """Poll until each is gone, under the deadline of its kind: None for gone, else the problem."""
    result: dict[Orphan, str | None] = {}
    pending = list(orphans)
    start = ctx.clock.monotonic()
    timeout = max(_deadline(ctx, o.type) for o in orphans)
    what = f"{orphans[0].type}{'s' if len(orphans) > 1 else ''} to be deleted"
    while True:
        still: list[Orphan] = []
        for orphan in pending:
            try:
                state = _gone(ctx, orphan)
            except AwsError as exc:
                result[orphan] = exc.one_line()
                continue
            if state is True:
                result[orphan] = None
            elif state is False:
                still.append(orphan)
            else:
                result[orphan] = str(state)
        pending = still
        if not pending:
            return result
        if ctx.clock.monotonic() - start >= timeout:
            for orphan in pending:
                result[orphan] = f"timed out after {timeout:g}s waiting for it to be deleted"
            return result
        ctx.reporter.waiting(what, f"{len(pending)} still present: {', '.join(o.id for o in pending)}")
        ctx.clock.sleep(ctx.settings.waits.poll_interval)


# --------------------------------------------------------------------------- helpers


def _codes(*codes: str) -> Callable[[AwsError], bool]:
    def check(exc: AwsError) -> bool:
        return exc.code in codes or iam.transient(exc)

    return check


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _by_type(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


#: Every finder ``search`` runs, by name, in search order (``search(only=...)`` picks some).
FINDERS: dict[str, Callable[[_Scan], _Found]] = {
    "elbv2 load balancers": _find_load_balancers, "elbv2 target groups": _find_target_groups,
    "classic load balancers": _find_classic_elbs, "ec2 network interfaces": _find_network_interfaces,
    "ec2 NAT gateways": _find_nat_gateways, "ec2 Elastic IPs": _find_addresses,
    "ec2 security groups": _find_security_groups, "ec2 volumes": _find_volumes,
    "iam instance profiles": _find_instance_profiles, "iam roles and OIDC providers": _find_roles,
    "iam policies": _find_policies, "logs log groups": _find_log_groups, "s3 buckets": _find_buckets,
    "eks cluster and node groups": _find_eks, "autoscaling groups": _find_autoscaling_groups,
    "ec2 instances": _find_instances,
}
