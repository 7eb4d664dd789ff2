"""``kservectl cleanup --orphans`` through the CLI, against moto in-process.

The library is ``kservectl.orphans`` (tested in tests/test_orphans.py); these tests check the
command's contract from issue 8: a dry run by default (exit 0) printing every orphan's full id,
also when the output is not a terminal and the terminal is narrow, the account and the exact
``--yes --account <id>`` command; ``--output json`` for scripts; that command deleting exactly
what the dry run printed, and refusing (exit 2, nothing deleted) when the credentials changed
account in between; ``--yes`` without ``--account`` confirmed at a terminal, refused without one;
the bucket only with ``--delete-data``; a ``shared`` resource never deleted; AWS only (no tool on
PATH, no kubeconfig).
"""

from __future__ import annotations

import json
import shlex
import shutil
from types import SimpleNamespace

import boto3
import pytest

from kservectl import aws, config, orphans
from kservectl.context import Context
from kservectl.events import RecordingReporter

REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's
OTHER_ACCOUNT = "111111111111"
ARGS = ("cleanup", "--orphans", "--cluster", "prod", "--region", REGION)
PINNED = (*ARGS, "--yes", "--account", ACCOUNT)


@pytest.fixture
def wired(cli):
    assert "--orphans" in cli("cleanup", "--help").stdout
    return cli


def volume(tag_pairs: dict[str, str]) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tag_pairs.items()]}])["VolumeId"]


