"""Phase ``alb``: the AWS Load Balancer Controller, which turns LoadBalancer Services into NLBs.

Three parts, each read first and changed only where it differs:

1. the controller's IAM policy, from the ``iam_policy.json`` its project publishes for the
   pinned version (shipped in ``kservectl/data``), created once by name and tagged; when the
   shipped document changes, a new default policy version (the oldest non-default version is
   removed at IAM's limit of five);
2. the IRSA ServiceAccount ``kube-system/aws-load-balancer-controller`` bound to that policy, by
   ``eksctl create iamserviceaccount``;
3. ``helm upgrade --install`` of ``eks/aws-load-balancer-controller`` with clusterName, region,
   vpcId and the ServiceAccount, then a wait until the Deployment is Available and its webhook
   Service has ready endpoints (a LoadBalancer Service created before that fails: the webhook
   claims every new one).

``uninstall`` refuses while LoadBalancer Services or Ingresses exist (removing the controller
first strands their load balancers), then removes the release, the ServiceAccount's role and the
policy (only when it carries this cluster's tag).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import urllib.parse
from pathlib import Path
from typing import Any

from kservectl import __version__, aws
from kservectl.context import Context
from kservectl.errors import AwsError, KservectlError, KubeError
from kservectl.kube import Ref, deployment_available, endpoints_ready
from kservectl.matrix import pinned
from kservectl.phases import cluster
from kservectl.phases.base import LiveValues, PhasePlan, Step
from kservectl.render import Renderer
from kservectl.runner import local_helm_major

PHASE = "alb"
RELEASE = "aws-load-balancer-controller"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"
DEPLOYMENT = "aws-load-balancer-controller"
WEBHOOK_SERVICE = "aws-load-balancer-webhook-service"
REPO_NAME = "eks"
REPO_URL = "https://aws.github.io/eks-charts"
CHART = f"{REPO_NAME}/aws-load-balancer-controller"
POLICY_FILE = "iam-policy.json"
VALUES_FILE = "alb-values.yaml"  # Helm values, not a Kubernetes manifest
OWNER_TAG = cluster.OWNER_TAG
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
MAX_POLICY_NAME = 128
COMPLETE_STACK_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})


# -- the shipped policy -----------------------------------------------------------------------
@functools.cache
def policy_text() -> str:
    """The controller's own iam_policy.json for the pinned version, unmodified (see its NOTICE.md)."""
    resource = importlib.resources.files("kservectl").joinpath("data", "aws-load-balancer-controller",
                                                               "iam_policy.json")
    return resource.read_text(encoding="utf-8")


def policy_document() -> dict[str, Any]:
    return json.loads(policy_text())


def policy_name(cluster_name: str) -> str:
    name = f"kservectl-{cluster_name}-AWSLoadBalancerControllerIAMPolicy"
    if len(name) <= MAX_POLICY_NAME:
        return name
    digest = hashlib.sha256(cluster_name.encode()).hexdigest()[:8]
    suffix = f"-{digest}-AWSLoadBalancerControllerIAMPolicy"
    return f"kservectl-{cluster_name[:MAX_POLICY_NAME - len('kservectl-') - len(suffix)]}{suffix}"


def irsa_stack(ctx: Context) -> str:
    return f"eksctl-{ctx.cluster}-addon-iamserviceaccount-{NAMESPACE}-{SERVICE_ACCOUNT}"


def chart_version() -> str:
    return pinned("aws_load_balancer_controller_chart")


def controller_version(ctx: Context) -> str:
    """The controller image tag: ``versions.aws_load_balancer_controller`` (config > matrix pin),
    as the image is tagged (``v3.5.0``). The chart stays at its pin and sets ``image.tag``."""
    version = ctx.config.versions.aws_load_balancer_controller
    return version if version.startswith("v") else f"v{version}"


def version_note(ctx: Context) -> str | None:
    """What a controller version other than the pin means, or None when it is the pin."""
    pin = pinned("aws_load_balancer_controller")
    if controller_version(ctx) == pin:
        return None
    return (f"versions.aws_load_balancer_controller={controller_version(ctx)} differs from the pin {pin}: "
            f"the chart stays {chart_version()} and the IAM policy is the iam_policy.json shipped for {pin}")


