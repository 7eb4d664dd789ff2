"""Phase ``storage``: the artifact bucket, least-privilege policies and IRSA roles, asserted
through the real (moto) APIs; idempotency and convergence by counting mutating calls; delete
proves what it kept; the CLI verbs; the real executable against moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from kservectl import aws, config, iam, paths, validation
from kservectl.clock import FakeClock
from kservectl.context import Context
from kservectl.errors import AwsError
from kservectl.events import RecordingReporter
from kservectl.phases import storage
from kservectl.phases.base import LiveValues
from support.golden import assert_golden

REGION = "us-west-2"
ACCOUNT = "123456789012"
BUCKET = f"kservectl-demo-{ACCOUNT}-{REGION}"
LIVE = LiveValues(
    account_id=ACCOUNT,
    oidc_issuer="https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
)
KSERVECTL = Path(sys.executable).with_name("kservectl")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def tls_aware_bucket_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto enforces bucket policies but ignores their conditions, so the Deny for requests
    without TLS would deny every object call. Every request in these tests counts as TLS: a
    statement conditioned on aws:SecureTransport=false never applies."""
    from moto.s3.models import FakeBucket

    real = FakeBucket.get_permission

    def get_permission(self, action, resource):
        if self.policy is None:
            return real(self, action, resource)
        policy = json.loads(self.policy)
        kept = [
            s
            for s in policy.get("Statement", [])
            if (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") != "false"
        ]
        saved = self.policy
        self.policy = json.dumps({**policy, "Statement": kept}).encode() if kept else None
        try:
            return real(self, action, resource)
        finally:
            self.policy = saved

    monkeypatch.setattr(FakeBucket, "get_permission", get_permission)


_CLIENTS: dict[str, aws.AwsClients] = {}


@pytest.fixture(autouse=True)
def _fresh_clients():
    """Contexts of one test share their AWS clients (a new boto3 session costs most of a second
    of model loading); each test starts with new ones."""
    _CLIENTS.clear()
    yield
    _CLIENTS.clear()


def make_ctx(cluster: str = "demo", region: str = REGION, *, dry_run: bool = False, **flags) -> Context:
    cfg = config.load(env={}, flags={"cluster.name": cluster, "cluster.region": region, **flags}).config
    ctx = Context(config=cfg, clock=FakeClock(), reporter=RecordingReporter(), dry_run=dry_run)
    ctx.aws = _CLIENTS.setdefault(region, aws.AwsClients(region))
    ctx.aws.observers.clear()  # calls are counted per context
    return ctx


def mutating_calls(ctx: Context) -> list[str]:
    seen: list[str] = []
    ctx.aws.observers.append(
        lambda service, op: seen.append(f"{service}:{op}") if aws.is_mutating(op) else None
    )
    return seen


def make_cluster(name: str = "demo", region: str = REGION, *, provider: bool = True) -> str:
    """A fake EKS cluster and (optionally) its IAM OIDC provider; returns the issuer URL."""
    eks = boto3.client("eks", region_name=region)
    eks.create_cluster(
        name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={"subnetIds": []}
    )
    issuer = eks.describe_cluster(name=name)["cluster"]["identity"]["oidc"]["issuer"]
    if provider:
        try:
            boto3.client("iam", region_name=region).create_open_id_connect_provider(
                Url=issuer,
                ClientIDList=["sts.amazonaws.com"],
                ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            )
        except ClientError as exc:  # moto gives every cluster of a process the same issuer
            if exc.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
    return issuer


@pytest.fixture
def cluster(mock_aws) -> str:
    return make_cluster()


def s3(region: str = REGION):
    return boto3.client("s3", region_name=region)


def iam_client():
    return boto3.client("iam", region_name=REGION)


def client_error(code: str, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Op")


def failing_then(real, errors: list[ClientError]):
    def fn(**kwargs):
        if errors:
            raise errors.pop(0)
        return real(**kwargs)

    return fn


def assert_valid_trust_policy(schema_validator, doc) -> None:
    """Trust policies are resource-based: a Principal and no Resource."""
    assert all("Principal" in s and "Resource" not in s for s in doc["Statement"])
    schema_validator.assert_valid_iam_policy(doc, trust=True)


def s3_statements(doc):
    for statement in doc["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(a.startswith("s3:") for a in actions):
            yield statement, actions


def assert_least_privilege(doc, bucket: str = BUCKET) -> None:
    """No statement granting S3 actions has Resource "*" or reaches beyond this bucket."""
    for statement, _ in s3_statements(doc):
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for resource in resources:
            assert resource != "*" and "*" not in resource.split(":::")[0]
            assert resource == f"arn:aws:s3:::{bucket}" or resource.startswith(f"arn:aws:s3:::{bucket}/")


def default_document(arn: str):
    client = iam_client()
    policy = client.get_policy(PolicyArn=arn)["Policy"]
    return client.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"][
        "Document"
    ]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "cluster_name, region",
    [
        ("demo", "us-west-2"),
        ("Demo", "us-west-2"),
        ("a" * 100, "ap-southeast-7"),
        ("x" + "-" * 40 + "y", "us-gov-west-1"),
        ("ml-platform-production-cluster-01", "cn-northwest-1"),
    ],
)
def test_the_derived_bucket_name_is_always_valid_and_deterministic(cluster_name, region):
    name = storage.derive_bucket_name(cluster_name, ACCOUNT, region)
    validation.bucket_name("storage.bucket", name)  # raises if invalid
    assert len(name) <= 63
    assert name == storage.derive_bucket_name(cluster_name, ACCOUNT, region)
    assert name.startswith("kservectl-") and name.endswith(f"-{ACCOUNT}-{region}")


def test_clusters_differing_only_in_case_or_past_the_cut_get_different_buckets():
    assert storage.derive_bucket_name("demo", ACCOUNT, REGION) == BUCKET
    assert storage.derive_bucket_name("Demo", ACCOUNT, REGION) != BUCKET
    long_a, long_b = "a" * 60 + "1", "a" * 60 + "2"
    assert storage.derive_bucket_name(long_a, ACCOUNT, REGION) != storage.derive_bucket_name(
        long_b, ACCOUNT, REGION
    )


def test_a_configured_bucket_wins_and_names_are_offered_to_other_phases():
    ctx = make_ctx(**{"storage.bucket": "my-artifacts"})
    assert storage.bucket_name(ctx, ACCOUNT) == "my-artifacts"
    assert storage.artifact_root(ctx, ACCOUNT) == "s3://my-artifacts/mlflow-artifacts"
    sas = storage.service_accounts(make_ctx(), LIVE)
    assert {c: (sa.namespace, sa.name) for c, sa in sas.items()} == {
        "model-server": ("models", "kservectl-model-server"),
        "mlflow": ("mlflow", "mlflow"),
    }
    assert sas["mlflow"].role_arn == f"arn:aws:iam::{ACCOUNT}:role/kservectl/kservectl-demo-mlflow"


def test_a_malformed_kms_key_is_a_config_error_before_any_call(no_network):
    with pytest.raises(config.ConfigError, match="storage.kms_key_id"):
        storage.apply(make_ctx(**{"storage.kms_key_id": "not a key"}))


# --------------------------------------------------------------------------- rendering


def test_every_rendered_file_is_valid_and_matches_its_golden_file(schema_validator):
    files = storage.render(make_ctx(), LIVE)
    assert sorted(files) == [
        "bucket-policy.json",
        "mlflow-artifacts-policy.json",
        "mlflow-trust.json",
        "model-read-policy.json",
        "model-server-trust.json",
        "serviceaccount-mlflow.yaml",
        "serviceaccount-model-server.yaml",
    ]
    for name, text in files.items():
        assert_golden(f"storage/{name}", text)
        if name.endswith("-trust.json"):
            assert_valid_trust_policy(schema_validator, json.loads(text))
        elif name.endswith(".json"):
            schema_validator.assert_valid_iam_policy(json.loads(text))
            assert_least_privilege(json.loads(text))
        else:
            schema_validator.assert_all_valid(text)


def test_the_kserve_service_account_names_the_region_and_never_an_s3_endpoint():
    docs = {d["metadata"]["name"]: d for d in storage.service_account_manifests(make_ctx(), LIVE)}
    model = docs["kservectl-model-server"]["metadata"]
    assert model["namespace"] == "models"
    assert model["annotations"] == {
        "kservectl.io/cluster": "demo",
        "eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT}:role/kservectl/kservectl-demo-model-server",
        "serving.kserve.io/s3-region": REGION,
    }
    mlflow = docs["mlflow"]["metadata"]
    assert mlflow["namespace"] == "mlflow"
    assert mlflow["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/kservectl/kservectl-demo-mlflow"
    )
    assert not any("s3-endpoint" in key for d in docs.values() for key in d["metadata"]["annotations"])


def test_with_a_kms_key_the_policies_may_use_exactly_that_key(schema_validator):
    key = "1234abcd-12ab-34cd-56ef-1234567890ab"
    files = storage.render(
        make_ctx(**{"storage.kms_key_id": key}), LIVE, kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"
    )
    for name in ("model-read-policy.json", "mlflow-artifacts-policy.json"):
        doc = json.loads(files[name])
        schema_validator.assert_valid_iam_policy(doc)
        assert_least_privilege(doc)
        kms = [s for s in doc["Statement"] if str(s["Action"]).startswith(("kms:", "['kms:"))]
        assert [s["Resource"] for s in kms] == [f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"]
    assert_golden("storage/kms/mlflow-artifacts-policy.json", files["mlflow-artifacts-policy.json"])


def test_the_plan_renders_with_placeholders_and_lists_the_aws_calls(no_network, schema_validator, tmp_path):
    plan = storage.plan(make_ctx(), LiveValues(), tmp_path)
    assert plan.phase == "storage"
    trust = json.loads(plan.files["model-server-trust.json"])
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Federated": "arn:aws:iam::<account-id>:oidc-provider/<oidc-issuer>"}
    assert statement["Condition"] == {
        "StringEquals": {
            "<oidc-issuer>:sub": "system:serviceaccount:models:kservectl-model-server",
            "<oidc-issuer>:aud": "sts.amazonaws.com",
        }
    }
    assert "arn:aws:s3:::kservectl-demo-<account-id>-us-west-2" in plan.files["model-read-policy.json"]
    for name, text in plan.files.items():
        if name.endswith(".yaml"):
            schema_validator.assert_all_valid(text)
        elif "trust" not in name:
            schema_validator.assert_valid_iam_policy(json.loads(text))
    calls = [c for step in plan.steps for c in step.calls]
    for call in (
        "sts:GetCallerIdentity",
        "eks:DescribeCluster",
        "iam:ListOpenIDConnectProviders",
        "s3:CreateBucket",
        "iam:AttachRolePolicy",
        "apply ServiceAccount models/kservectl-model-server",
    ):
        assert call in calls
    assert [s.kind for s in plan.steps][-1] == "kube"


# --------------------------------------------------------------------------- create


def test_create_makes_a_versioned_encrypted_private_tls_only_tagged_bucket(cluster):
    result = storage.apply(make_ctx())
    assert result["bucket"] == BUCKET and result["artifact_root"] == f"s3://{BUCKET}/mlflow-artifacts"
    client = s3()
    assert client.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == REGION
    assert client.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rules = client.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert client.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    policy = json.loads(client.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert policy["Statement"] == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    tags = iam.tag_dict(client.get_bucket_tagging(Bucket=BUCKET)["TagSet"])
    assert tags == {"kservectl.io/cluster": "demo", "kservectl.io/component": "storage"}
    lifecycle = client.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert lifecycle == [
        {
            "ID": "kservectl-expire-noncurrent-versions",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        }
    ]


def test_in_us_east_1_the_bucket_is_created_without_a_location_constraint(mock_aws):
    make_cluster(region="us-east-1")
    ctx = make_ctx(region="us-east-1")
    sent: list[dict] = []
    ctx.aws.client("s3", fail_fast=True).meta.events.register(
        "provide-client-params.s3.CreateBucket", lambda params, **_: sent.append(dict(params))
    )
    storage.apply(ctx)
    bucket = f"kservectl-demo-{ACCOUNT}-us-east-1"
    assert "LocationConstraint" not in sent[0]["CreateBucketConfiguration"]
    assert s3("us-east-1").get_bucket_location(Bucket=bucket)["LocationConstraint"] is None


def test_a_kms_key_gives_sse_kms_with_a_bucket_key_and_key_scoped_grants(cluster):
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]
    storage.apply(make_ctx(**{"storage.kms_key_id": key["KeyId"]}))
    rule = s3().get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": key["Arn"],
    }
    assert rule["BucketKeyEnabled"] is True
    sas = storage.service_accounts(make_ctx(), LiveValues(account_id=ACCOUNT))
    model = default_document(sas["model-server"].policy_arn)
    assert {
        "Sid": "DecryptArtifacts",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key["Arn"],
    } in model["Statement"]


def test_the_policies_are_least_privilege_on_the_artifact_prefix(cluster, schema_validator):
    storage.apply(make_ctx())
    sas = storage.service_accounts(make_ctx(), LiveValues(account_id=ACCOUNT))
    prefix_condition = {"StringLike": {"s3:prefix": ["mlflow-artifacts", "mlflow-artifacts/*"]}}
    read = default_document(sas["model-server"].policy_arn)
    write = default_document(sas["mlflow"].policy_arn)
    for doc in (read, write):
        schema_validator.assert_valid_iam_policy(doc)
        assert_least_privilege(doc)
        listing = [s for s, actions in s3_statements(doc) if "s3:ListBucket" in actions]
        assert listing == [
            {
                "Sid": "ListArtifactPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{BUCKET}",
                "Condition": prefix_condition,
            }
        ]
    objects = f"arn:aws:s3:::{BUCKET}/mlflow-artifacts/*"
    assert [(actions, s["Resource"]) for s, actions in s3_statements(read)][1] == (["s3:GetObject"], objects)
    assert [(sorted(actions), s["Resource"]) for s, actions in s3_statements(write)][1] == (
        ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        objects,
    )
    for sa in sas.values():
        policy = iam_client().get_policy(PolicyArn=sa.policy_arn)["Policy"]
        assert iam.tag_dict(policy["Tags"])["kservectl.io/cluster"] == "demo"


def test_each_role_trusts_exactly_its_service_account_through_the_clusters_provider(
    cluster, schema_validator
):
    storage.apply(make_ctx())
    provider = cluster.removeprefix("https://")
    provider_arn = iam_client().list_open_id_connect_providers()["OpenIDConnectProviderList"][0]["Arn"]
    sas = storage.service_accounts(make_ctx(), LiveValues(account_id=ACCOUNT))
    for sa, subject in (
        (sas["model-server"], "system:serviceaccount:models:kservectl-model-server"),
        (sas["mlflow"], "system:serviceaccount:mlflow:mlflow"),
    ):
        role = iam_client().get_role(RoleName=sa.role_name)["Role"]
        assert role["Arn"] == sa.role_arn and role["Path"] == "/kservectl/"
        trust = role["AssumeRolePolicyDocument"]
        assert_valid_trust_policy(schema_validator, trust)
        assert trust["Statement"] == [
            {
                "Sid": "ServiceAccountWebIdentity",
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{provider}:sub": subject, f"{provider}:aud": "sts.amazonaws.com"}
                },
            }
        ]
        assert iam.tag_dict(role["Tags"]) == {
            "kservectl.io/cluster": "demo",
            "kservectl.io/component": "storage",
        }
        attached = iam_client().list_attached_role_policies(RoleName=sa.role_name)["AttachedPolicies"]
        assert [p["PolicyArn"] for p in attached] == [sa.policy_arn]


