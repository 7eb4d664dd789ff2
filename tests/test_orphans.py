"""``cleanup --orphans`` against moto: a world with orphans of cluster ``prod`` of every type
(each with its kind of evidence), decoys of every type for cluster ``prod-2``, untagged
look-alikes, and ``prod``'s resources in another region. The search finds every orphan by its
full id and nothing else; deletion removes exactly the dry run's list, in its order, and every
decoy is proven to still exist by describing it.

What moto cannot do and how it is stood in for:
- EKS creates ``/aws/eks/<name>/cluster`` itself; here the log groups are created directly.
- moto's CloudFormation cannot create ``AWS::IAM::OIDCProvider``: the OIDC provider is found
  through the trust policy of an orphan IRSA role (the stack-record rule is covered by stack roles,
  policies and instance profiles). moto's stack deletion also fails when one of the stack's EC2
  resources was deleted first (real CloudFormation skips it), so the stacks here hold IAM resources
  only; a security group "created by" a stack carries the ``aws:cloudformation:stack-name`` tag.
- moto never answers DependencyViolation, in-use errors or slow deletions: a botocore
  ``before-call`` hook answers them, the way AWS would, while a blocking ENI exists.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from kservectl import aws, config, orphans
from kservectl.clock import FakeClock
from kservectl.context import Context
from kservectl.errors import UsageError
from kservectl.events import RecordingReporter
from kservectl.orphans import (
    AUTOSCALING_GROUP,
    BUCKET,
    CLASSIC_ELB,
    EC2_INSTANCE,
    EKS_CLUSTER,
    ELASTIC_IP,
    INSTANCE_PROFILE,
    LOAD_BALANCER,
    LOG_GROUP,
    NAT_GATEWAY,
    NETWORK_INTERFACE,
    NODEGROUP,
    OIDC_PROVIDER,
    POLICY,
    ROLE,
    SECURITY_GROUP,
    STACK,
    TARGET_GROUP,
    VOLUME,
)
from kservectl.settings import Settings, WaitDeadlines

REGION = "us-west-2"
ELSEWHERE = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "prod"
DECOY = "prod-2"
IMAGE = "ami-12c6146b"  # one of moto's own images (listing them all takes seconds)

# --------------------------------------------------------------------------- the world


@dataclass
class World:
    orphans: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, id) -> name
    decoys: list[tuple[str, str, str, str]] = field(default_factory=list)  # (type, id, name, region)
    lookalikes: list[tuple[str, str, str, str]] = field(default_factory=list)
    shared: list[tuple[str, str, str, str]] = field(default_factory=list)  # kubernetes.io/cluster/prod=shared
    elsewhere: list[tuple[str, str, str, str]] = field(default_factory=list)

    def untouchable(self) -> list[tuple[str, str, str, str]]:
        return self.decoys + self.lookalikes + self.shared + self.elsewhere


_BOTO: dict[tuple[str, str], Any] = {}


def client(service: str, region: str = REGION) -> Any:
    """A test-side boto3 client, shared within one test (creating clients costs most of the time)."""
    key = (service, region)
    if key not in _BOTO:
        _BOTO[key] = boto3.client(service, region_name=region)
    return _BOTO[key]


def specs(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": tag_list(tags)}] if tags else []


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class Builder:
    """Creates resources through boto3 (moto) and files each under orphans, decoys, ..."""

    def __init__(self, world: World, region: str = REGION) -> None:
        self.world = world
        self.region = region
        self.ec2 = client("ec2", region)
        self.elbv2 = client("elbv2", region)
        self.elb = client("elb", region)
        self.iam = client("iam", region)
        self.logs = client("logs", region)
        self.s3 = client("s3", region)
        self.cf = client("cloudformation", region)
        self.eks = client("eks", region)
        self.autoscaling = client("autoscaling", region)
        self.vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            self.ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"10.0.{i}.0/24",
                                   AvailabilityZone=f"{region}{zone}")["Subnet"]["SubnetId"]
            for i, zone in enumerate("ab", start=1)
        ]
        self.n = 0

    def file(self, role: str, kind: str, rid: str, name: str = "") -> str:
        if role == "orphan":
            self.world.orphans[(kind, rid)] = name
        else:
            getattr(self.world, role).append((kind, rid, name, self.region))
        return rid

    def unique(self) -> int:
        self.n += 1
        return self.n

    # -- one helper per resource type; each returns the full id ------------------------------

    def load_balancer(self, role: str, name: str, tags: dict[str, str]) -> str:
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        lb = self.elbv2.create_load_balancer(Name=name, Subnets=self.subnets, Type="network",
                                             Scheme="internet-facing", **kwargs)
        return self.file(role, LOAD_BALANCER, lb["LoadBalancers"][0]["LoadBalancerArn"], name)

    def target_group(self, role: str, name: str, tags: dict[str, str]) -> str:
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        tg = self.elbv2.create_target_group(Name=name, Protocol="TCP", Port=8080, VpcId=self.vpc, TargetType="ip",
                                            **kwargs)
        return self.file(role, TARGET_GROUP, tg["TargetGroups"][0]["TargetGroupArn"], name)

    def classic_elb(self, role: str, name: str, tags: dict[str, str]) -> str:
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        self.elb.create_load_balancer(LoadBalancerName=name, AvailabilityZones=[f"{self.region}a"],
                                      Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}],
                                      **kwargs)
        arn = f"arn:aws:elasticloadbalancing:{self.region}:{ACCOUNT}:loadbalancer/{name}"
        return self.file(role, CLASSIC_ELB, arn, name)

    def eni(self, role: str, tags: dict[str, str], description: str = "", groups: list[str] | None = None) -> str:
        eni = self.ec2.create_network_interface(SubnetId=self.subnets[0], Description=description,
                                                Groups=groups or [],
                                                TagSpecifications=specs("network-interface", tags))
        return self.file(role, NETWORK_INTERFACE, eni["NetworkInterface"]["NetworkInterfaceId"], description)

    def eip(self, role: str, tags: dict[str, str]) -> str:
        address = self.ec2.allocate_address(Domain="vpc", TagSpecifications=specs("elastic-ip", tags))
        return self.file(role, ELASTIC_IP, address["AllocationId"], address["PublicIp"])

    def nat(self, role: str, tags: dict[str, str], eip_tags: dict[str, str]) -> str:
        allocation = self.eip(role, eip_tags)
        nat = self.ec2.create_nat_gateway(SubnetId=self.subnets[0], AllocationId=allocation,
                                          TagSpecifications=specs("natgateway", tags))
        return self.file(role, NAT_GATEWAY, nat["NatGateway"]["NatGatewayId"], tags.get("Name", ""))

    def security_group(self, role: str, name: str, tags: dict[str, str]) -> str:
        group = self.ec2.create_security_group(GroupName=name, Description=name, VpcId=self.vpc,
                                               TagSpecifications=specs("security-group", tags))
        return self.file(role, SECURITY_GROUP, group["GroupId"], name)

    def volume(self, role: str, tags: dict[str, str], size: int = 10, kind: str = "gp3") -> str:
        volume = self.ec2.create_volume(AvailabilityZone=f"{self.region}a", Size=size, VolumeType=kind,
                                        TagSpecifications=specs("volume", tags))
        return self.file(role, VOLUME, volume["VolumeId"], "")

    def eks_cluster(self, role: str, name: str, tags: dict[str, str], *, status: str = "FAILED",
                    nodegroups: dict[str, dict[str, str]] | None = None) -> str:
        """An EKS cluster in ``status`` with managed node groups ({name: tags}), filed under ``role``
        too (moto makes every cluster ACTIVE: its backend is told otherwise, after the node groups)."""
        from moto.eks.models import eks_backends

        arn = self.eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-{name}", tags=tags,
                                      resourcesVpcConfig={"subnetIds": self.subnets})["cluster"]["arn"]
        for group_name, group_tags in (nodegroups or {}).items():
            group = self.eks.create_nodegroup(clusterName=name, nodegroupName=group_name, subnets=self.subnets,
                                              nodeRole=f"arn:aws:iam::{ACCOUNT}:role/nodes-{name}",
                                              instanceTypes=["m5.xlarge"], tags=group_tags)["nodegroup"]
            self.file(role, NODEGROUP, group["nodegroupArn"], group_name)
        eks_backends[ACCOUNT][self.region].clusters[name].status = status
        return self.file(role, EKS_CLUSTER, arn, name)

    def instance(self, role: str, tags: dict[str, str], kind: str = "m5.xlarge") -> str:
        instance = self.ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType=kind,
                                          SubnetId=self.subnets[0], TagSpecifications=specs("instance", tags))
        return self.file(role, EC2_INSTANCE, instance["Instances"][0]["InstanceId"], tags.get("Name", ""))

    def autoscaling_group(self, role: str, name: str, tags: dict[str, str], *, desired: int = 1) -> str:
        """An Auto Scaling group whose tags propagate to its instances (filed under ``role`` too)."""
        self.ec2.create_launch_template(LaunchTemplateName=f"lt-{name}",
                                        LaunchTemplateData={"ImageId": IMAGE, "InstanceType": "m5.xlarge"})
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": f"lt-{name}"}, MinSize=0, MaxSize=3,
            DesiredCapacity=desired, VPCZoneIdentifier=self.subnets[0],
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in tags.items()])
        group = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        for instance in group["Instances"]:
            self.file(role, EC2_INSTANCE, instance["InstanceId"], "")
        return self.file(role, AUTOSCALING_GROUP, group["AutoScalingGroupARN"], name)

    def stack(self, role: str, name: str, tags: dict[str, str], resources: dict[str, str]) -> dict[str, str]:
        """A stack of IAM resources ({logical id: type}); returns {logical id: full id} and files
        the stack and each resource under ``role``."""
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        template: dict[str, Any] = {"Resources": {}}
        for logical, kind in resources.items():
            if kind == "role":
                props: dict[str, Any] = {"AssumeRolePolicyDocument": trust}
                template["Resources"][logical] = {"Type": "AWS::IAM::Role", "Properties": props}
            elif kind == "profile":
                role_ref = next(k for k, v in resources.items() if v == "role")
                template["Resources"][logical] = {"Type": "AWS::IAM::InstanceProfile",
                                                  "Properties": {"Roles": [{"Ref": role_ref}]}}
            elif kind == "policy":
                document = {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}]}
                template["Resources"][logical] = {"Type": "AWS::IAM::ManagedPolicy",
                                                  "Properties": {"PolicyDocument": document}}
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        stack_id = self.cf.create_stack(StackName=name, TemplateBody=json.dumps(template),
                                        Capabilities=["CAPABILITY_IAM"], **kwargs)["StackId"]
        self.file(role, STACK, stack_id, name)
        out: dict[str, str] = {}
        for summary in self.cf.list_stack_resources(StackName=name)["StackResourceSummaries"]:
            physical, kind = summary["PhysicalResourceId"], summary["ResourceType"]
            if kind == "AWS::IAM::Role":
                arn = self.iam.get_role(RoleName=physical)["Role"]["Arn"]
                out[summary["LogicalResourceId"]] = self.file(role, ROLE, arn, physical)
            elif kind == "AWS::IAM::InstanceProfile":
                arn = self.iam.get_instance_profile(InstanceProfileName=physical)["InstanceProfile"]["Arn"]
                out[summary["LogicalResourceId"]] = self.file(role, INSTANCE_PROFILE, arn, physical)
            elif kind == "AWS::IAM::ManagedPolicy":
                out[summary["LogicalResourceId"]] = self.file(role, POLICY, physical, physical.rsplit("/", 1)[-1])
        return out

    def role(self, role: str, name: str, tags: dict[str, str], *, path: str = "/",
             trust_provider: str | None = None) -> str:
        principal: dict[str, Any] = ({"Federated": trust_provider} if trust_provider
                                     else {"Service": "ec2.amazonaws.com"})
        action = "sts:AssumeRoleWithWebIdentity" if trust_provider else "sts:AssumeRole"
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": action}]}
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        arn = self.iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust),
                                   **kwargs)["Role"]["Arn"]
        return self.file(role, ROLE, arn, name)

    def policy(self, role: str, name: str, tags: dict[str, str], *, path: str = "/") -> str:
        document = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        arn = self.iam.create_policy(PolicyName=name, Path=path, PolicyDocument=document, **kwargs)["Policy"]["Arn"]
        return self.file(role, POLICY, arn, name)

    def profile(self, role: str, name: str, tags: dict[str, str], *, path: str = "/") -> str:
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        arn = self.iam.create_instance_profile(InstanceProfileName=name, Path=path,
                                               **kwargs)["InstanceProfile"]["Arn"]
        return self.file(role, INSTANCE_PROFILE, arn, name)

    def oidc(self, role: str, region: str, oidc_id: str, tags: dict[str, str]) -> str:
        kwargs = {"Tags": tag_list(tags)} if tags else {}
        arn = self.iam.create_open_id_connect_provider(
            Url=f"https://oidc.eks.{region}.amazonaws.com/id/{oidc_id}", ClientIDList=["sts.amazonaws.com"],
            ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"], **kwargs)["OpenIDConnectProviderArn"]
        return self.file(role, OIDC_PROVIDER, arn, arn.split(":oidc-provider/")[-1])

    def log_group(self, role: str, name: str) -> str:
        self.logs.create_log_group(logGroupName=name)
        group = next(g for g in self.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
                     if g["logGroupName"] == name)
        return self.file(role, LOG_GROUP, group["logGroupArn"], name)

    def bucket(self, role: str, name: str, tags: dict[str, str], *, objects: int = 0) -> str:
        kwargs = {} if self.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": self.region}}
        self.s3.create_bucket(Bucket=name, **kwargs)
        if tags:
            self.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)})
        if objects:
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            for i in range(objects):
                self.s3.put_object(Bucket=name, Key="mlflow/model.pkl", Body=b"x" * (1024 * (i + 1)))
            self.s3.delete_object(Bucket=name, Key="mlflow/model.pkl")  # leaves a delete marker
        return self.file(role, BUCKET, f"arn:aws:s3:::{name}", name)


def eksctl_tags(cluster: str) -> dict[str, str]:
    return {"alpha.eksctl.io/cluster-name": cluster, "eksctl.cluster.k8s.io/v1alpha1/cluster-name": cluster,
            "alpha.eksctl.io/eksctl-version": "0.230.0", "kservectl.io/cluster": cluster}


def build_world() -> World:
    world = World()
    b = Builder(world)
    c, d = CLUSTER, DECOY

    # -- load balancers: the Kourier NLB of the LB controller, and one of the in-tree controller
    b.load_balancer("orphan", "k8s-kourier-kourier-1a2b3c4d5e", {
        "elbv2.k8s.aws/cluster": c, "service.k8s.aws/stack": "kourier-system/kourier",
        "service.k8s.aws/resource": "LoadBalancer"})
    b.load_balancer("orphan", "a1b2c3d4e5f60718293a4b5c6d7e8f90", {
        f"kubernetes.io/cluster/{c}": "owned", "kubernetes.io/service-name": "models/wine"})
    b.load_balancer("decoys", "k8s-kourier-kourier-9f8e7d6c5b", {
        "elbv2.k8s.aws/cluster": d, "service.k8s.aws/stack": "kourier-system/kourier"})
    b.load_balancer("lookalikes", "k8s-prod-web-0a1b2c3d4e", {})
    b.target_group("orphan", "k8s-kourier-kourier-7f8e9d0c1b", {"elbv2.k8s.aws/cluster": c,
                                                                 "service.k8s.aws/stack": "kourier-system/kourier"})
    b.target_group("decoys", "k8s-kourier-kourier-2b3c4d5e6f", {"elbv2.k8s.aws/cluster": d})
    b.target_group("lookalikes", "k8s-prod-web-tg", {})
    b.classic_elb("orphan", "a0123456789abcdef0123456789abcd", {f"kubernetes.io/cluster/{c}": "owned"})
    b.classic_elb("decoys", "b0123456789abcdef0123456789abcd", {f"kubernetes.io/cluster/{d}": "owned"})
    b.classic_elb("lookalikes", "prod-legacy-elb", {})

    # -- network: ENIs of the VPC CNI, eksctl's NAT gateway and its address, a kservectl address
    b.eni("orphan", {"cluster.k8s.amazonaws.com/name": c, "node.k8s.amazonaws.com/instance_id": "i-0abc"},
          "aws-K8S-i-0abc")
    b.eni("decoys", {"cluster.k8s.amazonaws.com/name": d, "node.k8s.amazonaws.com/instance_id": "i-0def"},
          "aws-K8S-i-0def")
    b.eni("lookalikes", {}, "prod worker interface")
    b.nat("orphan", {"alpha.eksctl.io/cluster-name": c, "Name": f"eksctl-{c}-cluster/NATGateway"},
          {"alpha.eksctl.io/cluster-name": c})
    b.nat("decoys", {"alpha.eksctl.io/cluster-name": d, "Name": f"eksctl-{d}-cluster/NATGateway"},
          {"alpha.eksctl.io/cluster-name": d})
    b.nat("lookalikes", {"Name": "prod-nat"}, {"Name": "prod-nat-ip"})
    b.eip("orphan", {"kservectl.io/cluster": c})
    b.eip("decoys", {"kservectl.io/cluster": d})

    # -- security groups: LB controller backend SG, in-tree ELB SG, the EKS cluster SG, one a
    #    stack created; the backend SG's rule references the in-tree one (revoked before deletion)
    backend = b.security_group("orphan", f"k8s-traffic-{c}-5e6f7a8b9c", {
        "elbv2.k8s.aws/cluster": c, "elbv2.k8s.aws/resource": "backend-sg"})
    in_tree = b.security_group("orphan", "k8s-elb-a0123456789abcdef0123456789abcd",
                               {f"kubernetes.io/cluster/{c}": "owned"})
    b.ec2.authorize_security_group_ingress(GroupId=backend, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": in_tree}]}])
    b.security_group("orphan", f"eks-cluster-sg-{c}-1234567", {"aws:eks:cluster-name": c,
                                                                 f"kubernetes.io/cluster/{c}": "owned"})
    b.security_group("orphan", f"eksctl-{c}-cluster-ControlPlaneSecurityGroup-1ABC",
                     {"aws:cloudformation:stack-name": f"eksctl-{c}-cluster"})
    b.security_group("decoys", f"k8s-traffic-{d}-0a9b8c7d6e", {"elbv2.k8s.aws/cluster": d})
    b.security_group("decoys", f"eksctl-{d}-cluster-ControlPlaneSecurityGroup-2DEF",
                     {"aws:cloudformation:stack-name": f"eksctl-{d}-cluster"})
    b.security_group("lookalikes", f"eksctl-{c}-cluster-lookalike", {})
    # used by prod, owned by none (a group of several clusters): never prod's to delete
    b.security_group("shared", f"shared-nodes-{c}", {f"kubernetes.io/cluster/{c}": "shared"})
    b.security_group("shared", f"shared-and-tagged-{c}", {f"kubernetes.io/cluster/{c}": "shared",
                                                          "kservectl.io/cluster": c})

    # -- compute: the cluster itself FAILED (no stack made it: found by DescribeCluster), its managed
    #    node group, an eksctl node group's Auto Scaling group (its instance tagged through it), a
    #    lone node; prod-2's FAILED cluster with its node group, and its Auto Scaling group
    b.eks_cluster("orphan", c, {"kservectl.io/cluster": c, "alpha.eksctl.io/cluster-name": c}, nodegroups={
        "ng-managed": {"alpha.eksctl.io/cluster-name": c, "alpha.eksctl.io/nodegroup-name": "ng-managed"}})
    b.autoscaling_group("orphan", f"eksctl-{c}-nodegroup-ng-1-NodeGroup-ABC", {
        "alpha.eksctl.io/cluster-name": c, f"kubernetes.io/cluster/{c}": "owned",
        f"k8s.io/cluster-autoscaler/{c}": "owned"})
    b.instance("orphan", {"eks:cluster-name": c, "eks:nodegroup-name": "ng-managed", "Name": f"{c}-ng-managed-node"})
    b.eks_cluster("decoys", d, {"kservectl.io/cluster": d},
                  nodegroups={"ng-managed": {"alpha.eksctl.io/cluster-name": d}})
    b.autoscaling_group("decoys", f"eksctl-{d}-nodegroup-ng-1-NodeGroup-DEF", {
        "alpha.eksctl.io/cluster-name": d, f"kubernetes.io/cluster/{d}": "owned"})
    b.instance("lookalikes", {"Name": f"{c}-bastion", f"k8s.io/cluster-autoscaler/{c}": "owned"})
    # a kops (or self-managed) cluster also called prod: its nodes and their group carry only the
    # generic tags, which are no evidence on compute (an instance of the group comes with it)
    b.instance("lookalikes", {"KubernetesCluster": c, f"kubernetes.io/cluster/{c}": "owned",
                              "Name": f"nodes.{c}.k8s.local"})
    b.autoscaling_group("lookalikes", f"nodes-{c}-k8s-local", {"KubernetesCluster": c,
                                                               f"kubernetes.io/cluster/{c}": "owned"})

    # -- volumes: a PVC volume of the CSI driver with kservectl's StorageClass tags, an in-tree one
    b.volume("orphan", {"kservectl.io/cluster": c, f"kubernetes.io/cluster/{c}": "owned",
                        "ebs.csi.aws.com/cluster": "true", "CSIVolumeName": "pvc-1111",
                        "kubernetes.io/created-for/pvc/name": "mlflow",
                        "kubernetes.io/created-for/pvc/namespace": "mlflow"}, size=10)
    b.volume("orphan", {"KubernetesCluster": c}, size=20, kind="gp2")
    b.volume("decoys", {f"kubernetes.io/cluster/{d}": "owned", "ebs.csi.aws.com/cluster": "true"})
    b.volume("lookalikes", {"ebs.csi.aws.com/cluster": "true", "kubernetes.io/created-for/pvc/name": "mlflow"})

    # -- stacks: tagged ones, and an untagged one found by the name eksctl gives it
    b.stack("orphan", f"eksctl-{c}-cluster", eksctl_tags(c), {"ServiceRole": "role", "PolicyMetrics": "policy"})
    b.stack("orphan", f"eksctl-{c}-nodegroup-ng-1", {"eksctl.cluster.k8s.io/v1alpha1/cluster-name": c},
            {"NodeInstanceRole": "role", "NodeInstanceProfile": "profile"})
    b.stack("orphan", f"eksctl-{c}-addon-iamserviceaccount-kube-system-aws-load-balancer-controller", {},
            {"Role1": "role"})
    b.stack("decoys", f"eksctl-{d}-cluster", eksctl_tags(d), {"ServiceRole": "role"})
    b.stack("decoys", f"eksctl-{d}-addon-iamserviceaccount-kube-system-aws-load-balancer-controller", {},
            {"Role1": "role"})
    b.stack("lookalikes", f"{c}-cluster-tools", {}, {"ToolRole": "role"})

    # -- IAM: kservectl's IRSA role, policies and a profile; the OIDC provider its trust names
    provider = b.oidc("orphan", REGION, "A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6", {})
    mlflow_role = b.role("orphan", f"kservectl-{c}-mlflow", {"kservectl.io/cluster": c,
                                                             "kservectl.io/component": "storage"},
                         path="/kservectl/", trust_provider=provider)
    s3_policy = b.policy("orphan", f"kservectl-{c}-mlflow-s3", {"kservectl.io/cluster": c}, path="/kservectl/")
    b.iam.create_policy_version(PolicyArn=s3_policy, SetAsDefault=True, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    b.iam.attach_role_policy(RoleName=mlflow_role.rsplit("/", 1)[-1], PolicyArn=s3_policy)
    b.iam.put_role_policy(RoleName=mlflow_role.rsplit("/", 1)[-1], PolicyName="inline",
                          PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                              {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    b.policy("orphan", f"kservectl-{c}-AWSLoadBalancerControllerIAMPolicy", {"kservectl.io/cluster": c})
    b.profile("orphan", f"kservectl-{c}-nodes", {"kservectl.io/cluster": c}, path="/kservectl/")
    b.iam.add_role_to_instance_profile(InstanceProfileName=f"kservectl-{c}-nodes",
                                       RoleName=mlflow_role.rsplit("/", 1)[-1])
    decoy_provider = b.oidc("decoys", REGION, "F6E5D4C3B2A1F6E5D4C3B2A1F6E5D4C3",
                            {"alpha.eksctl.io/cluster-name": d})
    b.role("decoys", f"kservectl-{d}-mlflow", {"kservectl.io/cluster": d}, path="/kservectl/",
           trust_provider=decoy_provider)
    b.policy("decoys", f"kservectl-{d}-mlflow-s3", {"kservectl.io/cluster": d}, path="/kservectl/")
    b.profile("decoys", f"kservectl-{d}-nodes", {"kservectl.io/cluster": d}, path="/kservectl/")
    b.oidc("lookalikes", REGION, "00000000000000000000000000000000", {})
    b.role("lookalikes", f"{c}-ci-deployer", {})
    b.role("lookalikes", f"kservectl-{c}-unowned", {}, path="/kservectl/")
    b.role("lookalikes", f"{c}-ebs", {"ebs.csi.aws.com/cluster": "true"})
    b.policy("lookalikes", f"{c}-readonly", {})
    b.profile("lookalikes", f"{c}-bastion", {})

    # -- logs and the artifact bucket
    b.log_group("orphan", f"/aws/eks/{c}/cluster")
    b.log_group("decoys", f"/aws/eks/{d}/cluster")
    b.log_group("lookalikes", f"/aws/eks/{c}")
    b.bucket("orphan", f"kservectl-{c}-{ACCOUNT}-{REGION}", {"kservectl.io/cluster": c}, objects=3)
    b.bucket("decoys", f"kservectl-{d}-{ACCOUNT}-{REGION}", {"kservectl.io/cluster": d}, objects=1)
    b.bucket("lookalikes", f"kservectl-{c}-scratch", {})
    b.bucket("lookalikes", "acme-loki-chunks", {"KubernetesCluster": c}, objects=1)  # not kservectl's tag

    # -- cluster prod in another region: same tags and names, never this search's
    e = Builder(world, ELSEWHERE)
    e.load_balancer("elsewhere", "k8s-kourier-kourier-eeeeeeeeee", {"elbv2.k8s.aws/cluster": c})
    e.volume("elsewhere", {"kservectl.io/cluster": c, f"kubernetes.io/cluster/{c}": "owned"})
    e.security_group("elsewhere", f"k8s-traffic-{c}-eeeeeeeeee", {"elbv2.k8s.aws/cluster": c})
    e.log_group("elsewhere", f"/aws/eks/{c}/cluster")
    e.eks_cluster("elsewhere", c, {"kservectl.io/cluster": c})
    e.instance("elsewhere", {"eks:cluster-name": c})
    e.bucket("elsewhere", f"kservectl-{c}-{ACCOUNT}-{ELSEWHERE}", {"kservectl.io/cluster": c})
    east_provider = e.oidc("elsewhere", ELSEWHERE, "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE",
                           {"alpha.eksctl.io/cluster-name": c})
    e.role("elsewhere", f"eksctl-{c}-east-irsa", {"alpha.eksctl.io/cluster-name": c},
           trust_provider=east_provider)
    e.stack("elsewhere", f"eksctl-{c}-cluster", eksctl_tags(c), {"ServiceRole": "role"})
    return world


# --------------------------------------------------------------------------- proof helpers


def exists(kind: str, rid: str, name: str, region: str) -> bool:
    """Describe the resource in AWS (moto): does it still exist?"""
    ec2 = client("ec2", region)
    iam_client = client("iam", region)
    try:
        if kind == EKS_CLUSTER:
            client("eks", region).describe_cluster(name=name)
        elif kind == NODEGROUP:
            client("eks", region).describe_nodegroup(clusterName=rid.split("/")[1], nodegroupName=name)
        elif kind == AUTOSCALING_GROUP:
            return bool(client("autoscaling", region).describe_auto_scaling_groups(
                AutoScalingGroupNames=[name])["AutoScalingGroups"])
        elif kind == EC2_INSTANCE:
            state = ec2.describe_instances(InstanceIds=[rid])["Reservations"][0]["Instances"][0]["State"]["Name"]
            return state not in ("shutting-down", "terminated")
        elif kind == LOAD_BALANCER:
            client("elbv2", region).describe_load_balancers(LoadBalancerArns=[rid])
        elif kind == TARGET_GROUP:
            client("elbv2", region).describe_target_groups(TargetGroupArns=[rid])
        elif kind == CLASSIC_ELB:
            client("elb", region).describe_load_balancers(LoadBalancerNames=[name])
        elif kind == NETWORK_INTERFACE:
            ec2.describe_network_interfaces(NetworkInterfaceIds=[rid])
        elif kind == NAT_GATEWAY:
            state = ec2.describe_nat_gateways(NatGatewayIds=[rid])["NatGateways"][0]["State"]
            return state != "deleted"
        elif kind == ELASTIC_IP:
            ec2.describe_addresses(AllocationIds=[rid])
        elif kind == SECURITY_GROUP:
            ec2.describe_security_groups(GroupIds=[rid])
        elif kind == VOLUME:
            ec2.describe_volumes(VolumeIds=[rid])
        elif kind == STACK:
            status = client("cloudformation", region).describe_stacks(
                StackName=rid)["Stacks"][0]["StackStatus"]
            return status != "DELETE_COMPLETE"
        elif kind == INSTANCE_PROFILE:
            iam_client.get_instance_profile(InstanceProfileName=name)
        elif kind == ROLE:
            iam_client.get_role(RoleName=name)
        elif kind == POLICY:
            iam_client.get_policy(PolicyArn=rid)
        elif kind == OIDC_PROVIDER:
            iam_client.get_open_id_connect_provider(OpenIDConnectProviderArn=rid)
        elif kind == LOG_GROUP:
            groups = client("logs", region).describe_log_groups(
                logGroupNamePrefix=name)["logGroups"]
            return any(g["logGroupName"] == name for g in groups)
        elif kind == BUCKET:
            client("s3", region).head_bucket(Bucket=name)
        else:  # pragma: no cover
            raise AssertionError(kind)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if "NotFound" in code or code in ("NoSuchEntity", "404", "NoSuchBucket", "ValidationError",
                                          "ResourceNotFoundException"):
            return False
        raise
    return True


_CLIENTS: dict[str, aws.AwsClients] = {}


@pytest.fixture(autouse=True)
def _fresh_clients():
    _CLIENTS.clear()
    _BOTO.clear()
    yield
    _CLIENTS.clear()
    _BOTO.clear()


@pytest.fixture(scope="class")
def shared_world() -> Any:
    """One world for the tests of ``TestOneWorld``, which only read it (building one takes
    seconds). Class-scoped: moto resets only when no mock is active, so the world must be gone
    before the tests that build their own. Its tests also take ``aws_credentials``."""
    from moto import mock_aws as moto_mock

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
            patch.setenv(name, value)
        with moto_mock():
            _BOTO.clear()
            world = build_world()
            _BOTO.clear()
            yield world


def make_ctx(cluster: str = CLUSTER, region: str = REGION, *, dry_run: bool = False,
             clock: FakeClock | None = None, settings: Settings | None = None, **flags: Any) -> Context:
    cfg = config.load(env={}, flags={"cluster.name": cluster, "cluster.region": region, **flags}).config
    ctx = Context(config=cfg, clock=clock or FakeClock(), reporter=RecordingReporter(), dry_run=dry_run,
                  settings=settings or Settings())
    ctx.aws = _CLIENTS.setdefault(region, aws.AwsClients(region, settings=ctx.settings))
    ctx.aws.observers.clear()
    return ctx


def record_calls(ctx: Context) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    ctx.aws.observers.append(lambda service, op: seen.append((threading.current_thread().name, service, op)))
    return seen


def mutating(calls: list[tuple[str, str, str]]) -> list[str]:
    return [f"{service}:{op}" for _, service, op in calls if aws.is_mutating(op)]


def found_keys(result: orphans.Search) -> set[tuple[str, str]]:
    return {(o.type, o.id) for o in result.orphans}


def answer(client: Any, operation: str, respond) -> None:
    """Make ``client`` answer ``operation`` itself while ``respond(params)`` returns an error code
    (a botocore before-call hook: AWS behaviour moto does not have). ``params`` are the request's
    serialized parameters (EC2's query protocol keeps their names)."""

    def hook(params: dict[str, Any], **_: Any):
        body = params.get("body")
        code = respond(body if isinstance(body, dict) else {})
        if code is None:
            return None
        return SimpleNamespace(status_code=400, headers={}), {"Error": {"Code": code, "Message": f"stubbed {code}"}}

    client.meta.events.register(f"before-call.*.{operation}", hook)


# --------------------------------------------------------------------------- search


@pytest.mark.usefixtures("aws_credentials")
class TestOneWorld:
    """Searches of one shared world, read-only (a dry-run delete included)."""

    def test_a_narrowed_search_reads_only_its_finders_services_and_finds_their_orphans(self, shared_world):
        ctx = make_ctx()
        calls = record_calls(ctx)
        result = orphans.search(ctx, only=("ec2 volumes", "ec2 NAT gateways"))
        kinds = {o.type for o in result.orphans}  # the stacks are always read: other finders use them
        assert kinds == {orphans.VOLUME, orphans.NAT_GATEWAY, orphans.STACK}
        assert found_keys(result) == {k for k in shared_world.orphans if k[0] in kinds}
        assert {service for _, service, _ in calls} == {"sts", "cloudformation", "eks", "ec2"}  # no S3, IAM, ELB reads
        with pytest.raises(ValueError, match="no such orphan finder: s3"):
            orphans.search(make_ctx(), only=("s3",))

    def test_every_orphan_is_found_by_its_full_id_and_no_decoy_or_lookalike_is(self, shared_world):
        world = shared_world
        result = orphans.search(make_ctx())
        assert found_keys(result) == set(world.orphans)
        listed = {rid for _, rid, _, _ in world.untouchable()}
        assert not listed & {o.id for o in result.orphans}
        assert result.account_id == ACCOUNT and result.complete
        assert result.cluster_status == "FAILED" and not result.cluster_alive
        types_found = {o.type for o in result.orphans}
        assert types_found == set(orphans.TYPES)  # every type has an orphan in this world

    def test_every_orphan_says_which_evidence_makes_it_this_clusters(self, shared_world):
        by_name = {o.name or o.id: o for o in orphans.search(make_ctx()).orphans}
        assert by_name["k8s-kourier-kourier-1a2b3c4d5e"].evidence == "tag elbv2.k8s.aws/cluster=prod"
        assert by_name["a0123456789abcdef0123456789abcd"].evidence == "tag kubernetes.io/cluster/prod=owned"
        assert "tag aws:eks:cluster-name=prod" in by_name["eks-cluster-sg-prod-1234567"].evidence
        assert by_name["eksctl-prod-cluster-ControlPlaneSecurityGroup-1ABC"].evidence == \
            "created by stack eksctl-prod-cluster"
        untagged_stack = by_name["eksctl-prod-addon-iamserviceaccount-kube-system-aws-load-balancer-controller"]
        assert untagged_stack.evidence == (
            "name eksctl-prod-addon-iamserviceaccount-kube-system-aws-load-balancer-controller "
            "(a stack name eksctl gives cluster prod)")
        stack_role = next(o for o in by_name.values() if o.type == ROLE and o.name.startswith("eksctl-prod-nodegroup"))
        assert stack_role.evidence == "listed by stack eksctl-prod-nodegroup-ng-1"
        provider = next(o for o in by_name.values() if o.type == OIDC_PROVIDER)
        assert provider.evidence == "trusted by IAM role kservectl-prod-mlflow (an orphan)"
        assert by_name["/aws/eks/prod/cluster"].evidence == \
            "name /aws/eks/prod/cluster (a log group name EKS gives cluster prod)"
        volume = next(o for o in by_name.values() if o.type == VOLUME and "gp3" in o.detail)
        assert volume.evidence == "tag kservectl.io/cluster=prod; tag kubernetes.io/cluster/prod=owned"
        assert "PVC mlflow/mlflow" in volume.detail

    def test_orphans_come_in_delete_order_with_the_cluster_stack_after_the_others(self, shared_world):
        found = orphans.search(make_ctx()).orphans
        ranks = [o.rank for o in found]
        assert ranks == sorted(ranks)
        order = list(dict.fromkeys(o.type for o in found))
        # the compute (node groups, Auto Scaling groups, instances) before the EKS cluster, and the
        # cluster before the VPC pieces it holds (ENIs, security groups)
        assert order == [CLASSIC_ELB, LOAD_BALANCER, NODEGROUP, AUTOSCALING_GROUP, EC2_INSTANCE, EKS_CLUSTER,
                         TARGET_GROUP, NETWORK_INTERFACE, NAT_GATEWAY, ELASTIC_IP, SECURITY_GROUP, VOLUME, STACK,
                         INSTANCE_PROFILE, ROLE, POLICY, OIDC_PROVIDER, LOG_GROUP, BUCKET]
        stacks = [o.name for o in found if o.type == STACK]
        assert stacks[-1] == "eksctl-prod-cluster" and len(stacks) == 3

    def test_costs_come_from_the_price_table_and_are_marked_as_estimates_outside_its_regions(self, shared_world):
        result = orphans.search(make_ctx())
        by_type: dict[str, list[orphans.Orphan]] = {}
        for o in result.orphans:
            by_type.setdefault(o.type, []).append(o)
        assert by_type[NAT_GATEWAY][0].monthly_cost == pytest.approx(0.045 * 730)
        assert "estimate from us-east-1 prices" in by_type[NAT_GATEWAY][0].cost_note  # us-west-2 is not covered
        assert [round(o.monthly_cost, 2) for o in by_type[ELASTIC_IP]] == [round(0.005 * 730, 2)] * 2
        assert {round(o.monthly_cost, 2) for o in by_type[VOLUME]} == {round(10 * 0.08, 2), round(20 * 0.10, 2)}
        assert all(o.monthly_cost == pytest.approx(0.0225 * 730) for o in by_type[LOAD_BALANCER])
        assert by_type[ROLE][0].monthly_cost == 0.0 and by_type[ROLE][0].cost_note == "no charge"
        assert result.monthly_cost == pytest.approx(sum(o.monthly_cost or 0 for o in result.orphans))
        assert by_type[BUCKET][0].holds_data and by_type[BUCKET][0].monthly_cost is not None

    def test_lookalikes_other_clusters_and_other_regions_are_counted_apart_never_listed(self, shared_world):
        result = orphans.search(make_ctx())
        # roles: the three untagged ones, and four stack roles no stack of *this* cluster lists (the
        # stacks of prod-2 and of prod in us-east-1 are not this cluster's records)
        assert result.lookalikes == {
            LOAD_BALANCER: 1, TARGET_GROUP: 1, CLASSIC_ELB: 1, NETWORK_INTERFACE: 1, NAT_GATEWAY: 1, ELASTIC_IP: 1,
            SECURITY_GROUP: 1, VOLUME: 1, STACK: 1, ROLE: 7, POLICY: 1, INSTANCE_PROFILE: 1, LOG_GROUP: 1, BUCKET: 2,
            EC2_INSTANCE: 3, AUTOSCALING_GROUP: 1,
        }
        # prod-2's resources of every type (its EKS cluster and node group are never read: only
        # cluster prod is described), plus prod's IAM of us-east-1 (IAM is global; its OIDC issuer
        # names the region), never this cluster's
        assert result.other_clusters == {
            LOAD_BALANCER: 1, TARGET_GROUP: 1, CLASSIC_ELB: 1, NETWORK_INTERFACE: 1, NAT_GATEWAY: 1, ELASTIC_IP: 2,
            SECURITY_GROUP: 2, VOLUME: 1, STACK: 1, INSTANCE_PROFILE: 1, ROLE: 2, POLICY: 1, OIDC_PROVIDER: 2,
            LOG_GROUP: 1, BUCKET: 1, AUTOSCALING_GROUP: 1, EC2_INSTANCE: 1,
        }
        # kubernetes.io/cluster/prod=shared: used by prod, owned by none (also when kservectl's tag is there)
        assert result.shared == {SECURITY_GROUP: 2}
        notes = result.notes()
        assert any(line.startswith("25 resources look related but carry no ownership evidence: not touched")
                   for line in notes)
        assert any("belong to another cluster: not touched" in line for line in notes)
        assert "2 resources are not owned, shared: tagged kubernetes.io/cluster/prod=shared (used by prod, owned " \
               "by none): not touched (2 security-group)" in notes

    def test_the_text_listing_shows_every_full_id_untruncated(self, shared_world):
        result = orphans.search(make_ctx())
        text = "\n".join(result.lines())
        for o in result.orphans:
            assert o.id in text
        assert text.splitlines()[0].startswith(f"{len(result.orphans)} orphans of cluster prod in us-west-2 "
                                               f"(account {ACCOUNT}), about $")
        assert "holds data: deleted only with --delete-data" in text
        data = result.as_dict()
        assert [o["id"] for o in data["orphans"]] == [o.id for o in result.orphans]
        assert data["complete"] is True and data["lookalikes"] == result.lookalikes
        json.dumps(data)  # plain data for --output json

    def test_the_search_is_read_only_and_runs_its_finders_concurrently(self, shared_world):
        ctx = make_ctx()
        calls = record_calls(ctx)
        orphans.search(ctx)
        assert mutating(calls) == []
        threads = {thread for thread, _, _ in calls if thread.startswith("orphans")}
        # finders run on the pool's threads (how many depends on timing: an idle one is reused)
        assert len(threads) >= 2
        assert not any(thread == "MainThread" and service != "sts" for thread, service, _ in calls)
        services = {service for _, service, _ in calls}
        assert {"ec2", "elbv2", "elb", "cloudformation", "iam", "s3", "logs", "eks", "sts"} <= services

    def test_a_service_that_cannot_be_searched_is_reported_and_the_rest_still_found(self, shared_world):
        world = shared_world
        ctx = make_ctx()
        answer(ctx.aws.client("logs"), "DescribeLogGroups", lambda params: "AccessDeniedException")
        result = orphans.search(ctx)
        assert not result.complete
        assert result.errors == ["logs log groups: AWS logs:DescribeLogGroups failed with AccessDeniedException: "
                                 "stubbed AccessDeniedException"]
        assert found_keys(result) == {key for key in world.orphans if key[0] != LOG_GROUP}
        assert any("could not search logs log groups" in line for line in result.notes())

    def test_a_dry_run_delete_mutates_nothing_and_lists_the_same_orphans_in_the_same_order(self, shared_world):
        world = shared_world
        ctx = make_ctx(dry_run=True)
        calls = record_calls(ctx)
        dry = orphans.search(ctx)
        report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT, delete_data=True)
        assert mutating(calls) == []
        assert [(o.status, o.orphan.id) for o in report.outcomes] == [("would delete", o.id) for o in dry.orphans]
        assert all(exists(kind, rid, name, REGION) for (kind, rid), name in world.orphans.items())


