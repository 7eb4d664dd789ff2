"""IAM helpers the phases share: names, ARNs, IRSA trust policies, a narrow retry loop, and
"ensure" / delete of roles and customer-managed policies that read first and change only the
difference (STYLE 5, 6).

Ownership is the tag ``kservectl.io/cluster=<cluster>``: an ensure function never changes a role
or policy that carries another owner (or none), and a delete function never deletes one. Roles
and policies live under the IAM path ``/kservectl/`` so an orphan search can list them cheaply.

Every ensure/delete function returns ``Change`` records and reports each through
``ctx.reporter``; with ``ctx.dry_run`` it reads, compares and reports ("would ...") but makes
no mutating call. Mutating calls use the fail-fast client (one botocore attempt) inside
``call``'s own bounded loop, so every retry is visible as "attempt i/N".
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kservectl import aws
from kservectl.context import Context
from kservectl.errors import AwsError, KservectlError
from kservectl.render import Renderer

T = TypeVar("T")

OWNER_TAG = "kservectl.io/cluster"
COMPONENT_TAG = "kservectl.io/component"
IAM_PATH = "/kservectl/"
STS_AUDIENCE = "sts.amazonaws.com"
ROLE_NAME_LIMIT = 64
POLICY_NAME_LIMIT = 128
MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
TRUST_TEMPLATE = "storage/irsa-trust-policy.json.j2"

# Transient on top of aws.RETRYABLE_CODES: S3 and IAM spellings of "busy, try again".
TRANSIENT_CODES = aws.RETRYABLE_CODES | frozenset(
    {"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "OperationAborted", "ConcurrentModification",
     "ServiceFailure", "InternalFailure", "503", "500"}
)

RetryIf = Callable[[AwsError], bool]


def transient(exc: AwsError) -> bool:
    return exc.code in TRANSIENT_CODES


def settling(*codes: str, mentions: str | None = None) -> RetryIf:
    """Retry ``codes`` as well as transient errors: IAM is eventually consistent, so a role or
    OIDC provider created moments ago can be reported missing or as an invalid principal.
    ``mentions`` narrows the extra codes to messages containing that word."""

    def check(exc: AwsError) -> bool:
        if transient(exc):
            return True
        if exc.code not in codes:
            return False
        return mentions is None or mentions.lower() in exc.message.lower()

    return check


# IAM eventual consistency right after creating a role, a policy or an OIDC provider.
AFTER_CREATE = settling("MalformedPolicyDocument", "InvalidParameterValue", "NoSuchEntity")
# CreateRole / UpdateAssumeRolePolicy: "Invalid principal in policy" while the provider propagates.
PRINCIPAL_PROPAGATION = settling("MalformedPolicyDocument", "InvalidParameterValue", mentions="principal")


@dataclass(frozen=True)
class Change:
    """One change kservectl made (or, in a dry run, would make) to an AWS resource."""

    resource: str  # e.g. "s3 bucket kservectl-demo-...", "iam role kservectl-demo-mlflow"
    action: str  # e.g. "create", "enable versioning on", "delete", "keep"
    detail: str = ""

    def message(self, dry_run: bool = False) -> str:
        text = f"{self.action} {self.resource}"
        if self.detail:
            text += f" ({self.detail})"
        return f"would {text}" if dry_run and self.action not in ("keep", "skip") else text

    def as_dict(self) -> dict[str, str]:
        return {"resource": self.resource, "action": self.action, "detail": self.detail}


class OwnershipError(KservectlError):
    """A resource with kservectl's name exists but belongs to someone else: never touched."""


# --------------------------------------------------------------------------- names and ARNs


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def resource_name(cluster: str, suffix: str, limit: int = ROLE_NAME_LIMIT) -> str:
    """``kservectl-<cluster>-<suffix>``, shortened deterministically to ``limit`` characters
    (the cluster part is cut and a hash of the full cluster name keeps it unique)."""
    name = f"kservectl-{cluster}-{suffix}"
    if len(name) <= limit:
        return name
    digest = _digest(cluster)
    room = limit - len(f"kservectl--{digest}-{suffix}")
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for the cluster name within {limit} characters")
    return f"kservectl-{cluster[:room].rstrip('-')}-{digest}-{suffix}"