def test_a_second_create_makes_no_mutating_call(cluster):
    storage.apply(make_ctx())
    ctx = make_ctx()
    calls = mutating_calls(ctx)
    result = storage.apply(ctx)
    assert calls == []
    assert result["changes"] == []
    assert ctx.reporter.messages("step") == [
        f"storage: bucket {BUCKET}, policies and roles already as desired: nothing to change"
    ]


def _drop_bucket_policy():
    s3().delete_bucket_policy(Bucket=BUCKET)


def _drop_public_access_block():
    s3().delete_public_access_block(Bucket=BUCKET)


def _drop_component_tag_keep_a_user_tag():
    s3().put_bucket_tagging(
        Bucket=BUCKET,
        Tagging={
            "TagSet": [{"Key": "kservectl.io/cluster", "Value": "demo"}, {"Key": "team", "Value": "ml"}]
        },
    )


def _suspend_versioning():
    s3().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})


def _untag_role():
    iam_client().untag_role(RoleName="kservectl-demo-mlflow", TagKeys=["kservectl.io/component"])


def _widen_the_read_policy():
    arn = f"arn:aws:iam::{ACCOUNT}:policy/kservectl/kservectl-demo-model-read"
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam_client().create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(doc), SetAsDefault=True)


def _loosen_the_trust():
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            }
        ],
    }
    iam_client().update_assume_role_policy(
        RoleName="kservectl-demo-model-server", PolicyDocument=json.dumps(doc)
    )


