"""``kservectl cleanup --orphans`` through the CLI, against moto in-process.

The library is ``kservectl.orphans`` (tested in tests/test_orphans.py); these tests check the
command's contract from issue 8: a dry run by default (exit 0) printing every orphan's full id,
also when the output is not a terminal and the terminal is narrow; ``--output json`` for scripts;
``--yes`` deleting exactly what the dry run printed; the bucket only with ``--delete-data``.
"""

from __future__ import annotations

import json

import boto3
import pytest

from kservectl import orphans

REGION = "us-west-2"
ACCOUNT = "123456789012"
ARGS = ("cleanup", "--orphans", "--cluster", "prod", "--region", REGION)


@pytest.fixture
def wired(cli):
    assert "--orphans" in cli("cleanup", "--help").stdout
    return cli


def small_world() -> dict[str, str]:
    """One orphan of prod per kind of evidence that is cheap to create, and decoys."""
    ec2 = boto3.client("ec2", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)

    def volume(tags: dict[str, str]) -> str:
        return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3", TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])["VolumeId"]

    made = {
        "orphan_volume": volume({"kservectl.io/cluster": "prod"}),
        "decoy_volume": volume({"kservectl.io/cluster": "prod-2"}),
        "lookalike_volume": volume({"ebs.csi.aws.com/cluster": "true"}),
    }
    logs.create_log_group(logGroupName="/aws/eks/prod/cluster")
    logs.create_log_group(logGroupName="/aws/eks/prod-2/cluster")
    bucket = f"kservectl-prod-{ACCOUNT}-{REGION}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "kservectl.io/cluster", "Value": "prod"}]})
    made["bucket"] = bucket
    return made


def volume_exists(volume_id: str) -> bool:
    ec2 = boto3.client("ec2", region_name=REGION)
    return bool(ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"])


def log_group_exists(name: str) -> bool:
    groups = boto3.client("logs", region_name=REGION).describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return any(g["logGroupName"] == name for g in groups)


def test_the_default_is_a_dry_run_that_prints_every_full_id_and_changes_nothing(wired, mock_aws, monkeypatch):
    made = small_world()
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal must not truncate ids
    result = wired(*ARGS)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert made["orphan_volume"] in out
    assert "arn:aws:logs:us-west-2:123456789012:log-group:/aws/eks/prod/cluster" in out
    assert f"arn:aws:s3:::{made['bucket']}" in out
    assert made["decoy_volume"] not in out and made["lookalike_volume"] not in out
    assert "look related but carr" in out or "looks related but carries" in out
    assert volume_exists(made["orphan_volume"]) and log_group_exists("/aws/eks/prod/cluster")


def test_json_output_lists_the_orphans_for_scripts(wired, mock_aws):
    made = small_world()
    result = wired(*ARGS, "--output", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    search = data.get("search", data)
    ids = [o["id"] for o in search["orphans"]]
    assert made["orphan_volume"] in ids and made["decoy_volume"] not in ids
    assert search["account_id"] == ACCOUNT
    assert all({"type", "id", "region", "evidence", "monthly_cost"} <= set(o) for o in search["orphans"])


def test_yes_deletes_exactly_what_the_dry_run_printed_and_keeps_the_bucket(wired, mock_aws):
    made = small_world()
    dry = json.loads(wired(*ARGS, "--output", "json").stdout)
    dry_ids = [o["id"] for o in dry.get("search", dry)["orphans"]]
    result = wired(*ARGS, "--yes", "--output", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    outcomes = data["delete"]["outcomes"]
    assert [o["id"] for o in outcomes] == dry_ids
    assert {o["id"]: o["status"] for o in outcomes}[f"arn:aws:s3:::{made['bucket']}"] == "kept"
    assert not volume_exists(made["orphan_volume"]) and not log_group_exists("/aws/eks/prod/cluster")
    assert volume_exists(made["decoy_volume"]) and volume_exists(made["lookalike_volume"])
    assert log_group_exists("/aws/eks/prod-2/cluster")
    boto3.client("s3", region_name=REGION).head_bucket(Bucket=made["bucket"])  # still there


def test_delete_data_also_deletes_the_bucket(wired, mock_aws):
    made = small_world()
    result = wired(*ARGS, "--yes", "--delete-data")
    assert result.exit_code == 0, result.stderr
    names = [b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]]
    assert made["bucket"] not in names


def test_nothing_left_behind_is_a_clean_exit(wired, mock_aws):
    result = wired(*ARGS)
    assert result.exit_code == 0, result.stderr
    assert "0 orphans of cluster prod" in result.stdout


def test_the_library_the_command_calls_is_importable_without_the_cli():
    assert callable(orphans.search) and callable(orphans.delete)