def test_a_cluster_that_still_exists_is_named_and_its_issuer_is_evidence(mock_aws):
    b = Builder(World())
    role = b.iam.create_role(RoleName="eks-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    eks = client("eks")
    cluster = eks.create_cluster(name=CLUSTER, roleArn=role, resourcesVpcConfig={"subnetIds": b.subnets})
    issuer = cluster["cluster"]["identity"]["oidc"]["issuer"]
    provider = b.iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"],
                                                     ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
    ctx = make_ctx()
    result = orphans.search(ctx)
    assert result.cluster_status == "ACTIVE" and result.cluster_alive
    found = {o.id: o for o in result.orphans}
    assert found[provider["OpenIDConnectProviderArn"]].evidence == "issuer of EKS cluster prod"
    assert any("still exists (ACTIVE)" in line and "kservectl cleanup" in line for line in result.notes())
    with pytest.raises(orphans.ClusterStillRunning, match="EKS cluster prod still exists in us-west-2 "
                       r"\(ACTIVE\); its resources are not orphans; nothing was deleted"):
        orphans.delete(ctx, result.orphans, account_id=ACCOUNT)


# --------------------------------------------------------------------------- evidence rules


@pytest.mark.parametrize(("tags", "ours", "others", "related", "shared"), [
    ({"ebs.csi.aws.com/cluster": "true"}, (), (), True, False),
    ({"kubernetes.io/created-for/pvc/name": "mlflow"}, (), (), True, False),
    ({"kubernetes.io/cluster/prod": "owned"}, ("tag kubernetes.io/cluster/prod=owned",), (), False, False),
    # shared means used, not owned: no ownership, and it is never deleted (counted apart)
    ({"kubernetes.io/cluster/prod": "shared"}, (), (), True, True),
    ({"kubernetes.io/cluster/prod": "shared", "kservectl.io/cluster": "prod"},
     ("tag kservectl.io/cluster=prod",), (), True, True),
    ({"kubernetes.io/cluster/prod": "1"}, (), (), True, False),
    ({"kubernetes.io/cluster/prod-2": "owned"}, (), ("prod-2",), True, False),
    ({"elbv2.k8s.aws/cluster": "prod-2"}, (), ("prod-2",), True, False),
    ({"elbv2.k8s.aws/cluster": "pro"}, (), ("pro",), True, False),
    ({"kservectl.io/cluster": "prod", "kubernetes.io/cluster/prod-2": "shared"},
     ("tag kservectl.io/cluster=prod",), ("prod-2",), True, False),
    ({"k8s.io/cluster-autoscaler/prod": "owned"}, (), (), True, False),
    ({"Name": "prod"}, (), (), False, False),
])
def test_tags_are_evidence_only_when_they_name_this_cluster_exactly(tags, ours, others, related, shared):
    assert orphans.tag_evidence(tags, "prod") == orphans.Evidence(ours, others, related, shared)


@pytest.mark.parametrize(("stack", "matches"), [
    ("eksctl-prod-cluster", True), ("eksctl-prod-nodegroup-ng-1", True),
    ("eksctl-prod-addon-iamserviceaccount-kube-system-x", True), ("eksctl-prod-podidentityrole-ns-sa", True),
    ("eksctl-prod-2-cluster", False), ("eksctl-prod-2-nodegroup-ng-1", False), ("eksctl-production-cluster", False),
    ("prod-cluster", False), ("eksctl-prod-", False),
])
def test_the_stack_name_rule_matches_this_clusters_eksctl_stacks_only(stack, matches):
    assert bool(orphans.stack_name_pattern("prod").match(stack)) is matches


def test_an_untagged_stack_explained_by_a_longer_cluster_name_belongs_to_that_cluster():
    assert orphans._longer_owner("eksctl-prod-addon-x", "prod", {"prod", "prod-addon"}) is None
    assert orphans._longer_owner("eksctl-prod-2-addon-x", "prod", {"prod-2"}) == "prod-2"
    assert orphans._longer_owner("eksctl-prod-nodegroup-a-cluster", "prod", set()) == "prod-nodegroup-a"


def test_a_stack_tagged_for_another_cluster_is_not_claimed_by_its_name(mock_aws):
    b = Builder(World())
    b.stack("decoys", "eksctl-prod-nodegroup-ng-9", {"alpha.eksctl.io/cluster-name": "prod-nodegroup"},
            {"R": "role"})
    result = orphans.search(make_ctx())
    assert result.orphans == []
    assert result.other_clusters[STACK] == 1


# --------------------------------------------------------------------------- delete


def test_delete_removes_every_orphan_in_the_dry_run_order_and_every_decoy_survives(mock_aws):
    world = build_world()
    ctx = make_ctx()
    dry = orphans.search(ctx)
    report = orphans.delete(ctx, dry.orphans, account_id=dry.account_id, delete_data=True)
    assert [o.orphan.id for o in report.outcomes] == [o.id for o in dry.orphans]
    assert report.attempted == dry.orphans
    assert report.ok, report.lines()
    assert {o.status for o in report.outcomes} <= {"deleted", "already gone"}
    still = [(kind, rid) for (kind, rid), name in world.orphans.items() if exists(kind, rid, name, REGION)]
    assert still == []
    gone = [(kind, rid, region) for kind, rid, name, region in world.untouchable()
            if not exists(kind, rid, name, region)]
    assert gone == []
    again = orphans.search(make_ctx())
    assert again.orphans == []


def test_stack_resources_the_stack_deletion_took_along_are_reported_already_gone(mock_aws):
    build_world()
    ctx = make_ctx()
    dry = orphans.search(ctx)
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT, delete_data=True)
    gone = {o.orphan.name for o in report.outcomes if o.status == "already gone"}
    assert any(name.startswith("eksctl-prod-nodegroup-ng-1-NodeInstanceRole") for name in gone)
    assert not any(name.startswith("kservectl-") for name in gone)  # deleted by us, not by a stack


