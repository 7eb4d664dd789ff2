"""The end-to-end sandbox of ``kservectl up``: everything the EKS platform talks to, made of test
stand-ins, with the test acting as AWS's control planes and as the cluster's controllers.

* AWS: moto in-process (the ``mock_aws`` fixture). What ``eksctl create cluster`` would make is
  made in moto when the fake eksctl succeeds: the VPC and subnets, the EKS cluster and its managed
  node group, the IAM OIDC provider; ``eksctl create iamserviceaccount`` makes its CloudFormation
  stack with the IRSA role (output ``Role1``).
* Kubernetes: the emulator (``kube`` fixture) over real HTTP. The sandbox creates what eksctl,
  helm and ``kubectl apply -f <release URL>`` would create (Nodes, the gp2 StorageClass, IRSA
  ServiceAccounts, charts' Deployments, CRDs, webhook Services with ready Endpoints, Knative's
  and Kourier's objects: the charts' and manifests' from ``support.charts``, shared with the
  kserve phase's tests) and acts as the controllers: Deployments become Available, PVCs Bound,
  the AWS Load Balancer Controller gives LoadBalancer Services an NLB in moto's ELBv2, KServe
  makes InferenceServices Ready, MLflow answers ``/health`` through the service proxy (answered
  at the client: kmock's routing rules re-scan every past request, so long runs would slow down).
* Tools: the recording fake eksctl and helm (``fake_tools``), and a recording fake kubectl
  written here (it only answers ``version`` and ``apply``/``delete``; the objects are the
  sandbox's doing). The fakes run under a plain ``python3`` put first on PATH (a pyenv shim costs
  ~100 ms per call).
* MLflow: a sqlite tracking store (a migrated template copied per sandbox) whose example
  experiment keeps its artifacts in the S3 bucket the storage phase made (moto), passed to ``up``
  as ``MLFLOW_TRACKING_URI``.
* The data plane: the gateway NLB's hostnames (``*.amazonaws.com``) are routed, for httpx, to
  an in-process stand-in of MLServer that answers V2 and ``/invocations`` for every Ready
  InferenceService, by Host header.

Fault injection, each aimed at one phase (``up.current_task()`` names the task of the calling
thread): ``fail_aws`` (a botocore ``before-call`` hook raising a permanent error),
``throttle_every`` (a ``before-send`` hook answering ``Throttling`` every Nth request, which
botocore retries), ``fail_kube`` (one matching request answered with an error ``Status``; for
faults at any request of a kind use the emulator's own ``kube.fail_next``), script rules for the
fake tools, and ``interrupt_on`` (Ctrl-C while a matching tool runs).

``up(*args)`` runs ``kservectl up`` in-process through the CLI with small deadlines and returns
the Click result; ``mutations()`` counts mutating AWS calls (``ctx.aws.observers``), mutating
tool argvs (from the fakes' log) and the Kubernetes writes kservectl sent since a mark.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kservectl import aws as aws_mod
from kservectl.phases import kserve
from kservectl.settings import Backoff, HttpTimeouts, Settings, ToolTimeouts, WaitDeadlines
from support.charts import Charts

ACCOUNT = "123456789012"
REGION = "us-west-2"
NAME = "kservectl"
BUCKET = f"kservectl-{NAME}-{ACCOUNT}-{REGION}"
HEALTH_PATH = "/api/v1/namespaces/mlflow/services/mlflow:5000/proxy/health"
DELAY = 0.01  # how long the simulated controllers take
REPO_ROOT = Path(__file__).resolve().parents[2]
FAKES_DIR = REPO_ROOT / "tests" / "fakes"

SETTINGS = Settings(
    tools=ToolTimeouts(default=60, version=20, eksctl_create=60, eksctl_delete=60, helm=60, kubectl=60,
                       kill_grace=2),
    tool_retry=Backoff(attempts=3, initial=0.01, maximum=0.05),
    aws_max_attempts=5,
    aws_retry=Backoff(attempts=4, initial=0.01, maximum=0.05),
    phase_retry=Backoff(attempts=3, initial=0.01, maximum=0.05),
    interrupt_grace=10.0,
    kube_request_timeout=10.0,
    waits=WaitDeadlines(nodes_ready=10, deployment_available=10, crd_established=10, endpoints_ready=10,
                        load_balancer=10, load_balancer_deleted=10, stack_deleted=10, inference_service_ready=10,
                        nlb_active=10, job_complete=10, http_ready=5, pvc_bound=10, load_balancer_reachable=5,
                        watch_chunk=1.0, poll_interval=0.02),
    http=HttpTimeouts(connect=2, request=10, mlflow_reachable=2, cold_start=10, cold_start_retry=0.05,
                      server_start=10),
)

KUBECTL_FAKE = '''#!/usr/bin/env python3
"""Recording test fake of kubectl for the up sandbox: version, apply and delete only."""
import json, sys
sys.path.insert(0, {fakes!r})
import fakecore


def handle(argv, ctx):
    args = [a for a in argv]
    while args and args[0] == "--kubeconfig":
        args = args[2:]
    if args[:1] == ["version"]:
        ctx.out(json.dumps({{"clientVersion": {{"gitVersion": "v1.34.5", "major": "1", "minor": "34"}}}}) + "\\n")
        return 0
    if args[:1] in (["apply"], ["delete"]):
        target = args[args.index("-f") + 1] if "-f" in args else "?"
        ctx.out(f"{{target.rsplit('/', 1)[-1]}}: {{args[0]}} done (fake kubectl)\\n")
        return 0
    ctx.err(f"fake kubectl: not emulated: {{' '.join(argv)}}\\n")
    return 97


fakecore.main("kubectl", handle)
'''

DEFAULT_RULES = [
    {"tool": "eksctl", "argv_prefix": ["create", "addon"], "comment": "not emulated by the fake: the sandbox's",
     "stdout": "2026-01-02 10:00:00 [ℹ]  Addon vpc-cni is already present in this cluster, and won't be "
               "recreated\n"},
    {"tool": "eksctl", "argv_prefix": ["create", "nodegroup"], "comment": "not emulated by the fake: the sandbox's",
     "stdout": "2026-01-02 10:00:00 [✔]  created 1 managed nodegroup(s) in cluster \"kservectl\"\n"},
]

# -- what a tool call changes or only reads ---------------------------------------------------------------
_READS = {
    "helm": (("version",), ("list",), ("get",), ("status",), ("history",), ("show",), ("template",),
             ("repo", "list")),
    "eksctl": (("version",), ("get",), ("utils", "describe-stacks")),
    "kubectl": (("version",), ("get",), ("describe",)),
}


def is_mutating_argv(tool: str, argv: list[str]) -> bool:
    """Does this recorded tool call change anything? (helm list/get/status, eksctl get, version: no)."""
    args = list(argv)
    while args and args[0] == "--kubeconfig":
        args = args[2:]
    return not any(args[:len(read)] == list(read) for read in _READS.get(tool, ()))


# -- the sandbox -----------------------------------------------------------------------------------------------
@dataclass
class Mark:
    aws: int
    tools: int
    kube_writes: int


@dataclass
class AwsFault:
    """Fail the ``nth`` call, within one ``up``, of one of ``operations`` made by a task of
    ``phase`` (and, with ``mentions``, only a call one of whose string parameters appears in that
    text: which policy, which role)."""

    phase: str | None
    operations: frozenset[str]
    nth: int = 1
    code: str = "AccessDenied"
    message: str = "injected by the sandbox: not authorized"
    mentions: str | None = None
    seen: int = 0
    fired: int = 0  # in which `up` (1-based) it fired; 0: not yet


@dataclass(frozen=True)
class KubeTarget:
    methods: frozenset[str]  # GET, LIST, POST, PATCH, PUT, DELETE
    plural: str
    namespace: str | None = None
    name: str | None = None


@dataclass
class KubeFault:
    """Answer the ``nth`` request, within one ``up``, matching any of ``targets`` made by a task
    of ``phase`` with an error status (a ``kind: Status`` answer, as the API server gives)."""

    phase: str | None
    targets: tuple[KubeTarget, ...]
    nth: int = 1
    code: int = 403
    message: str = "injected by the sandbox: forbidden"
    seen: int = 0
    fired: int = 0


class Sandbox:
    def __init__(self, kube: Any, fake_tools: Any, monkeypatch: Any, tmp: Path, mlflow_template: Path) -> None:
        import boto3

        self.kube = kube
        self.charts = Charts(kube)
        self.tools = fake_tools
        self.monkeypatch = monkeypatch
        self.tmp = tmp
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.eks = boto3.client("eks", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)
        self.cfn = boto3.client("cloudformation", region_name=REGION)
        self.elbv2 = boto3.client("elbv2", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.subnets: list[str] = []
        self.aws_calls: list[tuple[str, str, str | None]] = []  # (service, operation, task)
        self.aws_faults: list[AwsFault] = []
        self.kube_faults: list[KubeFault] = []
        self.throttle_every = 0
        self.throttled = 0
        self._aws_count = 0
        self.kube_writes = 0
        self.errors: list[BaseException] = []
        self.interrupt_on: tuple[str, ...] | None = None
        self.runs = 0
        # extra seconds the simulated controllers take (bench/up_timeline.py models real ones):
        # "nlb", "pvc", "isvc", and "deployment/<name>"
        self.delays: dict[str, float] = {}
        self.interrupted_pids: list[int] = []
        self.model_server = ModelServer(self)
        self._lock = threading.Lock()
        tmp.mkdir(parents=True, exist_ok=True)
        self.node_role = ""
        self.mlflow_db = tmp / "mlflow.db"
        shutil.copy(mlflow_template, self.mlflow_db)
        self.tracking_uri = f"sqlite:///{self.mlflow_db}"
        self._install()

    # -- wiring ------------------------------------------------------------------------------------------------
    def _install(self) -> None:
        mp = self.monkeypatch
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        python = fast_python()
        (bin_dir / "python3").symlink_to(python)
        kubectl = bin_dir / "kubectl"
        kubectl.write_text(KUBECTL_FAKE.format(fakes=str(FAKES_DIR)), encoding="utf-8")
        kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("FAKE_EKSCTL_KUBE_SERVER", self.kube.url)
        mp.setenv("MLFLOW_TRACKING_URI", self.tracking_uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("DO_NOT_TRACK", "true")
        self._experiment()
        self.script()

        # small deadlines for the command under test
        from kservectl.cli import up_cmd

        real_make_context = up_cmd.make_context

        def make_context(**kwargs: Any) -> Any:
            ctx, loaded = real_make_context(**kwargs)
            ctx.settings = SETTINGS
            return ctx, loaded

        mp.setattr(up_cmd, "make_context", make_context)

        # tool calls: side effects after each successful one, Ctrl-C while one runs
        from kservectl.runner import Runner

        real_execute = Runner._execute
        sandbox = self

        def execute(runner: Runner, argv: list[str], **kwargs: Any) -> Any:
            if sandbox.interrupt_on is not None and _matches(argv, sandbox.interrupt_on):
                sandbox.interrupt_on = None
                threading.Timer(0.3, _thread.interrupt_main).start()
            result = real_execute(runner, argv, **kwargs)
            if result.returncode == 0:
                sandbox.after_tool([str(a) for a in argv])
            return result

        mp.setattr(Runner, "_execute", execute)

        # AWS: observe every call kservectl makes; faults and throttling on its clients
        from kservectl.aws import AwsClients

        real_init, real_client = AwsClients.__init__, AwsClients.client

        def init(clients: AwsClients, *args: Any, **kwargs: Any) -> None:
            real_init(clients, *args, **kwargs)
            clients.observers.append(sandbox._observe)

        def client(clients: AwsClients, service: str, *, fail_fast: bool = False) -> Any:
            made = real_client(clients, service, fail_fast=fail_fast)
            if not getattr(made, "_sandbox", False):
                made._sandbox = True
                made.meta.events.register_first("before-call.*.*", sandbox._before_call)
                made.meta.events.register_first("before-send.*.*", sandbox._before_send)
                made.meta.events.register("before-parameter-build.*.*", _remember_params)
                made.meta.events.register("after-call.s3.CreateBucket", _tags_at_birth)
            return made

        mp.setattr(AwsClients, "__init__", init)
        mp.setattr(AwsClients, "client", client)
        import botocore.retries.standard
        from moto.s3.models import FakeBucket

        mp.setattr(FakeBucket, "get_permission", _tls_permission)

        mp.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.01)

        # Kubernetes: faults aimed at a phase, answered by the emulator
        from kservectl.kube import Kube

        real_request = Kube._request

        def request(kube_client: Kube, method: str, path: str, **kwargs: Any) -> Any:
            sandbox._requests_seen += 1
            if sandbox._requests_seen % 20 == 0:
                sandbox._trim()
            if method == "GET" and path == HEALTH_PATH:  # MLflow answering through the service proxy
                return 200, _Streamed(b"OK")
            fault = sandbox._kube_fault(method, path, kwargs)
            if fault is not None:
                return fault.code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": fault.code,
                                    "reason": "Forbidden" if fault.code == 403 else "InternalError",
                                    "message": fault.message}
            if method != "GET":  # a write kservectl sends (the simulated controllers' own are not counted)
                with sandbox._lock:
                    sandbox.kube_writes += 1
            return real_request(kube_client, method, path, **kwargs)

        mp.setattr(Kube, "_request", request)
        self._payloads = len(self.kube.emulator._payloads)
        self._requests_seen = 0

        # controllers
        self.kube.on_created("Deployment", self._roll_out, api_version="apps/v1", delay_s=DELAY)
        self.kube.on_created("Service", self._load_balancer, api_version="v1", delay_s=DELAY)
        self.kube.on_created("PersistentVolumeClaim", self._bind, api_version="v1", delay_s=DELAY)
        self.kube.on_created("InferenceService", self._serve, api_version="serving.kserve.io/v1beta1",
                             delay_s=DELAY)

        # the data plane behind the gateway NLB
        import httpx

        real_client_cls = httpx.Client
        server = self.model_server

        class Client(real_client_cls):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                mounts = dict(kwargs.pop("mounts", None) or {})
                mounts.setdefault("all://*.amazonaws.com", httpx.WSGITransport(app=server))
                super().__init__(*args, mounts=mounts, **kwargs)

        mp.setattr(httpx, "Client", Client)

    def _experiment(self) -> None:
        from mlflow import MlflowClient

        from kservectl import example

        MlflowClient(self.tracking_uri).create_experiment(
            example.EXPERIMENT, artifact_location=f"s3://{BUCKET}/mlflow-artifacts/1")

    # -- running ---------------------------------------------------------------------------------------------
    def up(self, *args: str) -> Any:
        """``kservectl up ARGS`` in-process; fault counters start afresh for each run."""
        from typer.testing import CliRunner

        from kservectl.cli.main import app

        with self._lock:
            self.runs += 1
            for fault in [*self.aws_faults, *self.kube_faults]:
                fault.seen = 0
        self._trim()
        return CliRunner().invoke(app, ["up", *args], catch_exceptions=False)

    def script(self, rules: Iterable[dict[str, Any]] = ()) -> None:
        """The fake tools' script: ``rules`` first, then the sandbox's own answers for the eksctl
        commands the fake does not emulate (``create addon``, ``create nodegroup``)."""
        self.tools.script([*rules, *DEFAULT_RULES])

    def interrupted_create(self) -> None:
        """The state an ``eksctl create cluster`` stopped early leaves: CloudFormation finished the
        control plane, nothing after it (no OIDC provider, node group or kubeconfig)."""
        config = Path(os.environ["KSERVECTL_HOME"]) / NAME / "rendered" / "cluster" / "cluster.yaml"
        self.control_plane(config)
        self.tools.add_cluster(NAME, REGION, oidc=False, nodegroups=())

    def _trim(self) -> None:
        """kmock checks every routing rule against every request it ever served (to honour
        slices), so each request costs more as the history grows. Without rules of the test's own
        (``kube.fail_next``), that history serves nothing: keep it short."""
        if len(self.kube.emulator._payloads) == self._payloads:
            self.kube.forget_served_requests()

    def mark(self) -> Mark:
        return Mark(self._aws_count, len(self.tools.records()), self.kube_writes)

    def mutations(self, since: Mark) -> dict[str, list[str]]:
        with self._lock:
            calls = self.aws_calls[since.aws:]
        aws = [f"{s}:{op}" for s, op, _ in calls if aws_mod.is_mutating(op)]
        tools = [f"{r['tool']} {' '.join(r['argv'])}" for r in self.tools.records()[since.tools:]
                 if is_mutating_argv(r["tool"], r["argv"])]
        return {"aws": aws, "tools": tools, "kube_writes": [str(self.kube_writes - since.kube_writes)]
                if self.kube_writes != since.kube_writes else []}

    def check(self) -> None:
        """Raise what went wrong inside the simulated controllers."""
        if self.errors:
            raise self.errors[0]

    # -- AWS hooks -------------------------------------------------------------------------------------------
    def _observe(self, service: str, operation: str) -> None:
        from kservectl.phases import up

        with self._lock:
            self.aws_calls.append((service, operation, up.current_task()))
            self._aws_count += 1

    def _before_call(self, model: Any, context: Any = None, **kwargs: Any) -> None:
        from botocore.exceptions import ClientError

        from kservectl.phases import up

        task = up.current_task()
        phase = task.split("/")[0] if task else None
        params = (context or {}).get("sandbox_params") or {}
        values = [v for v in params.values() if isinstance(v, str) and len(v) >= 6]
        with self._lock:
            for fault in self.aws_faults:
                if fault.fired or model.name not in fault.operations:
                    continue
                if fault.phase is not None and fault.phase != phase:
                    continue
                if fault.mentions is not None and not any(v in fault.mentions for v in values):
                    continue
                fault.seen += 1
                if fault.seen == fault.nth:
                    fault.fired = self.runs
                    raise ClientError({"Error": {"Code": fault.code, "Message": fault.message}}, model.name)

    def _before_send(self, request: Any, **kwargs: Any) -> Any:
        if not self.throttle_every:
            return None
        with self._lock:
            self._send_count = getattr(self, "_send_count", 0) + 1
            if self._send_count % self.throttle_every:
                return None
            self.throttled += 1
        response = throttling_response(request, kwargs.get("event_name", ""))
        # botocore hands the request to every before-send handler: moto's would still carry it out.
        # A throttled request must change nothing, so it goes nowhere moto knows.
        request.url = "https://throttled.sandbox.invalid/"
        return response

    def fail_aws(self, phase: str | None, *operations: str, nth: int = 1, code: str = "AccessDenied",
                 mentions: str | None = None) -> AwsFault:
        fault = AwsFault(phase, frozenset(operations), nth, code, mentions=mentions)
        self.aws_faults.append(fault)
        return fault

    # -- Kubernetes hooks ------------------------------------------------------------------------------------
    def fail_kube(self, phase: str | None, *targets: KubeTarget, nth: int = 1, code: int = 403) -> KubeFault:
        fault = KubeFault(phase, tuple(targets), nth, code)
        self.kube_faults.append(fault)
        return fault

    def _kube_fault(self, method: str, path: str, kwargs: dict[str, Any]) -> KubeFault | None:
        """The fault this request meets, if any (answered without reaching the emulator: kmock's
        rules re-scan every past request, which makes long runs quadratic)."""
        if not self.kube_faults or "watch" in dict(kwargs.get("query") or []):
            return None
        from kservectl.phases import up

        task = up.current_task()
        phase = task.split("/")[0] if task else None
        parsed = _parse_path(path)
        if parsed is None:
            return None
        api_version, namespace, plural, name = parsed
        verb = "LIST" if method == "GET" and name is None else method
        target = name if method != "POST" else ((kwargs.get("body") or {}).get("metadata") or {}).get("name")

        def hit(t: KubeTarget) -> bool:
            return (verb in t.methods and t.plural == plural and t.namespace in (None, namespace)
                    and t.name in (None, target))

        with self._lock:
            for fault in self.kube_faults:
                if fault.fired or (fault.phase is not None and fault.phase != phase):
                    continue
                if not any(hit(t) for t in fault.targets):
                    continue
                fault.seen += 1
                if fault.seen == fault.nth:
                    fault.fired = self.runs
                    return fault
        return None

    # -- what the tools would have made ----------------------------------------------------------------------
    def after_tool(self, argv: list[str]) -> None:
        """What a successful tool call would have made in AWS and the cluster (the fakes only
        record argv): called in-process after each call, or by a test relaying a subprocess's."""
        tool = Path(argv[0]).name
        args = argv[1:]
        config = Path(args[args.index("-f") + 1]) if "-f" in args else None
        if tool == "eksctl" and args[:2] == ["create", "cluster"]:
            self.control_plane(config)
            self._oidc(config)
            self._nodegroup(config)
            self._cluster_service_accounts(config)
        elif tool == "eksctl" and args[:2] == ["utils", "associate-iam-oidc-provider"]:
            self._oidc(config)
        elif tool == "eksctl" and args[:2] == ["create", "nodegroup"]:
            self._nodegroup(config)
        elif tool == "eksctl" and args[:2] == ["create", "iamserviceaccount"]:
            self._iam_service_account(args, config)
        elif tool == "helm" and args[:2] == ["upgrade", "--install"]:
            self.charts.install_argv(args)
        elif tool == "kubectl" and "apply" in args:
            self.charts.apply_manifest(args[args.index("-f") + 1])

    def control_plane(self, config_file: Path) -> None:
        """What CloudFormation makes of ``eksctl create cluster`` first: the VPC and the ACTIVE
        EKS cluster (with the ClusterConfig's tags), and the API's own default StorageClass gp2.
        Alone, it is the state an interrupted create leaves behind."""
        cfg = yaml.safe_load(config_file.read_text())
        name = cfg["metadata"]["name"]
        vpc = self.ec2.create_vpc(CidrBlock="192.168.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [self.ec2.create_subnet(VpcId=vpc, CidrBlock=f"192.168.{32 * i}.0/19",
                                               AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
                        for i, zone in enumerate("abc")]
        self.node_role = self.iam.create_role(
            RoleName=f"eksctl-{name}-cluster-ServiceRole",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
        self.eks.create_cluster(name=name, version=str(cfg["metadata"]["version"]), roleArn=self.node_role,
                                resourcesVpcConfig={"subnetIds": self.subnets}, tags=cfg["metadata"].get("tags") or {})
        self.kube.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                          "metadata": {"name": "gp2", "annotations": {
                              "storageclass.kubernetes.io/is-default-class": "true"}},
                          "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2"}})

    def _oidc(self, config_file: Path) -> None:
        name = yaml.safe_load(config_file.read_text())["metadata"]["name"]
        issuer = self.eks.describe_cluster(name=name)["cluster"]["identity"]["oidc"]["issuer"]
        listed = self.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        if not any(p["Arn"].endswith(issuer.removeprefix("https://")) for p in listed):
            self.iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"],
                                                     ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])

    def _nodegroup(self, config_file: Path) -> None:
        cfg = yaml.safe_load(config_file.read_text())
        name = cfg["metadata"]["name"]
        group = cfg["managedNodeGroups"][0]
        if group["name"] in self.eks.list_nodegroups(clusterName=name)["nodegroups"]:
            return
        self.eks.create_nodegroup(
            clusterName=name, nodegroupName=group["name"], nodeRole=self.node_role, subnets=self.subnets,
            scalingConfig={"minSize": group["minSize"], "maxSize": group["maxSize"],
                           "desiredSize": group["desiredCapacity"]},
            instanceTypes=[group["instanceType"]], tags={k: str(v) for k, v in (group.get("tags") or {}).items()})
        for i in range(group["desiredCapacity"]):
            self.kube.create({"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": f"ip-192-168-{i}-10.{REGION}.compute.internal",
                                           "labels": {"kubernetes.io/os": "linux"}},
                              "status": {"conditions": [{"type": "Ready", "status": "True"}]}})

    def _cluster_service_accounts(self, config_file: Path) -> None:
        cfg = yaml.safe_load(config_file.read_text())
        for sa in (cfg.get("iam") or {}).get("serviceAccounts") or []:
            meta = sa["metadata"]
            self._service_account(cfg["metadata"]["name"], meta["namespace"], meta["name"])

    def _iam_service_account(self, args: list[str], config_file: Path | None) -> None:
        if "--include" in args:  # eksctl create iamserviceaccount -f <ClusterConfig> --include ns/name
            cluster = yaml.safe_load(config_file.read_text())["metadata"]["name"]
            namespace, name = args[args.index("--include") + 1].split("/")
        else:
            cluster = args[args.index("--cluster") + 1]
            namespace, name = args[args.index("--namespace") + 1], args[args.index("--name") + 1]
        self._service_account(cluster, namespace, name)

    def _service_account(self, cluster: str, namespace: str, name: str) -> None:
        stack = f"eksctl-{cluster}-addon-iamserviceaccount-{namespace}-{name}"
        from botocore.exceptions import ClientError

        try:
            found = self.cfn.describe_stacks(StackName=stack)["Stacks"][0]
        except ClientError:
            template = {"Resources": {"Role1": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}}},
                "Outputs": {"Role1": {"Value": {"Fn::GetAtt": ["Role1", "Arn"]}}}}
            self.cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template),
                                  Tags=[{"Key": "alpha.eksctl.io/cluster-name", "Value": cluster}])
            found = self.cfn.describe_stacks(StackName=stack)["Stacks"][0]
        role = next(o["OutputValue"] for o in found["Outputs"] if o["OutputKey"] == "Role1")
        self.charts.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": name, "namespace": namespace,
                                        "labels": {"app.kubernetes.io/managed-by": "eksctl"},
                                        "annotations": {"eks.amazonaws.com/role-arn": role}}})

    # -- controllers -----------------------------------------------------------------------------------------
    def _status(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        from support.kube_emulator import KubeApiError

        meta = obj["metadata"]
        try:
            self.kube.patch_status(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), status)
        except KubeApiError as exc:
            if exc.code != 404:  # deleted meanwhile: a real controller would shrug too
                raise

    def _roll_out(self, dep: dict[str, Any]) -> None:
        meta = dep["metadata"]
        time.sleep(self.delays.get(f"deployment/{meta['name']}", 0.0))
        self._status(dep, {
            "observedGeneration": meta.get("generation", 1), "replicas": 1, "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]})

    def _bind(self, pvc: dict[str, Any]) -> None:
        time.sleep(self.delays.get("pvc", 0.0))
        size = pvc["spec"]["resources"]["requests"]["storage"]
        self._status(pvc, {"phase": "Bound", "capacity": {"storage": size}})

    def _load_balancer(self, svc: dict[str, Any]) -> None:
        meta = svc["metadata"]
        annotations = meta.get("annotations") or {}
        if (svc.get("spec") or {}).get("type") != "LoadBalancer":
            return
        if annotations.get(kserve.ANN_TYPE) != "external":
            return  # the in-tree controller's business, not the AWS Load Balancer Controller's
        scheme = annotations.get(kserve.ANN_SCHEME, "internal")
        time.sleep(self.delays.get("nlb", 0.0))
        lb = self.elbv2.create_load_balancer(
            Name=f"k8s-{meta['namespace'][:8]}-{meta['name'][:8]}", Subnets=self.subnets, Type="network",
            Scheme=scheme, Tags=[{"Key": "service.k8s.aws/stack", "Value": f"{meta['namespace']}/{meta['name']}"},
                                 {"Key": "elbv2.k8s.aws/cluster", "Value": NAME}])["LoadBalancers"][0]
        self._status(svc, {"loadBalancer": {"ingress": [{"hostname": lb["DNSName"]}]}})

    def _serve(self, isvc: dict[str, Any]) -> None:
        """KServe (Knative mode, Kourier): Ready with ``http://<name>-predictor.<namespace>.example.com``."""
        time.sleep(self.delays.get("isvc", 0.0))
        meta = isvc["metadata"]
        host = f"{meta['name']}-predictor.{meta['namespace']}"
        self._status(isvc, {
            "observedGeneration": meta.get("generation", 1), "url": f"http://{host}.example.com",
            "address": {"url": f"http://{host}.svc.cluster.local"},
            "conditions": [{"type": c, "status": "True"} for c in ("IngressReady", "PredictorReady", "Ready")]})

    # -- counting what exists ---------------------------------------------------------------------------------
    def inventory(self) -> dict[str, int]:
        """How many of each thing kservectl makes exist now (a duplicate shows as a count above one)."""
        iam_policies = self.iam.list_policies(Scope="Local")["Policies"]
        roles = self.iam.list_roles()["Roles"]
        kube = self.kube
        releases = self.tools.releases()
        isvcs = kube.list_objects("serving.kserve.io/v1beta1", "InferenceService")
        return {
            "eks clusters": len(self.eks.list_clusters()["clusters"]),
            "buckets": len(self.s3.list_buckets()["Buckets"]),
            "kservectl policies": len([p for p in iam_policies if p["PolicyName"].startswith("kservectl")]),
            "kservectl roles": len([r for r in roles if r["RoleName"].startswith("kservectl")]),
            "irsa stacks": len([s for s in self.cfn.describe_stacks()["Stacks"]
                                if "iamserviceaccount" in s["StackName"]]),
            "load balancers": len(self.elbv2.describe_load_balancers()["LoadBalancers"]),
            "helm releases": len(releases),
            "helm release names": len({(r["namespace"], r["name"]) for r in releases}),
            "inference services": len(isvcs),
            "registered models": len(self.registered_versions()),
        }

    def registered_versions(self) -> list[str]:
        from mlflow import MlflowClient

        return [str(v.version) for v in MlflowClient(self.tracking_uri).search_model_versions("name='wine'")]


# -- the model server behind the gateway ------------------------------------------------------------------------
class ModelServer:
    """A WSGI stand-in of MLServer behind Kourier: routes by Host header to a Ready
    InferenceService and answers V2 and /invocations with one prediction per row."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.fail_infer = 0  # answer this many infer requests with 500
        self.requests: list[str] = []

    def _served(self, host: str) -> str | None:
        for isvc in self.sandbox.kube.list_objects("serving.kserve.io/v1beta1", "InferenceService"):
            url = (isvc.get("status") or {}).get("url") or ""
            if url.split("//", 1)[-1] == host.split(":")[0]:
                return isvc["metadata"]["name"]
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        self.requests.append(f"{method} {path}")
        model = self._served(environ.get("HTTP_HOST", ""))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}

        def answer(status: str, data: Any) -> list[bytes]:
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(data).encode()]

        if model is None:
            return answer("404 Not Found", {"error": "no route for this Host (Kourier)"})
        if path in ("/v2/health/live", "/v2/health/ready"):
            return answer("200 OK", {"live": True} if path.endswith("live") else {"ready": True})
        if path == f"/v2/models/{model}/ready":
            return answer("200 OK", {"name": model, "ready": True})
        if path == f"/v2/models/{model}":
            return answer("200 OK", {"name": model, "platform": "mlflow", "parameters": {"content_type": "pd"},
                                     "inputs": [{"name": "alcohol", "datatype": "FP64", "shape": [-1, 1]}],
                                     "outputs": [{"name": "output-1", "datatype": "INT64", "shape": [-1, 1]}]})
        if path == f"/v2/models/{model}/infer":
            if self.fail_infer:
                self.fail_infer -= 1
                return answer("500 Internal Server Error", {"error": "injected by the sandbox"})
            rows = (body.get("inputs") or [{}])[0].get("shape", [0])[0]
            return answer("200 OK", {"model_name": model, "outputs": [
                {"name": "output-1", "shape": [rows, 1], "datatype": "INT64", "data": [1] * rows}]})
        if path == "/invocations":
            split = body.get("dataframe_split") or {}
            rows = len(split.get("data") or body.get("inputs") or body.get("instances") or [])
            return answer("200 OK", {"predictions": [1] * rows})
        if path.startswith("/v2/models/"):
            return answer("404 Not Found", {"error": f"Model {path.split('/')[3]} not found"})
        return answer("404 Not Found", {"error": "not found"})


# -- helpers -----------------------------------------------------------------------------------------------------
class _Streamed:
    """What ``Kube._request(..., stream=True)`` returns, for an answer made up here."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.response = self

    def read(self) -> bytes:
        return self.body

    def release_conn(self) -> None:
        return None


def _remember_params(params: Any, context: Any = None, **kwargs: Any) -> None:
    """The API parameters of a call, for the later hooks (before-call sees only the wire form)."""
    if context is not None:
        context["sandbox_params"] = dict(params or {})


def _tags_at_birth(http_response: Any, parsed: Any, model: Any, context: Any = None, **kwargs: Any) -> None:
    """S3 tags a bucket created with ``CreateBucketConfiguration.Tags`` at birth; moto ignores
    them. Applied here right after the CreateBucket call succeeds, as AWS would."""
    from moto.s3.models import s3_backends

    params = (context or {}).get("sandbox_params") or {}
    tags = (params.get("CreateBucketConfiguration") or {}).get("Tags") or []
    if tags and getattr(http_response, "status_code", 500) < 300:
        s3_backends[ACCOUNT]["aws"].put_bucket_tagging(params["Bucket"], {t["Key"]: t["Value"] for t in tags})


def _tls_permission(bucket: Any, action: str, resource: str) -> Any:
    """moto evaluates bucket policies without their conditions, so the artifact bucket's
    "deny unless TLS" statement would deny everything; every request here uses TLS (https
    endpoints), so that statement never applies."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if bucket.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(bucket.policy)
    statements = document.get("Statement") or []
    statements = [s for s in (statements if isinstance(statements, list) else [statements])
                  if (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") != "false"]
    if not statements:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": statements})).is_action_permitted(action, resource)


def _matches(argv: list[str], prefix: tuple[str, ...]) -> bool:
    return [Path(str(argv[0])).name, *map(str, argv[1:len(prefix)])] == list(prefix)


def _parse_path(path: str) -> tuple[str, str | None, str, str | None] | None:
    """``/api/v1/namespaces/ns/pods/name`` -> (api_version, namespace, plural, name)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if not parts:
        return None
    if parts[0] == "api":
        api_version, rest = parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    return api_version, namespace, rest[0], rest[1] if len(rest) > 1 else None


def throttling_response(request: Any, event_name: str) -> Any:
    """A real-looking ``Throttling`` answer for the service's protocol (botocore retries it)."""
    from botocore.awsrequest import AWSResponse

    service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
    if service == "eks":
        status, headers = 429, {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"}
        body = b'{"message": "Rate exceeded"}'
    elif service == "s3":
        status, headers = 503, {}
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    elif service == "ec2":
        status, headers = 503, {}
        body = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                b"</Message></Error></Errors><RequestID>x</RequestID></Response>")
    else:
        status, headers = 400, {"Content-Type": "text/xml"}
        body = (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
                b"</Message></Error><RequestId>x</RequestId></ErrorResponse>")

    class Raw:
        def stream(self, **_: Any) -> Iterable[bytes]:
            yield body

    response = AWSResponse(request.url, status, headers, Raw())
    return response


def fast_python() -> str:
    """A python3 that starts fast, for the stdlib-only fakes (a pyenv shim costs ~100 ms a call)."""
    for candidate in ("/usr/bin/python3", getattr(sys, "_base_executable", ""), sys.executable):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


@contextlib.contextmanager
def world(tmp: Path, template: Path) -> Iterator[Sandbox]:
    """A whole sandbox on its own: isolated environment (KSERVECTL_HOME, cwd, AWS variables), moto,
    the emulator and the fake tools. For module-scoped fixtures (the function-scoped ``kube``,
    ``fake_tools`` and ``mock_aws`` fixtures cannot be used there)."""
    import pytest
    from moto import mock_aws

    from support.fake_tools import FAKES_BIN, FakeTools
    from support.kube_emulator import KubeEmulatorServer

    mp = pytest.MonkeyPatch()
    try:
        for name in list(os.environ):
            if name.startswith(("KSERVECTL_", "AWS_")) or name == "KUBECONFIG":
                mp.delenv(name)
        for folder in ("home", "cwd", "tools"):
            (tmp / folder).mkdir(parents=True, exist_ok=True)
        mp.setenv("KSERVECTL_HOME", str(tmp / "home"))
        mp.setenv("AWS_CONFIG_FILE", str(tmp / "home" / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "home" / "no-aws-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(name, "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.chdir(tmp / "cwd")
        tools = FakeTools(bin_dir=FAKES_BIN, log_path=tmp / "tools" / "calls.jsonl",
                          script_path=tmp / "tools" / "script.json")
        mp.setenv("PATH", f"{FAKES_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        mp.setenv("FAKE_TOOLS_LOG", str(tools.log_path))
        mp.setenv("FAKE_TOOLS_SCRIPT", str(tools.script_path))
        with mock_aws(), KubeEmulatorServer(kubeconfig_dir=tmp / "kube") as kube:
            mp.setenv("KUBECONFIG", str(kube.kubeconfig))
            box = Sandbox(kube, tools, mp, tmp / "sandbox", template)
            yield box
            box.check()
    finally:
        mp.undo()


_TEMPLATE: dict[str, Path] = {}


def mlflow_template(base: Path) -> Path:
    """A migrated, empty MLflow sqlite store, made once per session and copied per sandbox."""
    if "db" not in _TEMPLATE:
        from mlflow import MlflowClient

        path = base / "mlflow-template.db"
        MlflowClient(f"sqlite:///{path}").search_experiments()
        _TEMPLATE["db"] = path
    return _TEMPLATE["db"]
