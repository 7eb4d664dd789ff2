"""Phase ``storage``: the S3 bucket for MLflow artifacts and the IRSA roles that reach it.

What it converges (AWS only: no eksctl, kubectl or kubeconfig):

* an S3 bucket (``storage.bucket``, or derived from cluster, account and region) with
  versioning, default encryption (SSE-S3, or SSE-KMS with ``storage.kms_key_id``), all four
  public-access blocks, a bucket policy statement denying requests without TLS, the tags
  ``kservectl.io/cluster=<cluster>`` and ``kservectl.io/component=storage``, and a lifecycle
  rule expiring noncurrent versions after ``storage.noncurrent_version_days`` (0: none);
* two least-privilege policies scoped to the artifact prefix (``s3://<bucket>/mlflow-artifacts/``):
  read-only for the model servers, read-write for MLflow;
* two IRSA roles trusting the cluster's IAM OIDC provider for exactly one service account each
  (``<namespaces.models>/kservectl-model-server`` and ``<namespaces.mlflow>/mlflow``).

The two ServiceAccount manifests are a separate Kubernetes step (``apply_service_accounts``);
``create`` runs it when the cluster's kubeconfig exists (or when asked), and the mlflow and
serve phases can run it themselves. Other phases find names and ARNs through
``service_accounts(ctx, live)``, ``bucket_name(ctx, account_id)`` and ``artifact_root``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kservectl import aws, iam, paths, validation
from kservectl.context import Context
from kservectl.errors import AwsError, ConfigError, KservectlError
from kservectl.iam import Change
from kservectl.phases.base import LiveValues, PhasePlan, Step
from kservectl.render import PLACEHOLDER_PREFIX, Renderer, placeholder

PHASE = "storage"
ARTIFACT_PREFIX = "mlflow-artifacts"  # MLflow's own name for proxied artifacts (mlflow-artifacts:/)
MODEL_SERVER = "model-server"
MLFLOW = "mlflow"
MODEL_SERVER_SA = "kservectl-model-server"
MLFLOW_SA = "mlflow"
TLS_SID = "DenyInsecureTransport"
LIFECYCLE_RULE_ID = "kservectl-expire-noncurrent-versions"
BUCKET_NAME_LIMIT = 63
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}

FILES = {
    "model-read-policy": "model-read-policy.json",
    "mlflow-artifacts-policy": "mlflow-artifacts-policy.json",
    "bucket-policy": "bucket-policy.json",
}
POLICY_FILES = {MODEL_SERVER: FILES["model-read-policy"], MLFLOW: FILES["mlflow-artifacts-policy"]}


_BUCKET_MISSING = ("404", "NoSuchBucket", "NotFound")
_BUCKET_FORBIDDEN = ("403", "AccessDenied", "Forbidden")
_BUCKET_ELSEWHERE = ("301", "PermanentRedirect", "AuthorizationHeaderMalformed",
                     "IllegalLocationConstraintException")


class MissingPrerequisite(KservectlError):
    """Something another phase creates (the EKS cluster, its OIDC provider) is not there yet."""


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class IrsaServiceAccount:
    """A Kubernetes service account, the IAM role it assumes and the policy that role holds."""

    component: str  # model-server | mlflow
    namespace: str
    name: str
    role_name: str
    role_arn: str
    policy_name: str
    policy_arn: str
    policy_template: str
    description: str
    annotations: Mapping[str, str] = field(default_factory=dict)  # besides eks.amazonaws.com/role-arn

    @property
    def subject(self) -> str:
        return iam.service_account_subject(self.namespace, self.name)

    def as_dict(self) -> dict[str, str]:
        return {"component": self.component, "namespace": self.namespace, "name": self.name,
                "role_name": self.role_name, "role_arn": self.role_arn, "policy_name": self.policy_name,
                "policy_arn": self.policy_arn}


def derive_bucket_name(cluster: str, account_id: str, region: str) -> str:
    """``kservectl-<cluster>-<account>-<region>``, lowercased. When that is longer than 63
    characters, or lowercasing lost information, the cluster part is cut and a hash of the
    full cluster name is added, so the result is deterministic, unique per cluster and valid."""
    base = cluster.lower()
    name = f"kservectl-{base}-{account_id}-{region}"
    if len(name) > BUCKET_NAME_LIMIT or base != cluster:
        digest = hashlib.sha256(cluster.encode("utf-8")).hexdigest()[:8]
        room = BUCKET_NAME_LIMIT - len(f"kservectl--{digest}-{account_id}-{region}")
        name = f"kservectl-{base[:room].rstrip('-')}-{digest}-{account_id}-{region}"
    if not account_id.startswith(PLACEHOLDER_PREFIX):
        validation.bucket_name("storage.bucket", name)
    return name


def bucket_name(ctx: Context, account_id: str) -> str:
    """The artifact bucket: ``storage.bucket`` or the derived name."""
    return ctx.config.storage.bucket or derive_bucket_name(ctx.cluster, account_id, ctx.region)


def bucket_arn(ctx: Context, bucket: str) -> str:
    return f"arn:{iam.partition(ctx.region)}:s3:::{bucket}"


def artifact_root(ctx: Context, account_id: str) -> str:
    """Where MLflow keeps artifacts (its ``--artifacts-destination``) and KServe reads models."""
    return f"s3://{bucket_name(ctx, account_id)}/{ARTIFACT_PREFIX}"


def service_accounts(ctx: Context, live: LiveValues) -> dict[str, IrsaServiceAccount]:
    """The two IRSA service accounts, by component (``model-server``, ``mlflow``)."""
    account, region, cluster = live.account_id, ctx.region, ctx.cluster
    ns = ctx.config.namespaces

    def make(component: str, namespace: str, name: str, policy_suffix: str, template: str, description: str,
             annotations: Mapping[str, str]) -> IrsaServiceAccount:
        role = iam.resource_name(cluster, component, iam.ROLE_NAME_LIMIT)
        policy = iam.resource_name(cluster, policy_suffix, iam.POLICY_NAME_LIMIT)
        return IrsaServiceAccount(
            component=component, namespace=namespace, name=name, role_name=role,
            role_arn=iam.role_arn(account, role, region), policy_name=policy,
            policy_arn=iam.policy_arn(account, policy, region), policy_template=template,
            description=description, annotations=dict(annotations),
        )

    return {
        # KServe reads s3:// URIs with region only: no s3-endpoint next to role-arn (kserve#3482)
        MODEL_SERVER: make(MODEL_SERVER, ns.models, MODEL_SERVER_SA, "model-read",
                           "storage/model-read-policy.json.j2",
                           f"kservectl {cluster}: KServe model servers read model artifacts",
                           {"serving.kserve.io/s3-region": region}),
        MLFLOW: make(MLFLOW, ns.mlflow, MLFLOW_SA, "mlflow-artifacts",
                     "storage/mlflow-artifacts-policy.json.j2",
                     f"kservectl {cluster}: MLflow reads and writes artifacts", {}),
    }


def owner_tags(ctx: Context) -> dict[str, str]:
    return iam.owner_tags(ctx.cluster, PHASE)


# --------------------------------------------------------------------------- documents


def check_kms_key_id(value: str) -> None:
    """``storage.kms_key_id`` must be a key id, key ARN, ``alias/<name>`` or alias ARN."""
    validation.kms_key_or_empty("storage.kms_key_id", value)


def planned_kms_key_arn(ctx: Context, live: LiveValues) -> str | None:
    """The KMS key ARN as far as it is known without a call (aliases resolve only live)."""
    value = ctx.config.storage.kms_key_id
    check_kms_key_id(value)
    if not value:
        return None
    if validation.KMS_KEY_ARN.match(value):
        return value
    if validation.KMS_KEY_ID.match(value):
        return f"arn:{iam.partition(ctx.region)}:kms:{ctx.region}:{live.account_id}:key/{value}"
    return placeholder("kms-key-arn")


def resolve_kms_key_arn(ctx: Context) -> str | None:
    """The configured key's ARN, from KMS DescribeKey (works for ids, ARNs and aliases)."""
    value = ctx.config.storage.kms_key_id
    check_kms_key_id(value)
    if not value:
        return None
    kms = ctx.aws.client("kms")
    try:
        meta = iam.call(ctx, "kms:DescribeKey", kms.describe_key, KeyId=value)["KeyMetadata"]
    except AwsError as exc:
        if exc.code == "NotFoundException":
            raise ConfigError("storage.kms_key_id", value, f"no such KMS key in {ctx.region}") from exc
        raise
    return meta["Arn"]