def _detach():
    iam_client().detach_role_policy(
        RoleName="kservectl-demo-mlflow",
        PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/kservectl/kservectl-demo-mlflow-artifacts",
    )


@pytest.mark.parametrize(
    "drift, restored",
    [
        (_drop_bucket_policy, ["s3:PutBucketPolicy"]),
        (_drop_public_access_block, ["s3:PutPublicAccessBlock"]),
        (_drop_component_tag_keep_a_user_tag, ["s3:PutBucketTagging"]),
        (_suspend_versioning, ["s3:PutBucketVersioning"]),
        (_untag_role, ["iam:TagRole"]),
        (_widen_the_read_policy, ["iam:CreatePolicyVersion"]),
        (_loosen_the_trust, ["iam:UpdateAssumeRolePolicy"]),
        (_detach, ["iam:AttachRolePolicy"]),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_drift_behind_kservectls_back_is_restored_exactly_and_nothing_else_changes(cluster, drift, restored):
    storage.apply(make_ctx())
    drift()
    ctx = make_ctx()
    calls = mutating_calls(ctx)
    storage.apply(ctx)
    assert calls == restored
    assert storage.status(make_ctx())["ok"] is True
    recheck = make_ctx()
    assert mutating_calls(recheck) == [] and storage.apply(recheck)["changes"] == []


def test_a_user_tag_and_a_user_bucket_policy_statement_survive_convergence(cluster):
    storage.apply(make_ctx())
    _drop_component_tag_keep_a_user_tag()
    theirs = {
        "Sid": "AllowAuditor",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "s3:GetBucketLocation",
        "Resource": f"arn:aws:s3:::{BUCKET}",
    }
    s3().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [theirs]}))
    storage.apply(make_ctx())
    statements = json.loads(s3().get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["AllowAuditor", "DenyInsecureTransport"]
    assert iam.tag_dict(s3().get_bucket_tagging(Bucket=BUCKET)["TagSet"])["team"] == "ml"


def test_turning_the_lifecycle_off_removes_only_kservectls_rule(cluster):
    storage.apply(make_ctx())
    rules = s3().get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    theirs = {
        "ID": "their-rule",
        "Status": "Enabled",
        "Filter": {"Prefix": "tmp/"},
        "Expiration": {"Days": 1},
    }
    s3().put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [*rules, theirs]})
    ctx = make_ctx(**{"storage.noncurrent_version_days": 0})
    calls = mutating_calls(ctx)
    storage.apply(ctx)
    assert calls == ["s3:PutBucketLifecycleConfiguration"]
    assert [r["ID"] for r in s3().get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]] == [
        "their-rule"
    ]