def test_without_delete_data_the_bucket_is_kept_and_said_so(mock_aws):
    world = build_world()
    ctx = make_ctx()
    dry = orphans.search(ctx)
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT)
    kept = [o for o in report.outcomes if o.status == "kept"]
    assert [o.orphan.type for o in kept] == [BUCKET]
    assert kept[0].detail == "holds data; pass --delete-data to delete it"
    assert report.attempted == [o for o in dry.orphans if o.type != BUCKET]
    bucket = next(key for key in world.orphans if key[0] == BUCKET)
    assert exists(BUCKET, bucket[1], world.orphans[bucket], REGION)


def test_the_wrong_account_is_refused_before_anything_is_deleted(mock_aws):
    world = build_world()
    ctx = make_ctx()
    dry = orphans.search(ctx)
    calls = record_calls(ctx)
    with pytest.raises(orphans.WrongAccount) as info:
        orphans.delete(ctx, dry.orphans, account_id="999999999999", delete_data=True)
    assert info.value.exit_code == 2
    assert info.value.one_line() == (
        "refusing to delete: the AWS credentials now belong to account 123456789012, but the orphans were found "
        "in account 999999999999; nothing was deleted (use the credentials of account 999999999999 "
        "(AWS_PROFILE / aws.profile) and run the dry run again)")
    assert mutating(calls) == []
    assert all(exists(kind, rid, name, REGION) for (kind, rid), name in world.orphans.items())