def role_arn(account_id: str, name: str, region: str, path: str = IAM_PATH) -> str:
    return f"arn:{partition(region)}:iam::{account_id}:role{path}{name}"


def policy_arn(account_id: str, name: str, region: str, path: str = IAM_PATH) -> str:
    return f"arn:{partition(region)}:iam::{account_id}:policy{path}{name}"


def oidc_provider(issuer: str) -> str:
    """The issuer without its scheme: the provider's name and the prefix of its condition keys."""
    return issuer.removeprefix("https://").rstrip("/")


def oidc_provider_arn(account_id: str, issuer: str, region: str) -> str:
    return f"arn:{partition(region)}:iam::{account_id}:oidc-provider/{oidc_provider(issuer)}"


def service_account_subject(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def trust_policy(provider_arn: str, issuer: str, namespace: str, service_account: str,
                 renderer: Renderer | None = None) -> dict[str, Any]:
    """The IRSA trust policy: only ``system:serviceaccount:<namespace>:<sa>`` with audience
    ``sts.amazonaws.com`` may assume the role through the cluster's OIDC provider (StringEquals)."""
    text = (renderer or Renderer()).render(TRUST_TEMPLATE, {
        "provider_arn": provider_arn,
        "provider": oidc_provider(issuer),
        "subject": service_account_subject(namespace, service_account),
        "audience": STS_AUDIENCE,
    })
    return json.loads(text)


def owner_tags(cluster: str, component: str | None = None) -> dict[str, str]:
    tags = {OWNER_TAG: cluster}
    if component:
        tags[COMPONENT_TAG] = component
    return tags


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or ()}


def missing_tags(current: Mapping[str, str], desired: Mapping[str, str]) -> dict[str, str]:
    """The desired tags that are absent or hold another value (other tags are left alone)."""
    return {key: value for key, value in desired.items() if current.get(key) != value}


def ownership_problem(resource: str, tags: Mapping[str, str], cluster: str) -> str | None:
    """Why ``resource`` is not this cluster's, or None when its owner tag names this cluster."""
    owner = tags.get(OWNER_TAG)
    if owner == cluster:
        return None
    if owner is None:
        return f"{resource} exists but has no {OWNER_TAG} tag: kservectl did not create it"
    return f"{resource} belongs to cluster {owner!r} ({OWNER_TAG}={owner}), not {cluster!r}"


# --------------------------------------------------------------------------- documents


def canonical(doc: Any) -> Any:
    """A policy document in a form where equal meaning compares equal: keys sorted, a
    one-element list the same as its element, string lists sorted."""
    if isinstance(doc, dict):
        return {key: canonical(doc[key]) for key in sorted(doc)}
    if isinstance(doc, list):
        items = [canonical(item) for item in doc]
        if len(items) == 1:
            return items[0]
        if all(isinstance(item, str) for item in items):
            return sorted(items)
        return items
    return doc


def same_document(a: Any, b: Any) -> bool:
    return canonical(parse_document(a)) == canonical(parse_document(b))


def parse_document(doc: Any) -> Any:
    """IAM returns documents URL-encoded in the raw API; boto3 usually decodes them already."""
    if isinstance(doc, str):
        text = doc if doc.lstrip().startswith("{") else urllib.parse.unquote(doc)
        return json.loads(text)
    return doc


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


# --------------------------------------------------------------------------- calls


def call(ctx: Context, operation: str, fn: Callable[..., T], *, retry_if: RetryIf = transient,
         **kwargs: Any) -> T:
    """``aws.call`` with a bounded, visible retry for named error codes (``ctx.settings.aws_retry``,
    sleeping on ``ctx.clock``). Anything else, or the last attempt, raises ``AwsError`` at once."""
    backoff = ctx.settings.aws_retry
    delay = backoff.initial
    for attempt in range(1, backoff.attempts + 1):
        try:
            return aws.call(operation, fn, **kwargs)
        except AwsError as exc:
            if not retry_if(exc):
                raise
            if attempt == backoff.attempts:
                raise AwsError(operation, exc.code, exc.message.split(": ", 1)[-1],
                               hint=f"still failing after {backoff.attempts} attempts") from exc
            ctx.reporter.warn(f"{operation} returned {exc.code}; retrying in {delay:g}s "
                              f"(attempt {attempt + 1}/{backoff.attempts})")
            ctx.clock.sleep(delay)
            delay = min(delay * 2, backoff.maximum)
    raise AssertionError("unreachable")  # pragma: no cover