# -- rendering --------------------------------------------------------------------------------
def render_values(ctx: Context, vpc_id: str, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render("alb/values.yaml.j2", {
        "kservectl_version": __version__, "cluster": ctx.cluster, "region": ctx.region, "vpc_id": vpc_id,
        "chart_version": chart_version(), "service_account": SERVICE_ACCOUNT,
        "image_tag": controller_version(ctx),
    })


def release(ctx: Context, vpc_id: str, root: Path | None = None) -> cluster.HelmRelease:
    import yaml

    return cluster.HelmRelease(
        name=RELEASE, namespace=NAMESPACE, chart=CHART, version=chart_version(), repo_name=REPO_NAME,
        repo_url=REPO_URL, values_file=(root or cluster.rendered_root(ctx)) / PHASE / VALUES_FILE,
        values=yaml.safe_load(render_values(ctx, vpc_id)),
    )


def iamserviceaccount_argv(ctx: Context, policy_arn: str) -> list[str]:
    return ["eksctl", "create", "iamserviceaccount", "--cluster", ctx.cluster, "--region", ctx.region,
            "--namespace", NAMESPACE, "--name", SERVICE_ACCOUNT, "--attach-policy-arn", policy_arn,
            "--tags", f"{OWNER_TAG}={ctx.cluster}",  # on the IRSA role
            "--override-existing-serviceaccounts", "--approve"]


def delete_iamserviceaccount_argv(ctx: Context) -> list[str]:
    return ["eksctl", "delete", "iamserviceaccount", "--cluster", ctx.cluster, "--region", ctx.region,
            "--namespace", NAMESPACE, "--name", SERVICE_ACCOUNT, "--wait"]


def uninstall_argv(ctx: Context) -> list[str]:
    minutes, seconds = divmod(int(ctx.settings.waits.deployment_available), 60)
    return ["helm", "uninstall", RELEASE, "--namespace", NAMESPACE, "--kubeconfig",
            str(cluster.kubeconfig_path(ctx)), "--timeout", f"{minutes}m{seconds}s"]


def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    rel = release(ctx, live.vpc_id, root)
    arn = f"arn:aws:iam::{live.account_id}:policy/{policy_name(ctx.cluster)}"
    install = cluster.helm_install_argv(ctx, rel, local_helm_major(ctx.settings))
    repo_add, repo_update = cluster.helm_repo_argvs(rel)
    return PhasePlan(
        phase=PHASE,
        summary=f"AWS Load Balancer Controller {controller_version(ctx)} "
        f"(chart {rel.version}) with its IAM policy and IRSA role",
        files={POLICY_FILE: policy_text(), VALUES_FILE: render_values(ctx, live.vpc_id)},
        steps=[
            Step(PHASE, "read the cluster's VPC", "aws", calls=("eks:DescribeCluster",)),
            Step(PHASE, f"create the IAM policy {policy_name(ctx.cluster)} (tagged "
                 f"{OWNER_TAG}={ctx.cluster}), or add a new default version when the shipped document "
                 "changed", "aws",
                 calls=("iam:GetPolicy", "iam:CreatePolicy", "iam:CreatePolicyVersion"),
                 files=(f"{PHASE}/{POLICY_FILE}",)),
            Step(PHASE, f"create the IRSA ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT}", "tool",
                 command=tuple(iamserviceaccount_argv(ctx, arn))),
            Step(PHASE, "add the eks-charts repository", "tool", command=tuple(repo_add)),
            Step(PHASE, "refresh the chart index", "tool", command=tuple(repo_update)),
            Step(PHASE, f"install the controller (chart {rel.version}; Helm 3 gets --wait --atomic)", "tool",
                 command=tuple(install), files=(f"{PHASE}/{VALUES_FILE}",)),
            Step(PHASE, f"wait until Deployment {NAMESPACE}/{DEPLOYMENT} is Available", "kube",
                 calls=(f"watch Deployment {NAMESPACE}/{DEPLOYMENT}",)),
            Step(PHASE, f"wait until Service {NAMESPACE}/{WEBHOOK_SERVICE} has ready endpoints", "kube",
                 calls=(f"watch Endpoints {NAMESPACE}/{WEBHOOK_SERVICE}",)),
        ],
    )


# -- reading state ----------------------------------------------------------------------------
def policy_arn(ctx: Context) -> str:
    sts = ctx.aws.client("sts")
    ident = aws.call("sts:GetCallerIdentity", sts.get_caller_identity)
    partition = ident["Arn"].split(":")[1]
    return f"arn:{partition}:iam::{ident['Account']}:policy/{policy_name(ctx.cluster)}"


def get_policy(ctx: Context, arn: str) -> dict[str, Any] | None:
    iam = ctx.aws.client("iam")
    try:
        return aws.call("iam:GetPolicy", iam.get_policy, PolicyArn=arn)["Policy"]
    except AwsError as exc:
        if exc.code == "NoSuchEntity":
            return None
        raise


def _tags(policy: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in policy.get("Tags") or []}


def default_document(ctx: Context, arn: str, version_id: str) -> dict[str, Any]:
    iam = ctx.aws.client("iam")
    document = aws.call("iam:GetPolicyVersion", iam.get_policy_version, PolicyArn=arn,
                        VersionId=version_id)["PolicyVersion"]["Document"]
    if isinstance(document, str):  # URL-encoded JSON when botocore did not decode it
        document = json.loads(urllib.parse.unquote(document))
    return document


def cluster_vpc(ctx: Context) -> str:
    """The VPC of the cluster (DescribeCluster ``resourcesVpcConfig.vpcId``; else its subnets')."""
    found = cluster.describe_cluster(ctx)
    if found is None:
        raise KservectlError(f"cluster {ctx.cluster} does not exist in {ctx.region}",
                             hint="create it first: kservectl cluster create")
    if found.get("status") != "ACTIVE":
        raise KservectlError(f"cluster {ctx.cluster} is {found.get('status')}, not ACTIVE",
                             hint="run `kservectl cluster create` until it reports the cluster ready")
    vpc = found.get("resourcesVpcConfig") or {}
    if vpc.get("vpcId"):
        return vpc["vpcId"]
    subnets = vpc.get("subnetIds") or []
    if subnets:
        ec2 = ctx.aws.client("ec2")
        described = aws.call("ec2:DescribeSubnets", ec2.describe_subnets, SubnetIds=subnets[:1])["Subnets"]
        if described:
            return described[0]["VpcId"]
    raise KservectlError(f"cannot tell the VPC of cluster {ctx.cluster}: DescribeCluster names none")


# -- install ----------------------------------------------------------------------------------
def ensure_policy(ctx: Context) -> dict[str, Any]:
    """Create the policy once; add a new default version when the shipped document differs.
    Returns ``{"arn", "result": created|updated|unchanged, "version"}`` (what would be, in a dry run)."""
    iam = ctx.aws.client("iam")
    arn = policy_arn(ctx)
    name = policy_name(ctx.cluster)
    wanted = policy_document()
    found = get_policy(ctx, arn)
    if found is None:
        if ctx.dry_run:
            return {"arn": arn, "result": "created", "version": "v1"}
        # The document is the iam_policy.json shipped for the pinned controller version.
        description = (f"AWS Load Balancer Controller (iam_policy.json of "
                       f"{pinned('aws_load_balancer_controller')}) of EKS cluster {ctx.cluster} (kservectl)")
        created = aws.call("iam:CreatePolicy", iam.create_policy, PolicyName=name,
                           PolicyDocument=policy_text(), Description=description,
                           Tags=[{"Key": OWNER_TAG, "Value": ctx.cluster}])["Policy"]
        return {"arn": arn, "result": "created", "version": created.get("DefaultVersionId", "v1")}
    if _tags(found).get(OWNER_TAG) != ctx.cluster:
        raise KservectlError(
            f"IAM policy {name} exists but is not tagged {OWNER_TAG}={ctx.cluster}; kservectl changes only "
            "policies it created", hint=f"tag it {OWNER_TAG}={ctx.cluster} or delete it, then run this again")
    version = found["DefaultVersionId"]
    if default_document(ctx, arn, version) == wanted:
        return {"arn": arn, "result": "unchanged", "version": version}
    versions = aws.call("iam:ListPolicyVersions", iam.list_policy_versions, PolicyArn=arn)["Versions"]
    removed = None
    if len(versions) >= MAX_POLICY_VERSIONS:
        old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])[0]
        removed = old["VersionId"]
        if not ctx.dry_run:
            aws.call("iam:DeletePolicyVersion", iam.delete_policy_version, PolicyArn=arn, VersionId=removed)
    if ctx.dry_run:
        return {"arn": arn, "result": "updated", "version": "(new)", "removed_version": removed}
    made = aws.call("iam:CreatePolicyVersion", iam.create_policy_version, PolicyArn=arn,
                    PolicyDocument=policy_text(), SetAsDefault=True)["PolicyVersion"]
    return {"arn": arn, "result": "updated", "version": made["VersionId"], "removed_version": removed}