def policy_document(ctx: Context, sa: IrsaServiceAccount, bucket: str, kms_key_arn: str | None,
                    renderer: Renderer | None = None) -> dict[str, Any]:
    text = (renderer or Renderer()).render(sa.policy_template, {
        "bucket_arn": bucket_arn(ctx, bucket), "prefix": ARTIFACT_PREFIX, "kms_key_arn": kms_key_arn or "",
    })
    return json.loads(text)


def trust_document(ctx: Context, sa: IrsaServiceAccount, live: LiveValues,
                   renderer: Renderer | None = None) -> dict[str, Any]:
    provider_arn = iam.oidc_provider_arn(live.account_id, live.oidc_issuer, ctx.region)
    return iam.trust_policy(provider_arn, live.oidc_issuer, sa.namespace, sa.name, renderer)


def bucket_policy(ctx: Context, bucket: str, renderer: Renderer | None = None) -> dict[str, Any]:
    text = (renderer or Renderer()).render("storage/bucket-policy.json.j2",
                                          {"bucket_arn": bucket_arn(ctx, bucket), "sid": TLS_SID})
    return json.loads(text)


def service_account_manifest(ctx: Context, sa: IrsaServiceAccount, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render("storage/serviceaccount.yaml.j2", {
        "name": sa.name, "namespace": sa.namespace, "component": sa.component, "cluster": ctx.cluster,
        "role_arn": sa.role_arn, "extra_annotations": dict(sa.annotations),
    })


def service_account_manifests(ctx: Context, live: LiveValues) -> list[dict[str, Any]]:
    """The ServiceAccount objects (parsed), for phases that apply them themselves."""
    import yaml

    return [yaml.safe_load(service_account_manifest(ctx, sa)) for sa in service_accounts(ctx, live).values()]


def render(ctx: Context, live: LiveValues, kms_key_arn: str | None = None) -> dict[str, str]:
    """Every file of this phase: file name -> text (policies as pretty JSON)."""
    renderer = Renderer()
    bucket = bucket_name(ctx, live.account_id)
    sas = service_accounts(ctx, live)
    files = {
        POLICY_FILES[component]: iam.dumps(policy_document(ctx, sa, bucket, kms_key_arn, renderer))
        for component, sa in sas.items()
    }
    files[FILES["bucket-policy"]] = iam.dumps(bucket_policy(ctx, bucket, renderer))
    for component, sa in sas.items():
        files[f"{component}-trust.json"] = iam.dumps(trust_document(ctx, sa, live, renderer))
    for component, sa in sas.items():
        files[f"serviceaccount-{component}.yaml"] = service_account_manifest(ctx, sa, renderer)
    return files


# --------------------------------------------------------------------------- plan


def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    s = ctx.config.storage
    bucket = bucket_name(ctx, live.account_id)
    sas = service_accounts(ctx, live)
    kms = planned_kms_key_arn(ctx, live)
    encryption = f"SSE-KMS ({s.kms_key_id})" if kms else "SSE-S3"
    lifecycle = (f"expire noncurrent versions after {s.noncurrent_version_days} days"
                 if s.noncurrent_version_days else "keep noncurrent versions")
    sa_files = tuple(f"{PHASE}/serviceaccount-{c}.yaml" for c in sas)
    steps = [
        Step(PHASE, "read the account id", "aws", calls=("sts:GetCallerIdentity",)),
        Step(PHASE, f"read the OIDC issuer of cluster {ctx.cluster} and find its IAM OIDC provider", "aws",
             calls=("eks:DescribeCluster", "iam:ListOpenIDConnectProviders")),
        Step(PHASE, f"create the artifact bucket s3://{bucket} in {ctx.region}", "aws",
             calls=("s3:HeadBucket", "s3:CreateBucket")),
        Step(PHASE, f"converge the bucket: versioning, {encryption}, all public-access blocks, "
             f"TLS-only policy, {lifecycle}, tag kservectl.io/cluster={ctx.cluster}", "aws",
             calls=("s3:GetBucketTagging/PutBucketTagging", "s3:GetBucketVersioning/PutBucketVersioning",
                    "s3:GetBucketEncryption/PutBucketEncryption",
                    "s3:GetPublicAccessBlock/PutPublicAccessBlock", "s3:GetBucketPolicy/PutBucketPolicy",
                    "s3:GetBucketLifecycleConfiguration/PutBucketLifecycleConfiguration"),
             files=(f"{PHASE}/{FILES['bucket-policy']}",)),
    ]
    if s.kms_key_id:
        steps.insert(2, Step(PHASE, f"resolve the KMS key {s.kms_key_id}", "aws", calls=("kms:DescribeKey",)))
    for component, sa in sas.items():
        steps.append(Step(PHASE, f"ensure the {component} policy {sa.policy_name}", "aws",
                          calls=("iam:GetPolicy", "iam:CreatePolicy | iam:CreatePolicyVersion",
                                 "iam:TagPolicy"),
                          files=(f"{PHASE}/{POLICY_FILES[component]}",)))
    for component, sa in sas.items():
        steps.append(Step(PHASE, f"ensure the IRSA role {sa.role_name} for {sa.namespace}/{sa.name}", "aws",
                          calls=("iam:GetRole", "iam:CreateRole | iam:UpdateAssumeRolePolicy", "iam:TagRole",
                                 "iam:AttachRolePolicy"),
                          files=(f"{PHASE}/{component}-trust.json",)))
    steps.append(Step(PHASE, "apply the ServiceAccounts (when the cluster's kubeconfig exists)", "kube",
                      calls=tuple(f"apply ServiceAccount {sa.namespace}/{sa.name}" for sa in sas.values()),
                      files=sa_files))
    return PhasePlan(
        phase=PHASE,
        summary=f"S3 bucket s3://{bucket} ({encryption}, versioned, private, TLS only) and IRSA roles "
        f"{', '.join(sa.role_name for sa in sas.values())}",
        files=render(ctx, live, kms),
        steps=steps,
    )


# --------------------------------------------------------------------------- live values


def account_id(ctx: Context) -> str:
    sts = ctx.aws.client("sts")
    return iam.call(ctx, "sts:GetCallerIdentity", sts.get_caller_identity)["Account"]


@dataclass(frozen=True)
class Prerequisites:
    live: LiveValues
    provider_arn: str | None
    problem: MissingPrerequisite | None = None


def find_prerequisites(ctx: Context, account: str | None = None) -> Prerequisites:
    """The account id, the cluster's OIDC issuer (EKS DescribeCluster) and its IAM OIDC provider.
    Never raises for a missing cluster or provider: ``problem`` says what is missing."""
    account = account or account_id(ctx)
    live = LiveValues(account_id=account)
    run_cluster = f"kservectl cluster create --cluster {ctx.cluster} --region {ctx.region}"
    eks = ctx.aws.client("eks")
    found = iam.read(ctx, "eks:DescribeCluster", eks.describe_cluster, missing=("ResourceNotFoundException",),
                     name=ctx.cluster)
    if found is None:
        return Prerequisites(live, None, MissingPrerequisite(
            f"EKS cluster {ctx.cluster!r} does not exist in {ctx.region}: "
            "no IRSA role can trust its OIDC provider yet",
            hint=f"create it first: {run_cluster}"))
    cluster = found["cluster"]
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
    if not issuer:
        return Prerequisites(live, None, MissingPrerequisite(
            f"EKS cluster {ctx.cluster!r} has no OIDC issuer yet (status {cluster.get('status', 'unknown')})",
            hint="wait until the cluster is ACTIVE, then run this again"))
    live = replace(live, oidc_issuer=issuer)
    listed = iam.call(ctx, "iam:ListOpenIDConnectProviders",
                      ctx.aws.client("iam").list_open_id_connect_providers)["OpenIDConnectProviderList"]
    suffix = f":oidc-provider/{iam.oidc_provider(issuer)}"
    arns = [p["Arn"] for p in listed if p["Arn"].endswith(suffix)]
    if not arns:
        return Prerequisites(live, None, MissingPrerequisite(
            f"cluster {ctx.cluster!r} has no IAM OIDC provider for its issuer {issuer}, "
            "so no IRSA role can trust it",
            hint=f"run: eksctl utils associate-iam-oidc-provider --cluster {ctx.cluster} "
            f"--region {ctx.region} --approve (clusters made by `kservectl cluster create` have one)"))
    return Prerequisites(live, arns[0])


def discover(ctx: Context) -> LiveValues:
    """Account id and OIDC issuer, or ``MissingPrerequisite`` naming what to run."""
    found = find_prerequisites(ctx)
    if found.problem:
        raise found.problem
    return found.live


# --------------------------------------------------------------------------- bucket state


@dataclass
class BucketState:
    name: str
    exists: bool
    region: str | None = None
    problem: str | None = None  # exists but unusable here (another account, another region)
    tags: dict[str, str] = field(default_factory=dict)
    versioning: str | None = None
    encryption: dict[str, Any] | None = None
    public_access_block: dict[str, bool] | None = None
    policy: dict[str, Any] | None = None
    lifecycle_rules: list[dict[str, Any]] | None = None

    @property
    def owner(self) -> str | None:
        return self.tags.get(iam.OWNER_TAG)


def read_bucket(ctx: Context, name: str, *, retry_if: iam.RetryIf = iam.transient) -> BucketState:
    """Everything kservectl manages on the bucket, read (and normalised) with read-only calls."""
    s3 = ctx.aws.client("s3")

    def read(operation: str, fn: Any, missing: str) -> Any:
        return iam.read(ctx, operation, fn, missing=(missing,), retry_if=retry_if, Bucket=name)

    try:
        head = iam.call(ctx, "s3:HeadBucket", s3.head_bucket, retry_if=retry_if, Bucket=name)
    except AwsError as exc:
        if exc.code in _BUCKET_MISSING:
            return BucketState(name, exists=False)
        if exc.code in _BUCKET_FORBIDDEN:
            return BucketState(name, exists=True, problem=(
                f"S3 bucket {name} exists but this AWS account cannot read it (bucket names are global: "
                "another account probably owns it)"))
        if exc.code in _BUCKET_ELSEWHERE:
            return BucketState(name, exists=True,
                               problem=f"S3 bucket {name} exists in another region than {ctx.region}")
        raise
    region = head.get("BucketRegion") or ctx.region
    if region != ctx.region:
        return BucketState(name, exists=True, region=region,
                           problem=f"S3 bucket {name} exists in {region}, not in {ctx.region}")
    state = BucketState(name, exists=True, region=region)
    tagging = read("s3:GetBucketTagging", s3.get_bucket_tagging, "NoSuchTagSet")
    state.tags = iam.tag_dict(tagging["TagSet"] if tagging else [])
    versioning = iam.call(ctx, "s3:GetBucketVersioning", s3.get_bucket_versioning, retry_if=retry_if,
                          Bucket=name)
    state.versioning = versioning.get("Status")
    enc = read("s3:GetBucketEncryption", s3.get_bucket_encryption,
               "ServerSideEncryptionConfigurationNotFoundError")
    if enc:
        rule = (enc["ServerSideEncryptionConfiguration"].get("Rules") or [{}])[0]
        state.encryption = {**rule.get("ApplyServerSideEncryptionByDefault", {}),
                            "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False))}
    pab = read("s3:GetPublicAccessBlock", s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration")
    if pab:
        block = pab["PublicAccessBlockConfiguration"]
        state.public_access_block = {key: bool(block.get(key)) for key in PUBLIC_ACCESS_BLOCK}
    policy = read("s3:GetBucketPolicy", s3.get_bucket_policy, "NoSuchBucketPolicy")
    if policy:
        state.policy = json.loads(policy["Policy"])
    lifecycle = read("s3:GetBucketLifecycleConfiguration", s3.get_bucket_lifecycle_configuration,
                     "NoSuchLifecycleConfiguration")
    if lifecycle:
        state.lifecycle_rules = lifecycle.get("Rules") or []
    return state


def desired_encryption(kms_key_arn: str | None) -> dict[str, Any]:
    if kms_key_arn:
        return {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_arn, "BucketKeyEnabled": True}
    return {"SSEAlgorithm": "AES256"}


def _encryption_ok(current: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    if not current or current.get("SSEAlgorithm") != desired["SSEAlgorithm"]:
        return False
    if desired["SSEAlgorithm"] == "AES256":
        return True
    same_key = current.get("KMSMasterKeyID") == desired["KMSMasterKeyID"]
    return same_key and current.get("BucketKeyEnabled") is True


def _describe_encryption(enc: dict[str, Any] | None) -> str:
    if not enc:
        return "none"
    if enc.get("SSEAlgorithm") == "AES256":
        return "SSE-S3"
    return f"SSE-KMS ({enc.get('KMSMasterKeyID', 'aws/s3 key')})"


def tls_statement(policy: Mapping[str, Any] | None) -> dict[str, Any] | None:
    for statement in (policy or {}).get("Statement", []):
        if statement.get("Sid") == TLS_SID:
            return statement
    return None


def lifecycle_rule(days: int) -> dict[str, Any]:
    return {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days}}


def _our_rule(rules: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return next((r for r in rules or [] if r.get("ID") == LIFECYCLE_RULE_ID), None)


def noncurrent_days(rules: list[dict[str, Any]] | None) -> int | None:
    rule = _our_rule(rules)
    if rule is None or rule.get("Status") != "Enabled":
        return None
    return (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays")


def _rule_ok(rule: dict[str, Any] | None, days: int) -> bool:
    if rule is None:
        return False
    whole_bucket = rule.get("Filter") in (None, {}, {"Prefix": ""}) and not rule.get("Prefix")
    other_actions = any(rule.get(k) for k in ("Expiration", "Transitions", "NoncurrentVersionTransitions",
                                               "AbortIncompleteMultipartUpload"))
    return (rule.get("Status") == "Enabled" and whole_bucket and not other_actions
            and (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays") == days)


# --------------------------------------------------------------------------- converge


def _check_bucket_owner(ctx: Context, state: BucketState) -> None:
    if state.problem:
        raise iam.OwnershipError(state.problem, hint="set storage.bucket to a name of your own")
    problem = iam.ownership_problem(f"S3 bucket {state.name}", state.tags, ctx.cluster)
    if problem:
        tag = f"{iam.OWNER_TAG}={ctx.cluster}"
        raise iam.OwnershipError(problem, hint=(
            f"kservectl changes only buckets tagged {tag}; set storage.bucket to another name, "
            f"or tag this one {tag} to let kservectl manage it"))


def ensure_bucket(ctx: Context, state: BucketState, kms_key_arn: str | None) -> list[Change]:
    """Create the bucket if needed, then converge each managed property on its own: read,
    compare, change only what differs (user tags, statements and lifecycle rules are kept)."""
    name = state.name
    what = f"S3 bucket {name}"
    s3w = ctx.aws.client("s3", fail_fast=True)
    changes: list[Change] = []
    tags = owner_tags(ctx)
    retry_if: iam.RetryIf = iam.transient
    if not state.exists:
        config: dict[str, Any] = {"Tags": iam.tag_list(tags)}  # tagged from birth where S3 supports it
        if ctx.region != "us-east-1":  # us-east-1 takes no LocationConstraint
            config["LocationConstraint"] = ctx.region
        try:
            changes.append(iam.perform(ctx, PHASE, Change(what, "create", f"in {ctx.region}"),
                                       "s3:CreateBucket", s3w.create_bucket, Bucket=name,
                                       CreateBucketConfiguration=config))
        except AwsError as exc:
            if exc.code == "BucketAlreadyExists":  # taken by another account since we looked
                raise iam.OwnershipError(f"S3 bucket name {name} is taken by another AWS account",
                                         hint="set storage.bucket to a name of your own") from exc
            raise
        if ctx.dry_run:
            state = BucketState(name, exists=False)  # nothing to read: every property will be set
        else:
            # S3 may not know a new bucket everywhere at once: a 404 right after creation is retried
            retry_if = iam.settling("404", "NoSuchBucket")
            state = read_bucket(ctx, name, retry_if=retry_if)

    def put(change: Change, operation: str, fn: Any, **kwargs: Any) -> None:
        changes.append(iam.perform(ctx, PHASE, change, operation, fn, retry_if=retry_if, Bucket=name,
                                   **kwargs))

    absent = iam.missing_tags(state.tags, tags)
    if absent and state.exists:
        put(Change(what, "tag", _show_tags(absent)), "s3:PutBucketTagging", s3w.put_bucket_tagging,
            Tagging={"TagSet": iam.tag_list({**state.tags, **tags})})
    if state.versioning != "Enabled":
        put(Change(what, "enable versioning on"), "s3:PutBucketVersioning", s3w.put_bucket_versioning,
            VersioningConfiguration={"Status": "Enabled"})
    encryption = desired_encryption(kms_key_arn)
    if not _encryption_ok(state.encryption, encryption):
        rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {
            k: v for k, v in encryption.items() if k != "BucketKeyEnabled"}}
        if kms_key_arn:
            rule["BucketKeyEnabled"] = True
        put(Change(what, "set default encryption on", _describe_encryption(encryption)),
            "s3:PutBucketEncryption", s3w.put_bucket_encryption,
            ServerSideEncryptionConfiguration={"Rules": [rule]})
    if state.public_access_block != PUBLIC_ACCESS_BLOCK:
        put(Change(what, "block all public access to"), "s3:PutPublicAccessBlock",
            s3w.put_public_access_block, PublicAccessBlockConfiguration=dict(PUBLIC_ACCESS_BLOCK))
    ours = bucket_policy(ctx, name)["Statement"][0]
    current = tls_statement(state.policy)
    if current is None or iam.canonical(current) != iam.canonical(ours):
        others = [s for s in (state.policy or {}).get("Statement", []) if s.get("Sid") != TLS_SID]
        document = {**{k: v for k, v in (state.policy or {}).items() if k == "Id"},
                    "Version": "2012-10-17", "Statement": [*others, ours]}
        put(Change(what, "deny non-TLS requests to", f"policy statement {TLS_SID}"), "s3:PutBucketPolicy",
            s3w.put_bucket_policy, Policy=json.dumps(document))

    days = ctx.config.storage.noncurrent_version_days
    rules = state.lifecycle_rules or []
    rule_now = _our_rule(rules)
    other_rules = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
    if days > 0 and not _rule_ok(rule_now, days):
        put(Change(what, "expire noncurrent versions in", f"after {days} days"),
            "s3:PutBucketLifecycleConfiguration", s3w.put_bucket_lifecycle_configuration,
            LifecycleConfiguration={"Rules": [*other_rules, lifecycle_rule(days)]})
    elif days == 0 and rule_now is not None:
        change = Change(what, "stop expiring noncurrent versions in", "storage.noncurrent_version_days is 0")
        if other_rules:
            put(change, "s3:PutBucketLifecycleConfiguration", s3w.put_bucket_lifecycle_configuration,
                LifecycleConfiguration={"Rules": other_rules})
        else:
            put(change, "s3:DeleteBucketLifecycle", s3w.delete_bucket_lifecycle)
    return changes


def ensure_policies(ctx: Context, account_id: str, bucket: str, kms_key_arn: str | None,
                    sas: Mapping[str, Any]) -> dict[str, list[Change]]:
    """Converge each ServiceAccount's IAM policy (it names only the bucket, so it needs no
    cluster: ``up`` makes them while eksctl creates it). The changes, under the keys of ``sas``.
    The caller has checked the policies' ownership."""
    out: dict[str, list[Change]] = {}
    for key, sa in sas.items():
        _, out[key] = iam.ensure_policy(
            ctx, account_id=account_id, name=sa.policy_name,
            document=policy_document(ctx, sa, bucket, kms_key_arn), tags=owner_tags(ctx),
            description=sa.description, phase=PHASE)
    return out


def apply(ctx: Context) -> dict[str, Any]:
    """Converge the bucket, the policies and the IRSA roles (AWS only). Reads everything and
    checks ownership before the first change; a second run makes no mutating call. With
    ``ctx.dry_run`` it reports what it would change; a missing cluster or OIDC provider is then
    a warning (the roles are shown with a placeholder issuer) instead of an error."""
    check_kms_key_id(ctx.config.storage.kms_key_id)
    found = find_prerequisites(ctx)
    if found.problem:
        if not ctx.dry_run:
            raise found.problem
        ctx.reporter.warn(found.problem.one_line())
    live = found.live
    bucket = bucket_name(ctx, live.account_id)
    sas = service_accounts(ctx, live)

    # check before you mutate: everything kservectl would touch must be absent or this cluster's
    state = read_bucket(ctx, bucket)
    if state.exists:
        _check_bucket_owner(ctx, state)
    for sa in sas.values():
        iam.check_policy_owner(ctx, sa.policy_arn)
        iam.check_role_owner(ctx, sa.role_name)
    kms_key_arn = resolve_kms_key_arn(ctx)

    changes = ensure_bucket(ctx, state, kms_key_arn)
    tags = owner_tags(ctx)
    policy_changes = ensure_policies(ctx, live.account_id, bucket, kms_key_arn, sas)
    for key, sa in sas.items():
        changes += policy_changes[key]
        _, role_changes, created = iam.ensure_role(
            ctx, account_id=live.account_id, name=sa.role_name, trust=trust_document(ctx, sa, live),
            tags=tags, description=f"{sa.description} (IRSA for {sa.namespace}/{sa.name})", phase=PHASE)
        changes += role_changes
        changes += iam.ensure_attached(ctx, sa.role_name, sa.policy_arn,
                                       just_created=created or bool(policy_changes[key]), phase=PHASE)
    if not changes:
        ctx.reporter.step(PHASE, f"bucket {bucket}, policies and roles already as desired: nothing to change")
    return {
        "cluster": ctx.cluster,
        "region": ctx.region,
        "account_id": live.account_id,
        "dry_run": ctx.dry_run,
        "bucket": bucket,
        "artifact_root": artifact_root(ctx, live.account_id),
        "oidc_issuer": live.oidc_issuer,
        "blocked_by": found.problem.one_line() if found.problem else None,
        "service_accounts": [sa.as_dict() for sa in sas.values()],
        "changes": [c.as_dict() for c in changes],
    }


def apply_service_accounts(ctx: Context, live: LiveValues) -> list[dict[str, str]]:
    """Apply the namespaces and the two IRSA ServiceAccounts (Kubernetes only)."""
    results: list[dict[str, str]] = []
    seen: set[str] = set()
    for doc in service_account_manifests(ctx, live):
        meta = doc["metadata"]
        namespace = meta["namespace"]
        what = f"ServiceAccount {namespace}/{meta['name']}"
        if ctx.dry_run:
            ctx.reporter.step(PHASE, f"would apply {what}")
            results.append({"resource": what, "result": "would apply"})
            continue
        if namespace not in seen:
            seen.add(namespace)
            ctx.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        result = ctx.kube.apply(doc)
        if result != "unchanged":
            ctx.reporter.step(PHASE, f"{result} {what}")
        results.append({"resource": what, "result": result})
    return results


def create(ctx: Context, *, with_service_accounts: bool | None = None) -> dict[str, Any]:
    """``storage create``: ``apply`` (AWS), then the ServiceAccounts. ``with_service_accounts``:
    True applies them (a kubeconfig is needed), False skips them, None applies them only when
    the cluster's kubeconfig exists (``$KSERVECTL_HOME/<cluster>/kubeconfig``)."""
    kubeconfig = ctx.kubeconfig or paths.kubeconfig_path(ctx.cluster)
    if with_service_accounts and not ctx.dry_run and not kubeconfig.is_file():
        raise MissingPrerequisite(
            f"applying the ServiceAccounts needs the cluster's kubeconfig at {kubeconfig}",
            hint="`kservectl cluster create` writes it; or pass --no-service-accounts")
    result = apply(ctx)
    live = LiveValues(account_id=result["account_id"], oidc_issuer=result["oidc_issuer"])
    if with_service_accounts is False:
        result["service_accounts_applied"] = []
        result["service_accounts_skipped"] = "--no-service-accounts"
    elif with_service_accounts is None and not kubeconfig.is_file():
        reason = (f"no kubeconfig at {kubeconfig} yet; the mlflow and serve phases apply them, "
                  "or run `kservectl storage create` again after `kservectl cluster create`")
        ctx.reporter.info(f"ServiceAccounts not applied: {reason}")
        result["service_accounts_applied"] = []
        result["service_accounts_skipped"] = reason
    else:
        result["service_accounts_applied"] = apply_service_accounts(ctx, live)
        result["service_accounts_skipped"] = None
    return result


# --------------------------------------------------------------------------- status


def _trust_values(trust: Mapping[str, Any] | None, suffix: str) -> list[str]:
    values: list[str] = []
    for statement in (trust or {}).get("Statement", []):
        for tests in (statement.get("Condition") or {}).values():
            for key, value in tests.items():
                if key.endswith(suffix):
                    values += value if isinstance(value, list) else [value]
    return values


def status(ctx: Context) -> dict[str, Any]:
    """The bucket and each managed property, the policies and the roles with their trust
    subjects; read-only. ``ok`` is true when everything exists, is this cluster's and matches."""
    found = find_prerequisites(ctx)
    live = found.live
    bucket = bucket_name(ctx, live.account_id)
    state = read_bucket(ctx, bucket)
    kms_key_arn = resolve_kms_key_arn(ctx)
    days = ctx.config.storage.noncurrent_version_days
    bucket_data: dict[str, Any] = {"name": bucket, "exists": state.exists, "problem": state.problem}
    if state.exists and not state.problem:
        ours = _our_rule(state.lifecycle_rules)
        tls = tls_statement(state.policy)
        bucket_data.update({
            "region": state.region,
            "owner": state.owner,
            "versioning": state.versioning or "Disabled",
            "encryption": _describe_encryption(state.encryption),
            "public_access_blocked": state.public_access_block == PUBLIC_ACCESS_BLOCK,
            "tls_only": tls is not None
            and iam.canonical(tls) == iam.canonical(bucket_policy(ctx, bucket)["Statement"][0]),
            "noncurrent_version_days": noncurrent_days(state.lifecycle_rules),
            "tags": state.tags,
        })
        bucket_data["ok"] = (
            state.owner == ctx.cluster and state.versioning == "Enabled"
            and _encryption_ok(state.encryption, desired_encryption(kms_key_arn))
            and bucket_data["public_access_blocked"] and bucket_data["tls_only"]
            and (_rule_ok(ours, days) if days else ours is None)
        )
    else:
        bucket_data["ok"] = False
    policies, roles = [], []
    for sa in service_accounts(ctx, live).values():
        policy = iam.get_policy(ctx, sa.policy_arn)
        entry: dict[str, Any] = {"component": sa.component, "name": sa.policy_name, "arn": sa.policy_arn,
                                 "exists": policy is not None}
        if policy is not None:
            entry["owner"] = iam.tag_dict(policy.get("Tags")).get(iam.OWNER_TAG)
            entry["matches"] = iam.same_document(iam.policy_document(ctx, policy),
                                                 policy_document(ctx, sa, bucket, kms_key_arn))
        policies.append(entry)
        role = iam.get_role(ctx, sa.role_name)
        rentry: dict[str, Any] = {"component": sa.component, "name": sa.role_name, "arn": sa.role_arn,
                                  "service_account": f"{sa.namespace}/{sa.name}", "exists": role is not None}
        if role is not None:
            trust = iam.parse_document(role.get("AssumeRolePolicyDocument") or {})
            rentry.update({
                "arn": role["Arn"],
                "owner": iam.tag_dict(role.get("Tags")).get(iam.OWNER_TAG),
                "trust_subjects": _trust_values(trust, ":sub"),
                "trust_audiences": _trust_values(trust, ":aud"),
                "attached_policies": [a.rsplit("/", 1)[-1] for a in iam.attached_policies(ctx, sa.role_name)],
                "trust_matches": (iam.same_document(trust, trust_document(ctx, sa, live))
                                  if found.problem is None else None),
            })
        roles.append(rentry)
    policy_of = {p["component"]: p["name"] for p in policies}
    ok = (bucket_data["ok"] and found.problem is None
          and all(p["exists"] and p.get("owner") == ctx.cluster and p.get("matches") for p in policies)
          and all(r["exists"] and r.get("owner") == ctx.cluster and r.get("trust_matches")
                  and policy_of[r["component"]] in r.get("attached_policies", []) for r in roles))
    return {
        "cluster": ctx.cluster,
        "region": ctx.region,
        "account_id": live.account_id,
        "ok": bool(ok),
        "oidc": {"issuer": None if live.oidc_issuer.startswith(PLACEHOLDER_PREFIX) else live.oidc_issuer,
                 "provider_arn": found.provider_arn,
                 "problem": found.problem.one_line() if found.problem else None},
        "artifact_root": artifact_root(ctx, live.account_id),
        "bucket": bucket_data,
        "policies": policies,
        "roles": roles,
    }


# --------------------------------------------------------------------------- delete


def _bucket_versions(ctx: Context, bucket: str) -> tuple[list[dict[str, str]], int, int]:
    """Every object version and delete marker: (keys for DeleteObjects, versions, markers)."""
    s3 = ctx.aws.client("s3")
    paginator = s3.get_paginator("list_object_versions")
    keys: list[dict[str, str]] = []
    versions = markers = 0
    pages = aws.call("s3:ListObjectVersions", lambda: list(paginator.paginate(Bucket=bucket)))
    for page in pages:
        for item in page.get("Versions", []):
            keys.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            versions += 1
        for item in page.get("DeleteMarkers", []):
            keys.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            markers += 1
    return keys, versions, markers


def _empty_bucket(ctx: Context, bucket: str) -> list[Change]:
    keys, versions, markers = _bucket_versions(ctx, bucket)
    if not keys:
        return []
    what = f"S3 bucket {bucket}"
    change = Change(what, "empty", f"{versions} object versions and {markers} delete markers")
    ctx.reporter.step(PHASE, change.message(ctx.dry_run))
    if ctx.dry_run:
        return [change]
    s3w = ctx.aws.client("s3", fail_fast=True)
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start:start + DELETE_BATCH]
        answer = iam.call(ctx, "s3:DeleteObjects", s3w.delete_objects, Bucket=bucket,
                          Delete={"Objects": batch, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise AwsError("s3:DeleteObjects", first.get("Code", "Error"),
                           f"{len(errors)} of {len(batch)} versions in {bucket} were not deleted; first: "
                           f"{first.get('Key')} ({first.get('Message', '')})",
                           hint="check object lock, the bucket policy and your permissions; then retry")
    return [change]


def delete(ctx: Context, *, delete_data: bool = False) -> dict[str, Any]:
    """Delete the roles and policies this cluster owns; with ``delete_data`` also the bucket,
    after emptying every object version and delete marker, and only when the bucket carries
    this cluster's ownership tag (checked before anything is deleted)."""
    account = account_id(ctx)
    live = LiveValues(account_id=account)
    bucket = bucket_name(ctx, account)
    sas = service_accounts(ctx, live)
    state = read_bucket(ctx, bucket)
    if delete_data and state.exists:
        if state.problem:
            raise iam.OwnershipError(f"refusing to delete: {state.problem}", hint="nothing was deleted")
        problem = iam.ownership_problem(f"S3 bucket {bucket}", state.tags, ctx.cluster)
        if problem:
            raise iam.OwnershipError(f"refusing to delete: {problem}",
                                     hint="nothing was deleted; kservectl deletes only buckets tagged "
                                     f"{iam.OWNER_TAG}={ctx.cluster}")
    changes: list[Change] = []
    for sa in sas.values():
        changes += iam.delete_role(ctx, sa.role_name, phase=PHASE)
    for sa in sas.values():
        changes += iam.delete_policy(ctx, sa.policy_arn, phase=PHASE)
    what = f"S3 bucket {bucket}"
    if not state.exists:
        changes.append(Change(what, "skip", "does not exist"))
    elif not delete_data:
        reason = "its artifacts and models stay; `storage delete --delete-data --yes` deletes it"
        ctx.reporter.info(f"keeping {what}: {reason}")
        changes.append(Change(what, "keep", reason))
    else:
        changes += _delete_bucket(ctx, bucket)
    return {
        "cluster": ctx.cluster,
        "region": ctx.region,
        "account_id": account,
        "dry_run": ctx.dry_run,
        "bucket": bucket,
        "changes": [c.as_dict() for c in changes],
    }


def _delete_bucket(ctx: Context, bucket: str) -> list[Change]:
    s3w = ctx.aws.client("s3", fail_fast=True)
    changes = _empty_bucket(ctx, bucket)
    attempts = ctx.settings.aws_retry.attempts
    for attempt in range(1, attempts + 1):
        try:
            changes.append(iam.perform(ctx, PHASE, Change(f"S3 bucket {bucket}", "delete"), "s3:DeleteBucket",
                                       s3w.delete_bucket, Bucket=bucket))
            return changes
        except AwsError as exc:  # something wrote a new version meanwhile: empty again
            if exc.code != "BucketNotEmpty" or attempt == attempts:
                raise
            ctx.reporter.warn(f"bucket {bucket} is not empty yet; emptying it again "
                              f"(attempt {attempt + 1}/{attempts})")
            changes += _empty_bucket(ctx, bucket)
    return changes


def _show_tags(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())
