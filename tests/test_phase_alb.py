"""Phase ``alb``: the controller's IAM policy (created once, versioned when the shipped document
changes), the IRSA ServiceAccount through eksctl, the Helm release, the waits for the Deployment
and its webhook endpoints, the guarded uninstall, status, plan files and the ``alb`` CLI verbs."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml

from kservectl import paths
from kservectl.errors import KservectlError, ToolMissingError, WaitTimeout
from kservectl.matrix import pinned
from kservectl.phases import alb, cluster
from kservectl.phases.base import LiveValues
from kservectl.settings import WaitDeadlines
from support.golden import assert_golden
from test_phase_cluster import (
    NAME,
    REGION,
    SETTINGS,
    deployment,
    eks_cluster,
    make_ctx,
    mutations,
    on_first_wait,
    tool_calls,
)

ACCOUNT = "123456789012"
POLICY = f"kservectl-{NAME}-AWSLoadBalancerControllerIAMPolicy"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{POLICY}"
SHIPPED = (Path(__file__).resolve().parents[1]
           / "src/kservectl/data/aws-load-balancer-controller/iam_policy.json")
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/eksctl-ml-addon-iamserviceaccount-kube-system-Role1"
OLD_DOCUMENT = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["elasticloadbalancing:DescribeLoadBalancers"], "Resource": "*"}]}


def iam():
    return boto3.client("iam", region_name=REGION)


def stored_document(version: str | None = None) -> dict:
    policy = iam().get_policy(PolicyArn=POLICY_ARN)["Policy"]
    found = iam().get_policy_version(PolicyArn=POLICY_ARN, VersionId=version or policy["DefaultVersionId"])
    return found["PolicyVersion"]["Document"]


def old_policy(versions: int = 1, tagged: bool = True) -> None:
    """The policy as an older kservectl (with an older controller) left it."""
    tags = [{"Key": "kservectl.io/cluster", "Value": NAME}] if tagged else []
    iam().create_policy(PolicyName=POLICY, PolicyDocument=json.dumps(OLD_DOCUMENT), Tags=tags)
    for _ in range(versions - 1):
        iam().create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(OLD_DOCUMENT),
                                    SetAsDefault=True)


def controller_in_cluster(kube, *, endpoints: bool = True, available: bool = True) -> None:
    """What helm (Deployment, webhook Service) and the endpoints controller would leave."""
    kube.create(deployment(alb.DEPLOYMENT, "kube-system", available=available))
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": alb.WEBHOOK_SERVICE, "namespace": "kube-system"},
                 "spec": {"ports": [{"port": 443, "targetPort": 9443}]}})
    subsets = [{"addresses": [{"ip": "192.168.97.12"}], "ports": [{"port": 9443}]}] if endpoints else []
    kube.create({"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": alb.WEBHOOK_SERVICE, "namespace": "kube-system"}, "subsets": subsets})


def service_account(role: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": alb.SERVICE_ACCOUNT, "namespace": "kube-system",
                         "annotations": {alb.ROLE_ANNOTATION: role}}}


@pytest.fixture
def live(mock_aws, kube, fake_tools):
    """An ACTIVE cluster in moto and in the fake eksctl (with OIDC), its API in the emulator."""
    vpc = eks_cluster()
    fake_tools.add_cluster(NAME, REGION, oidc=True, nodegroups=["ng-default"])
    return vpc


def alb_ctx(kube, **kw):
    return make_ctx(kubeconfig=kube.kubeconfig, **kw)


# == the IAM policy =============================================================================
def test_the_policy_is_created_once_from_the_shipped_document_and_tagged(mock_aws, schema_validator):
    ctx = make_ctx()
    seen = mutations(ctx)
    result = alb.ensure_policy(ctx)
    assert result == {"arn": POLICY_ARN, "result": "created", "version": "v1"}
    assert seen == ["iam:CreatePolicy"]
    document = stored_document()
    assert document == json.loads(SHIPPED.read_text())
    schema_validator.assert_valid_iam_policy(document)
    policy = iam().get_policy(PolicyArn=POLICY_ARN)["Policy"]
    assert {"Key": "kservectl.io/cluster", "Value": "ml"} in policy["Tags"]


def test_a_second_run_makes_no_mutating_call(mock_aws):
    alb.ensure_policy(make_ctx())
    ctx = make_ctx()
    seen = mutations(ctx)
    assert alb.ensure_policy(ctx)["result"] == "unchanged"
    assert seen == []


def test_a_changed_document_becomes_the_new_default_version(mock_aws, schema_validator):
    old_policy()
    ctx = make_ctx()
    seen = mutations(ctx)
    result = alb.ensure_policy(ctx)
    assert result["result"] == "updated" and result["version"] == "v2" and result["removed_version"] is None
    assert seen == ["iam:CreatePolicyVersion"]
    assert stored_document() == json.loads(SHIPPED.read_text())
    assert stored_document("v1") == OLD_DOCUMENT  # kept: a rollback is still possible
    schema_validator.assert_valid_iam_policy(stored_document())


def test_at_five_versions_the_oldest_non_default_version_makes_room(mock_aws):
    old_policy(versions=5)
    ctx = make_ctx()
    seen = mutations(ctx)
    result = alb.ensure_policy(ctx)
    assert seen == ["iam:DeletePolicyVersion", "iam:CreatePolicyVersion"]
    assert result["removed_version"] == "v1"
    versions = iam().list_policy_versions(PolicyArn=POLICY_ARN)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == ["v2", "v3", "v4", "v5", "v6"]
    assert [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == ["v6"]


def test_a_policy_of_that_name_without_our_tag_is_never_changed(mock_aws):
    old_policy(tagged=False)
    ctx = make_ctx()
    seen = mutations(ctx)
    with pytest.raises(KservectlError,
                       match=f"IAM policy {POLICY} exists but is not tagged kservectl.io/cluster=ml"):
        alb.ensure_policy(ctx)
    assert seen == [] and stored_document() == OLD_DOCUMENT


def test_a_dry_run_reports_the_new_version_without_writing(mock_aws):
    old_policy()
    ctx = make_ctx(dry_run=True)
    seen = mutations(ctx)
    assert alb.ensure_policy(ctx)["result"] == "updated"
    assert seen == [] and stored_document() == OLD_DOCUMENT


def test_a_long_cluster_name_still_makes_a_valid_unique_policy_name():
    long_a, long_b = "a" * 99 + "x", "a" * 99 + "y"
    assert len(alb.policy_name(long_a)) == 128 and alb.policy_name(long_a) != alb.policy_name(long_b)
    assert alb.policy_name("ml") == POLICY


# == plan and rendering =========================================================================
def test_the_plan_ships_the_policy_unchanged_and_the_helm_values(tmp_path, schema_validator):
    ctx = make_ctx()
    plan = alb.plan(ctx, LiveValues(), tmp_path)
    assert plan.files["iam-policy.json"] == SHIPPED.read_text()
    schema_validator.assert_valid_iam_policy(json.loads(plan.files["iam-policy.json"]))
    assert_golden("alb/alb-values.yaml", plan.files["alb-values.yaml"])
    commands = [list(s.command) for s in plan.steps if s.command]
    assert commands[0] == ["eksctl", "create", "iamserviceaccount", "--cluster", "ml", "--region", REGION,
                           "--namespace", "kube-system", "--name", "aws-load-balancer-controller",
                           "--attach-policy-arn", f"arn:aws:iam::<account-id>:policy/{POLICY}",
                           "--tags", "kservectl.io/cluster=ml", "--override-existing-serviceaccounts",
                           "--approve"]
    assert commands[3][:11] == ["helm", "upgrade", "--install", "aws-load-balancer-controller",
                                "eks/aws-load-balancer-controller", "--version", pinned(
                                    "aws_load_balancer_controller_chart"), "--namespace", "kube-system",
                                "--values", str(tmp_path / "alb" / "alb-values.yaml")]
    assert [s.kind for s in plan.steps] == ["aws", "aws", "tool", "tool", "tool", "tool", "kube", "kube"]


def test_the_values_name_the_cluster_region_vpc_and_the_irsa_account():
    values = yaml.safe_load(alb.render_values(make_ctx(), "vpc-0abc"))
    assert values == {"clusterName": "ml", "region": REGION, "vpcId": "vpc-0abc",
                      "image": {"tag": pinned("aws_load_balancer_controller")},
                      "serviceAccount": {"create": False, "name": "aws-load-balancer-controller"},
                      "defaultTags": {"kservectl.io/cluster": "ml"}}


def test_the_shipped_policy_is_read_from_the_package():
    assert alb.policy_text() == SHIPPED.read_text()



def test_a_configured_controller_version_wins_over_the_pin_in_values_plan_and_status(tmp_path, mock_aws):
    ctx = make_ctx({"versions.aws_load_balancer_controller": "v3.5.1"})
    assert yaml.safe_load(alb.render_values(ctx, "vpc-0abc"))["image"] == {"tag": "v3.5.1"}
    plan = alb.plan(ctx, LiveValues(), tmp_path)
    assert plan.summary.startswith("AWS Load Balancer Controller v3.5.1 (chart 3.5.0)")
    assert yaml.safe_load(plan.files["alb-values.yaml"])["image"]["tag"] == "v3.5.1"
    assert alb.version_note(ctx) == ("versions.aws_load_balancer_controller=v3.5.1 differs from the pin v3.5.0: "
                                     "the chart stays 3.5.0 and the IAM policy is the iam_policy.json shipped "
                                     "for v3.5.0")
    assert alb.version_note(make_ctx()) is None
    unprefixed = make_ctx({"versions.aws_load_balancer_controller": "3.6.0"})
    assert yaml.safe_load(alb.render_values(unprefixed, "vpc-0abc"))["image"] == {"tag": "v3.6.0"}


def test_the_plan_shows_the_helm_3_flags_when_the_local_helm_is_helm_3(tmp_path, fake_tools):
    fake_tools.script([{"tool": "helm", "argv_prefix": ["version"], "stdout": "v3.17.3+ge4da497\n"}])
    plan = alb.plan(make_ctx(), LiveValues(), tmp_path)
    install = next(list(s.command) for s in plan.steps if s.command[:2] == ("helm", "upgrade"))
    assert install[-4:] == ["--timeout", "0m5s", "--wait", "--atomic"]


def test_the_values_use_only_keys_the_pinned_chart_accepts():
    from kservectl.phases import kserve

    ctx = make_ctx({"versions.aws_load_balancer_controller": "v3.5.1"})
    chart = alb.release(ctx, "vpc-0abc").chart_name
    assert kserve.value_key_problems(chart, yaml.safe_load(alb.render_values(ctx, "vpc-0abc"))) == []
    assert kserve.value_key_problems(chart, {"vpcID": "vpc-0abc", "serviceAccount": {"create": "no"}}) == [
        "vpcID: not a value of chart aws-load-balancer-controller 3.5.0",
        "serviceAccount.create: the chart expects a bool, got 'no'"]


def test_the_key_list_is_for_the_pinned_chart_and_says_where_its_keys_came_from():
    from kservectl.phases import kserve

    keys = kserve.chart_keys("aws-load-balancer-controller")
    assert keys["chart"] == alb.release(make_ctx(), "vpc-0abc").chart_name
    assert keys["version"] == pinned("aws_load_balancer_controller_chart"), (
        "a pin moved: re-check this chart's value keys")
    assert keys["source"] and keys["keys"]
    # the keys came from an older chart, and the source says which (by its image tag, v2.6.1)
    assert keys["keys_from"] == "v2.6.1" != keys["version"]
    assert "(image.tag v2.6.1;" in " ".join(keys["source"].split())


# == install ====================================================================================
def test_install_creates_policy_service_account_and_release_then_waits(live, kube, fake_tools):
    controller_in_cluster(kube)
    ctx = alb_ctx(kube)
    result = alb.install(ctx)
    assert result["vpc_id"] == live
    assert tool_calls(fake_tools, "eksctl") == [[
        "create", "iamserviceaccount", "--cluster", "ml", "--region", REGION, "--namespace", "kube-system",
        "--name", "aws-load-balancer-controller", "--attach-policy-arn", POLICY_ARN,
        "--tags", "kservectl.io/cluster=ml", "--override-existing-serviceaccounts", "--approve"]]
    values_file = cluster.rendered_root(ctx) / "alb" / "alb-values.yaml"
    writes = [a for a in tool_calls(fake_tools, "helm") if a[0] in ("repo", "upgrade")]
    assert writes == [
        ["repo", "add", "eks", "https://aws.github.io/eks-charts", "--force-update"],
        ["repo", "update", "eks"],
        ["upgrade", "--install", "aws-load-balancer-controller", "eks/aws-load-balancer-controller",
         "--version", "3.5.0", "--namespace", "kube-system", "--values", str(values_file),
         "--kubeconfig", str(kube.kubeconfig), "--timeout", "0m5s", "--wait=watcher",
         "--rollback-on-failure"]]
    [release] = fake_tools.releases("kube-system")
    assert release["config"]["vpcId"] == live and release["config"]["clusterName"] == "ml"
    assert release["config"]["serviceAccount"] == {"create": False, "name": "aws-load-balancer-controller"}
    [irsa] = fake_tools.clusters()[0]["iamserviceaccounts"].values()
    assert irsa["policies"] == [POLICY_ARN]
    assert result["actions"][-1] == ("Deployment kube-system/aws-load-balancer-controller Available; "
                                     "webhook aws-load-balancer-webhook-service has endpoints")


def test_helm_3_is_given_wait_and_atomic(live, kube, fake_tools):
    fake_tools.script([{"tool": "helm", "argv_prefix": ["version"], "stdout": "v3.17.3+ge4da497\n"}])
    controller_in_cluster(kube)
    alb.install(alb_ctx(kube))
    install = next(a for a in tool_calls(fake_tools, "helm") if a[0] == "upgrade")
    assert install[-4:] == ["--timeout", "0m5s", "--wait", "--atomic"]


def test_a_second_install_changes_nothing(live, kube, fake_tools):
    controller_in_cluster(kube)
    alb.install(alb_ctx(kube))
    irsa_in_aws_and_cluster_after_eksctl(kube)
    calls = len(tool_calls(fake_tools))
    before = kube.emulator.resource_version
    ctx = alb_ctx(kube)
    seen = mutations(ctx)
    result = alb.install(ctx)
    assert seen == []
    new = tool_calls(fake_tools)[calls:]
    assert [a[:2] for a in new] == [["list", "--namespace"], ["get", "values"]]
    assert kube.emulator.resource_version == before
    assert result["release"]["result"] == "unchanged"
    assert result["actions"][:3] == [f"IAM policy {POLICY_ARN} unchanged (v1)",
                                     "ServiceAccount kube-system/aws-load-balancer-controller unchanged",
                                     "release aws-load-balancer-controller unchanged (chart 3.5.0)"]


def irsa_stack() -> None:
    """The stack `eksctl create iamserviceaccount` leaves, with the role as output Role1."""
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"Role1": {"Value": ROLE_ARN}}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"eksctl-{NAME}-addon-iamserviceaccount-kube-system-aws-load-balancer-controller",
        TemplateBody=json.dumps(template), Tags=[{"Key": "alpha.eksctl.io/cluster-name", "Value": NAME}])


def irsa_in_aws_and_cluster_after_eksctl(kube) -> None:
    """The fake eksctl keeps its state to itself: give AWS the stack and the cluster the SA."""
    irsa_stack()
    kube.create(service_account(ROLE_ARN))


def test_a_deleted_service_account_is_written_back_from_its_stack_role(live, kube, fake_tools):
    irsa_stack()
    controller_in_cluster(kube)
    ctx = alb_ctx(kube)
    result = alb.install(ctx)
    assert "ServiceAccount kube-system/aws-load-balancer-controller restored" in result["actions"]
    assert not any(a[1] == "iamserviceaccount" for a in tool_calls(fake_tools, "eksctl"))
    sa = kube.get("v1", "ServiceAccount", alb.SERVICE_ACCOUNT, "kube-system")
    assert sa["metadata"]["annotations"][alb.ROLE_ANNOTATION] == ROLE_ARN


def test_install_into_a_missing_cluster_says_what_to_run(mock_aws):
    with pytest.raises(KservectlError) as info:
        alb.install(make_ctx())
    assert info.value.one_line() == \
        "cluster ml does not exist in us-west-2 (create it first: kservectl cluster create)"



@pytest.mark.parametrize("tool, old, hint", [
    ("helm", "v3.9.4+g1234\n", "helm 3.9.4 is too old (need >= 3.14.0) "
     "(install helm >= 3.14 (helm 4 supported): https://helm.sh/docs/intro/install/)"),
    ("eksctl", "0.100.0\n", "eksctl 0.100.0 is too old (need >= 0.215.0) "
     "(install eksctl >= 0.215.0: https://eksctl.io/installation/)"),
])
def test_install_with_a_too_old_tool_stops_before_the_policy_is_created(live, kube, fake_tools, tool, old, hint):
    fake_tools.script([{"tool": tool, "argv_prefix": ["version"], "stdout": old}])
    ctx = alb_ctx(kube)
    seen = mutations(ctx)
    with pytest.raises(ToolMissingError) as info:
        alb.install(ctx)
    assert info.value.one_line() == hint and info.value.exit_code == 2
    assert seen == [] and tool_calls(fake_tools) == [] and fake_tools.releases() == []
    assert iam().list_policies(Scope="Local")["Policies"] == []


def test_cli_install_with_a_too_old_helm_exits_2_with_the_install_hint(cli, live, kube, fake_tools):
    _cli_kubeconfig(kube)
    fake_tools.script([{"tool": "helm", "argv_prefix": ["version"], "stdout": "v3.9.4+g1234\n"}])
    result = cli("alb", "install", "-c", "ml")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: helm 3.9.4 is too old (need >= 3.14.0) "
        "(install helm >= 3.14 (helm 4 supported): https://helm.sh/docs/intro/install/)")
    assert iam().list_policies(Scope="Local")["Policies"] == []


def test_the_wait_ends_when_the_webhook_gets_endpoints(kube):
    controller_in_cluster(kube, endpoints=False)
    ctx = alb_ctx(kube)
    # the endpoints controller acts once the wait has reported the Endpoints without addresses
    on_first_wait(ctx, lambda: kube.patch(
        "v1", "Endpoints", alb.WEBHOOK_SERVICE, "kube-system",
        {"subsets": [{"addresses": [{"ip": "192.168.97.12"}], "ports": [{"port": 9443}]}]}),
        about="no ready endpoints yet")
    alb.wait_ready(ctx)
    assert ("the webhook Service kube-system/aws-load-balancer-webhook-service to have ready endpoints: "
            "Endpoints kube-system/aws-load-balancer-webhook-service: no ready endpoints yet"
            ) in ctx.reporter.messages("waiting")


def test_the_webhook_wait_times_out_naming_the_service_without_endpoints(live, kube, fake_tools):
    controller_in_cluster(kube, endpoints=False)
    settings = SETTINGS.with_(waits=WaitDeadlines(deployment_available=2.0, endpoints_ready=0.6,
                                                  watch_chunk=0.2))
    with pytest.raises(WaitTimeout) as info:
        alb.install(alb_ctx(kube, settings=settings))
    assert info.value.one_line().startswith(
        "timed out after 0.6s waiting for the webhook Service kube-system/aws-load-balancer-webhook-service "
        "to have ready endpoints: Endpoints kube-system/aws-load-balancer-webhook-service: "
        "no ready endpoints yet")


def test_the_deployment_wait_times_out_naming_the_deployment(live, kube, fake_tools):
    controller_in_cluster(kube, available=False)
    settings = SETTINGS.with_(waits=WaitDeadlines(deployment_available=0.6, watch_chunk=0.2))
    with pytest.raises(WaitTimeout) as info:
        alb.install(alb_ctx(kube, settings=settings))
    assert "waiting for Deployment kube-system/aws-load-balancer-controller to be Available: Deployment " \
           "kube-system/aws-load-balancer-controller: 0/1 replicas available" in info.value.one_line()


def test_a_dry_run_install_writes_nothing_anywhere(live, kube, fake_tools):
    ctx = alb_ctx(kube, dry_run=True)
    seen = mutations(ctx)
    before = kube.emulator.resource_version
    result = alb.install(ctx)
    assert seen == [] and kube.emulator.resource_version == before
    assert [argv[:3] for argv in ctx.runner.recorded] == [
        ["eksctl", "create", "iamserviceaccount"], ["helm", "repo", "add"], ["helm", "repo", "update"],
        ["helm", "upgrade", "--install"]]
    assert all(a[0] in ("version", "list") for a in fake_tools.calls())
    assert f"IAM policy {POLICY_ARN} would be created (v1)" in result["actions"]
    with pytest.raises(iam().exceptions.NoSuchEntityException):
        iam().get_policy(PolicyArn=POLICY_ARN)


# == uninstall ==================================================================================
def test_uninstall_refuses_while_load_balancer_services_or_ingresses_exist(live, kube, fake_tools):
    kube.ensure_namespace("kourier-system")
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace":
                 "kourier-system"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    kube.create({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": {"name": "mlflow", "namespace": "default"},
                 "spec": {"ingressClassName": "alb",
                          "defaultBackend": {"service": {"name": "mlflow", "port": {"number": 80}}}}})
    alb.ensure_policy(make_ctx())
    ctx = alb_ctx(kube)
    seen = mutations(ctx)
    with pytest.raises(KservectlError) as info:
        alb.uninstall(ctx, confirm=lambda q: pytest.fail("must not ask"))
    assert info.value.one_line() == (
        "the AWS Load Balancer Controller still manages load balancers of Ingress default/mlflow, "
        "Service kourier-system/kourier (LoadBalancer); removing it now would strand them "
        "(delete those first, then run this again)")
    assert seen == [] and tool_calls(fake_tools) == []


def test_uninstall_removes_release_service_account_and_our_policy_only(live, kube, fake_tools):
    fake_tools.script([{"tool": "eksctl", "argv_prefix": ["delete", "iamserviceaccount"],
                        "stdout": "deleted serviceaccount \"kube-system/aws-load-balancer-controller\"\n"}])
    controller_in_cluster(kube)
    alb.install(alb_ctx(kube))
    irsa_in_aws_and_cluster_after_eksctl(kube)
    other = iam().create_policy(PolicyName="kservectl-other-AWSLoadBalancerControllerIAMPolicy",
                                PolicyDocument=json.dumps(OLD_DOCUMENT),
                                Tags=[{"Key": "kservectl.io/cluster", "Value": "other"}])["Policy"]["Arn"]
    iam().create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(OLD_DOCUMENT),
                                SetAsDefault=False)
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "mlflow", "namespace": "default"},
                 "spec": {"type": "ClusterIP", "ports": [{"port": 5000}]}})
    calls = len(fake_tools.calls())
    asked: list[str] = []
    ctx = alb_ctx(kube)
    result = alb.uninstall(ctx, confirm=asked.append)
    assert asked == ["Uninstall the AWS Load Balancer Controller from cluster ml and delete its IAM policy?"]
    new = [a for a in fake_tools.calls()[calls:] if a[0] not in ("list", "version")]
    assert new == [
        ["uninstall", "aws-load-balancer-controller", "--namespace", "kube-system", "--kubeconfig",
         str(kube.kubeconfig), "--timeout", "0m5s"],
        ["delete", "iamserviceaccount", "--cluster", "ml", "--region", REGION, "--namespace", "kube-system",
         "--name", "aws-load-balancer-controller", "--wait"]]
    assert fake_tools.releases("kube-system") == []
    with pytest.raises(iam().exceptions.NoSuchEntityException):
        iam().get_policy(PolicyArn=POLICY_ARN)
    assert iam().get_policy(PolicyArn=other)["Policy"]["PolicyName"].startswith("kservectl-other")
    assert kube.get("v1", "Service", "mlflow", "default")["spec"]["type"] == "ClusterIP"
    assert result["actions"][-1] == f"IAM policy {POLICY_ARN} deleted"


def test_uninstall_keeps_a_policy_still_attached_to_a_role(live, kube, fake_tools):
    alb.ensure_policy(make_ctx())
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    iam().create_role(RoleName="someone-else", AssumeRolePolicyDocument=json.dumps(trust))
    iam().attach_role_policy(RoleName="someone-else", PolicyArn=POLICY_ARN)
    result = alb.uninstall(alb_ctx(kube))
    assert result["actions"][-1] == f"IAM policy {POLICY_ARN} kept: still attached to someone-else"
    assert iam().get_policy(PolicyArn=POLICY_ARN)["Policy"]["Arn"] == POLICY_ARN


def test_uninstall_keeps_an_untagged_policy_of_that_name(live, kube, fake_tools):
    old_policy(tagged=False)
    result = alb.uninstall(alb_ctx(kube))
    assert result["actions"][-1] == f"IAM policy {POLICY_ARN} kept: it is not tagged kservectl.io/cluster=ml"
    assert stored_document() == OLD_DOCUMENT


# == status =====================================================================================
def test_status_reports_readiness_versions_against_the_pin_and_the_policy(live, kube, fake_tools):
    controller_in_cluster(kube)
    alb.install(alb_ctx(kube))
    irsa_in_aws_and_cluster_after_eksctl(kube)
    data = alb.status(alb_ctx(kube))
    assert data["deployment"] == {"exists": True, "available": True, "detail": "Available", "ready": "1/1",
                                  "image": "example/x:1", "image_matches_config": False}
    assert data["webhook_ready"] is True and data["role_arn"] == ROLE_ARN
    assert data["release"] == {"status": "deployed", "chart_version": "3.5.0", "app_version": "3.5.0",
                               "matches_pin": True}
    assert data["pinned"] == {"chart": "3.5.0", "app": "v3.5.0"}
    assert data["policy"] == {"name": POLICY, "arn": POLICY_ARN, "exists": True, "version": "v1",
                              "matches_shipped": True, "owned": True, "attachments": 0}


def test_status_before_install_says_what_is_missing(live, kube, fake_tools):
    data = alb.status(alb_ctx(kube))
    assert data["policy"] == {"name": POLICY, "arn": POLICY_ARN, "exists": False}
    assert data["deployment"] == {"exists": False}
    assert data["release"] == {"installed": False}


# == CLI ========================================================================================
def _cli_kubeconfig(kube) -> None:
    path = paths.kubeconfig_path(NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kube.kubeconfig.read_text())


def test_cli_install_dry_run_prints_what_would_change_and_changes_nothing(cli, live, kube, fake_tools):
    _cli_kubeconfig(kube)
    result = cli("alb", "install", "-c", "ml", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("(dry run) alb install: cluster ml in us-west-2\n")
    assert f"  - IAM policy {POLICY_ARN} would be created (v1)" in result.stdout
    assert "  - would run: eksctl create iamserviceaccount --cluster ml --region us-west-2" in result.stdout
    assert "  - would run: helm upgrade --install aws-load-balancer-controller" in result.stdout
    assert all(a[0] in ("version", "list") for a in fake_tools.calls())
    assert iam().list_policies(Scope="Local")["Policies"] == []


def test_cli_install_with_json_output(cli, live, kube, fake_tools):
    _cli_kubeconfig(kube)
    controller_in_cluster(kube)
    result = cli("alb", "install", "-c", "ml", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["policy"]["result"] == "created" and data["release"]["result"] == "installed"


def test_cli_uninstall_without_yes_asks_for_confirmation_and_changes_nothing(cli, live, kube, fake_tools):
    _cli_kubeconfig(kube)
    alb.ensure_policy(make_ctx())
    result = cli("alb", "uninstall", "-c", "ml")
    assert result.exit_code == 2
    assert "re-run with --yes" in result.stderr
    assert iam().get_policy(PolicyArn=POLICY_ARN)["Policy"]["Arn"] == POLICY_ARN


def test_cli_uninstall_dry_run_deletes_nothing(cli, live, kube, fake_tools):
    _cli_kubeconfig(kube)
    alb.ensure_policy(make_ctx())
    result = cli("alb", "uninstall", "-c", "ml", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["actions"][-1] == f"IAM policy {POLICY_ARN} would be deleted"
    assert iam().get_policy(PolicyArn=POLICY_ARN)["Policy"]["Arn"] == POLICY_ARN


def test_cli_status_prints_json_and_a_table(cli, live, kube, fake_tools):
    _cli_kubeconfig(kube)
    alb.ensure_policy(make_ctx())
    result = cli("alb", "status", "-c", "ml", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["policy"]["arn"] == POLICY_ARN
    table = cli("alb", "status", "-c", "ml")
    assert table.exit_code == 0
    assert f"IAM policy: {POLICY_ARN} (v1; matches the shipped document)" in table.stdout


def test_the_policy_is_deleted_once_iam_stops_listing_the_just_deleted_irsa_role(mock_aws, monkeypatch):
    from kservectl.clock import FakeClock

    alb.ensure_policy(make_ctx())
    ctx = make_ctx(clock=FakeClock())
    client = ctx.aws.client("iam")
    real = client.list_entities_for_policy
    stale = {"PolicyRoles": [{"RoleName": "eksctl-ml-addon-iamserviceaccount-kube-sys-Role1-AB12"}]}
    answers = iter([stale, stale])
    monkeypatch.setattr(client, "list_entities_for_policy", lambda **kw: next(answers, None) or real(**kw))
    assert alb._delete_policy(ctx, role_just_deleted=True) == f"IAM policy {POLICY_ARN} deleted"
    assert ctx.clock.sleeps == [1.0, 2.0]
    with pytest.raises(iam().exceptions.NoSuchEntityException):
        iam().get_policy(PolicyArn=POLICY_ARN)