def read(ctx: Context, operation: str, fn: Callable[..., T], *, missing: Iterable[str] = (),
         retry_if: RetryIf = transient, **kwargs: Any) -> T | None:
    """A read call; None when it fails with one of the ``missing`` codes (NoSuchEntity, ...)."""
    try:
        return call(ctx, operation, fn, retry_if=retry_if, **kwargs)
    except AwsError as exc:
        if exc.code in tuple(missing):
            return None
        raise


def perform(ctx: Context, phase: str, change: Change, operation: str | None = None,
            fn: Callable[..., Any] | None = None, *, retry_if: RetryIf = transient, **kwargs: Any) -> Change:
    """Report ``change``; unless this is a dry run, make the mutating call that achieves it."""
    ctx.reporter.step(phase, change.message(ctx.dry_run))
    if not ctx.dry_run and fn is not None:
        call(ctx, operation or change.action, fn, retry_if=retry_if, **kwargs)
    return change


def _iam(ctx: Context, *, write: bool = False) -> Any:
    return ctx.aws.client("iam", fail_fast=write)


# --------------------------------------------------------------------------- reads


def get_role(ctx: Context, name: str) -> dict[str, Any] | None:
    found = read(ctx, "iam:GetRole", _iam(ctx).get_role, missing=("NoSuchEntity",), RoleName=name)
    return found["Role"] if found else None


def get_policy(ctx: Context, arn: str) -> dict[str, Any] | None:
    found = read(ctx, "iam:GetPolicy", _iam(ctx).get_policy, missing=("NoSuchEntity",), PolicyArn=arn)
    return found["Policy"] if found else None