def test_without_a_lifecycle_the_bucket_gets_no_rule(mock_aws):
    make_cluster()
    storage.apply(make_ctx(**{"storage.noncurrent_version_days": 0}))
    with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):
        s3().get_bucket_lifecycle_configuration(Bucket=BUCKET)


def test_a_missing_cluster_is_one_line_naming_what_to_run_and_nothing_is_created(mock_aws):
    ctx = make_ctx()
    calls = mutating_calls(ctx)
    with pytest.raises(storage.MissingPrerequisite) as info:
        storage.apply(ctx)
    assert info.value.exit_code == 1
    assert info.value.one_line() == (
        "EKS cluster 'demo' does not exist in us-west-2: no IRSA role can trust its OIDC provider yet "
        "(create it first: kservectl cluster create --cluster demo --region us-west-2)"
    )
    assert calls == [] and s3().list_buckets()["Buckets"] == []


def test_a_missing_oidc_provider_says_how_to_associate_one(mock_aws):
    issuer = make_cluster(provider=False)
    with pytest.raises(storage.MissingPrerequisite) as info:
        storage.apply(make_ctx())
    line = info.value.one_line()
    assert f"has no IAM OIDC provider for its issuer {issuer}" in line
    assert "eksctl utils associate-iam-oidc-provider --cluster demo --region us-west-2 --approve" in line
    assert "\n" not in line