def test_an_orphan_of_another_region_is_refused(mock_aws):
    ctx = make_ctx()
    stray = orphans.Orphan(VOLUME, "vol-0123456789abcdef0", ELSEWHERE, "tag kservectl.io/cluster=prod", 0.8, 70)
    with pytest.raises(UsageError, match="is in us-east-1, not us-west-2; nothing was deleted"):
        orphans.delete(ctx, [stray], account_id=ACCOUNT)


class UnblockingClock(FakeClock):
    """A clock whose ``after``-th sleep runs ``action``: the ENI that held a security group
    finishes going away while kservectl backs off."""

    def __init__(self, after: int, action) -> None:
        super().__init__()
        self.after, self.action = after, action

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.sleeps) == self.after:
            self.action()


def test_a_security_group_in_use_is_retried_with_backoff_until_its_eni_is_gone(mock_aws):
    b = Builder(World())
    group = b.security_group("orphan", "k8s-traffic-prod-blocked", {"elbv2.k8s.aws/cluster": CLUSTER})
    blocker = b.ec2.create_network_interface(SubnetId=b.subnets[0], Groups=[group])["NetworkInterface"]
    blocker_id = blocker["NetworkInterfaceId"]

    def eni_exists() -> bool:
        return bool(b.ec2.describe_network_interfaces(Filters=[
            {"Name": "network-interface-id", "Values": [blocker_id]}])["NetworkInterfaces"])

    clock = UnblockingClock(2, lambda: b.ec2.delete_network_interface(NetworkInterfaceId=blocker_id))
    ctx = make_ctx(clock=clock)
    dry = orphans.search(ctx)
    assert [o.id for o in dry.orphans] == [group]
    answer(ctx.aws.client("ec2", fail_fast=True), "DeleteSecurityGroup",
           lambda params: "DependencyViolation" if eni_exists() else None)
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT)
    assert [o.status for o in report.outcomes] == ["deleted"]
    assert clock.sleeps == [1.0, 2.0]  # ctx.settings.aws_retry: initial 1s, doubling
    warnings = ctx.reporter.messages("warn")
    assert warnings == [
        "ec2:DeleteSecurityGroup returned DependencyViolation; retrying in 1s (attempt 2/6)",
        "ec2:DeleteSecurityGroup returned DependencyViolation; retrying in 2s (attempt 3/6)",
    ]
    assert not exists(SECURITY_GROUP, group, "", REGION)