def _stack(ctx: Context, name: str) -> dict[str, Any] | None:
    cfn = ctx.aws.client("cloudformation")
    try:
        stacks = aws.call("cloudformation:DescribeStacks", cfn.describe_stacks, StackName=name)["Stacks"]
    except AwsError as exc:
        if exc.code == "ValidationError":
            return None
        raise
    return stacks[0] if stacks else None


def ensure_service_account(ctx: Context, arn: str) -> str:
    """The IRSA ServiceAccount. eksctl skips a service account whose stack exists, so when the
    stack is there but the ServiceAccount is gone, kservectl writes it back with the stack's role."""
    stack = _stack(ctx, irsa_stack(ctx))
    if stack is not None and stack["StackStatus"] in COMPLETE_STACK_STATES:
        outputs = stack.get("Outputs") or []
        role = next((o["OutputValue"] for o in outputs if o.get("OutputKey") == "Role1"), None)
        sa = ctx.kube.get("v1", "ServiceAccount", SERVICE_ACCOUNT, NAMESPACE)
        have = ((sa or {}).get("metadata", {}).get("annotations") or {}).get(ROLE_ANNOTATION)
        if sa is not None and have and (role is None or have == role):
            return "unchanged"
        if role is None:
            raise KservectlError(f"stack {irsa_stack(ctx)} names no role (output Role1)",
                                 hint=f"delete it: {' '.join(delete_iamserviceaccount_argv(ctx))}")
        if not ctx.dry_run:
            cluster.ensure_object(ctx, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE,
                             "labels": {"app.kubernetes.io/managed-by": "eksctl"},
                             "annotations": {ROLE_ANNOTATION: role}},
            })
        return "restored"
    if stack is not None and not stack["StackStatus"].endswith("_IN_PROGRESS"):
        raise KservectlError(
            f"stack {irsa_stack(ctx)} is {stack['StackStatus']}",
            hint=f"delete it ({' '.join(delete_iamserviceaccount_argv(ctx))}) and run this again")
    ctx.runner.run(iamserviceaccount_argv(ctx, arn), retry=False)
    return "created"