def small_world() -> dict[str, str]:
    """One orphan of prod per kind of evidence that is cheap to create, and decoys."""
    logs = boto3.client("logs", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
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


def printed_command(stdout: str) -> list[str]:
    """The delete command the dry run printed, as arguments for ``cli`` (without ``kservectl``)."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith("kservectl cleanup --orphans"))
    argv = shlex.split(line)
    assert argv[0] == "kservectl"
    return argv[1:]


# -- the dry run ---------------------------------------------------------------------------------------


def test_the_default_is_a_dry_run_that_prints_every_full_id_the_account_and_the_command(wired, mock_aws,
                                                                                          monkeypatch):
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
    assert f"(account {ACCOUNT})" in out.splitlines()[0]
    assert "Dry run: nothing was deleted. To delete these 3 in account 123456789012, run:" in out
    assert printed_command(out) == [*PINNED[:-3], "--yes", "--account", ACCOUNT]
    assert "(add --delete-data to delete the S3 bucket and the data in it too)" in out
    assert volume_exists(made["orphan_volume"]) and log_group_exists("/aws/eks/prod/cluster")


def test_json_output_lists_the_orphans_and_the_command_for_scripts(wired, mock_aws):
    made = small_world()
    result = wired(*ARGS, "--output", "json")
    assert result.exit_code == 0, result.stderr
    search = json.loads(result.stdout)  # the search itself, plus the command
    ids = [o["id"] for o in search["orphans"]]
    assert made["orphan_volume"] in ids and made["decoy_volume"] not in ids
    assert search["account_id"] == ACCOUNT
    assert all({"type", "id", "region", "evidence", "monthly_cost"} <= set(o) for o in search["orphans"])
    assert search["delete_command"] == ("kservectl cleanup --orphans --cluster prod --region us-west-2 --yes "
                                      "--account 123456789012")


def test_a_config_file_given_to_the_dry_run_is_in_the_printed_command(wired, mock_aws, tmp_path):
    small_world()
    conf = tmp_path / "platform.yaml"
    conf.write_text(f"cluster:\n  name: prod\n  region: {REGION}\n")
    result = wired("cleanup", "--orphans", "--config", str(conf))
    assert result.exit_code == 0, result.stderr
    assert printed_command(result.stdout) == [*ARGS[:-4], "--cluster", "prod", "--region", REGION,
                                              "--config", str(conf), "--yes", "--account", ACCOUNT]


def test_nothing_left_behind_is_a_clean_exit_with_no_command(wired, mock_aws):
    result = wired(*ARGS)
    assert result.exit_code == 0, result.stderr
    assert "0 orphans of cluster prod in us-west-2 (account 123456789012)" in result.stdout
    assert "--yes" not in result.stdout


def test_while_the_eks_cluster_still_runs_the_dry_run_prints_no_delete_command_and_says_why(wired, mock_aws):
    made = small_world()
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    boto3.client("eks", region_name=REGION).create_cluster(  # moto makes it ACTIVE
        name="prod", roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={"subnetIds": [subnet]})
    result = wired(*ARGS)
    assert result.exit_code == 0, result.stderr
    assert made["orphan_volume"] in result.stdout  # still listed (as its live infrastructure)
    assert "--yes --account" not in result.stdout  # that command would refuse (ClusterStillRunning)
    assert ("Dry run: nothing was deleted. No delete command: EKS cluster prod still runs (ACTIVE), so `--yes` "
            "would refuse. Tear it down with `kservectl cleanup --cluster prod --region us-west-2`, then run this "
            "dry run again.") in result.stdout
    data = json.loads(wired(*ARGS, "--output", "json").stdout)
    assert data["delete_command"] is None and data["cluster_status"] == "ACTIVE" and data["orphans"]
    assert volume_exists(made["orphan_volume"])


# -- deleting --------------------------------------------------------------------------------------------


def test_the_printed_command_deletes_exactly_what_the_dry_run_printed_and_keeps_the_bucket(wired, mock_aws):
    made = small_world()
    dry = json.loads(wired(*ARGS, "--output", "json").stdout)
    dry_ids = [o["id"] for o in dry["orphans"]]
    result = wired(*shlex.split(dry["delete_command"])[1:], "--output", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    outcomes = data["delete"]["outcomes"]
    assert [o["id"] for o in outcomes] == dry_ids
    assert data["delete"]["account_id"] == ACCOUNT
    assert {o["id"]: o["status"] for o in outcomes}[f"arn:aws:s3:::{made['bucket']}"] == "kept"
    assert not volume_exists(made["orphan_volume"]) and not log_group_exists("/aws/eks/prod/cluster")
    assert volume_exists(made["decoy_volume"]) and volume_exists(made["lookalike_volume"])
    assert log_group_exists("/aws/eks/prod-2/cluster")
    boto3.client("s3", region_name=REGION).head_bucket(Bucket=made["bucket"])  # still there


def test_delete_data_also_deletes_the_bucket(wired, mock_aws):
    made = small_world()
    result = wired(*PINNED, "--delete-data")
    assert result.exit_code == 0, result.stderr
    names = [b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]]
    assert made["bucket"] not in names


def test_a_shared_resource_is_listed_apart_and_survives_yes(wired, mock_aws):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]

    def group(name: str, tag_pairs: dict[str, str]) -> str:
        return ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc, TagSpecifications=[
            {"ResourceType": "security-group",
             "Tags": [{"Key": k, "Value": v} for k, v in tag_pairs.items()]}])["GroupId"]

    owned = group("prod-nodes", {"kubernetes.io/cluster/prod": "owned"})
    shared = group("shared-nodes", {"kubernetes.io/cluster/prod": "shared", "kservectl.io/cluster": "prod"})
    dry = wired(*ARGS)
    assert owned in dry.stdout and shared not in dry.stdout
    assert ("1 resource is not owned, shared: tagged kubernetes.io/cluster/prod=shared (used by prod, owned by "
            "none): not touched (1 security-group)") in dry.stdout
    result = wired(*PINNED)
    assert result.exit_code == 0, result.stderr
    remaining = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert shared in remaining and owned not in remaining


# -- never the wrong account -------------------------------------------------------------------------------


def test_the_printed_command_refuses_when_the_credentials_changed_account_and_deletes_nothing(
        wired, mock_aws, monkeypatch):
    made = small_world()
    command = printed_command(wired(*ARGS).stdout)
    monkeypatch.setenv("MOTO_ACCOUNT_ID", OTHER_ACCOUNT)  # another profile, between the dry run and --yes
    theirs = volume({"kservectl.io/cluster": "prod"})  # prod's volume in that other account
    result = wired(*command)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: refusing: the AWS credentials belong to account 111111111111, not the pinned account "
        "123456789012; nothing was searched or deleted (use the credentials of account 123456789012 "
        "(AWS_PROFILE / aws.profile))")
    assert result.stdout == ""
    assert volume_exists(theirs)
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    assert volume_exists(made["orphan_volume"]) and log_group_exists("/aws/eks/prod/cluster")


def test_a_pinned_dry_run_in_another_account_is_refused_too(wired, mock_aws):
    result = wired(*ARGS, "--account", OTHER_ACCOUNT)
    assert result.exit_code == 2
    assert "belong to account 123456789012, not the pinned account 111111111111" in result.stderr


def test_yes_without_account_and_without_a_terminal_is_refused_before_any_aws_call(wired):
    # no moto and no credentials here: any AWS call would fail with another error
    result = wired(*ARGS, "--yes")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: cleanup --orphans --yes needs --account ACCOUNT_ID when there is no terminal to confirm the AWS "
        "account; nothing was searched or deleted (run the dry run (without --yes) first: it prints the exact "
        "command, with the account)")


@pytest.mark.parametrize("value", ["12345", "12345678901a", "arn:aws:iam::123456789012:root"])
def test_a_malformed_account_is_refused_before_any_aws_call(wired, value):
    result = wired(*ARGS, "--account", value)
    assert result.exit_code == 2
    assert f"Error: --account {value!r} is not an AWS account id (give the 12 digits" in result.stderr


@pytest.fixture
def terminal(monkeypatch):
    """stdin is a terminal (for the command's check and for ``confirm``)."""
    from kservectl.cli import cleanup_cmd, common

    fake = SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True))
    monkeypatch.setattr(cleanup_cmd, "sys", fake)
    monkeypatch.setattr(common, "sys", fake)


