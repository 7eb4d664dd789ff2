"""The AWS client factory: one session, standard retries, fail-fast creates, errors wrapped."""

from __future__ import annotations

import pytest

from kservectl import aws
from kservectl.errors import AwsError
from kservectl.settings import Settings


def test_clients_are_shared_and_fail_fast_clients_make_one_attempt(mock_aws):
    clients = aws.AwsClients("eu-west-1", settings=Settings(aws_max_attempts=7))
    s3 = clients.client("s3")
    assert clients.client("s3") is s3
    assert s3.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}
    fast = clients.client("s3", fail_fast=True)
    assert fast is not s3 and fast.meta.config.retries["total_max_attempts"] == 1
    assert s3.meta.region_name == "eu-west-1"
    assert "kservectl/" in s3.meta.config.user_agent_extra


def test_observers_see_every_call_and_reads_are_told_from_writes(mock_aws):
    clients = aws.AwsClients("us-west-2")
    seen: list[tuple[str, str]] = []
    clients.observers.append(lambda service, op: seen.append((service, op)))
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="kservectl-observed", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.list_buckets()
    s3.head_bucket(Bucket="kservectl-observed")
    assert seen == [("s3", "CreateBucket"), ("s3", "ListBuckets"), ("s3", "HeadBucket")]
    assert [op for _, op in seen if aws.is_mutating(op)] == ["CreateBucket"]


def test_a_client_error_becomes_an_aws_error_with_its_code(mock_aws):
    s3 = aws.AwsClients("us-west-2").client("s3")
    with pytest.raises(AwsError) as info:
        aws.call("s3:GetBucketTagging", s3.get_bucket_tagging, Bucket="does-not-exist-kservectl")
    assert info.value.code == "NoSuchBucket"
    assert info.value.one_line().startswith("AWS s3:GetBucketTagging failed with NoSuchBucket")
    assert isinstance(info.value.__cause__, Exception)


def test_missing_credentials_say_how_to_configure_them(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    sts = aws.AwsClients("us-west-2", settings=Settings(aws_max_attempts=1)).client("sts")
    with pytest.raises(AwsError) as info:
        aws.call("sts:GetCallerIdentity", sts.get_caller_identity)
    assert info.value.code == "NoCredentials"
    assert "aws configure" in info.value.one_line()


def test_an_unknown_profile_is_reported_plainly(monkeypatch):
    with pytest.raises(AwsError) as info:
        aws.AwsClients("us-west-2", profile="nobody-has-this-profile").session()
    assert "nobody-has-this-profile" in info.value.one_line() and "aws.profile" in info.value.one_line()


def test_the_endpoint_url_environment_variable_reaches_boto3(moto_server):
    clients = aws.AwsClients("us-west-2")
    s3 = clients.client("s3")
    assert s3.meta.endpoint_url == moto_server
    s3.create_bucket(Bucket="kservectl-via-server", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert "kservectl-via-server" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