@cluster.lists_commands
def install(ctx: Context) -> dict[str, Any]:
    report = ctx.reporter
    result = _result(ctx)
    actions: list[str] = result["actions"]
    would = "would be " if ctx.dry_run else ""
    report.step(PHASE, f"AWS Load Balancer Controller {controller_version(ctx)} for cluster {ctx.cluster}")
    note = version_note(ctx)
    if note:
        report.warn(note)
    vpc_id = cluster_vpc(ctx)
    result["vpc_id"] = vpc_id
    cluster.require_tools(ctx, "eksctl", "helm")  # before the first change
    policy = ensure_policy(ctx)
    result["policy"] = policy
    changed = would if policy["result"] != "unchanged" else ""
    actions.append(f"IAM policy {policy['arn']} {changed}{policy['result']} ({policy['version']})")
    cluster.ensure_kubeconfig(ctx, actions)
    if ctx.dry_run and not cluster.kubeconfig_path(ctx).is_file():
        ctx.runner.run(iamserviceaccount_argv(ctx, policy["arn"]))
        actions.append(f"ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT} would be created")
        rel = _write(ctx, vpc_id)
        outcome = cluster.ensure_helm_release(ctx, rel, cluster_exists=False)
        actions.append(f"release {RELEASE} would be {outcome} (chart {rel.version})")
        return result
    sa = ensure_service_account(ctx, policy["arn"])
    actions.append(f"ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT} {would if sa != 'unchanged' else ''}{sa}")
    rel = _write(ctx, vpc_id)
    outcome = cluster.ensure_helm_release(ctx, rel)
    changed = would if outcome != "unchanged" else ""
    actions.append(f"release {RELEASE} {changed}{outcome} (chart {rel.version})")
    result["release"] = {"name": RELEASE, "chart_version": rel.version, "result": outcome}
    if ctx.dry_run:
        return result
    wait_ready(ctx)
    actions.append(f"Deployment {NAMESPACE}/{DEPLOYMENT} Available; webhook {WEBHOOK_SERVICE} has endpoints")
    return result