def test_a_dry_run_reports_every_change_and_mutates_nothing(cluster):
    ctx = make_ctx(dry_run=True)
    calls = mutating_calls(ctx)
    result = storage.apply(ctx)
    assert calls == []
    assert result["dry_run"] is True
    steps = ctx.reporter.messages("step")
    assert f"storage: would create S3 bucket {BUCKET} (in us-west-2)" in steps
    assert "storage: would create IAM role kservectl-demo-mlflow" in steps
    assert (
        f"storage: would deny non-TLS requests to S3 bucket {BUCKET} (policy statement DenyInsecureTransport)"
        in steps
    )
    assert s3().list_buckets()["Buckets"] == [] and iam_client().list_roles()["Roles"] == []


def test_a_dry_run_without_a_cluster_warns_and_still_shows_the_plan(mock_aws):
    ctx = make_ctx(dry_run=True)
    result = storage.apply(ctx)
    assert "does not exist" in result["blocked_by"]
    assert "kservectl cluster create" in ctx.reporter.messages("warn")[0]
    assert any(c["action"] == "create" and "IAM role" in c["resource"] for c in result["changes"])


def test_a_bucket_of_another_cluster_or_untagged_is_refused_before_any_change(cluster):
    s3().create_bucket(Bucket="theirs", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3().put_bucket_tagging(
        Bucket="theirs", Tagging={"TagSet": [{"Key": "kservectl.io/cluster", "Value": "prod"}]}
    )
    s3().create_bucket(Bucket="nobodys", CreateBucketConfiguration={"LocationConstraint": REGION})
    for bucket, reason in (
        ("theirs", "belongs to cluster 'prod'"),
        ("nobodys", "has no kservectl.io/cluster tag"),
    ):
        ctx = make_ctx(**{"storage.bucket": bucket})
        calls = mutating_calls(ctx)
        with pytest.raises(iam.OwnershipError, match=reason) as info:
            storage.apply(ctx)
        assert "set storage.bucket to another name" in info.value.one_line()
        assert calls == []
    assert iam_client().list_roles()["Roles"] == []


def test_a_role_name_held_by_someone_else_stops_create_before_the_bucket_exists(cluster):
    iam_client().create_role(
        RoleName="kservectl-demo-mlflow",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                    }
                ],
            }
        ),
    )
    ctx = make_ctx()
    calls = mutating_calls(ctx)
    with pytest.raises(iam.OwnershipError, match="IAM role kservectl-demo-mlflow exists but has no"):
        storage.apply(ctx)
    assert calls == [] and s3().list_buckets()["Buckets"] == []


def test_throttling_is_retried_with_visible_attempts_on_the_fake_clock(cluster):
    ctx = make_ctx()
    client = ctx.aws.client("s3", fail_fast=True)
    client.put_bucket_versioning = failing_then(
        client.put_bucket_versioning, [client_error("SlowDown"), client_error("Throttling")]
    )
    storage.apply(ctx)
    assert s3().get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert ctx.clock.sleeps == [1.0, 2.0]
    assert [w.split("; ")[1] for w in ctx.reporter.messages("warn")] == [
        "retrying in 1s (attempt 2/6)",
        "retrying in 2s (attempt 3/6)",
    ]


def test_a_new_bucket_unknown_for_a_moment_is_retried_not_reported(cluster):
    ctx = make_ctx()
    client = ctx.aws.client("s3", fail_fast=True)
    client.put_bucket_versioning = failing_then(
        client.put_bucket_versioning, [client_error("NoSuchBucket", "The specified bucket does not exist")]
    )
    storage.apply(ctx)
    assert s3().get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert ctx.clock.sleeps == [1.0]