def policy_document(ctx: Context, policy: Mapping[str, Any]) -> Any:
    version = call(ctx, "iam:GetPolicyVersion", _iam(ctx).get_policy_version,
                   PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    return parse_document(version["PolicyVersion"]["Document"])


def attached_policies(ctx: Context, role_name: str) -> list[str]:
    """ARNs of the managed policies attached to a role ([] when the role does not exist)."""
    arns: list[str] = []
    paginator = _iam(ctx).get_paginator("list_attached_role_policies")
    try:
        pages = aws.call("iam:ListAttachedRolePolicies", lambda: list(paginator.paginate(RoleName=role_name)))
        for page in pages:
            arns += [p["PolicyArn"] for p in page["AttachedPolicies"]]
    except AwsError as exc:
        if exc.code == "NoSuchEntity":
            return []
        raise
    return arns


def check_owner(resource: str, tags: Mapping[str, str], cluster: str) -> None:
    problem = ownership_problem(resource, tags, cluster)
    if problem:
        raise OwnershipError(problem, hint=f"kservectl changes only what carries {OWNER_TAG}={cluster}; "
                             "rename, delete or tag it yourself")


def check_role_owner(ctx: Context, name: str) -> None:
    """Raise ``OwnershipError`` when a role of that name exists and is not this cluster's."""
    role = get_role(ctx, name)
    if role is not None:
        check_owner(f"IAM role {name}", tag_dict(role.get("Tags")), ctx.cluster)


def check_policy_owner(ctx: Context, arn: str) -> None:
    policy = get_policy(ctx, arn)
    if policy is not None:
        check_owner(f"IAM policy {arn}", tag_dict(policy.get("Tags")), ctx.cluster)


# --------------------------------------------------------------------------- ensure


def ensure_policy(ctx: Context, *, account_id: str, name: str, document: Mapping[str, Any],
                  tags: Mapping[str, str], description: str = "", path: str = IAM_PATH,
                  phase: str = "iam") -> tuple[str, list[Change]]:
    """Create the customer-managed policy, or bring its default version and tags to the
    desired ones. A changed document becomes a new default version (the oldest non-default
    version is deleted first when IAM's limit of five is reached). Returns (ARN, changes)."""
    arn = policy_arn(account_id, name, ctx.region, path)
    what = f"IAM policy {name}"
    current = get_policy(ctx, arn)
    iam_w = _iam(ctx, write=True)
    if current is None:
        kwargs: dict[str, Any] = {"PolicyName": name, "Path": path, "PolicyDocument": json.dumps(document),
                                  "Tags": tag_list(tags)}
        if description:
            kwargs["Description"] = description
        change = perform(ctx, phase, Change(what, "create"), "iam:CreatePolicy", iam_w.create_policy,
                         **kwargs)
        return arn, [change]
    check_owner(what, tag_dict(current.get("Tags")), ctx.cluster)
    changes: list[Change] = []
    if not same_document(policy_document(ctx, current), document):
        versions = call(ctx, "iam:ListPolicyVersions", _iam(ctx).list_policy_versions,
                        PolicyArn=arn)["Versions"]
        if len(versions) >= MAX_POLICY_VERSIONS:
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            changes.append(perform(ctx, phase, Change(what, "delete the oldest version of",
                                                      f"{oldest['VersionId']}, IAM keeps five"),
                                   "iam:DeletePolicyVersion", iam_w.delete_policy_version,
                                   PolicyArn=arn, VersionId=oldest["VersionId"]))
        update = Change(what, "update", "new default version with the desired document")
        changes.append(perform(ctx, phase, update, "iam:CreatePolicyVersion", iam_w.create_policy_version,
                               PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True))
    absent = missing_tags(tag_dict(current.get("Tags")), tags)
    if absent:
        changes.append(perform(ctx, phase, Change(what, "tag", _show_tags(absent)), "iam:TagPolicy",
                               iam_w.tag_policy, PolicyArn=arn, Tags=tag_list(absent)))
    return arn, changes


def ensure_role(ctx: Context, *, account_id: str, name: str, trust: Mapping[str, Any],
                tags: Mapping[str, str], description: str = "", path: str = IAM_PATH,
                phase: str = "iam") -> tuple[str, list[Change], bool]:
    """Create the role with its trust policy, or bring the trust policy and tags to the desired
    ones. Returns (ARN, changes, created)."""
    what = f"IAM role {name}"
    current = get_role(ctx, name)
    iam_w = _iam(ctx, write=True)
    if current is None:
        kwargs: dict[str, Any] = {"RoleName": name, "Path": path, "Tags": tag_list(tags),
                                  "AssumeRolePolicyDocument": json.dumps(trust)}
        if description:
            kwargs["Description"] = description
        change = perform(ctx, phase, Change(what, "create"), "iam:CreateRole", iam_w.create_role,
                         retry_if=PRINCIPAL_PROPAGATION, **kwargs)
        return role_arn(account_id, name, ctx.region, path), [change], True
    current_tags = tag_dict(current.get("Tags"))
    check_owner(what, current_tags, ctx.cluster)
    changes: list[Change] = []
    if not same_document(current.get("AssumeRolePolicyDocument") or {}, trust):
        changes.append(perform(ctx, phase, Change(what, "update the trust policy of"),
                               "iam:UpdateAssumeRolePolicy", iam_w.update_assume_role_policy,
                               retry_if=PRINCIPAL_PROPAGATION, RoleName=name,
                               PolicyDocument=json.dumps(trust)))
    absent = missing_tags(current_tags, tags)
    if absent:
        changes.append(perform(ctx, phase, Change(what, "tag", _show_tags(absent)), "iam:TagRole",
                               iam_w.tag_role, RoleName=name, Tags=tag_list(absent)))
    return current["Arn"], changes, False


def ensure_attached(ctx: Context, role_name: str, policy_arn_: str, *, just_created: bool = False,
                    phase: str = "iam") -> list[Change]:
    """Attach the managed policy to the role unless it already is. Right after creating the
    role or the policy, IAM may not know it yet: NoSuchEntity is then retried."""
    if policy_arn_ in attached_policies(ctx, role_name):  # [] while the role does not exist yet
        return []
    change = Change(f"IAM role {role_name}", "attach policy to", policy_arn_.rsplit("/", 1)[-1])
    return [perform(ctx, phase, change, "iam:AttachRolePolicy", _iam(ctx, write=True).attach_role_policy,
                    retry_if=AFTER_CREATE if just_created else transient,
                    RoleName=role_name, PolicyArn=policy_arn_)]


# --------------------------------------------------------------------------- delete


def delete_role(ctx: Context, name: str, *, phase: str = "iam") -> list[Change]:
    """Delete the role if this cluster owns it: detach its managed policies, delete its inline
    policies and instance-profile links first. Another owner's role is kept (and reported)."""
    what = f"IAM role {name}"
    role = get_role(ctx, name)
    if role is None:
        return [Change(what, "skip", "does not exist")]
    problem = ownership_problem(what, tag_dict(role.get("Tags")), ctx.cluster)
    if problem:
        ctx.reporter.warn(f"keeping {what}: {problem}")
        return [Change(what, "keep", problem)]
    iam_r, iam_w = _iam(ctx), _iam(ctx, write=True)
    changes: list[Change] = []
    for arn in attached_policies(ctx, name):
        changes.append(perform(ctx, phase, Change(what, "detach policy from", arn.rsplit("/", 1)[-1]),
                               "iam:DetachRolePolicy", iam_w.detach_role_policy, RoleName=name,
                               PolicyArn=arn))
    inline = call(ctx, "iam:ListRolePolicies", iam_r.list_role_policies, RoleName=name)["PolicyNames"]
    for policy_name in inline:
        changes.append(perform(ctx, phase, Change(what, "delete inline policy of", policy_name),
                               "iam:DeleteRolePolicy", iam_w.delete_role_policy, RoleName=name,
                               PolicyName=policy_name))
    profiles = call(ctx, "iam:ListInstanceProfilesForRole", iam_r.list_instance_profiles_for_role,
                    RoleName=name)["InstanceProfiles"]
    for profile in profiles:
        profile_name = profile["InstanceProfileName"]
        changes.append(perform(ctx, phase, Change(what, "remove from instance profile", profile_name),
                               "iam:RemoveRoleFromInstanceProfile", iam_w.remove_role_from_instance_profile,
                               RoleName=name, InstanceProfileName=profile_name))
    changes.append(perform(ctx, phase, Change(what, "delete"), "iam:DeleteRole", iam_w.delete_role,
                           RoleName=name))
    return changes


def delete_policy(ctx: Context, arn: str, *, phase: str = "iam") -> list[Change]:
    """Delete the managed policy if this cluster owns it: detach it from every role, user and
    group, delete its non-default versions, then the policy."""
    name = arn.rsplit("/", 1)[-1]
    what = f"IAM policy {name}"
    policy = get_policy(ctx, arn)
    if policy is None:
        return [Change(what, "skip", "does not exist")]
    problem = ownership_problem(what, tag_dict(policy.get("Tags")), ctx.cluster)
    if problem:
        ctx.reporter.warn(f"keeping {what}: {problem}")
        return [Change(what, "keep", problem)]
    iam_r, iam_w = _iam(ctx), _iam(ctx, write=True)
    changes: list[Change] = []
    entities = call(ctx, "iam:ListEntitiesForPolicy", iam_r.list_entities_for_policy, PolicyArn=arn)
    for role in entities.get("PolicyRoles", []):
        changes.append(perform(ctx, phase, Change(what, "detach from role", role["RoleName"]),
                               "iam:DetachRolePolicy", iam_w.detach_role_policy, RoleName=role["RoleName"],
                               PolicyArn=arn))
    for user in entities.get("PolicyUsers", []):
        changes.append(perform(ctx, phase, Change(what, "detach from user", user["UserName"]),
                               "iam:DetachUserPolicy", iam_w.detach_user_policy, UserName=user["UserName"],
                               PolicyArn=arn))
    for group in entities.get("PolicyGroups", []):
        changes.append(perform(ctx, phase, Change(what, "detach from group", group["GroupName"]),
                               "iam:DetachGroupPolicy", iam_w.detach_group_policy,
                               GroupName=group["GroupName"], PolicyArn=arn))
    versions = call(ctx, "iam:ListPolicyVersions", iam_r.list_policy_versions, PolicyArn=arn)["Versions"]
    for version in versions:
        if not version["IsDefaultVersion"]:
            changes.append(perform(ctx, phase, Change(what, "delete a version of", version["VersionId"]),
                                   "iam:DeletePolicyVersion", iam_w.delete_policy_version, PolicyArn=arn,
                                   VersionId=version["VersionId"]))
    changes.append(perform(ctx, phase, Change(what, "delete"), "iam:DeletePolicy", iam_w.delete_policy,
                           PolicyArn=arn))
    return changes


def _show_tags(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())