def test_yes_at_a_terminal_without_account_asks_naming_the_account_and_no_deletes_nothing(
        wired, mock_aws, terminal):
    made = small_world()
    result = wired(*ARGS, "--yes", input="n\n")
    assert result.exit_code == 130
    assert "Delete these 3 orphans of cluster 'prod' in us-west-2, AWS account 123456789012?" in result.stderr
    assert made["orphan_volume"] in result.stdout  # the list was shown before the question
    assert volume_exists(made["orphan_volume"]) and log_group_exists("/aws/eks/prod/cluster")


def test_yes_at_a_terminal_without_account_deletes_once_confirmed(wired, mock_aws, terminal):
    made = small_world()
    result = wired(*ARGS, "--yes", input="y\n")
    assert result.exit_code == 0, result.stderr
    assert f"deleted ebs-volume {made['orphan_volume']}" in result.stdout
    assert not volume_exists(made["orphan_volume"]) and volume_exists(made["decoy_volume"])


# -- AWS only --------------------------------------------------------------------------------------------


def test_it_needs_aws_only_no_tool_on_path_and_no_kubeconfig(wired, mock_aws, monkeypatch, isolated_env, tmp_path):
    made = small_world()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kube/config
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    assert [shutil.which(tool) for tool in ("eksctl", "helm", "kubectl", "aws")] == [None] * 4
    dry = wired(*ARGS)
    assert dry.exit_code == 0, dry.stderr
    result = wired(*printed_command(dry.stdout))
    assert result.exit_code == 0, result.stderr
    assert not volume_exists(made["orphan_volume"]) and volume_exists(made["decoy_volume"])
    assert not (tmp_path / "no-such-kubeconfig").exists()
    assert not list(isolated_env.rglob("kubeconfig"))  # none written either
    assert not (tmp_path / "home").exists()


# -- the library behind the command ------------------------------------------------------------------------


def test_the_library_finds_and_deletes_what_the_command_lists_without_the_cli(wired, mock_aws):
    made = small_world()
    listed = json.loads(wired(*ARGS, "--output", "json").stdout)["orphans"]
    ctx = Context(config=config.load(env={}, flags={"cluster.name": "prod", "cluster.region": REGION}).config,
                  reporter=RecordingReporter())
    calls: list[str] = []
    ctx.aws.observers.append(lambda service, op: calls.append(op))
    found = orphans.search(ctx, account_id=ACCOUNT)
    assert [o.as_dict() for o in found.orphans] == listed
    assert not [op for op in calls if aws.is_mutating(op)]
    report = orphans.delete(ctx, found.orphans, account_id=ACCOUNT)
    assert [(o.status, o.orphan.type) for o in report.outcomes] == [
        ("deleted", orphans.VOLUME), ("deleted", orphans.LOG_GROUP), ("kept", orphans.BUCKET)]
    assert not volume_exists(made["orphan_volume"]) and volume_exists(made["decoy_volume"])