def test_failures_are_reported_with_the_manual_step_and_the_rest_still_goes(mock_aws):
    world = build_world()
    ctx = make_ctx()
    dry = orphans.search(ctx)
    stuck_group = next(o for o in dry.orphans if o.type == SECURITY_GROUP)
    stuck_volume = next(o for o in dry.orphans if o.type == VOLUME)
    ec2 = ctx.aws.client("ec2", fail_fast=True)
    answer(ec2, "DeleteSecurityGroup",
           lambda params: "DependencyViolation" if params.get("GroupId") == stuck_group.id else None)
    answer(ec2, "DeleteVolume", lambda params: "VolumeInUse" if params.get("VolumeId") == stuck_volume.id else None)
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT, delete_data=True)
    failures = {o.orphan.id: o for o in report.failures}
    assert set(failures) == {stuck_group.id, stuck_volume.id}
    group_failure = failures[stuck_group.id]
    assert group_failure.detail == ("AWS ec2:DeleteSecurityGroup failed with DependencyViolation: stubbed "
                                    "DependencyViolation (still failing after 6 attempts)")
    assert f"Name=group-id,Values={stuck_group.id}" in group_failure.manual
    assert f"aws ec2 delete-security-group --region us-west-2 --group-id {stuck_group.id}" in group_failure.manual
    assert failures[stuck_volume.id].manual.startswith(
        f"aws ec2 delete-volume --region us-west-2 --volume-id {stuck_volume.id}")
    assert ctx.clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]  # bounded: 6 attempts, capped backoff
    # everything else, also what comes after the failures in the order, is gone
    for (kind, rid), name in world.orphans.items():
        assert exists(kind, rid, name, REGION) == (rid in failures), (kind, rid)
    text = "\n".join(report.lines())
    assert "2 deletions failed; to finish by hand:" in text and stuck_volume.id in text
    assert report.as_dict()["failures"] == 2 and report.ok is False


