"""Phase ``cluster``: state detection (reuse, failed-create recovery, drift), eksctl's argv,
waits on the Kubernetes emulator, the default gp3 StorageClass, the Cluster Autoscaler release,
the guarded delete, rendered files against the real schemas, and the ``cluster`` CLI verbs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import yaml

from kservectl import config, paths
from kservectl.aws import is_mutating
from kservectl.clock import FakeClock, SystemClock
from kservectl.context import Context
from kservectl.errors import KservectlError, ToolMissingError, WaitTimeout
from kservectl.events import RecordingReporter
from kservectl.matrix import pinned
from kservectl.phases import autoscaler, cluster
from kservectl.phases.base import LiveValues
from kservectl.settings import Backoff, Settings, WaitDeadlines
from support.golden import assert_golden

REGION = "us-west-2"
NAME = "ml"
ROLE = "arn:aws:iam::123456789012:role/eks"
SETTINGS = Settings(
    waits=WaitDeadlines(nodes_ready=5.0, deployment_available=5.0, endpoints_ready=5.0, stack_deleted=30.0,
                        watch_chunk=0.5, poll_interval=0.01),
    tool_retry=Backoff(attempts=1, initial=0.01, maximum=0.01),
)
STACK_TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})


def make_ctx(flags: dict | None = None, *, dry_run: bool = False, clock=None, settings: Settings = SETTINGS,
             kubeconfig: Path | None = None) -> Context:
    loaded = config.load(env={}, cwd=Path("/nonexistent"),
                         flags={"cluster.name": NAME, "cluster.region": REGION, **(flags or {})})
    return Context(config=loaded.config, settings=settings, clock=clock or SystemClock(),
                   reporter=RecordingReporter(), dry_run=dry_run, command="test", kubeconfig=kubeconfig)


def on_first_wait(ctx: Context, change: Callable[[], object], *, about: str = "") -> None:
    """Call ``change()`` once, right after the first waiting report containing ``about``: the wait
    has seen the old state, and the change cannot come before it (as a timer's could on a loaded
    machine). Call before ``ctx.kube`` is first used (it takes the reporter's ``waiting`` then)."""
    report, fired = ctx.reporter.waiting, []

    def waiting(what: str, detail: str) -> None:
        report(what, detail)
        if not fired and about in f"{what}: {detail}":
            fired.append(True)
            change()

    ctx.reporter.waiting = waiting  # type: ignore[method-assign]


def mutations(ctx: Context) -> list[str]:
    seen: list[str] = []
    ctx.aws.observers.append(lambda service, op: seen.append(f"{service}:{op}") if is_mutating(op) else None)
    return seen


# -- moto helpers ------------------------------------------------------------------------------
def eks_cluster(name: str = NAME, version: str = "1.34", *, min_size: int = 3, max_size: int = 6,
                desired: int = 3, instance: str = "m5.xlarge", autoscaler_tags: bool = True) -> str:
    """An ACTIVE EKS cluster with its managed node group; returns the VPC id."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="192.168.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"192.168.{32 * i}.0/19",
                                 AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    eks = boto3.client("eks", region_name=REGION)
    eks.create_cluster(name=name, version=version, roleArn=ROLE, resourcesVpcConfig={"subnetIds": subnets})
    tags = {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{name}": "owned"}
    eks.create_nodegroup(clusterName=name, nodegroupName=cluster.NODEGROUP, nodeRole=ROLE, subnets=subnets,
                         scalingConfig={"minSize": min_size, "maxSize": max_size, "desiredSize": desired},
                         instanceTypes=[instance], tags=tags if autoscaler_tags else {})
    return vpc


def cfn_stack(name: str, status: str = "CREATE_COMPLETE", *, owner: str | None = NAME,
              failure: str | None = None) -> str:
    """A CloudFormation stack in the given state (moto creates them complete; the test sets it)."""
    from moto.cloudformation.models import Event, cloudformation_backends

    tags = [{"Key": cluster.EKSCTL_CLUSTER_TAG, "Value": owner}] if owner else []
    cfn = boto3.client("cloudformation", region_name=REGION)
    stack_id = cfn.create_stack(StackName=name, TemplateBody=STACK_TEMPLATE, Tags=tags)["StackId"]
    stack = cloudformation_backends["123456789012"][REGION].stacks[stack_id]
    stack.status = status
    if failure:
        for resource, reason in (("ControlPlane", failure), ("VPC", "Resource creation cancelled")):
            stack.events.append(Event(
                stack_id=stack_id, stack_name=name, logical_resource_id=resource, physical_resource_id="",
                resource_type="AWS::EKS::Cluster", resource_status="CREATE_FAILED",
                resource_status_reason=reason, resource_properties=None))
    return stack_id


def live_stacks() -> dict[str, str]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    return {s["StackName"]: s["StackStatus"] for s in cfn.describe_stacks()["Stacks"]}


# -- emulator helpers --------------------------------------------------------------------------
def node(name: str, ready: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "KubeletReady" if ready else "KubeletNotReady"}]}}


def deployment(name: str, namespace: str, available: bool = True) -> dict:
    status = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
              "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": "example/x:1"}]}}},
            **({"status": status} if available else {})}


def autoscaler_in_cluster(kube) -> None:
    """What eksctl (IRSA ServiceAccount) and helm (the Deployment) would leave in the cluster."""
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": autoscaler.SERVICE_ACCOUNT, "namespace": "kube-system",
                              "annotations": {autoscaler.ROLE_ANNOTATION: "arn:aws:iam::1:role/ca"}}})
    kube.create(deployment(autoscaler.DEPLOYMENT, "kube-system"))


def gp2(default: str = "true") -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "gp2", "annotations": {cluster.DEFAULT_CLASS: default}},
            "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2", "fsType": "ext4"},
            "volumeBindingMode": "WaitForFirstConsumer"}


@pytest.fixture
def eks_kube(kube, fake_tools, monkeypatch):
    """The fake eksctl writes kubeconfigs that point at the emulator."""
    monkeypatch.setenv("FAKE_EKSCTL_KUBE_SERVER", kube.url)
    return kube


def tool_calls(fake_tools, tool: str | None = None) -> list[list[str]]:
    """The recorded argvs without the read-only version checks every verb makes first."""
    return [argv for argv in fake_tools.calls(tool) if argv[:1] != ["version"]]


def eksctl_verbs(fake_tools) -> list[list[str]]:
    return [argv[:2] for argv in tool_calls(fake_tools, "eksctl")]


def helm_writes(fake_tools) -> list[list[str]]:
    writes = ("upgrade", "install", "uninstall", "repo")
    return [argv for argv in tool_calls(fake_tools, "helm") if argv[0] in writes]


# == rendering ==================================================================================
def test_the_gp3_storage_class_is_the_encrypted_csi_default_tied_to_the_cluster(schema_validator):
    text = cluster.render_storage_class(make_ctx())
    assert_golden("cluster/storageclass-gp3.yaml", text)
    schema_validator.assert_all_valid(text)
    doc = yaml.safe_load(text)
    assert doc["provisioner"] == "ebs.csi.aws.com"
    assert doc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert doc["volumeBindingMode"] == "WaitForFirstConsumer" and doc["allowVolumeExpansion"] is True
    assert doc["parameters"]["type"] == "gp3" and doc["parameters"]["encrypted"] == "true"
    assert doc["parameters"]["tagSpecification_1"] == "kservectl.io/cluster=ml"
    assert doc["parameters"]["tagSpecification_2"] == "kubernetes.io/cluster/ml=owned"


def test_the_autoscaler_values_discover_the_cluster_and_use_the_irsa_service_account():
    text = autoscaler.render_values(make_ctx())
    assert_golden("cluster/autoscaler-values.yaml", text)
    values = yaml.safe_load(text)
    assert values["autoDiscovery"] == {"clusterName": "ml"}
    assert values["awsRegion"] == REGION and values["cloudProvider"] == "aws"
    assert values["rbac"]["serviceAccount"] == {"create": False, "name": "cluster-autoscaler"}
    assert values["fullnameOverride"] == autoscaler.DEPLOYMENT


def test_the_cluster_config_names_the_irsa_account_the_autoscaler_chart_expects(schema_validator):
    doc = yaml.safe_load(cluster.render_cluster_config(make_ctx()))
    [account] = doc["iam"]["serviceAccounts"]
    assert account["metadata"]["name"] == autoscaler.SERVICE_ACCOUNT
    assert account["metadata"]["namespace"] == autoscaler.NAMESPACE
    assert account["wellKnownPolicies"] == {"autoScaler": True}
    assert account["tags"] == {"kservectl.io/cluster": "ml"}  # on its IAM role
    schema_validator.assert_valid(doc)


def test_a_cluster_named_like_a_yaml_boolean_stays_a_string_in_every_rendered_file(schema_validator):
    ctx = make_ctx({"cluster.name": "no"})
    doc = yaml.safe_load(cluster.render_cluster_config(ctx))
    assert doc["metadata"]["name"] == "no"
    schema_validator.assert_valid(doc)
    assert yaml.safe_load(autoscaler.render_values(ctx))["autoDiscovery"]["clusterName"] == "no"


def test_the_plan_holds_the_cluster_files_and_the_exact_commands_in_order(tmp_path, schema_validator):
    ctx = make_ctx()
    plan = cluster.plan(ctx, LiveValues(), tmp_path)
    assert set(plan.files) == {"cluster.yaml", "storageclass-gp3.yaml", "autoscaler-values.yaml"}
    for name in ("cluster.yaml", "storageclass-gp3.yaml"):
        schema_validator.assert_all_valid(plan.files[name])
    commands = [list(s.command) for s in plan.steps if s.command]
    kubeconfig = str(paths.kubeconfig_path(NAME))
    assert commands[0] == ["eksctl", "create", "cluster", "-f", str(tmp_path / "cluster" / "cluster.yaml"),
                           "--kubeconfig", kubeconfig]
    assert commands[1:3] == [["helm", "repo", "add", "autoscaler", "https://kubernetes.github.io/autoscaler",
                              "--force-update"], ["helm", "repo", "update", "autoscaler"]]
    assert commands[3] == ["helm", "upgrade", "--install", "cluster-autoscaler",
                           "autoscaler/cluster-autoscaler",
                           "--version", pinned("cluster_autoscaler_chart"), "--namespace", "kube-system",
                           "--values", str(tmp_path / "cluster" / "autoscaler-values.yaml"),
                           "--kubeconfig", kubeconfig, "--timeout", "0m5s", "--wait=watcher",
                           "--rollback-on-failure"]
    kinds = [s.kind for s in plan.steps]
    assert kinds == ["aws", "tool", "kube", "kube", "kube", "tool", "tool", "tool", "kube"]


def test_the_plan_leaves_the_autoscaler_out_when_it_is_off(tmp_path):
    plan = cluster.plan(make_ctx({"cluster.autoscaler": False}), LiveValues(), tmp_path)
    assert "autoscaler-values.yaml" not in plan.files
    assert not any(s.command and s.command[0] == "helm" for s in plan.steps)


def test_the_autoscaler_chart_pin_is_the_newest_chart_for_kubernetes_1_34():
    from kservectl.matrix import PINS

    assert pinned("cluster_autoscaler_chart") == "9.53.0"
    assert "1.34" in PINS["cluster_autoscaler_chart"].source and pinned("kubernetes") == "1.34"



def test_the_ebs_csi_add_on_version_follows_the_config_over_the_pin(schema_validator):
    def addon(ctx):
        doc = yaml.safe_load(cluster.render_cluster_config(ctx))
        schema_validator.assert_valid(doc)
        return next(a for a in doc["addons"] if a["name"] == "aws-ebs-csi-driver")

    assert addon(make_ctx())["version"] == pinned("ebs_csi_driver") == "v1.64.0"
    assert addon(make_ctx({"versions.ebs_csi_driver": "v1.63.1-eksbuild.2"}))["version"] == "v1.63.1-eksbuild.2"
    assert addon(make_ctx({"versions.ebs_csi_driver": "v1.62.0"}))["version"] == "v1.62.0"


def test_the_plan_shows_the_helm_3_flags_when_the_local_helm_is_helm_3(tmp_path, fake_tools):
    fake_tools.script([{"tool": "helm", "argv_prefix": ["version"], "stdout": "v3.17.3+ge4da497\n"}])
    plan = cluster.plan(make_ctx(), LiveValues(), tmp_path)
    install = next(list(s.command) for s in plan.steps if s.command[:2] == ("helm", "upgrade"))
    assert install[-4:] == ["--timeout", "0m5s", "--wait", "--atomic"]


def test_without_a_local_helm_the_plan_shows_the_helm_4_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no helm at all
    plan = cluster.plan(make_ctx(), LiveValues(), tmp_path)
    install = next(list(s.command) for s in plan.steps if s.command[:2] == ("helm", "upgrade"))
    assert install[-3:] == ["0m5s", "--wait=watcher", "--rollback-on-failure"]


# == chart value keys ===========================================================================
def test_the_autoscaler_values_use_only_keys_the_pinned_chart_accepts():
    from kservectl.phases import kserve

    values = yaml.safe_load(autoscaler.render_values(make_ctx()))
    assert kserve.value_key_problems(autoscaler.release(make_ctx()).chart_name, values) == []
    assert kserve.unknown_value_keys("cluster-autoscaler", {"autoDiscovery": {"clustername": "ml"}}) == [
        "autoDiscovery.clustername"]


def test_the_autoscaler_key_list_is_for_the_pinned_chart_and_says_where_its_keys_came_from():
    from kservectl.phases import kserve

    keys = kserve.chart_keys("cluster-autoscaler")
    assert keys["chart"] == "cluster-autoscaler"
    assert keys["version"] == pinned("cluster_autoscaler_chart"), "a pin moved: re-check this chart's value keys"
    assert keys["source"] and keys["keys"]
    # the keys came from an older chart, and the source says which (by its image tag, v1.31.0)
    assert keys["keys_from"] == "v1.31.0" != keys["version"]
    assert "image.tag v1.31.0 (a 9.x chart older than 9.53.0" in " ".join(keys["source"].split())


# == state detection ============================================================================
def test_an_active_cluster_is_reused_with_no_eksctl_create_and_no_aws_change(mock_aws, eks_kube, fake_tools):
    eks_cluster()
    ctx = make_ctx()
    ctx.kubeconfig = eks_kube.kubeconfig
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    autoscaler_in_cluster(eks_kube)
    seen = mutations(ctx)
    result = cluster.create(ctx)
    assert result["state"] == "active" and result["drift"] == []
    assert ["create", "cluster"] not in eksctl_verbs(fake_tools)
    assert seen == []
    assert "reused the ACTIVE cluster ml" in result["actions"]


def test_drift_between_the_config_and_the_running_cluster_is_reported_not_changed(
        mock_aws, eks_kube, fake_tools):
    eks_cluster(version="1.33", min_size=2, max_size=4, desired=2, instance="m5.large")
    ctx = make_ctx({"cluster.autoscaler": False})
    ctx.kubeconfig = eks_kube.kubeconfig
    for name in ("node-a", "node-b"):
        eks_kube.create(node(name))
    result = cluster.create(ctx)
    drift = {d["field"]: (d["config"], d["cluster"]) for d in result["drift"]}
    assert drift == {
        "cluster.kubernetes_version": ("1.34", "1.33"),
        "nodes.min": (3, 2),
        "nodes.max": (6, 4),
        "nodes.desired": (3, 2),
        "nodes.instance_type": ("m5.xlarge", "m5.large"),
    }
    messages = {d["field"]: d["message"] for d in result["drift"]}
    assert "eksctl upgrade cluster --name ml --region us-west-2 --version 1.34 --approve" in \
        messages["cluster.kubernetes_version"]
    assert "eksctl scale nodegroup --cluster ml" in messages["nodes.min"]
    warnings = ctx.reporter.messages("warn")
    assert any(w.startswith("drift: nodes.max: config says 6, the cluster has 4") for w in warnings)
    assert ["create", "cluster"] not in eksctl_verbs(fake_tools)


def test_with_the_autoscaler_on_a_desired_size_within_bounds_is_not_drift(mock_aws):
    eks_cluster(desired=5)
    ctx = make_ctx()
    found = cluster.describe_cluster(ctx)
    assert cluster.drift(ctx, found, cluster.nodegroups(ctx)) == []


def test_a_node_group_without_autoscaler_tags_is_drift_when_the_autoscaler_is_on(mock_aws):
    eks_cluster(autoscaler_tags=False)
    ctx = make_ctx()
    [item] = cluster.drift(ctx, cluster.describe_cluster(ctx), cluster.nodegroups(ctx))
    assert item["field"] == "cluster.autoscaler" and "k8s.io/cluster-autoscaler/ml" in item["message"]


def test_an_absent_cluster_is_detected_as_absent(mock_aws):
    assert cluster.detect(make_ctx()).kind == "absent"


def test_stacks_of_another_cluster_with_a_longer_name_are_not_mistaken_for_ours(mock_aws):
    cfn_stack("eksctl-ml-serving-cluster", "ROLLBACK_COMPLETE", owner="ml-serving")
    cfn_stack("eksctl-ml-serving-nodegroup-ng-default", "CREATE_COMPLETE", owner="ml-serving")
    assert cluster.detect(make_ctx()).kind == "absent"


def test_a_create_in_progress_is_left_alone_with_a_clear_message(mock_aws):
    cfn_stack("eksctl-ml-cluster", "CREATE_IN_PROGRESS")
    with pytest.raises(KservectlError) as info:
        cluster.create(make_ctx())
    assert info.value.one_line().startswith("eksctl-ml-cluster is CREATE_IN_PROGRESS; another operation")


# == failed-create recovery =====================================================================
def test_a_failed_create_is_explained_and_nothing_is_touched_without_yes(mock_aws, fake_tools):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE",
              failure="Resource handler returned message: \"Cannot create cluster 'ml' because us-west-2d, "
                      "the targeted availability zone, does not currently have sufficient capacity\"")
    ctx = make_ctx()
    seen = mutations(ctx)
    with pytest.raises(KservectlError) as info:
        cluster.create(ctx)
    line = info.value.one_line()
    assert "a previous create of cluster ml failed (eksctl-ml-cluster is ROLLBACK_COMPLETE" in line
    assert "first failure: ControlPlane: Resource handler returned message" in line
    assert "eksctl cannot resume it (a re-run fails with AlreadyExists)" in line
    assert "kservectl will delete the stacks eksctl-ml-cluster, then create the cluster again" in line
    assert line.endswith("(run again with --yes to do that)")
    assert seen == [] and tool_calls(fake_tools, "eksctl") == []
    assert live_stacks() == {"eksctl-ml-cluster": "ROLLBACK_COMPLETE"}


def test_with_yes_a_failed_create_is_cleared_stack_by_stack_then_created(mock_aws, eks_kube, fake_tools):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    cfn_stack("eksctl-ml-nodegroup-ng-default", "CREATE_FAILED")
    cfn_stack("eksctl-ml-serving-cluster", "ROLLBACK_COMPLETE", owner="ml-serving")  # not ours
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    autoscaler_in_cluster(eks_kube)
    ctx = make_ctx()
    seen = mutations(ctx)
    result = cluster.create(ctx, yes=True)
    assert seen == ["cloudformation:DeleteStack", "cloudformation:DeleteStack"]
    assert result["actions"][:2] == ["deleted failed stack eksctl-ml-nodegroup-ng-default (CREATE_FAILED)",
                                     "deleted failed stack eksctl-ml-cluster (ROLLBACK_COMPLETE)"]
    assert live_stacks() == {"eksctl-ml-serving-cluster": "ROLLBACK_COMPLETE"}
    kubeconfig = str(paths.kubeconfig_path(NAME))
    config_file = str(cluster.rendered_root(ctx) / "cluster" / "cluster.yaml")
    assert tool_calls(fake_tools, "eksctl") == [
        ["create", "cluster", "-f", config_file, "--kubeconfig", kubeconfig]]
    assert result["created"] is True


def test_a_dry_run_of_the_recovery_says_what_it_would_delete_and_changes_nothing(mock_aws, fake_tools):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    ctx = make_ctx(dry_run=True)
    seen = mutations(ctx)
    result = cluster.create(ctx)
    assert seen == []
    assert "would delete failed stack eksctl-ml-cluster is ROLLBACK_COMPLETE" in result["actions"]
    assert live_stacks() == {"eksctl-ml-cluster": "ROLLBACK_COMPLETE"}
    assert [argv[:3] for argv in ctx.runner.recorded] == [
        ["eksctl", "create", "cluster"], ["helm", "repo", "add"], ["helm", "repo", "update"],
        ["helm", "upgrade", "--install"]]
    assert result["would_run"][0].startswith("eksctl create cluster -f ")
    assert all(argv[0] == "version" for argv in fake_tools.calls())  # only `helm version` ran


def test_a_stack_that_fails_to_delete_stops_the_recovery_with_its_reason(mock_aws, monkeypatch):
    stack_id = cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    ctx = make_ctx(clock=FakeClock())
    real = ctx.aws.client("cloudformation")

    def stuck(**_):
        return {"Stacks": [{"StackName": "eksctl-ml-cluster", "StackId": stack_id,
                            "StackStatus": "DELETE_FAILED",
                            "StackStatusReason": "The following resource(s) failed to delete: [VPC]"}]}

    monkeypatch.setattr(real, "delete_stack", lambda **_: {})
    state = cluster.detect(ctx)
    monkeypatch.setattr(real, "describe_stacks", stuck)
    with pytest.raises(KservectlError, match=r"could not delete the failed stack eksctl-ml-cluster: "
                                             r"The following resource\(s\) failed to delete: \[VPC\]"):
        cluster.recover_failed(ctx, state, yes=True, actions=[])


def test_a_stack_deletion_that_never_finishes_times_out_naming_the_stack(mock_aws, monkeypatch):
    stack_id = cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    ctx = make_ctx(clock=FakeClock())
    real = ctx.aws.client("cloudformation")
    state = cluster.detect(ctx)
    monkeypatch.setattr(real, "delete_stack", lambda **_: {})
    monkeypatch.setattr(real, "describe_stacks", lambda **_: {"Stacks": [
        {"StackName": "eksctl-ml-cluster", "StackId": stack_id, "StackStatus": "DELETE_IN_PROGRESS"}]})
    with pytest.raises(WaitTimeout) as info:
        cluster.recover_failed(ctx, state, yes=True, actions=[])
    assert info.value.one_line() == ("timed out after 30s waiting for stack eksctl-ml-cluster to be deleted: "
                                     "eksctl-ml-cluster is DELETE_IN_PROGRESS")


def test_a_failed_stack_without_the_cluster_tag_is_never_deleted(mock_aws, fake_tools):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE", owner=None)
    ctx = make_ctx()
    seen = mutations(ctx)
    with pytest.raises(KservectlError,
                       match="stacks not tagged alpha.eksctl.io/cluster-name=ml: eksctl-ml-cluster"):
        cluster.create(ctx, yes=True)
    assert seen == [] and live_stacks() == {"eksctl-ml-cluster": "ROLLBACK_COMPLETE"}


# == create: eksctl argv, waits, storage classes, autoscaler ====================================
def test_create_runs_eksctl_waits_for_nodes_sets_gp3_default_and_installs_the_autoscaler(
        mock_aws, eks_kube, fake_tools):
    eks_kube.create(gp2())
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    autoscaler_in_cluster(eks_kube)
    ctx = make_ctx()
    result = cluster.create(ctx)

    config_file = cluster.rendered_root(ctx) / "cluster" / "cluster.yaml"
    kubeconfig = paths.kubeconfig_path(NAME)
    assert tool_calls(fake_tools, "eksctl") == [["create", "cluster", "-f", str(config_file),
                                           "--kubeconfig", str(kubeconfig)]]
    assert yaml.safe_load(config_file.read_text())["metadata"]["name"] == NAME
    assert kubeconfig.is_file()  # written by eksctl, pointing at the (emulated) cluster
    gp3 = eks_kube.get("storage.k8s.io/v1", "StorageClass", "gp3")
    assert gp3["metadata"]["annotations"][cluster.DEFAULT_CLASS] == "true"
    assert gp3["parameters"]["tagSpecification_1"] == "kservectl.io/cluster=ml"
    assert eks_kube.get("storage.k8s.io/v1", "StorageClass", "gp2")["metadata"]["annotations"] == {
        cluster.DEFAULT_CLASS: "false"}
    values_file = cluster.rendered_root(ctx) / "cluster" / autoscaler.VALUES_FILE
    assert helm_writes(fake_tools) == [
        ["repo", "add", "autoscaler", "https://kubernetes.github.io/autoscaler", "--force-update"],
        ["repo", "update", "autoscaler"],
        ["upgrade", "--install", "cluster-autoscaler", "autoscaler/cluster-autoscaler", "--version", "9.53.0",
         "--namespace", "kube-system", "--values", str(values_file), "--kubeconfig", str(kubeconfig),
         "--timeout", "0m5s", "--wait=watcher", "--rollback-on-failure"],
    ]
    [release] = fake_tools.releases("kube-system")
    assert release["chart_version"] == "9.53.0"
    assert release["config"]["autoDiscovery"] == {"clusterName": "ml"}
    assert result["actions"][1:] == [
        "3 nodes Ready", "StorageClass gp3 created", "StorageClass gp2 marked not default",
        "Cluster Autoscaler installed (chart 9.53.0)", "Deployment kube-system/cluster-autoscaler Available"]


def test_a_second_create_changes_nothing_in_the_cluster_and_skips_helm(mock_aws, eks_kube, fake_tools):
    eks_kube.create(gp2())
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    autoscaler_in_cluster(eks_kube)
    cluster.create(make_ctx())
    eks_cluster()  # what eksctl would have made in AWS
    before = eks_kube.emulator.resource_version
    upgrades = len(helm_writes(fake_tools))
    ctx = make_ctx()
    seen = mutations(ctx)
    result = cluster.create(ctx)
    assert eks_kube.emulator.resource_version == before
    assert len(helm_writes(fake_tools)) == upgrades
    assert seen == [] and result["state"] == "active"
    assert "StorageClass gp3 unchanged" in result["actions"]
    assert "Cluster Autoscaler unchanged (chart 9.53.0)" in result["actions"]


def test_helm_3_gets_its_own_wait_and_atomic_flags(mock_aws, eks_kube, fake_tools):
    fake_tools.script([{"tool": "helm", "argv_prefix": ["version"], "stdout": "v3.16.2+g13654a5\n"}])
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    autoscaler_in_cluster(eks_kube)
    cluster.create(make_ctx())
    install = next(argv for argv in tool_calls(fake_tools, "helm") if argv[0] == "upgrade")
    assert install[-4:] == ["--timeout", "0m5s", "--wait", "--atomic"]
    assert "--rollback-on-failure" not in install and "--wait=watcher" not in install


def test_with_the_autoscaler_off_no_chart_is_installed(mock_aws, eks_kube, fake_tools):
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    result = cluster.create(make_ctx({"cluster.autoscaler": False}))
    assert helm_writes(fake_tools) == []
    assert result["actions"][-1] == "Cluster Autoscaler off (cluster.autoscaler=false)"


def test_an_active_cluster_without_the_autoscaler_account_gets_it_from_the_cluster_config(
        mock_aws, eks_kube, fake_tools):
    eks_cluster()
    fake_tools.add_cluster(NAME, REGION, oidc=True, nodegroups=["ng-default"])
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    eks_kube.create(deployment(autoscaler.DEPLOYMENT, "kube-system"))
    ctx = make_ctx()
    ctx.kubeconfig = eks_kube.kubeconfig
    cluster.create(ctx)
    assert tool_calls(fake_tools, "eksctl") == [
        ["create", "iamserviceaccount", "-f", str(cluster.config_path(ctx)), "--include",
         "kube-system/cluster-autoscaler", "--override-existing-serviceaccounts", "--approve"]]


def test_nodes_that_become_ready_later_end_the_wait(eks_kube):
    eks_kube.create(node("node-a"))
    eks_kube.create(node("node-b", ready=False))
    ctx = make_ctx(kubeconfig=eks_kube.kubeconfig)
    on_first_wait(ctx, lambda: eks_kube.patch_status(
        "v1", "Node", "node-b", None,
        {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}))
    nodes = cluster.wait_for_nodes(ctx, 2)
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node-a", "node-b"]
    assert any("1/2 nodes Ready (not Ready: node-b)" in w for w in ctx.reporter.messages("waiting"))


def test_the_nodes_wait_times_out_naming_the_nodes_still_not_ready(eks_kube):
    eks_kube.create(node("node-a"))
    eks_kube.create(node("node-b", ready=False))
    settings = SETTINGS.with_(waits=WaitDeadlines(nodes_ready=0.6, watch_chunk=0.2, poll_interval=0.05))
    ctx = make_ctx(kubeconfig=eks_kube.kubeconfig, settings=settings)
    with pytest.raises(WaitTimeout) as info:
        cluster.wait_for_nodes(ctx, 3)
    assert info.value.one_line() == ("timed out after 0.6s waiting for 3 nodes of cluster ml to be Ready: "
                                     "1/3 nodes Ready (not Ready: node-b)")


def test_the_autoscaler_wait_times_out_naming_the_deployment(mock_aws, eks_kube, fake_tools):
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    eks_kube.create({"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": "cluster-autoscaler", "namespace": "kube-system",
                                  "annotations": {autoscaler.ROLE_ANNOTATION: "arn:aws:iam::1:role/ca"}}})
    eks_kube.create(deployment(autoscaler.DEPLOYMENT, "kube-system", available=False))
    settings = SETTINGS.with_(waits=WaitDeadlines(deployment_available=0.6, watch_chunk=0.2))
    with pytest.raises(WaitTimeout) as info:
        cluster.create(make_ctx(settings=settings))
    assert info.value.one_line().startswith(
        "timed out after 0.6s waiting for Deployment kube-system/cluster-autoscaler (Cluster Autoscaler) "
        "to be Available: Deployment kube-system/cluster-autoscaler: 0/1 replicas available")


def test_a_gp3_class_with_other_parameters_is_reported_not_patched(eks_kube):
    eks_kube.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "gp3"},
                     "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"},
                     "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"})
    ctx = make_ctx(kubeconfig=eks_kube.kubeconfig)
    with pytest.raises(KservectlError,
                       match="StorageClass gp3 exists with other parameters than kservectl's"):
        cluster.ensure_storage_classes(ctx)
    assert eks_kube.get("storage.k8s.io/v1", "StorageClass", "gp3")["parameters"] == {"type": "gp3"}


def test_a_dry_run_against_a_live_cluster_reads_but_writes_nothing(mock_aws, eks_kube, fake_tools):
    eks_cluster()
    eks_kube.create(gp2())
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    autoscaler_in_cluster(eks_kube)
    before = eks_kube.emulator.resource_version
    ctx = make_ctx(dry_run=True, kubeconfig=eks_kube.kubeconfig)
    result = cluster.create(ctx)
    assert eks_kube.emulator.resource_version == before
    assert "StorageClass gp3 would be created" in result["actions"]
    assert "StorageClass gp2 would be marked not default" in result["actions"]
    assert "Cluster Autoscaler would be installed (chart 9.53.0)" in result["actions"]
    assert helm_writes(fake_tools) == [] and fake_tools.releases() == []


# == status =====================================================================================
def test_status_reports_state_version_endpoint_node_groups_nodes_and_addons(mock_aws, eks_kube, monkeypatch):
    vpc = eks_cluster(desired=4)
    eks_kube.create(node("node-a"))
    eks_kube.create(node("node-b", ready=False))
    ctx = make_ctx(kubeconfig=eks_kube.kubeconfig)
    eks = ctx.aws.client("eks")  # moto has no add-on API: answer it like EKS does
    monkeypatch.setattr(eks, "list_addons", lambda **_: {"addons": ["vpc-cni", "aws-ebs-csi-driver"]})
    monkeypatch.setattr(eks, "describe_addon", lambda clusterName, addonName: {"addon": {
        "addonName": addonName, "addonVersion": "v1.0.0-eksbuild.1", "status": "ACTIVE",
        "health": {"issues": []}}})
    data = cluster.status(ctx)
    assert data["exists"] is True and data["state"] == "ACTIVE" and data["version"] == "1.34"
    assert data["endpoint"].startswith("https://")
    assert data["nodegroups"] == [{"name": "ng-default", "status": "ACTIVE", "instance_types": ["m5.xlarge"],
                                   "min": 3, "max": 6, "desired": 4}]
    assert data["nodes"] == {"total": 2, "ready": 1, "not_ready": ["node-b"]}
    assert [a["name"] for a in data["addons"]] == ["aws-ebs-csi-driver", "vpc-cni"]
    assert data["autoscaler"] == {"installed": False}
    assert vpc.startswith("vpc-")


def test_status_of_a_missing_cluster_lists_the_stacks_a_failed_create_left(mock_aws):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    data = cluster.status(make_ctx())
    assert data["exists"] is False and data["state"] == "ABSENT"
    assert data["stacks"] == [{"name": "eksctl-ml-cluster", "status": "ROLLBACK_COMPLETE", "reason": ""}]
    assert "kservectl cluster create --yes" in data["hint"]


def test_status_says_when_add_ons_cannot_be_read(mock_aws):
    eks_cluster()
    data = cluster.status(make_ctx())
    assert data["addons"]["error"].startswith("AWS eks:ListAddons failed with 404")
    assert "cannot load" in data["nodes"]["error"]


# == delete =====================================================================================
def test_delete_refuses_while_a_load_balancer_service_or_a_pvc_remains(mock_aws, eks_kube, fake_tools):
    eks_cluster()
    eks_kube.ensure_namespace("kourier-system")
    eks_kube.ensure_namespace("mlflow")
    eks_kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace":
                     "kourier-system"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    eks_kube.create({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "mlflow", "namespace": "mlflow"},
                     "spec": {"type": "ClusterIP", "ports": [{"port": 5000}]}})
    eks_kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": "mlflow-data", "namespace": "mlflow"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "10Gi"}}}})
    ctx = make_ctx(kubeconfig=eks_kube.kubeconfig)
    asked: list[str] = []
    with pytest.raises(KservectlError) as info:
        cluster.delete(ctx, confirm=asked.append)
    assert info.value.one_line() == (
        "cluster ml still holds AWS resources that deleting it would strand: PVC mlflow/mlflow-data, "
        "Service kourier-system/kourier (LoadBalancer) (delete them first (`kservectl cleanup` does it in "
        "order), then run this again)")
    assert asked == [] and tool_calls(fake_tools, "eksctl") == []



# == tools checked before anything changes ======================================================
OLD_EKSCTL = {"tool": "eksctl", "argv_prefix": ["version"], "stdout": "0.100.0\n"}
OLD_HELM = {"tool": "helm", "argv_prefix": ["version"], "stdout": "v3.9.4+g1234\n"}
EKSCTL_HINT = "eksctl 0.100.0 is too old (need >= 0.215.0) (install eksctl >= 0.215.0: https://eksctl.io/installation/)"
HELM_HINT = ("helm 3.9.4 is too old (need >= 3.14.0) "
             "(install helm >= 3.14 (helm 4 supported): https://helm.sh/docs/intro/install/)")


def test_create_with_a_too_old_eksctl_stops_before_deleting_failed_stacks_or_creating(mock_aws, fake_tools):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    fake_tools.script([OLD_EKSCTL])
    ctx = make_ctx()
    seen = mutations(ctx)
    with pytest.raises(ToolMissingError) as info:
        cluster.create(ctx, yes=True)
    assert info.value.one_line() == EKSCTL_HINT and info.value.exit_code == 2
    assert seen == [] and live_stacks() == {"eksctl-ml-cluster": "ROLLBACK_COMPLETE"}
    assert tool_calls(fake_tools) == []


def test_create_with_a_too_old_helm_for_the_autoscaler_stops_before_eksctl_runs(mock_aws, fake_tools):
    fake_tools.script([OLD_HELM])
    with pytest.raises(ToolMissingError) as info:
        cluster.create(make_ctx())
    assert info.value.one_line() == HELM_HINT
    assert tool_calls(fake_tools) == [] and fake_tools.clusters() == []


def test_delete_with_a_too_old_eksctl_deletes_nothing(mock_aws, eks_kube, fake_tools):
    eks_cluster()
    fake_tools.add_cluster(NAME, REGION)
    fake_tools.script([OLD_EKSCTL])
    asked: list[str] = []
    with pytest.raises(ToolMissingError) as info:
        cluster.delete(make_ctx(kubeconfig=eks_kube.kubeconfig), confirm=asked.append)
    assert info.value.one_line() == EKSCTL_HINT
    assert asked == [] and tool_calls(fake_tools) == []
    assert [c["name"] for c in fake_tools.clusters()] == [NAME]


@pytest.mark.parametrize("verb", ["create", "delete"])
def test_cli_cluster_verbs_with_a_too_old_eksctl_exit_2_with_the_install_hint(cli, mock_aws, fake_tools, verb):
    eks_cluster()
    fake_tools.script([OLD_EKSCTL])
    result = cli("cluster", verb, "-c", "ml", "--yes")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"Error: {EKSCTL_HINT}"
    assert tool_calls(fake_tools) == []


def test_delete_asks_then_runs_eksctl_delete_cluster_wait(mock_aws, eks_kube, fake_tools):
    eks_cluster()
    fake_tools.add_cluster(NAME, REGION)
    ctx = make_ctx(kubeconfig=eks_kube.kubeconfig)
    asked: list[str] = []
    result = cluster.delete(ctx, confirm=asked.append)
    assert asked == ["Delete EKS cluster ml in us-west-2 and everything eksctl created for it?"]
    assert tool_calls(fake_tools, "eksctl") == [
        ["delete", "cluster", "-f", str(cluster.config_path(ctx)), "--wait"]]
    assert result["deleted"] is True and fake_tools.clusters() == []
    assert result["left_behind"] == [
        f"CloudWatch log group /aws/eks/ml/cluster (eksctl keeps it): `aws logs delete-log-group --region {REGION} "
        f"--log-group-name /aws/eks/ml/cluster` deletes just it; `kservectl cleanup --orphans -c ml -r {REGION}` "
        "(a dry run) lists everything else left behind"]


def test_a_declined_confirmation_deletes_nothing(mock_aws, eks_kube, fake_tools):
    from kservectl.errors import Aborted

    eks_cluster()
    fake_tools.add_cluster(NAME, REGION)

    def decline(question: str) -> None:
        raise Aborted("nothing was changed")

    with pytest.raises(Aborted):
        cluster.delete(make_ctx(kubeconfig=eks_kube.kubeconfig), confirm=decline)
    assert tool_calls(fake_tools, "eksctl") == [] and [c["name"] for c in fake_tools.clusters()] == [NAME]


def test_deleting_a_cluster_that_does_not_exist_is_a_no_op(mock_aws, fake_tools):
    result = cluster.delete(make_ctx(), confirm=lambda q: pytest.fail("must not ask"))
    assert result["deleted"] is False and tool_calls(fake_tools) == []


# == CLI ========================================================================================
def test_cli_render_maps_each_option_to_the_cluster_config(cli, schema_validator):
    result = cli("cluster", "render", "-c", "ml-prod", "-r", "eu-west-1", "--kubernetes-version", "1.33",
                 "--instance-type", "m6i.large", "--nodes", "2", "--nodes-min", "1", "--nodes-max", "5",
                 "--zones", "eu-west-1a,eu-west-1b", "--no-autoscaler")
    assert result.exit_code == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    schema_validator.assert_valid(doc)
    assert doc["metadata"]["name"] == "ml-prod" and doc["metadata"]["region"] == "eu-west-1"
    assert doc["metadata"]["version"] == "1.33"
    assert doc["availabilityZones"] == ["eu-west-1a", "eu-west-1b"]
    [group] = doc["managedNodeGroups"]
    assert (group["instanceType"], group["desiredCapacity"], group["minSize"], group["maxSize"]) == \
        ("m6i.large", 2, 1, 5)
    assert "serviceAccounts" not in doc["iam"]


def test_cli_render_writes_the_file_given_with_out(cli, tmp_path, schema_validator):
    out = tmp_path / "deep" / "cluster.yaml"
    result = cli("cluster", "render", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == f"wrote {out}\n"
    schema_validator.assert_all_valid(out)


def test_cli_rejects_node_counts_that_do_not_fit_naming_the_flag(cli):
    result = cli("cluster", "render", "--nodes", "9")
    assert result.exit_code == 2
    assert ("nodes.desired=9 (from --nodes) is invalid: nodes must satisfy min <= desired <= max"
            in result.stderr)


def test_cli_create_dry_run_prints_the_commands_and_runs_nothing(cli, mock_aws, fake_tools):
    result = cli("cluster", "create", "-c", "ml", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("(dry run) cluster create: ml in us-west-2\n")
    assert "  - would run: eksctl create cluster -f " in result.stdout
    assert "  - would run: helm upgrade --install cluster-autoscaler autoscaler/" in result.stdout
    assert "  - Cluster Autoscaler would be installed (chart 9.53.0)" in result.stdout
    assert all(argv[0] == "version" for argv in fake_tools.calls())
    assert boto3.client("eks", region_name=REGION).list_clusters()["clusters"] == []


def test_cli_create_with_json_output_reports_the_reuse_and_drift(cli, mock_aws, eks_kube, fake_tools):
    eks_cluster(version="1.33")
    kubeconfig = paths.kubeconfig_path("ml")
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(eks_kube.kubeconfig.read_text())
    for name in ("node-a", "node-b", "node-c"):
        eks_kube.create(node(name))
    result = cli("cluster", "create", "-c", "ml", "--no-autoscaler", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "active"
    assert [d["field"] for d in data["drift"]] == ["cluster.kubernetes_version"]
    assert "drift: cluster.kubernetes_version" in result.stderr


def test_cli_create_without_yes_explains_a_failed_create_and_exits_1(cli, mock_aws, fake_tools):
    cfn_stack("eksctl-ml-cluster", "ROLLBACK_COMPLETE")
    result = cli("cluster", "create", "-c", "ml")
    assert result.exit_code == 1
    assert ("\nError: a previous create of cluster ml failed (eksctl-ml-cluster is ROLLBACK_COMPLETE"
            in result.stderr)
    assert "run again with --yes" in result.stderr and tool_calls(fake_tools, "eksctl") == []


def test_cli_status_prints_json(cli, mock_aws):
    eks_cluster()
    result = cli("cluster", "status", "-c", "ml", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["cluster"], data["state"], data["version"]) == ("ml", "ACTIVE", "1.34")
    assert data["nodegroups"][0]["name"] == "ng-default"


def test_cli_status_draws_a_table_for_people(cli, mock_aws):
    eks_cluster()
    result = cli("cluster", "status", "-c", "ml")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("cluster ml in us-west-2: ACTIVE\n")
    assert "ng-default" in result.stdout


def test_cli_delete_needs_yes_without_a_terminal(cli, mock_aws, eks_kube, fake_tools):
    eks_cluster()
    kubeconfig = paths.kubeconfig_path("ml")
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(eks_kube.kubeconfig.read_text())
    result = cli("cluster", "delete", "-c", "ml")
    assert result.exit_code == 2, result.stderr
    assert "needs confirmation" in result.stderr and "re-run with --yes" in result.stderr
    assert tool_calls(fake_tools, "eksctl") == []


def test_cli_delete_with_yes_deletes_and_removes_the_stale_kubeconfig(cli, mock_aws, eks_kube, fake_tools):
    eks_cluster()
    fake_tools.add_cluster("ml", REGION)
    kubeconfig = paths.kubeconfig_path("ml")
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(eks_kube.kubeconfig.read_text())
    result = cli("cluster", "delete", "-c", "ml", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["deleted"] is True
    assert [argv[:2] for argv in tool_calls(fake_tools, "eksctl")] == [["delete", "cluster"]]
    assert not kubeconfig.exists()


def test_cli_delete_dry_run_records_the_command_and_deletes_nothing(cli, mock_aws, eks_kube, fake_tools):
    eks_cluster()
    kubeconfig = paths.kubeconfig_path("ml")
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(eks_kube.kubeconfig.read_text())
    result = cli("cluster", "delete", "-c", "ml", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would run: eksctl delete cluster -f " in result.stdout
    assert result.stdout.rstrip().endswith("--wait")
    assert tool_calls(fake_tools) == [] and kubeconfig.exists()


# == the real helm ==============================================================================
def test_the_real_helm_4_accepts_the_exact_install_command(real_tools, tmp_path):
    """The argv kservectl builds, run by the real helm 4 against a local chart (client dry run)."""
    import subprocess

    from support.fake_tools import offline_helm_env

    env = offline_helm_env(tmp_path / "helm-home")
    helm = str(real_tools / "helm")
    subprocess.run([helm, "create", str(tmp_path / "chart")], env=env, check=True, capture_output=True,
                   timeout=60)
    ctx = make_ctx()
    values = tmp_path / autoscaler.VALUES_FILE
    values.write_text(autoscaler.render_values(ctx))
    rel = cluster.HelmRelease(name=autoscaler.RELEASE, namespace="kube-system", chart=str(tmp_path / "chart"),
                              version="0.1.0", repo_name="local", repo_url="", values_file=values, values={})
    argv = cluster.helm_install_argv(ctx, rel, major=4)
    done = subprocess.run([helm, *argv[1:], "--dry-run=client"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "STATUS: pending-install" in done.stdout
