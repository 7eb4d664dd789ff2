"""IAM helpers: names, trust policies, the narrow retry loop, and ensure/delete of roles and
policies that change only the difference and never touch what another owner holds."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from kservectl import aws, config, iam
from kservectl.clock import FakeClock
from kservectl.context import Context
from kservectl.errors import AwsError
from kservectl.events import RecordingReporter

ACCOUNT = "123456789012"
ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER.removeprefix('https://')}"
DOC = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Read",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::kservectl-demo-bucket/models/*",
        }
    ],
}


def assert_valid_trust_policy(schema_validator, doc) -> None:
    """A trust policy is a resource-based policy: every statement names a Principal and no
    Resource, which ``validate_iam_policy`` (written for identity policies) reports; every other
    structural check must pass."""
    assert all("Principal" in s and "Resource" not in s for s in doc["Statement"])
    errors = [
        e
        for e in schema_validator.validate_iam_policy(doc)
        if not e.endswith("needs exactly one of Resource / NotResource, has none")
    ]
    assert errors == []


def make_ctx(cluster: str = "demo", *, dry_run: bool = False) -> Context:
    cfg = config.load(env={}, flags={"cluster.name": cluster, "cluster.region": "us-west-2"}).config
    return Context(config=cfg, clock=FakeClock(), reporter=RecordingReporter(), dry_run=dry_run)


def mutating_calls(ctx: Context) -> list[str]:
    seen: list[str] = []
    ctx.aws.observers.append(
        lambda service, op: seen.append(f"{service}:{op}") if aws.is_mutating(op) else None
    )
    return seen


def client_error(code: str, message: str = "boom", op: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


def failing_then(real, errors: list[ClientError]):
    """A boto3 method stand-in that raises the given errors first, then calls the real one."""
    calls = {"n": 0}

    def fn(**kwargs):
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return real(**kwargs)

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "region, expected", [("us-west-2", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_the_partition_follows_the_region(region, expected):
    assert iam.partition(region) == expected
    assert iam.role_arn(ACCOUNT, "r", region) == f"arn:{expected}:iam::{ACCOUNT}:role/kservectl/r"


def test_a_short_name_is_kept_and_a_long_one_is_cut_deterministically_within_the_limit():
    assert iam.resource_name("demo", "mlflow") == "kservectl-demo-mlflow"
    long_a, long_b = "a" * 90 + "-one", "a" * 90 + "-two"
    name_a = iam.resource_name(long_a, "model-server")
    assert len(name_a) <= iam.ROLE_NAME_LIMIT
    assert name_a == iam.resource_name(long_a, "model-server")
    assert name_a.startswith("kservectl-aaaa") and name_a.endswith("-model-server")
    assert name_a != iam.resource_name(long_b, "model-server")
    assert (
        len(iam.resource_name("c" * 100, "mlflow-artifacts", iam.POLICY_NAME_LIMIT)) <= iam.POLICY_NAME_LIMIT
    )


def test_the_trust_policy_admits_exactly_one_service_account_with_the_sts_audience(schema_validator):
    doc = iam.trust_policy(PROVIDER_ARN, ISSUER, "models", "kservectl-model-server")
    assert_valid_trust_policy(schema_validator, doc)
    provider = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    assert doc["Statement"] == [
        {
            "Sid": "ServiceAccountWebIdentity",
            "Effect": "Allow",
            "Principal": {"Federated": PROVIDER_ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{provider}:sub": "system:serviceaccount:models:kservectl-model-server",
                    f"{provider}:aud": "sts.amazonaws.com",
                }
            },
        }
    ]


def test_documents_that_mean_the_same_compare_equal_and_url_encoded_ones_are_decoded():
    a = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::b/x", "arn:aws:s3:::b"],
            }
        ],
    }
    b = {
        "Statement": [
            {"Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/x"], "Action": "s3:GetObject", "Effect": "Allow"}
        ],
        "Version": "2012-10-17",
    }
    assert iam.same_document(a, b)
    assert iam.same_document("%7B%22Version%22%3A%20%222012-10-17%22%7D", {"Version": "2012-10-17"})
    assert not iam.same_document(a, {**b, "Statement": [{**b["Statement"][0], "Action": "s3:*"}]})


def test_only_missing_or_different_tags_are_reported_missing():
    current = {"kservectl.io/cluster": "demo", "team": "ml", "kservectl.io/component": "old"}
    desired = {"kservectl.io/cluster": "demo", "kservectl.io/component": "storage"}
    assert iam.missing_tags(current, desired) == {"kservectl.io/component": "storage"}


def test_ownership_names_the_other_owner_or_the_missing_tag():
    assert iam.ownership_problem("x", {"kservectl.io/cluster": "demo"}, "demo") is None
    assert "belongs to cluster 'prod'" in iam.ownership_problem("x", {"kservectl.io/cluster": "prod"}, "demo")
    assert "has no kservectl.io/cluster tag" in iam.ownership_problem("x", {"team": "ml"}, "demo")


# --------------------------------------------------------------------------- retries


def test_a_transient_error_is_retried_with_backoff_on_the_clock_and_reported():
    ctx = make_ctx()
    fn = failing_then(lambda **kw: {"ok": kw}, [client_error("Throttling"), client_error("SlowDown")])
    assert iam.call(ctx, "s3:PutBucketVersioning", fn, Bucket="b") == {"ok": {"Bucket": "b"}}
    assert ctx.clock.sleeps == [1.0, 2.0]
    warnings = ctx.reporter.messages("warn")
    assert warnings[0] == "s3:PutBucketVersioning returned Throttling; retrying in 1s (attempt 2/6)"
    assert warnings[1].endswith("(attempt 3/6)")


def test_a_permanent_error_fails_at_once_as_one_line_with_its_code():
    ctx = make_ctx()
    fn = failing_then(lambda **kw: None, [client_error("AccessDenied", "User is not authorized")])
    with pytest.raises(AwsError) as info:
        iam.call(ctx, "iam:CreateRole", fn, RoleName="r")
    assert info.value.code == "AccessDenied"
    assert info.value.one_line() == "AWS iam:CreateRole failed with AccessDenied: User is not authorized"
    assert fn.calls["n"] == 1 and ctx.clock.sleeps == []


def test_retries_are_bounded_and_the_last_error_says_how_often_it_was_tried():
    ctx = make_ctx()
    fn = failing_then(lambda **kw: None, [client_error("Throttling", "Rate exceeded") for _ in range(10)])
    with pytest.raises(AwsError) as info:
        iam.call(ctx, "iam:TagRole", fn)
    assert fn.calls["n"] == 6
    assert ctx.clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert info.value.one_line() == (
        "AWS iam:TagRole failed with Throttling: Rate exceeded (still failing after 6 attempts)"
    )


def test_an_invalid_principal_right_after_creation_is_retried_but_a_bad_document_is_not():
    ctx = make_ctx()
    settling = failing_then(
        lambda **kw: "created",
        [client_error("MalformedPolicyDocument", 'Invalid principal in policy: "Federated":"arn:..."')],
    )
    assert iam.call(ctx, "iam:CreateRole", settling, retry_if=iam.PRINCIPAL_PROPAGATION) == "created"
    bad = failing_then(
        lambda **kw: "created", [client_error("MalformedPolicyDocument", "Syntax errors in policy")]
    )
    with pytest.raises(AwsError):
        iam.call(ctx, "iam:CreateRole", bad, retry_if=iam.PRINCIPAL_PROPAGATION)
    assert bad.calls["n"] == 1


# --------------------------------------------------------------------------- ensure (moto)


def test_a_policy_is_created_tagged_then_left_alone(mock_aws):
    ctx = make_ctx()
    arn, changes = iam.ensure_policy(
        ctx,
        account_id=ACCOUNT,
        name="kservectl-demo-read",
        document=DOC,
        tags=iam.owner_tags("demo", "storage"),
    )
    assert [c.action for c in changes] == ["create"]
    client = boto3.client("iam")
    policy = client.get_policy(PolicyArn=arn)["Policy"]
    assert policy["Path"] == "/kservectl/"
    assert iam.tag_dict(policy["Tags"]) == {
        "kservectl.io/cluster": "demo",
        "kservectl.io/component": "storage",
    }
    calls = mutating_calls(ctx)
    assert (
        iam.ensure_policy(
            ctx,
            account_id=ACCOUNT,
            name="kservectl-demo-read",
            document=DOC,
            tags=iam.owner_tags("demo", "storage"),
        )[1]
        == []
    )
    assert calls == []


def test_a_changed_policy_gets_one_new_default_version_and_the_oldest_goes_at_five(mock_aws):
    ctx = make_ctx()
    tags = iam.owner_tags("demo")
    arn, _ = iam.ensure_policy(ctx, account_id=ACCOUNT, name="p", document=DOC, tags=tags)
    for n in range(2, 6):  # fill IAM's five versions
        doc = json.loads(json.dumps(DOC))
        doc["Statement"][0]["Resource"] = f"arn:aws:s3:::kservectl-demo-bucket/v{n}/*"
        boto3.client("iam").create_policy_version(
            PolicyArn=arn, PolicyDocument=json.dumps(doc), SetAsDefault=False
        )
    calls = mutating_calls(ctx)
    changed = json.loads(json.dumps(DOC))
    changed["Statement"][0]["Action"] = ["s3:GetObject", "s3:GetObjectVersion"]
    _, changes = iam.ensure_policy(ctx, account_id=ACCOUNT, name="p", document=changed, tags=tags)
    assert calls == ["iam:DeletePolicyVersion", "iam:CreatePolicyVersion"]
    assert [c.action for c in changes] == ["delete the oldest version of", "update"]
    client = boto3.client("iam")
    versions = client.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5 and "v1" in [v["VersionId"] for v in versions]  # v1 was the default: kept
    default = next(v for v in versions if v["IsDefaultVersion"])
    document = client.get_policy_version(PolicyArn=arn, VersionId=default["VersionId"])["PolicyVersion"][
        "Document"
    ]
    assert iam.same_document(document, changed)


def test_a_role_is_created_then_only_its_drifted_trust_and_tags_are_restored(mock_aws, schema_validator):
    ctx = make_ctx()
    trust = iam.trust_policy(PROVIDER_ARN, ISSUER, "mlflow", "mlflow")
    tags = iam.owner_tags("demo", "storage")
    arn, changes, created = iam.ensure_role(
        ctx, account_id=ACCOUNT, name="kservectl-demo-mlflow", trust=trust, tags=tags
    )
    assert created and arn == f"arn:aws:iam::{ACCOUNT}:role/kservectl/kservectl-demo-mlflow"
    client = boto3.client("iam")
    other = iam.trust_policy(PROVIDER_ARN, ISSUER, "default", "default")
    client.update_assume_role_policy(RoleName="kservectl-demo-mlflow", PolicyDocument=json.dumps(other))
    client.untag_role(RoleName="kservectl-demo-mlflow", TagKeys=["kservectl.io/component"])
    calls = mutating_calls(ctx)
    _, changes, created = iam.ensure_role(
        ctx, account_id=ACCOUNT, name="kservectl-demo-mlflow", trust=trust, tags=tags
    )
    assert not created
    assert calls == ["iam:UpdateAssumeRolePolicy", "iam:TagRole"]
    role = client.get_role(RoleName="kservectl-demo-mlflow")["Role"]
    assert iam.same_document(role["AssumeRolePolicyDocument"], trust)
    assert iam.tag_dict(role["Tags"]) == tags
    assert_valid_trust_policy(schema_validator, role["AssumeRolePolicyDocument"])


def test_a_dry_run_reads_and_reports_but_changes_nothing(mock_aws):
    ctx = make_ctx(dry_run=True)
    calls = mutating_calls(ctx)
    trust = iam.trust_policy(PROVIDER_ARN, ISSUER, "mlflow", "mlflow")
    _, role_changes, _ = iam.ensure_role(ctx, account_id=ACCOUNT, name="r", trust=trust, tags={"a": "b"})
    _, policy_changes = iam.ensure_policy(ctx, account_id=ACCOUNT, name="p", document=DOC, tags={"a": "b"})
    attach = iam.ensure_attached(ctx, "r", iam.policy_arn(ACCOUNT, "p", "us-west-2"), just_created=True)
    assert calls == []
    assert [c.action for c in role_changes + policy_changes + attach] == [
        "create",
        "create",
        "attach policy to",
    ]
    assert ctx.reporter.messages("step") == [
        "iam: would create IAM role r",
        "iam: would create IAM policy p",
        "iam: would attach policy to IAM role r (p)",
    ]
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_another_clusters_role_or_policy_is_never_changed(mock_aws):
    owner = make_ctx("prod")
    trust = iam.trust_policy(PROVIDER_ARN, ISSUER, "mlflow", "mlflow")
    iam.ensure_role(owner, account_id=ACCOUNT, name="shared-name", trust=trust, tags=iam.owner_tags("prod"))
    iam.ensure_policy(
        owner, account_id=ACCOUNT, name="shared-policy", document=DOC, tags=iam.owner_tags("prod")
    )
    ctx = make_ctx("demo")
    calls = mutating_calls(ctx)
    with pytest.raises(iam.OwnershipError, match="belongs to cluster 'prod'"):
        iam.ensure_role(ctx, account_id=ACCOUNT, name="shared-name", trust={}, tags=iam.owner_tags("demo"))
    with pytest.raises(iam.OwnershipError, match="belongs to cluster 'prod'"):
        iam.ensure_policy(
            ctx, account_id=ACCOUNT, name="shared-policy", document={}, tags=iam.owner_tags("demo")
        )
    assert calls == []


def test_attaching_right_after_creating_the_role_waits_out_iam_eventual_consistency(mock_aws):
    ctx = make_ctx()
    trust = iam.trust_policy(PROVIDER_ARN, ISSUER, "mlflow", "mlflow")
    iam.ensure_role(ctx, account_id=ACCOUNT, name="r", trust=trust, tags=iam.owner_tags("demo"))
    arn, _ = iam.ensure_policy(ctx, account_id=ACCOUNT, name="p", document=DOC, tags=iam.owner_tags("demo"))
    client = ctx.aws.client("iam", fail_fast=True)
    client.attach_role_policy = failing_then(
        client.attach_role_policy, [client_error("NoSuchEntity", "The role with name r cannot be found.")]
    )
    changes = iam.ensure_attached(ctx, "r", arn, just_created=True)
    assert [c.action for c in changes] == ["attach policy to"]
    assert ctx.clock.sleeps == [1.0]
    assert "attempt 2/6" in ctx.reporter.messages("warn")[0]
    attached = boto3.client("iam").list_attached_role_policies(RoleName="r")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arn]


# --------------------------------------------------------------------------- delete (moto)


def test_delete_removes_an_owned_role_and_policy_with_their_attachments_and_versions(mock_aws):
    ctx = make_ctx()
    trust = iam.trust_policy(PROVIDER_ARN, ISSUER, "mlflow", "mlflow")
    iam.ensure_role(ctx, account_id=ACCOUNT, name="r", trust=trust, tags=iam.owner_tags("demo"))
    arn, _ = iam.ensure_policy(ctx, account_id=ACCOUNT, name="p", document=DOC, tags=iam.owner_tags("demo"))
    iam.ensure_attached(ctx, "r", arn)
    client = boto3.client("iam")
    client.put_role_policy(RoleName="r", PolicyName="inline", PolicyDocument=json.dumps(DOC))
    client.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(DOC), SetAsDefault=False)
    role_changes = iam.delete_role(ctx, "r")
    policy_changes = iam.delete_policy(ctx, arn)
    assert [c.action for c in role_changes] == ["detach policy from", "delete inline policy of", "delete"]
    assert [c.action for c in policy_changes] == ["delete a version of", "delete"]
    assert client.list_roles()["Roles"] == [] and client.list_policies(Scope="Local")["Policies"] == []
    assert iam.delete_role(ctx, "r") == [iam.Change("IAM role r", "skip", "does not exist")]


def test_delete_keeps_a_role_and_a_policy_it_does_not_own_and_says_why(mock_aws):
    client = boto3.client("iam")
    client.create_role(
        RoleName="r", AssumeRolePolicyDocument=json.dumps(iam.trust_policy(PROVIDER_ARN, ISSUER, "a", "b"))
    )  # no tags: not kservectl's
    arn = client.create_policy(
        PolicyName="p", PolicyDocument=json.dumps(DOC), Tags=iam.tag_list(iam.owner_tags("prod"))
    )["Policy"]["Arn"]
    ctx = make_ctx()
    calls = mutating_calls(ctx)
    assert [c.action for c in iam.delete_role(ctx, "r")] == ["keep"]
    assert [c.action for c in iam.delete_policy(ctx, arn)] == ["keep"]
    assert calls == []
    assert client.get_role(RoleName="r")["Role"]["RoleName"] == "r"
    assert client.get_policy(PolicyArn=arn)["Policy"]["PolicyName"] == "p"
    warnings = ctx.reporter.messages("warn")
    assert "has no kservectl.io/cluster tag" in warnings[0] and "belongs to cluster 'prod'" in warnings[1]