def test_load_balancers_are_waited_for_and_one_that_never_goes_is_a_failure(mock_aws):
    b = Builder(World())
    arn = b.load_balancer("orphan", "k8s-kourier-kourier-stuck00000", {"elbv2.k8s.aws/cluster": CLUSTER})
    tg = b.target_group("orphan", "k8s-kourier-kourier-tg0000000", {"elbv2.k8s.aws/cluster": CLUSTER})
    settings = Settings(waits=WaitDeadlines(load_balancer_deleted=10.0, poll_interval=2.0))
    ctx = make_ctx(settings=settings)
    dry = orphans.search(ctx)
    # AWS accepted the deletion, but the load balancer never goes away
    ctx.aws.client("elbv2", fail_fast=True).meta.events.register(
        "before-call.*.DeleteLoadBalancer",
        lambda **_: (SimpleNamespace(status_code=200, headers={}), {}))
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT)
    outcomes = {o.orphan.id: o for o in report.outcomes}
    assert outcomes[arn].status == "failed"
    assert outcomes[arn].detail == "timed out after 10s waiting for it to be deleted"
    assert outcomes[arn].manual.startswith(
        f"aws elbv2 delete-load-balancer --region us-west-2 --load-balancer-arn {arn}")
    assert outcomes[tg].status == "deleted"  # the rest went on
    assert ctx.clock.sleeps == [2.0] * 5
    assert ctx.reporter.messages("waiting")[0] == f"elbv2-load-balancer to be deleted: 1 still present: {arn}"


def test_a_bucket_is_emptied_of_every_version_and_marker_before_it_is_deleted(mock_aws):
    b = Builder(World())
    b.bucket("orphan", f"kservectl-{CLUSTER}-{ACCOUNT}-{REGION}", {"kservectl.io/cluster": CLUSTER}, objects=3)
    b.s3.create_multipart_upload(Bucket=f"kservectl-{CLUSTER}-{ACCOUNT}-{REGION}", Key="half-done")
    ctx = make_ctx()
    dry = orphans.search(ctx)
    assert dry.orphans[0].detail == f"{6 * 1024 / 2**30:.3f} GiB"  # three versions: 1, 2 and 3 KiB
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT, delete_data=True)
    assert [o.status for o in report.outcomes] == ["deleted"]
    assert not exists(BUCKET, "", f"kservectl-{CLUSTER}-{ACCOUNT}-{REGION}", REGION)


def test_deleting_what_is_already_gone_is_not_a_failure(mock_aws):
    b = Builder(World())
    volume = b.volume("orphan", {"kservectl.io/cluster": CLUSTER})
    ctx = make_ctx()
    dry = orphans.search(ctx)
    b.ec2.delete_volume(VolumeId=volume)
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT)
    assert [(o.status, o.orphan.id) for o in report.outcomes] == [("already gone", volume)]
    assert report.ok