def test_a_missing_bucket_is_not_retried_when_kservectl_did_not_just_create_it(cluster):
    storage.apply(make_ctx())
    _suspend_versioning()
    ctx = make_ctx()
    client = ctx.aws.client("s3", fail_fast=True)
    client.put_bucket_versioning = failing_then(client.put_bucket_versioning, [client_error("NoSuchBucket")])
    with pytest.raises(AwsError, match="NoSuchBucket"):
        storage.apply(ctx)
    assert ctx.clock.sleeps == []


def test_an_invalid_principal_right_after_the_provider_appears_is_retried(cluster):
    ctx = make_ctx()
    client = ctx.aws.client("iam", fail_fast=True)
    client.create_role = failing_then(
        client.create_role,
        [
            client_error(
                "MalformedPolicyDocument", 'Invalid principal in policy: "Federated":"arn:aws:iam::..."'
            )
        ],
    )
    storage.apply(ctx)
    assert ctx.clock.sleeps == [1.0]
    assert "iam:CreateRole returned MalformedPolicyDocument" in ctx.reporter.messages("warn")[0]
    assert len(iam_client().list_roles()["Roles"]) == 2


def test_a_permanent_error_is_one_line_with_the_aws_code_and_no_retry(cluster):
    ctx = make_ctx()
    client = ctx.aws.client("s3", fail_fast=True)
    client.put_bucket_encryption = failing_then(
        client.put_bucket_encryption,
        [client_error("AccessDenied", "not authorized to perform s3:PutEncryptionConfiguration")],
    )
    with pytest.raises(AwsError) as info:
        storage.apply(ctx)
    assert info.value.one_line() == (
        "AWS s3:PutBucketEncryption failed with AccessDenied: "
        "not authorized to perform s3:PutEncryptionConfiguration"
    )
    assert ctx.clock.sleeps == []


# --------------------------------------------------------------------------- status


def test_status_shows_every_property_and_the_trust_subjects(cluster):
    storage.apply(make_ctx())
    data = storage.status(make_ctx())
    assert data["ok"] is True
    assert data["bucket"] | {"tags": None} == {
        "name": BUCKET,
        "exists": True,
        "problem": None,
        "region": REGION,
        "owner": "demo",
        "versioning": "Enabled",
        "encryption": "SSE-S3",
        "public_access_blocked": True,
        "tls_only": True,
        "noncurrent_version_days": 30,
        "tags": None,
        "ok": True,
    }
    roles = {r["component"]: r for r in data["roles"]}
    assert roles["mlflow"]["trust_subjects"] == ["system:serviceaccount:mlflow:mlflow"]
    assert roles["model-server"]["trust_audiences"] == ["sts.amazonaws.com"]
    assert roles["model-server"]["attached_policies"] == ["kservectl-demo-model-read"]
    assert all(p["matches"] for p in data["policies"])


def test_status_of_nothing_says_what_is_missing(mock_aws):
    data = storage.status(make_ctx())
    assert data["ok"] is False
    assert data["bucket"] == {"name": BUCKET, "exists": False, "problem": None, "ok": False}
    assert "does not exist" in data["oidc"]["problem"]
    assert [r["exists"] for r in data["roles"]] == [False, False]


def test_status_notices_a_dropped_tls_policy(cluster):
    storage.apply(make_ctx())
    _drop_bucket_policy()
    data = storage.status(make_ctx())
    assert data["bucket"]["tls_only"] is False and data["ok"] is False


# --------------------------------------------------------------------------- delete


def _fill(bucket: str = BUCKET) -> None:
    """Three versions of one object, a delete marker, and a second object."""
    client = s3()
    for n in range(3):
        client.put_object(Bucket=bucket, Key="mlflow-artifacts/1/model/MLmodel", Body=f"v{n}".encode())
    client.delete_object(Bucket=bucket, Key="mlflow-artifacts/1/model/MLmodel")
    client.put_object(Bucket=bucket, Key="mlflow-artifacts/2/model/MLmodel", Body=b"x")