def _result(ctx: Context) -> dict[str, Any]:
    return {"cluster": ctx.cluster, "region": ctx.region, "dry_run": ctx.dry_run, "actions": []}


def _write(ctx: Context, vpc_id: str) -> cluster.HelmRelease:
    from kservectl.phases import plan as plan_phase

    root = cluster.rendered_root(ctx)
    plan_phase.write([plan(ctx, LiveValues(vpc_id=vpc_id), root)], root)
    return release(ctx, vpc_id, root)


def wait_ready(ctx: Context) -> None:
    waits = ctx.settings.waits
    ctx.kube.wait_for(Ref("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE), deployment_available,
                      what=f"Deployment {NAMESPACE}/{DEPLOYMENT} to be Available",
                      timeout=waits.deployment_available)
    ctx.kube.wait_for(Ref("v1", "Endpoints", WEBHOOK_SERVICE, NAMESPACE), endpoints_ready,
                      what=f"the webhook Service {NAMESPACE}/{WEBHOOK_SERVICE} to have ready endpoints",
                      timeout=waits.endpoints_ready)


# -- uninstall --------------------------------------------------------------------------------
@cluster.lists_commands
def uninstall(ctx: Context, *, confirm: cluster.Confirm | None = None) -> dict[str, Any]:
    result = _result(ctx)
    actions: list[str] = result["actions"]
    would = "would be " if ctx.dry_run else ""
    exists = cluster.describe_cluster(ctx) is not None
    role_stack = _stack(ctx, irsa_stack(ctx)) is not None
    cluster.require_tools(ctx, *(["eksctl"] if exists or role_stack else []), *(["helm"] if exists else []))
    if exists:
        cluster.ensure_kubeconfig(ctx, actions)
    reachable = exists and (cluster.kubeconfig_path(ctx).is_file() or not ctx.dry_run)
    if reachable:
        try:
            held = cluster.aws_holders(ctx, ingresses=True)
        except KubeError as exc:
            raise KservectlError(
                f"cannot check cluster {ctx.cluster} for LoadBalancer Services and Ingresses: "
                f"{exc.one_line()}", hint="make the API reachable, then run this again") from exc
        if held:
            raise KservectlError(
                f"the AWS Load Balancer Controller still manages load balancers of {', '.join(held)}; "
                "removing it now would strand them", hint="delete those first, then run this again")
    if confirm is not None and not ctx.dry_run:
        confirm(f"Uninstall the AWS Load Balancer Controller from cluster {ctx.cluster} "
                "and delete its IAM policy?")
    if reachable and cluster.helm_release(ctx, RELEASE, NAMESPACE) is not None:
        ctx.runner.run(uninstall_argv(ctx), timeout=ctx.settings.tools.helm)
        actions.append(f"release {RELEASE} {would}uninstalled")
    else:
        actions.append(f"release {RELEASE} not installed")
    role_deleted = role_stack
    if role_deleted:
        ctx.runner.run(delete_iamserviceaccount_argv(ctx), retry=False)
        actions.append(f"ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT} and its role {would}deleted")
    actions.append(_delete_policy(ctx, role_just_deleted=role_deleted))
    return result


def _attached(ctx: Context, arn: str, *, role_just_deleted: bool) -> list[str]:
    """Who still has the policy attached. Right after eksctl deleted the IRSA role, IAM may list
    it for a little while (eventual consistency): re-read with bounded backoff until it is gone."""
    iam = ctx.aws.client("iam")
    backoff = ctx.settings.aws_retry
    delay = backoff.initial
    irsa_role = f"eksctl-{ctx.cluster}-addon-"[:64]  # eksctl's role names: the stack name, truncated
    for attempt in range(1, backoff.attempts + 1):
        entities = aws.call("iam:ListEntitiesForPolicy", iam.list_entities_for_policy, PolicyArn=arn)
        roles = [r["RoleName"] for r in entities.get("PolicyRoles", [])]
        holders = roles + [u["UserName"] for u in entities.get("PolicyUsers", [])] + \
            [g["GroupName"] for g in entities.get("PolicyGroups", [])]
        leaving = role_just_deleted and bool(holders) and all(
            h in roles and h.startswith(irsa_role) for h in holders)
        if not leaving or attempt == backoff.attempts:
            return holders
        ctx.reporter.waiting(f"IAM to drop the deleted role from policy {arn}",
                             f"attempt {attempt}/{backoff.attempts}: still attached to {', '.join(holders)}")
        ctx.clock.sleep(delay)
        delay = min(delay * 2, backoff.maximum)
    return holders


def _delete_policy(ctx: Context, *, role_just_deleted: bool = False) -> str:
    iam = ctx.aws.client("iam")
    arn = policy_arn(ctx)
    found = get_policy(ctx, arn)
    if found is None:
        return f"IAM policy {policy_name(ctx.cluster)} does not exist"
    if _tags(found).get(OWNER_TAG) != ctx.cluster:
        return f"IAM policy {arn} kept: it is not tagged {OWNER_TAG}={ctx.cluster}"
    if not ctx.dry_run:
        users = _attached(ctx, arn, role_just_deleted=role_just_deleted)
        if users:
            ctx.reporter.warn(f"IAM policy {arn} is still attached to {', '.join(users)}: kept")
            return f"IAM policy {arn} kept: still attached to {', '.join(users)}"
        versions = aws.call("iam:ListPolicyVersions", iam.list_policy_versions, PolicyArn=arn)["Versions"]
        for version in versions:
            if not version["IsDefaultVersion"]:
                aws.call("iam:DeletePolicyVersion", iam.delete_policy_version, PolicyArn=arn,
                         VersionId=version["VersionId"])
        aws.call("iam:DeletePolicy", iam.delete_policy, PolicyArn=arn)
    return f"IAM policy {arn} {'would be ' if ctx.dry_run else ''}deleted"


# -- status -----------------------------------------------------------------------------------
def status(ctx: Context) -> dict[str, Any]:
    pins = {"chart": chart_version(), "app": controller_version(ctx)}
    out: dict[str, Any] = {"cluster": ctx.cluster, "region": ctx.region, "pinned": pins}
    arn = policy_arn(ctx)
    found = get_policy(ctx, arn)
    if found is None:
        out["policy"] = {"name": policy_name(ctx.cluster), "arn": arn, "exists": False}
    else:
        version = found["DefaultVersionId"]
        out["policy"] = {"name": found["PolicyName"], "arn": arn, "exists": True, "version": version,
                         "matches_shipped": default_document(ctx, arn, version) == policy_document(),
                         "owned": _tags(found).get(OWNER_TAG) == ctx.cluster,
                         "attachments": found.get("AttachmentCount", 0)}
    try:
        dep = ctx.kube.get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE)
        if dep is None:
            out["deployment"] = {"exists": False}
        else:
            ok, detail = deployment_available(dep)
            spec = dep.get("spec") or {}
            st = dep.get("status") or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
            image = containers[0].get("image")
            out["deployment"] = {"exists": True, "available": ok, "detail": detail,
                                 "ready": f"{st.get('readyReplicas', 0) or 0}/{spec.get('replicas', 1)}",
                                 "image": image,
                                 "image_matches_config": bool(image) and image.endswith(":" + controller_version(ctx))}
        endpoints = ctx.kube.get("v1", "Endpoints", WEBHOOK_SERVICE, NAMESPACE)
        out["webhook_ready"] = bool(endpoints) and endpoints_ready(endpoints)[0]
        sa = ctx.kube.get("v1", "ServiceAccount", SERVICE_ACCOUNT, NAMESPACE)
        out["role_arn"] = ((sa or {}).get("metadata", {}).get("annotations") or {}).get(ROLE_ANNOTATION)
    except KservectlError as exc:
        out["deployment"] = {"error": exc.one_line()}
    try:
        rel = cluster.helm_release(ctx, RELEASE, NAMESPACE, retry=False)
    except KservectlError as exc:
        rel = None
        out["release"] = {"error": exc.one_line()}
    if rel is not None:
        chart = str(rel.get("chart", ""))
        have_chart = chart.rsplit("-", 1)[-1] if "-" in chart else chart
        out["release"] = {"status": rel.get("status"), "chart_version": have_chart,
                          "app_version": rel.get("app_version"),
                          "matches_pin": have_chart == chart_version()}
    elif "release" not in out:
        out["release"] = {"installed": False}
    return out