def test_attached_volumes_and_busy_enis_of_the_cluster_are_counted_in_use_not_listed(mock_aws):
    b = Builder(World())
    b.eni("orphan", {"cluster.k8s.amazonaws.com/name": CLUSTER}, "aws-K8S-i-0123")
    instance = b.ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, SubnetId=b.subnets[0])
    instance_id = instance["Instances"][0]["InstanceId"]
    volume = b.volume("orphan", {"kservectl.io/cluster": CLUSTER})
    b.ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device="/dev/sdf")
    busy = b.eni("orphan", {"cluster.k8s.amazonaws.com/name": CLUSTER}, "aws-K8S-busy")
    b.ec2.attach_network_interface(NetworkInterfaceId=busy, InstanceId=instance_id, DeviceIndex=1)
    result = orphans.search(make_ctx())
    assert [o.type for o in result.orphans] == [NETWORK_INTERFACE]
    assert result.in_use == {VOLUME: 1, NETWORK_INTERFACE: 1}
    assert any("still in use: not touched" in line for line in result.notes())


# --------------------------------------------------------------------------- names kservectl shortens

LONG = "prod-" + "x" * 85 + "1"  # 91 characters: the bucket and the controller policy get shortened names
LONG_2 = LONG[:-1] + "2"


def test_buckets_are_found_by_their_tag_under_the_shortened_derived_name_and_under_a_custom_name(mock_aws):
    from kservectl.phases import storage

    assert len(LONG) == 91
    derived = storage.derive_bucket_name(LONG, ACCOUNT, REGION)
    assert LONG not in derived and derived.startswith("kservectl-")  # cut, with a hash of the full name
    b, e = Builder(World()), Builder(World(), ELSEWHERE)
    ours = {b.bucket("orphan", derived, {"kservectl.io/cluster": LONG}),
            b.bucket("orphan", "acme-ml-models", {"kservectl.io/cluster": LONG})}  # storage.bucket, not given here
    theirs = b.bucket("decoys", storage.derive_bucket_name(LONG_2, ACCOUNT, REGION), {"kservectl.io/cluster": LONG_2})
    b.bucket("decoys", "acme-shared-data", {f"kubernetes.io/cluster/{LONG}": "shared"})
    b.bucket("decoys", "acme-website", {})
    e.bucket("elsewhere", "acme-ml-models-east", {"kservectl.io/cluster": LONG})  # the same name, in us-east-1
    ctx = make_ctx(LONG)  # only the cluster and the region: no storage.bucket
    calls = record_calls(ctx)
    result = orphans.search(ctx)
    assert {o.id for o in result.orphans} == ours and result.complete
    assert theirs not in {o.id for o in result.orphans}
    assert result.other_clusters == {BUCKET: 1} and result.shared == {BUCKET: 1}
    readers = {thread for thread, service, op in calls if op == "GetBucketTagging"}
    assert readers and all(thread.startswith("orphans-s3") for thread in readers)  # read in parallel
    report = orphans.delete(ctx, result.orphans, account_id=ACCOUNT, delete_data=True)
    assert [o.status for o in report.outcomes] == ["deleted", "deleted"]
    remaining = {bucket["Name"] for bucket in client("s3").list_buckets()["Buckets"]}
    assert remaining == {storage.derive_bucket_name(LONG_2, ACCOUNT, REGION), "acme-shared-data", "acme-website",
                         "acme-ml-models-east"}


def test_an_untagged_bucket_with_the_derived_or_configured_name_is_only_a_lookalike(mock_aws):
    from kservectl.phases import storage

    b = Builder(World())
    b.bucket("lookalikes", storage.derive_bucket_name(LONG, ACCOUNT, REGION), {})
    b.bucket("lookalikes", "acme-ml-models", {})
    result = orphans.search(make_ctx(LONG, **{"storage.bucket": "acme-ml-models"}))
    assert result.orphans == [] and result.lookalikes == {BUCKET: 2}


def test_the_bucket_reads_are_bounded_the_names_kservectl_could_give_first_and_the_rest_reported(
        mock_aws, monkeypatch):
    from kservectl.phases import storage

    b = Builder(World())
    derived = b.bucket("orphan", storage.derive_bucket_name(LONG, ACCOUNT, REGION), {"kservectl.io/cluster": LONG})
    for name in ("aaa-first-by-name", "aab-second-by-name"):
        b.bucket("lookalikes", name, {"kservectl.io/cluster": LONG})
    monkeypatch.setattr(orphans, "BUCKET_TAG_READS", 2)
    result = orphans.search(make_ctx(LONG))
    assert {o.id for o in result.orphans} == {derived, "arn:aws:s3:::aaa-first-by-name"}
    assert not result.complete
    assert result.errors == ["s3 buckets: only 2 of the 3 buckets in us-west-2 had their tags read (those "
                             "kservectl could have named first); a bucket with another name may be missed"]


def test_the_load_balancer_controller_policy_is_found_under_its_shortened_name_at_path_slash(mock_aws):
    from kservectl.phases import alb

    name = alb.policy_name(LONG)
    assert LONG not in name and name.endswith("-AWSLoadBalancerControllerIAMPolicy")
    b = Builder(World())
    ours = b.policy("orphan", name, {"kservectl.io/cluster": LONG})
    theirs = b.policy("decoys", alb.policy_name(LONG_2), {"kservectl.io/cluster": LONG_2})
    ctx = make_ctx(LONG)
    result = orphans.search(ctx)
    assert [(o.type, o.id, o.evidence) for o in result.orphans] == [(POLICY, ours, f"tag kservectl.io/cluster={LONG}")]
    report = orphans.delete(ctx, result.orphans, account_id=ACCOUNT)
    assert [o.status for o in report.outcomes] == ["deleted"]
    assert not exists(POLICY, ours, name, REGION) and exists(POLICY, theirs, "", REGION)


# --------------------------------------------------------------------------- a FAILED cluster, no stacks


def test_a_failed_cluster_with_no_stacks_is_listed_and_priced_with_its_nodes(mock_aws):
    world = World()
    b = Builder(world)
    cluster = b.eks_cluster("orphan", CLUSTER, {"kservectl.io/cluster": CLUSTER},
                            nodegroups={"ng-1": {"eks:cluster-name": CLUSTER, "KubernetesCluster": CLUSTER}})
    group = b.autoscaling_group("orphan", "eks-ng-1-0a1b2c3d", {"eks:cluster-name": CLUSTER,
                                                               f"kubernetes.io/cluster/{CLUSTER}": "owned"})
    lone = b.instance("orphan", {"alpha.eksctl.io/cluster-name": CLUSTER, "Name": "prod-ng-1-node"})
    stopped = b.instance("orphan", {"eks:cluster-name": CLUSTER}, kind="t3.large")
    b.ec2.stop_instances(InstanceIds=[stopped])
    b.instance("decoys", {"eks:cluster-name": DECOY})
    # the generic tags alone are no evidence on compute, even beside a FAILED EKS cluster of this name
    b.instance("lookalikes", {f"kubernetes.io/cluster/{CLUSTER}": "owned", "KubernetesCluster": CLUSTER})
    result = orphans.search(make_ctx())
    assert found_keys(result) == set(world.orphans)
    assert result.lookalikes == {EC2_INSTANCE: 1}
    assert result.cluster_status == "FAILED" and not result.cluster_alive
    by_id = {o.id: o for o in result.orphans}
    assert by_id[cluster].evidence == "EKS cluster prod itself (FAILED); tag kservectl.io/cluster=prod"
    assert by_id[cluster].monthly_cost == pytest.approx(0.10 * 730)
    assert by_id[cluster].cost_note == "control plane, while it exists; estimate from us-east-1 prices"
    nodegroup = next(o for o in result.orphans if o.type == NODEGROUP)
    assert nodegroup.evidence == "a node group of EKS cluster prod; tag eks:cluster-name=prod"
    assert by_id[group].detail == "1 instances, desired 1"
    assert by_id[group].evidence == "tag eks:cluster-name=prod"  # not kubernetes.io/cluster/prod=owned
    assert by_id[lone].monthly_cost == pytest.approx(0.192 * 730)  # m5.xlarge
    assert by_id[stopped].monthly_cost == 0.0 and by_id[stopped].cost_note.startswith("stopped: no instance-hours")
    assert [o.type for o in result.orphans][:2] == [NODEGROUP, AUTOSCALING_GROUP]


def test_a_failed_cluster_goes_after_its_nodes_and_before_the_vpc_pieces_it_holds(mock_aws):
    world = World()
    b = Builder(world)
    b.eks_cluster("orphan", CLUSTER, {}, nodegroups={"ng-1": {}})
    b.autoscaling_group("orphan", "eks-ng-1-0a1b2c3d", {"eks:cluster-name": CLUSTER})
    b.instance("orphan", {"alpha.eksctl.io/cluster-name": CLUSTER})
    b.security_group("orphan", f"eks-cluster-sg-{CLUSTER}-1234567", {"aws:eks:cluster-name": CLUSTER})
    decoy = b.instance("decoys", {"eks:cluster-name": DECOY})
    ctx = make_ctx()
    dry = orphans.search(ctx)
    calls = record_calls(ctx)
    report = orphans.delete(ctx, dry.orphans, account_id=ACCOUNT)
    assert report.ok, report.lines()
    deletes = [op for op in mutating(calls)
               if op in ("eks:DeleteNodegroup", "autoscaling:DeleteAutoScalingGroup", "ec2:TerminateInstances",
                         "eks:DeleteCluster", "ec2:DeleteSecurityGroup")]
    assert deletes == ["eks:DeleteNodegroup", "autoscaling:DeleteAutoScalingGroup", "ec2:TerminateInstances",
                       "ec2:TerminateInstances", "eks:DeleteCluster", "ec2:DeleteSecurityGroup"]
    assert [(kind, rid) for (kind, rid), name in world.orphans.items() if exists(kind, rid, name, REGION)] == []
    assert exists(EC2_INSTANCE, decoy, "", REGION)
    assert orphans.search(make_ctx()).orphans == []