def test_delete_removes_roles_and_policies_and_keeps_the_bucket_without_delete_data(cluster):
    storage.apply(make_ctx())
    _fill()
    result = storage.delete(make_ctx())
    assert iam_client().list_roles()["Roles"] == []
    assert iam_client().list_policies(Scope="Local")["Policies"] == []
    assert s3().head_bucket(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(s3().list_object_versions(Bucket=BUCKET)["Versions"]) == 4
    assert result["changes"][-1]["action"] == "keep"


def test_delete_data_empties_every_version_and_delete_marker_then_deletes_the_bucket(cluster):
    storage.apply(make_ctx())
    _fill()
    ctx = make_ctx()
    result = storage.delete(ctx, delete_data=True)
    assert {
        "resource": f"S3 bucket {BUCKET}",
        "action": "empty",
        "detail": "4 object versions and 1 delete markers",
    } in result["changes"]
    assert BUCKET not in [b["Name"] for b in s3().list_buckets()["Buckets"]]


def test_delete_keeps_another_clusters_bucket_and_an_untagged_look_alike(cluster):
    make_cluster("prod")
    storage.apply(make_ctx("prod"))
    prod_bucket = f"kservectl-prod-{ACCOUNT}-{REGION}"
    _fill(prod_bucket)
    s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})  # untagged
    s3().put_object(Bucket=BUCKET, Key="precious", Body=b"data")
    for ctx, reason in (
        (make_ctx(), "has no kservectl.io/cluster tag"),
        (make_ctx(**{"storage.bucket": prod_bucket}), "belongs to cluster 'prod'"),
    ):
        calls = mutating_calls(ctx)
        with pytest.raises(iam.OwnershipError, match=reason) as info:
            storage.delete(ctx, delete_data=True)
        assert (
            "refusing to delete" in info.value.one_line() and "nothing was deleted" in info.value.one_line()
        )
        assert calls == []
    assert s3().get_object(Bucket=BUCKET, Key="precious")["Body"].read() == b"data"
    assert len(s3().list_object_versions(Bucket=prod_bucket)["Versions"]) == 4
    assert {r["RoleName"] for r in iam_client().list_roles()["Roles"]} == {
        "kservectl-prod-model-server",
        "kservectl-prod-mlflow",
    }


def test_deleting_one_cluster_leaves_the_other_clusters_storage_alone(cluster):
    make_cluster("prod")
    storage.apply(make_ctx("prod"))
    storage.apply(make_ctx())
    storage.delete(make_ctx(), delete_data=True)
    assert storage.status(make_ctx("prod"))["ok"] is True
    assert {r["RoleName"] for r in iam_client().list_roles()["Roles"]} == {
        "kservectl-prod-model-server",
        "kservectl-prod-mlflow",
    }


def test_a_delete_dry_run_lists_what_would_go_and_mutates_nothing(cluster):
    storage.apply(make_ctx())
    _fill()
    ctx = make_ctx(dry_run=True)
    calls = mutating_calls(ctx)
    result = storage.delete(ctx, delete_data=True)
    assert calls == []
    steps = ctx.reporter.messages("step")
    assert "storage: would delete IAM role kservectl-demo-mlflow" in steps
    assert f"storage: would empty S3 bucket {BUCKET} (4 object versions and 1 delete markers)" in steps
    assert f"storage: would delete S3 bucket {BUCKET}" in steps
    assert result["dry_run"] is True and len(iam_client().list_roles()["Roles"]) == 2


# --------------------------------------------------------------------------- service accounts


def test_create_applies_the_service_accounts_when_the_kubeconfig_exists_and_again_changes_nothing(
    cluster, kube
):
    target = paths.kubeconfig_path("demo")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(Path(kube.kubeconfig).read_text())
    result = storage.create(make_ctx())
    assert [(r["resource"], r["result"]) for r in result["service_accounts_applied"]] == [
        ("ServiceAccount models/kservectl-model-server", "created"),
        ("ServiceAccount mlflow/mlflow", "created"),
    ]
    sa = kube.get("v1", "ServiceAccount", "kservectl-model-server", "models")
    assert (
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == result["service_accounts"][0]["role_arn"]
    )
    assert sa["metadata"]["annotations"]["serving.kserve.io/s3-region"] == REGION
    again = storage.create(make_ctx())
    assert [r["result"] for r in again["service_accounts_applied"]] == ["unchanged", "unchanged"]