def test_a_live_cluster_is_never_listed_as_an_orphan(mock_aws):
    b = Builder(World())
    b.eks_cluster("decoys", CLUSTER, {"kservectl.io/cluster": CLUSTER}, status="ACTIVE", nodegroups={"ng-1": {}})
    result = orphans.search(make_ctx())
    assert {o.type for o in result.orphans} & {EKS_CLUSTER, NODEGROUP} == set()
    assert result.cluster_alive


def test_a_bucket_whose_tags_cannot_be_read_is_reported_and_the_rest_still_found(mock_aws):
    b = Builder(World())
    ours = b.bucket("orphan", "acme-ml-models", {"kservectl.io/cluster": CLUSTER})
    b.bucket("decoys", "acme-locked", {"kservectl.io/cluster": CLUSTER})
    ctx = make_ctx()

    def deny(params: dict[str, Any], **_: Any):
        if "acme-locked" in params.get("url_path", "") + params.get("url", ""):
            return SimpleNamespace(status_code=403, headers={}), {
                "Error": {"Code": "AccessDenied", "Message": "denied by the bucket policy"}}
        return None

    ctx.aws.client("s3").meta.events.register("before-call.*.GetBucketTagging", deny)
    result = orphans.search(ctx)
    assert [o.id for o in result.orphans] == [ours]  # an unreadable bucket is never listed, never deleted
    assert not result.complete
    assert result.errors == ["s3 buckets: could not read 1 bucket: acme-locked (AWS s3:GetBucketTagging failed "
                             "with AccessDenied: denied by the bucket policy)"]


# --------------------------------------------------------------------------- compute and buckets: strict evidence


def test_running_nodes_tagged_the_way_kops_tags_them_are_lookalikes_and_survive_yes(mock_aws):
    """No EKS cluster, no eksctl stack: a kops / self-managed cluster also called prod. Its nodes
    and their group carry ``KubernetesCluster`` and ``kubernetes.io/cluster/prod=owned``; even one
    tagged ``eks:cluster-name=prod`` is no orphan where no EKS cluster of this name was."""
    world = World()
    b = Builder(world)
    kops = {"KubernetesCluster": CLUSTER, f"kubernetes.io/cluster/{CLUSTER}": "owned"}
    node = b.instance("lookalikes", {**kops, "Name": f"nodes.{CLUSTER}.k8s.local"})
    b.autoscaling_group("lookalikes", f"nodes-{CLUSTER}-k8s-local", kops)
    b.instance("lookalikes", {"eks:cluster-name": CLUSTER})
    volume = b.volume("orphan", {"kservectl.io/cluster": CLUSTER})  # a real orphan: the deletion runs
    ctx = make_ctx()
    found = orphans.search(ctx)
    assert found_keys(found) == set(world.orphans) == {(VOLUME, volume)}
    assert found.lookalikes == {EC2_INSTANCE: 3, AUTOSCALING_GROUP: 1}
    calls = record_calls(ctx)
    report = orphans.delete(ctx, found.orphans, account_id=ACCOUNT, delete_data=True)
    assert [(o.status, o.orphan.id) for o in report.outcomes] == [("deleted", volume)]
    assert "ec2:TerminateInstances" not in mutating(calls)
    assert "autoscaling:DeleteAutoScalingGroup" not in mutating(calls)
    survivors = [(kind, rid) for kind, rid, name, region in world.lookalikes if exists(kind, rid, name, region)]
    assert survivors == [(kind, rid) for kind, rid, _, _ in world.lookalikes]
    state = client("ec2").describe_instances(InstanceIds=[node])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "running"


def test_eks_tagged_nodes_are_orphans_only_once_an_eksctl_stack_or_the_eks_cluster_of_this_name_exists(mock_aws):
    b = Builder(World())
    node = b.instance("orphan", {"alpha.eksctl.io/cluster-name": CLUSTER})
    group = b.autoscaling_group("orphan", f"eksctl-{CLUSTER}-nodegroup-ng-1-NodeGroup-ABC",
                                {"alpha.eksctl.io/cluster-name": CLUSTER}, desired=0)
    alone = orphans.search(make_ctx())
    assert alone.orphans == [] and alone.lookalikes == {EC2_INSTANCE: 1, AUTOSCALING_GROUP: 1}
    b.stack("orphan", f"eksctl-{CLUSTER}-cluster", eksctl_tags(CLUSTER), {"ServiceRole": "role"})
    with_stack = orphans.search(make_ctx())
    assert {(o.type, o.id) for o in with_stack.orphans if o.type in (EC2_INSTANCE, AUTOSCALING_GROUP)} == {
        (EC2_INSTANCE, node), (AUTOSCALING_GROUP, group)}
    assert EC2_INSTANCE not in with_stack.lookalikes


def test_the_eks_cluster_of_this_name_also_makes_eks_tagged_nodes_orphans(mock_aws):
    b = Builder(World())
    node = b.instance("orphan", {"eks:cluster-name": CLUSTER})
    b.eks_cluster("orphan", CLUSTER, {}, status="DELETING")
    found = orphans.search(make_ctx())
    assert (EC2_INSTANCE, node) in found_keys(found) and found.cluster_status == "DELETING"


def test_a_bucket_is_this_clusters_only_by_the_kservectl_tag_and_no_other_is_emptied_or_deleted(mock_aws):
    world = World()
    b = Builder(world)
    ours = b.bucket("orphan", "acme-ml-models", {"kservectl.io/cluster": CLUSTER}, objects=1)
    for name, tags in {
        "acme-loki-chunks": {"KubernetesCluster": CLUSTER},
        "acme-thanos": {f"kubernetes.io/cluster/{CLUSTER}": "owned"},
        "acme-eksctl-logs": {"alpha.eksctl.io/cluster-name": CLUSTER},
        "acme-lb-logs": {"elbv2.k8s.aws/cluster": CLUSTER, "eks:cluster-name": CLUSTER},
    }.items():
        b.bucket("lookalikes", name, tags, objects=1)
    b.bucket("decoys", "acme-prod-2-models", {"kservectl.io/cluster": DECOY}, objects=1)
    ctx = make_ctx()
    found = orphans.search(ctx)
    assert [(o.id, o.evidence) for o in found.orphans] == [(ours, "tag kservectl.io/cluster=prod")]
    assert found.lookalikes == {BUCKET: 4} and found.other_clusters == {BUCKET: 1}
    report = orphans.delete(ctx, found.orphans, account_id=ACCOUNT, delete_data=True)
    assert [(o.status, o.orphan.id) for o in report.outcomes] == [("deleted", ours)]
    s3 = client("s3")
    assert {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]} == {
        name for _, _, name, _ in world.untouchable()}
    for _, _, name, _ in world.untouchable():  # not emptied either
        assert s3.list_object_versions(Bucket=name).get("Versions"), name


def test_buckets_are_listed_paginated_so_that_aws_says_their_region_and_location_is_only_a_fallback(mock_aws):
    b, e = Builder(World()), Builder(World(), ELSEWHERE)
    ours = b.bucket("orphan", "acme-ml-models", {"kservectl.io/cluster": CLUSTER})
    e.bucket("elsewhere", "acme-ml-models-east", {"kservectl.io/cluster": CLUSTER})
    ctx = make_ctx()
    s3 = ctx.aws.client("s3")
    sent: list[dict[str, Any]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    def regions(parsed: dict[str, Any], **_: Any) -> None:
        # AWS: "For ListBuckets requests that express pagination, Amazon S3 will now return both the
        # bucket names and associated AWS regions" (moto gives none: then GetBucketLocation is asked)
        if sent and "MaxBuckets" in sent[-1]:
            for bucket in parsed.get("Buckets", []):
                bucket["BucketRegion"] = REGION

    s3.meta.events.register("before-parameter-build.s3.ListBuckets", remember)
    calls = record_calls(ctx)
    fallback = orphans.search(ctx, only=("s3 buckets",))
    assert [o.id for o in fallback.orphans] == [ours]
    assert sent == [{"BucketRegion": REGION, "MaxBuckets": orphans.BUCKET_PAGE}]
    assert [op for _, _, op in calls].count("GetBucketLocation") == 1  # no BucketRegion in moto's answer

    s3.meta.events.register("after-call.s3.ListBuckets", regions)
    calls.clear()
    answered = orphans.search(ctx, only=("s3 buckets",))
    assert [o.id for o in answered.orphans] == [ours]
    assert "GetBucketLocation" not in [op for _, _, op in calls]


def test_a_botocore_that_cannot_paginate_list_buckets_leaves_the_search_incomplete_not_crashed(
        mock_aws, monkeypatch):
    from botocore.exceptions import OperationNotPageableError

    b = Builder(World())
    volume = b.volume("orphan", {"kservectl.io/cluster": CLUSTER})
    b.bucket("orphan", "acme-ml-models", {"kservectl.io/cluster": CLUSTER})
    ctx = make_ctx()
    s3 = ctx.aws.client("s3")
    pageable = s3.get_paginator

    def old_botocore(method: str) -> Any:  # S3 made ListBuckets pageable in August 2024; older botocores cannot
        if method == "list_buckets":
            raise OperationNotPageableError(operation_name=method)
        return pageable(method)

    monkeypatch.setattr(s3, "get_paginator", old_botocore)
    result = orphans.search(ctx)
    assert not result.complete
    assert result.errors == ["s3 buckets: AWS s3:ListBuckets failed with OperationNotPageableError: Operation "
                             "cannot be paginated: list_buckets"]
    assert [o.id for o in result.orphans] == [volume]