def test_create_without_a_kubeconfig_skips_the_service_accounts_and_says_who_applies_them(cluster):
    ctx = make_ctx()
    result = storage.create(ctx)
    assert result["service_accounts_applied"] == []
    assert "mlflow and serve phases apply them" in result["service_accounts_skipped"]
    assert (
        storage.create(make_ctx(), with_service_accounts=False)["service_accounts_skipped"]
        == "--no-service-accounts"
    )


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS call any command makes in this test, as service:Operation."""
    seen: list[str] = []
    real = aws.AwsClients._observe

    def observe(self, model, **kwargs):
        seen.append(f"{model.service_model.service_name}:{model.name}")
        return real(self, model, **kwargs)

    monkeypatch.setattr(aws.AwsClients, "_observe", observe)
    return seen


def mutating(calls: list[str]) -> list[str]:
    return [c for c in calls if aws.is_mutating(c.split(":", 1)[1])]


def test_cli_create_prints_json_and_a_second_run_changes_nothing(cli, cluster, aws_calls):
    first = cli("storage", "create", "-c", "demo", "-r", REGION, "-o", "json")
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["bucket"] == BUCKET and len(data["changes"]) > 5
    aws_calls.clear()
    second = cli("storage", "create", "-c", "demo", "-r", REGION)
    assert second.exit_code == 0, second.stderr
    assert mutating(aws_calls) == []
    assert "nothing to change" in second.stdout


def test_cli_create_dry_run_makes_no_mutating_call(cli, cluster, aws_calls):
    result = cli("storage", "create", "-c", "demo", "-r", REGION, "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert mutating(aws_calls) == [] and aws_calls
    assert json.loads(result.stdout)["dry_run"] is True
    assert "would create S3 bucket" in result.stderr


def test_cli_create_without_the_cluster_fails_with_one_line_and_exit_1(cli, mock_aws):
    result = cli("storage", "create", "-c", "demo", "-r", REGION)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: EKS cluster 'demo' does not exist in us-west-2: no IRSA role can trust its OIDC provider yet "
        "(create it first: kservectl cluster create --cluster demo --region us-west-2)"
    ]


def test_cli_create_with_service_accounts_but_no_kubeconfig_says_what_is_missing(cli, cluster):
    result = cli("storage", "create", "-c", "demo", "-r", REGION, "--service-accounts")
    assert result.exit_code == 1
    kubeconfig = paths.kubeconfig_path("demo")
    assert result.stderr.strip().splitlines() == [
        f"Error: applying the ServiceAccounts needs the cluster's kubeconfig at {kubeconfig} "
        "(`kservectl cluster create` writes it; or pass --no-service-accounts)"
    ]
    assert s3().list_buckets()["Buckets"] == []  # checked before anything was created


def test_cli_status_prints_json_and_a_table(cli, cluster):
    cli("storage", "create", "-c", "demo", "-r", REGION)
    as_json = cli("storage", "status", "-c", "demo", "-r", REGION, "-o", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["ok"] is True
    table = cli("storage", "status", "-c", "demo", "-r", REGION)
    assert table.exit_code == 0
    assert (
        "role kservectl-demo-model-server trusts system:serviceaccount:models:kservectl-model-server "
        "(audience sts.amazonaws.com); policies: kservectl-demo-model-read"
    ) in table.stdout
    assert BUCKET in table.stdout and ": ok" in table.stdout


def test_cli_delete_data_without_yes_is_refused_before_any_call(cli, cluster, aws_calls):
    cli("storage", "create", "-c", "demo", "-r", REGION)
    aws_calls.clear()
    result = cli("storage", "delete", "-c", "demo", "-r", REGION, "--delete-data")
    assert result.exit_code == 2
    assert "add --yes to confirm" in result.stderr
    assert aws_calls == []


def test_cli_delete_dry_run_lists_and_mutates_nothing_then_delete_yes_deletes(cli, cluster, aws_calls):
    cli("storage", "create", "-c", "demo", "-r", REGION)
    aws_calls.clear()
    dry = cli("storage", "delete", "-c", "demo", "-r", REGION, "--delete-data", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    assert mutating(aws_calls) == []
    actions = [(c["resource"], c["action"]) for c in json.loads(dry.stdout)["changes"]]
    assert ("IAM role kservectl-demo-mlflow", "delete") in actions and (
        f"S3 bucket {BUCKET}",
        "delete",
    ) in actions
    real = cli("storage", "delete", "-c", "demo", "-r", REGION, "--yes")
    assert real.exit_code == 0, real.stderr
    assert "keep" in real.stdout and iam_client().list_roles()["Roles"] == []
    assert BUCKET in [b["Name"] for b in s3().list_buckets()["Buckets"]]


def test_cli_delete_refuses_an_untagged_bucket_with_exit_1(cli, cluster):
    s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = cli("storage", "delete", "-c", "demo", "-r", REGION, "--delete-data", "--yes")
    assert result.exit_code == 1
    assert (
        "refusing to delete: S3 bucket" in result.stderr
        and "has no kservectl.io/cluster tag" in result.stderr
    )
    assert BUCKET in [b["Name"] for b in s3().list_buckets()["Buckets"]]


def test_the_real_executable_creates_storage_against_moto_server_and_a_rerun_is_idempotent(
    moto_server, tmp_path
):
    make_cluster()  # boto3 here honours AWS_ENDPOINT_URL too: the cluster lives in the server
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_server}
    argv = [str(KSERVECTL), "storage", "create", "--cluster", "demo", "--region", REGION, "-o", "json"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["bucket"] == BUCKET
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["changes"] == []
    assert "nothing to change" in second.stderr
    status = boto3.client("s3", region_name=REGION).get_bucket_versioning(Bucket=BUCKET)
    assert status["Status"] == "Enabled"


def test_plan_includes_the_storage_files(cli, tmp_path, no_network):
    out = tmp_path / "out"
    result = cli("plan", "-c", "demo", "--out", str(out), "-o", "json")
    assert result.exit_code == 0, result.stderr
    written = sorted(p.name for p in (out / "storage").iterdir())
    assert "serviceaccount-model-server.yaml" in written and "model-read-policy.json" in written
    sa = yaml.safe_load((out / "storage" / "serviceaccount-mlflow.yaml").read_text())
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::<account-id>:role/kservectl/kservectl-demo-mlflow"
    )
