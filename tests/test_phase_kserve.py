"""The kserve phase: cert-manager, Knative Serving + Kourier behind an NLB, KServe and its runtimes.

The cluster is the Kubernetes emulator with the test acting as the controllers (Deployment
rollouts, webhook endpoints, the AWS Load Balancer Controller giving the gateway Service an NLB in
moto's ELBv2) and as what `helm install` and `kubectl apply -f <release manifest>` would create
(tests/support/charts.py, shared with the `up` sandbox).
No test relies on how long something takes: where a test must see an intermediate state (a CRD
missing, endpoints not ready, no NLB hostname yet), the state changes when kservectl reports
waiting for it (`ReactingReporter.when_waiting`), and a test that needs a background change done
polls for it with a long deadline (`eventually`); a loaded CI box pauses every thread now and then.
helm itself is the recording fake (its flags checked against helm 4.1.4's), the real helm where
it runs offline; kubectl URLs cannot be fetched here, so kubectl is simulated.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kservectl import config, paths
from kservectl.aws import AwsClients, is_mutating
from kservectl.clock import FakeClock
from kservectl.context import Context
from kservectl.errors import KservectlError, UsageError, WaitTimeout
from kservectl.events import RecordingReporter
from kservectl.kube import Kube, load_api_client
from kservectl.matrix import PINS
from kservectl.phases import kserve
from kservectl.phases.base import LiveValues
from kservectl.runner import DryRunRunner, Runner, RunResult
from kservectl.settings import Backoff, Settings, WaitDeadlines
from support.charts import Charts
from support.fake_tools import offline_helm_env
from support.golden import assert_golden

ARN = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
FAST = Settings(
    waits=WaitDeadlines(crd_established=10, deployment_available=10, endpoints_ready=10, load_balancer=10,
                        load_balancer_deleted=10, nlb_active=300, job_complete=10, watch_chunk=1.0,
                        poll_interval=2.0),
    tool_retry=Backoff(attempts=1),
)
SHORT = 0.4  # a deadline that runs out: the timeout tests take about a second each
PATIENCE = 30.0  # how long a test waits for a background change it needs (a generous bound, not a delay)

VARIANTS: dict[str, dict[str, Any]] = {
    "knative-http": {},
    "knative-tls-internal-domain": {"exposure.certificate_arn": ARN, "exposure.scheme": "internal",
                                    "exposure.dns": "domain", "exposure.domain": "models.example.org",
                                    "exposure.source_ranges": ["203.0.113.0/24", "198.51.100.0/24"]},
    "knative-sslip": {"exposure.dns": "sslip", "exposure.source_ranges": []},
    "standard": {"kserve.mode": "standard"},
}


def make_config(**values: Any) -> config.Config:
    return config.load(env={}, flags=values).config


def plain_context(**values: Any) -> Context:
    return Context(config=make_config(**values), settings=FAST, clock=FakeClock(),
                   reporter=RecordingReporter())


# -- the test acting as the cluster ------------------------------------------------------------------
def eventually(probe: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """``probe()``'s first truthy value, polled until ``timeout`` runs out (then the test fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.02)


@dataclass
class _Reaction:
    needle: str
    action: Callable[[], object]
    fired: bool = False


@dataclass
class ReactingReporter(RecordingReporter):
    """Records like ``RecordingReporter`` and makes the world move on what a wait reports: the
    first waiting message containing a reaction's needle runs its action (once), after recording
    it. So a test sees an intermediate state however slow the machine is."""

    reactions: list[_Reaction] = field(default_factory=list)

    def when_waiting(self, needle: str, action: Callable[[], object]) -> None:
        self.reactions.append(_Reaction(needle, action))

    def waiting(self, what: str, detail: str) -> None:
        super().waiting(what, detail)
        message = f"{what}: {detail}"
        for reaction in self.reactions:
            if not reaction.fired and reaction.needle in message:
                reaction.fired = True
                reaction.action()


class HookClock(FakeClock):
    """A FakeClock whose sleeps can move the world on (the ELBv2 polls)."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        for hook in list(self.hooks):
            hook(len(self.sleeps))


class FakeCluster(Charts):
    """What helm and kubectl would create and remove (``support.charts``), and the controllers:
    Deployments become Available, webhook endpoints get ready, Knative's default-domain Job runs,
    the AWS Load Balancer Controller gives LoadBalancer Services an NLB in moto (with its
    finalizer) and deletes it when the Service goes.

    What a test holds back (``never``, ``webhooks_not_ready``, ``hold_hostnames``) stays so until
    the test releases it (``available``, ``webhook_ready``, ``release_hostnames``). Every thread
    started here is tracked: ``close`` joins them before the emulator stops and moto goes."""

    def __init__(self, kube, elbv2, subnets: list[str]) -> None:
        super().__init__(kube)
        self.elbv2 = elbv2
        self.subnets = subnets
        self.deployment_delay = 0.05
        self.never: set[str] = set()  # Deployments that stay unavailable until ``available``
        self.webhooks_not_ready: set[str] = set()  # webhooks created with endpoints not ready
        self.hostname_delay = 0.05
        self.hold_hostnames = False  # the LBC names no NLB until ``release_hostnames``
        self._hostnames_released = threading.Event()
        self.job_outcome = "complete"  # Knative's default-domain Job: complete | failed | never
        self.lbc = True
        self.lbc_deletes_nlb = True
        self.nlbs: dict[str, dict[str, str]] = {}  # "ns/name" -> {"arn", "dns", "scheme"}
        self.log: list[str] = []
        self.service_when_kourier_applied: dict | None = None
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.closed = False
        self._lock = threading.Lock()
        kube.on_created("Deployment", self._roll_out, api_version="apps/v1")
        kube.on_created("Service", self._provision, api_version="v1")
        kube.emulator.add_listener(self._on_event)

    # -- threads -------------------------------------------------------------------------------
    def spawn(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in a tracked thread (its failure fails the test); none once closed."""
        with self._lock:
            if self.closed:
                return
            thread = threading.Thread(target=self._guard, args=(fn, *args), daemon=True)
            self.threads.append(thread)
            thread.start()

    def later(self, delay: float, fn: Callable[..., object], *args: Any) -> None:
        """``fn(*args)`` at least ``delay`` seconds from now, in a tracked thread."""
        def run() -> None:
            time.sleep(delay)
            fn(*args)
        self.spawn(run)

    def close(self, timeout: float = PATIENCE) -> list[str]:
        """Stop the controllers (no new NLB, no new thread, held hostnames released so waiting
        hooks end) and join every thread started here. Returns the names of threads still alive."""
        self.lbc = False
        with self._lock:
            self.closed = True
            threads = list(self.threads)
        self._hostnames_released.set()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in threads if thread.is_alive()]

    # -- controllers ---------------------------------------------------------------------------
    def _roll_out(self, dep: dict) -> None:
        name = dep["metadata"]["name"]
        if name in self.never:
            return
        time.sleep(self.deployment_delay)
        self.available(name, dep["metadata"]["namespace"])

    def available(self, name: str, namespace: str) -> None:
        """The Deployment's rollout is done: one replica, Available."""
        self.kube.patch_status("apps/v1", "Deployment", name, namespace, {
            "replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
        })

    def release_hostnames(self) -> None:
        self._hostnames_released.set()

    def _provision(self, svc: dict) -> None:
        if (svc.get("spec") or {}).get("type") != "LoadBalancer" or not self.lbc:
            return
        meta = svc["metadata"]
        annotations = meta.get("annotations") or {}
        if annotations.get(kserve.ANN_TYPE) != "external":
            return  # the in-tree controller's business, not the LBC's
        self.kube.patch("v1", "Service", meta["name"], meta["namespace"],
                        {"metadata": {"finalizers": ["service.k8s.aws/resources"]}})
        if self.hold_hostnames and not self._hostnames_released.wait(PATIENCE):
            raise AssertionError(f"the test never released the NLB hostname of {meta['namespace']}/{meta['name']}")
        time.sleep(self.hostname_delay)
        self._new_nlb(meta["namespace"], meta["name"], annotations.get(kserve.ANN_SCHEME, "internal"))

    def _new_nlb(self, namespace: str, name: str, scheme: str) -> None:
        if not self.lbc:
            return
        lb = self.elbv2.create_load_balancer(
            Name=f"k8s-{namespace[:8]}-{name[:8]}-{uuid.uuid4().hex[:10]}", Subnets=self.subnets,
            Type="network", Scheme=scheme,
            Tags=[{"Key": "service.k8s.aws/stack", "Value": f"{namespace}/{name}"}])["LoadBalancers"][0]
        with self._lock:
            self.nlbs[f"{namespace}/{name}"] = {"arn": lb["LoadBalancerArn"], "dns": lb["DNSName"],
                                                "scheme": scheme}
        self.kube.patch_status("v1", "Service", name, namespace,
                               {"loadBalancer": {"ingress": [{"hostname": lb["DNSName"]}]}})

    def _on_event(self, event) -> None:  # on the emulator's loop: hand work to a thread
        if event.resource.plural != "services" or event.resource.group != "" or event.type != "MODIFIED":
            return
        meta = event.object["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if key not in self.nlbs:
            return
        if meta.get("deletionTimestamp"):
            self.spawn(self._delete_lb, key)
            return
        scheme = (meta.get("annotations") or {}).get(kserve.ANN_SCHEME, "internal")
        if scheme != self.nlbs[key]["scheme"]:
            with self._lock:
                self.nlbs[key]["scheme"] = scheme  # claim the replacement once
            self.spawn(self._replace_lb, key, scheme)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # surfaced by the test's teardown check
            self.errors.append(exc)

    def _delete_lb(self, key: str) -> None:
        namespace, name = key.split("/")
        if self.lbc_deletes_nlb:
            self.elbv2.delete_load_balancer(LoadBalancerArn=self.nlbs[key]["arn"])
            self.kube.patch("v1", "Service", name, namespace, {"metadata": {"finalizers": None}})

    def _replace_lb(self, key: str, scheme: str) -> None:
        namespace, name = key.split("/")
        self.elbv2.delete_load_balancer(LoadBalancerArn=self.nlbs[key]["arn"])
        time.sleep(0.1)
        self._new_nlb(namespace, name, scheme)

    # -- what helm and kubectl create (support.charts), and the default-domain Job's run ------------
    def webhook(self, name: str, namespace: str, *, ready: bool = True) -> None:
        """The webhook; one in ``webhooks_not_ready`` stays not ready until ``webhook_ready``."""
        super().webhook(name, namespace, ready=ready and name not in self.webhooks_not_ready)

    def helm(self, argv: list[str]) -> None:
        if argv[1] == "upgrade":
            self.log.append(f"helm install {argv[3]}")
            self.install_argv(argv[1:])
        elif argv[1] == "uninstall":
            self.log.append(f"helm uninstall {argv[2]}")
            self.uninstall(argv[2], argv[argv.index("--namespace") + 1])

    def kubectl(self, argv: list[str]) -> None:
        url = argv[argv.index("-f") + 1]
        file = url.rsplit("/", 1)[1]
        verb = argv[3]
        self.log.append(f"kubectl {verb} {file}")
        if verb == "delete":
            self.delete_manifest(url)
            return
        if file == "kourier.yaml":
            self.service_when_kourier_applied = self.kube.find("v1", "Service", "kourier", "kourier-system")
        self.apply_manifest(url)
        if file == "serving-default-domain.yaml":
            if self.job_outcome == "never":  # its pod runs and never ends: active before anyone looks
                self.kube.patch_status("batch/v1", "Job", "default-domain", "knative-serving", {"active": 1})
            else:
                self.spawn(self._default_domain_job)

    def _default_domain_job(self) -> None:
        time.sleep(0.1)
        if self.job_outcome == "failed":
            failed = {"failed": 7, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}
            self.kube.patch_status("batch/v1", "Job", "default-domain", "knative-serving", failed)
            return
        self.kube.patch("v1", "ConfigMap", "config-domain", "knative-serving", {"data": {"203.0.113.7.sslip.io": ""}})
        complete = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        self.kube.patch_status("batch/v1", "Job", "default-domain", "knative-serving", complete)


class ClusterRunner(Runner):
    """The real runner (helm is the recording fake on PATH); kubectl is simulated."""

    def __init__(self, cluster: FakeCluster, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.kubectl_calls: list[list[str]] = []

    def version(self, tool: str) -> tuple[int, ...]:
        return (1, 34, 5) if tool == "kubectl" else super().version(tool)

    def run(self, argv, **kwargs):  # type: ignore[override]
        argv = [str(a) for a in argv]
        if argv[0] == "kubectl":
            self.kubectl_calls.append(argv)
            self.cluster.kubectl(argv)
            return RunResult(argv, 0, "", "", 0.0)
        result = super().run(argv, **kwargs)
        self.cluster.helm(argv)
        return result


class Harness:
    def __init__(self, kube, fake_tools) -> None:
        import boto3

        self.kube = kube
        self.tools = fake_tools
        self.elbv2 = boto3.client("elbv2", region_name="us-west-2")
        ec2 = boto3.client("ec2", region_name="us-west-2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-west-2{z}")
                   ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"))]
        self.cluster = FakeCluster(kube, self.elbv2, subnets)
        self.clock = HookClock()
        self.aws_calls: list[str] = []

    def context(self, *, dry_run: bool = False, settings: Settings = FAST, **values: Any) -> Context:
        reporter = ReactingReporter()
        ctx = Context(config=make_config(**values), settings=settings, clock=self.clock, reporter=reporter,
                      dry_run=dry_run, kubeconfig=self.kube.kubeconfig)
        ctx.kube = Kube(load_api_client(self.kube.kubeconfig, settings=settings), settings=settings,
                        on_wait=reporter.waiting)
        if dry_run:
            ctx.runner = DryRunRunner(settings=settings)
        else:
            ctx.runner = ClusterRunner(self.cluster, settings=settings)
        ctx.aws = AwsClients("us-west-2", settings=settings)
        ctx.aws.observers.append(lambda service, op: self.aws_calls.append(op))
        return ctx

    def helm_calls(self, verb: str | None = None) -> list[list[str]]:
        return [c for c in self.tools.calls("helm") if verb is None or c[0] == verb]

    def writes(self, ctx: Context) -> list[tuple[str, str]]:
        """Record the Kubernetes API writes ctx.kube makes from now on."""
        seen: list[tuple[str, str]] = []
        original = ctx.kube._request

        def request(method, path, **kw):
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                seen.append((method, path))
            return original(method, path, **kw)

        ctx.kube._request = request
        return seen

    def gateway(self) -> dict | None:
        return self.kube.find("v1", "Service", "kourier", "kourier-system")

    def load_balancers(self) -> list[dict]:
        return self.elbv2.describe_load_balancers()["LoadBalancers"]


@pytest.fixture
def cluster(mock_aws, kube, fake_tools):  # mock_aws first: it must outlive the controller threads
    harness = Harness(kube, fake_tools)
    yield harness
    stuck = harness.cluster.close()  # its threads end while the emulator and moto are still there
    kube.stop()  # lets running controller hooks finish while moto is still there
    assert stuck == [], f"controller threads still running after {PATIENCE:.0f}s"
    assert harness.cluster.errors == []


# -- rendering ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_rendered_files_match_their_golden_files_and_the_real_schemas(variant, schema_validator):
    ctx = plain_context(**VARIANTS[variant])
    files = kserve.render_files(ctx)
    for name, text in files.items():
        assert_golden(f"kserve/{variant}/{name}", text)
        if not name.endswith("-values.yaml"):
            schema_validator.assert_all_valid(text)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_values_file_uses_only_keys_the_pinned_chart_accepts(variant):
    ctx = plain_context(**VARIANTS[variant])
    values = kserve.chart_values(ctx)
    for key, release in kserve.releases(ctx).items():
        if release.values_file:
            assert kserve.value_key_problems(release.chart, values[key]) == [], key
        else:  # kserve-crd and metrics-server run with the chart's defaults
            assert values[key] == {}
    assert values["kserve-runtime-configs"]["kserve"]["servingruntime"] == {
        "enabled": True, "mlserver": {"image": "docker.io/seldonio/mlserver", "tag": "1.7.1"}}
    assert values["cert-manager"] == {"crds": {"enabled": True, "keep": True}}


def test_an_unknown_or_mistyped_value_is_reported_with_the_chart_version():
    problems = kserve.value_key_problems("kserve-resources", {
        "kserve": {"controller": {"deploymentMode": "Knative", "gateway": {"disableIstioVirtualHost": "yes"},
                                  "deploymentmode": "Knative", "nodeSelector": {"any/label": "ok"}}}})
    assert problems == [
        "kserve.controller.gateway.disableIstioVirtualHost: the chart expects a bool, got 'yes'",
        "kserve.controller.deploymentmode: not a value of chart kserve-resources v0.20.0",
    ]
    assert kserve.unknown_value_keys("cert-manager", {"installCRD": True}) == ["installCRD"]


@pytest.mark.parametrize("chart, pin", [("cert-manager", "cert_manager"), ("kserve-resources", "kserve"),
                                        ("kserve-runtime-configs", "kserve")])
def test_each_key_list_is_for_the_pinned_chart_version_and_names_its_source(chart, pin):
    keys = kserve.chart_keys(chart)
    assert keys["chart"] == chart
    assert keys["version"] == PINS[pin].version, "a pin moved: re-check this chart's value keys"
    assert keys["source"] and keys["keys"]
    # the source names the chart version the keys really came from
    keys_from = keys.get("keys_from", keys["version"])
    assert re.search(rf"\b{re.escape(keys_from)}\b", " ".join(keys["source"].split())), keys_from


def test_the_kserve_key_lists_say_they_come_from_older_charts_than_the_pin():
    assert kserve.stale_key_lists(plain_context()) == [
        "kserve-resources v0.20.0 (keys from v0.16.0)", "kserve-runtime-configs v0.20.0 (keys from v0.17.1)"]
    source = " ".join(kserve.chart_keys("kserve-resources")["source"].split())
    # the reference names no disableIngressCreation for v0.20.0: the list must not claim it does
    assert "disableIngressCreation, which kservectl sets in standard mode, is NOT named there" in source


def test_plan_warns_once_that_the_values_are_checked_against_older_key_lists(tmp_path):
    ctx = plain_context()
    kserve.plan(ctx, LiveValues(), tmp_path)
    [warning] = ctx.reporter.messages("warn")
    assert warning.startswith("the values files are checked against value keys transcribed from older "
                              "charts than the pinned ones: kserve-resources v0.20.0 (keys from v0.16.0), "
                              "kserve-runtime-configs v0.20.0 (keys from v0.17.1);")


def test_tls_terminates_on_443_at_the_nlb_and_forwards_plain_http_to_kourier():
    ctx = plain_context(**{"exposure.certificate_arn": ARN})
    service = next(d for d in yaml.safe_load_all(kserve.render_files(ctx)["kourier-service.yaml"])
                   if d["kind"] == "Service")
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == ARN
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "443"
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8080}]
    network = yaml.safe_load(kserve.render_files(ctx)["config-network.yaml"])
    assert network["data"]["default-external-scheme"] == "https"


def test_without_a_certificate_the_gateway_is_plain_http_on_80():
    ctx = plain_context()
    service = next(d for d in yaml.safe_load_all(kserve.render_files(ctx)["kourier-service.yaml"])
                   if d["kind"] == "Service")
    assert not any("ssl" in key for key in service["metadata"]["annotations"])
    assert [p["port"] for p in service["spec"]["ports"]] == [80]


def test_an_mlserver_image_pinned_by_digest_is_refused_naming_the_field():
    ctx = plain_context(**{"versions.mlserver_image": "docker.io/seldonio/mlserver@sha256:" + "a" * 64})
    with pytest.raises(UsageError, match=r"versions.mlserver_image=.* use repository:tag"):
        kserve.render_files(ctx)


def test_the_plan_lists_the_steps_in_install_order_with_the_gateway_before_kourier(tmp_path, no_network):
    plan = kserve.plan(plain_context(), LiveValues(), tmp_path)
    described = [s.describe() for s in plan.steps]
    order = ["cert-manager --repo https://charts.jetstack.io --version v1.17.0", "serving-crds.yaml",
             "serving-core.yaml", "create the Kourier gateway Service", "kourier.yaml",
             "kserve-crd --version v0.20.0", "charts/kserve-resources --version v0.20.0",
             "kserve-runtime-configs --version v0.20.0", "NLB is active"]
    positions = [next(i for i, d in enumerate(described) if needle in d) for needle in order]
    assert positions == sorted(positions)
    helm = next(s for s in plan.steps if "cert-manager" in " ".join(s.command))
    assert str(tmp_path / "kserve" / "cert-manager-values.yaml") in helm.command
    assert set(plan.files) == {"cert-manager-values.yaml", "kserve-resources-values.yaml",
                               "kserve-runtime-configs-values.yaml", "kourier-service.yaml",
                               "config-network.yaml", "config-domain.yaml", "install-record.yaml"}


def test_standard_mode_plans_metrics_server_and_no_knative(tmp_path):
    plan = kserve.plan(plain_context(**{"kserve.mode": "standard"}), LiveValues(), tmp_path)
    commands = [" ".join(s.command) for s in plan.steps if s.command]
    assert any("kservectl-metrics-server metrics-server --repo" in c and "--version 3.14.0" in c
               for c in commands)
    assert not any("knative" in c or "kourier" in c for c in commands)
    assert "kourier-service.yaml" not in plan.files
    assert yaml.safe_load(plan.files["kserve-resources-values.yaml"])["kserve"]["controller"] == {
        "deploymentMode": "Standard",
        "gateway": {"disableIngressCreation": True, "domain": "example.com", "urlScheme": "http"}}


def test_the_helm_command_lines_are_accepted_by_the_real_helm(real_tools, tmp_path):
    env = offline_helm_env(tmp_path / "helm")
    helm = str(real_tools / "helm")
    chart = tmp_path / "chart"
    subprocess.run([helm, "create", str(chart)], env=env, check=True, capture_output=True)
    ctx = plain_context()
    files = kserve.render_files(ctx)
    for key, release in kserve.releases(ctx).items():
        values = None
        if release.values_file:
            values = tmp_path / release.values_file
            values.write_text(files[release.values_file])
        argv = kserve.helm_install_argv(ctx, release, values, major=4)
        if "--repo" in argv:  # offline: a local chart stands in for the remote one
            at = argv.index("--repo")
            del argv[at:at + 2]
        argv[4] = str(chart)
        result = subprocess.run([helm, *argv[1:], "--dry-run=client"], env=env, capture_output=True,
                                text=True)
        assert result.returncode == 0, (key, result.stderr)
        uninstall = kserve.helm_uninstall_argv(ctx, release, major=4)
        result = subprocess.run([helm, *uninstall[1:], "--dry-run"], env=env, capture_output=True, text=True)
        assert "unknown flag" not in result.stderr and "invalid argument" not in result.stderr, result.stderr


# -- waits ---------------------------------------------------------------------------------------------
def short(**deadlines: float) -> Settings:
    return Settings(waits=WaitDeadlines(**{**FAST.waits.__dict__, **deadlines}),
                    tool_retry=Backoff(attempts=1))


def test_the_crd_wait_ends_when_every_crd_is_established(cluster):
    ctx = cluster.context()
    ctx.reporter.when_waiting("does not exist yet", lambda: [cluster.cluster.crd(n) for n in kserve.KSERVE_CRDS])
    kserve.wait_crds(ctx, kserve.KSERVE_CRDS, "the KServe CRDs")
    assert any("does not exist yet" in m for m in ctx.reporter.messages("waiting"))


def test_the_crd_wait_timeout_names_the_crds_not_established(cluster):
    ctx = cluster.context(settings=short(crd_established=SHORT))
    cluster.cluster.crd(kserve.KSERVE_CRDS[0])
    cluster.kube.patch_status("apiextensions.k8s.io/v1", "CustomResourceDefinition", kserve.KSERVE_CRDS[0],
                              None, {"conditions": [{"type": "Established", "status": "False",
                                                     "reason": "Installing",
                                                     "message": "the CRD is being installed"}]})
    with pytest.raises(WaitTimeout) as caught:
        kserve.wait_crds(ctx, kserve.KSERVE_CRDS[:2], "the KServe CRDs to be Established")
    message = caught.value.one_line()
    assert message.startswith("timed out after 0.4s waiting for the KServe CRDs to be Established:")
    assert ("CustomResourceDefinition inferenceservices.serving.kserve.io: Established=False Installing "
            "the CRD is being installed") in message
    assert "CustomResourceDefinition servingruntimes.serving.kserve.io does not exist yet" in message


def test_the_deployment_wait_follows_a_rollout_that_finishes_late(cluster):
    ctx = cluster.context()
    cluster.kube.ensure_namespace("kserve")
    cluster.cluster.never.add("kserve-controller-manager")
    cluster.cluster.deployment("kserve-controller-manager", "kserve")
    # the rollout ends half a second after the wait has seen it unfinished
    ctx.reporter.when_waiting("Deployment kserve/kserve-controller-manager: 0/1 replicas available",
                              lambda: cluster.cluster.later(0.5, cluster.cluster.available,
                                                            "kserve-controller-manager", "kserve"))
    started = time.monotonic()
    kserve.wait_deployments(ctx, "kserve", kserve.KSERVE_DEPLOYMENTS)
    assert time.monotonic() - started >= 0.5
    assert "0/1 replicas available" in " ".join(ctx.reporter.messages("waiting"))


def test_the_deployment_wait_timeout_names_each_pending_deployment_with_conditions_and_events(cluster):
    ctx = cluster.context(settings=short(deployment_available=SHORT))
    cluster.kube.ensure_namespace("knative-serving")
    cluster.cluster.never.add("activator")
    cluster.cluster.deployment("activator", "knative-serving")
    cluster.cluster.deployment("autoscaler", "knative-serving")
    cluster.kube.patch_status("apps/v1", "Deployment", "activator", "knative-serving", {"conditions": [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
         "message": "Deployment does not have minimum availability."}]})
    cluster.kube.create({"apiVersion": "v1", "kind": "Event",
                         "metadata": {"name": "e1", "namespace": "knative-serving"},
                         "involvedObject": {"kind": "Deployment", "name": "activator"}, "type": "Warning",
                         "reason": "FailedCreate",
                         "message": 'pods "activator-1" is forbidden: exceeded quota'})
    eventually(lambda: (cluster.kube.get("apps/v1", "Deployment", "autoscaler", "knative-serving").get("status")
                        or {}).get("availableReplicas") == 1, "the autoscaler to roll out")
    with pytest.raises(WaitTimeout) as caught:
        kserve.wait_deployments(ctx, "knative-serving", ("activator", "autoscaler", "controller"))
    message = caught.value.one_line()
    assert "waiting for the Deployments in knative-serving to be Available" in message
    assert ("Deployment knative-serving/activator: 0/1 replicas available (Available=False "
            "MinimumReplicasUnavailable: Deployment does not have minimum availability.)") in message
    assert "Deployment knative-serving/controller does not exist yet" in message
    assert 'event Warning FailedCreate: pods "activator-1" is forbidden: exceeded quota' in message
    assert "autoscaler" not in message


def test_the_webhook_wait_follows_endpoints_that_are_not_ready_at_first(cluster):
    ctx = cluster.context()
    cluster.kube.ensure_namespace("kserve")
    cluster.cluster.webhook(kserve.KSERVE_WEBHOOK, "kserve", ready=False)
    ctx.reporter.when_waiting("endpoints not ready yet",
                              lambda: cluster.cluster.webhook_ready(kserve.KSERVE_WEBHOOK, "kserve"))
    kserve.wait_webhook(ctx, "kserve", kserve.KSERVE_WEBHOOK, "KServe")
    assert ("the KServe webhook to serve (ready endpoints of Service kserve/kserve-webhook-server-service): "
            "Service kserve/kserve-webhook-server-service: 1 endpoints not ready yet (webhook pods starting)"
            ) in ctx.reporter.messages("waiting")


def test_the_webhook_wait_timeout_says_no_endpoints_and_lists_the_pods(cluster):
    ctx = cluster.context(settings=short(endpoints_ready=SHORT))
    cluster.kube.ensure_namespace("kserve")
    cluster.kube.create({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "kserve-controller-manager-1", "namespace": "kserve"},
                         "spec": {"containers": [{"name": "manager", "image": "kserve/kserve-controller"}]}})
    with pytest.raises(WaitTimeout) as caught:
        kserve.wait_webhook(ctx, "kserve", kserve.KSERVE_WEBHOOK, "KServe")
    message = caught.value.one_line()
    assert ("waiting for the KServe webhook to serve (ready endpoints of Service "
            "kserve/kserve-webhook-server-service): Endpoints kserve/kserve-webhook-server-service does not "
            "exist yet; pod kserve-controller-manager-1: Pending") in message


def test_the_hostname_wait_follows_a_hostname_assigned_late(cluster):
    ctx = cluster.context()
    cluster.cluster.hold_hostnames = True
    ctx.reporter.when_waiting("Service kourier-system/kourier: no load balancer address yet",
                              cluster.cluster.release_hostnames)
    cluster.kube.ensure_namespace("kourier-system")
    ctx.kube.create(next(d for d in yaml.safe_load_all(kserve.render_files(ctx)["kourier-service.yaml"])
                         if d["kind"] == "Service"))
    hostname = kserve.wait_hostname(ctx)
    assert hostname == cluster.cluster.nlbs["kourier-system/kourier"]["dns"]
    assert "Service kourier-system/kourier: no load balancer address yet" in " ".join(
        ctx.reporter.messages("waiting"))


def test_the_hostname_wait_timeout_shows_the_controllers_events_and_where_to_look(cluster):
    ctx = cluster.context(settings=short(load_balancer=SHORT))
    cluster.cluster.lbc = False
    cluster.kube.ensure_namespace("kourier-system")
    ctx.kube.create(next(d for d in yaml.safe_load_all(kserve.render_files(ctx)["kourier-service.yaml"])
                         if d["kind"] == "Service"))
    cluster.kube.create({"apiVersion": "v1", "kind": "Event",
                         "metadata": {"name": "e", "namespace": "kourier-system"},
                         "involvedObject": {"kind": "Service", "name": "kourier"}, "type": "Warning",
                         "reason": "FailedDeployModel", "message": "AccessDenied: elasticloadbalancing:"
                         "DescribeListenerAttributes"})
    with pytest.raises(WaitTimeout) as caught:
        kserve.wait_hostname(ctx)
    message = caught.value.one_line()
    assert ("timed out after 0.4s waiting for the NLB hostname of Service kourier-system/kourier: Service "
            "kourier-system/kourier: no load balancer address yet; event Warning FailedDeployModel: "
            "AccessDenied: elasticloadbalancing:DescribeListenerAttributes") in message
    assert "kservectl alb status" in message


def nlb(cluster: Harness, state: str = "provisioning") -> dict:
    from moto.elbv2.models import elbv2_backends

    lb = cluster.elbv2.create_load_balancer(Name="k8s-kourier-abc", Subnets=cluster.cluster.subnets,
                                            Type="network")["LoadBalancers"][0]
    backend = elbv2_backends["123456789012"]["us-west-2"].load_balancers[lb["LoadBalancerArn"]]
    backend.state = state
    return {"dns": lb["DNSName"], "backend": backend}


def test_the_nlb_wait_polls_elbv2_until_the_nlb_is_active(cluster, monkeypatch):
    from moto.elbv2.models import FakeLoadBalancer

    monkeypatch.setattr(FakeLoadBalancer, "activate", lambda self: None)  # stays provisioning until told
    ctx = cluster.context()
    lb = nlb(cluster)
    cluster.clock.hooks.append(lambda n: setattr(lb["backend"], "state", "active") if n == 3 else None)
    found = kserve.wait_nlb_active(ctx, lb["dns"].upper())
    assert found["State"]["Code"] == "active"
    assert len(cluster.clock.sleeps) == 3
    assert f"the gateway NLB {lb['dns'].upper()} to be active: NLB k8s-kourier-abc is provisioning" in (
        ctx.reporter.messages("waiting"))
    assert all(op == "DescribeLoadBalancers" for op in cluster.aws_calls)


def test_the_nlb_wait_timeout_names_the_state(cluster, monkeypatch):
    from moto.elbv2.models import FakeLoadBalancer

    monkeypatch.setattr(FakeLoadBalancer, "activate", lambda self: None)
    ctx = cluster.context(settings=short(nlb_active=10))
    lb = nlb(cluster)
    with pytest.raises(WaitTimeout, match=r"timed out after 10s waiting for the gateway NLB .* to be active: "
                                          r"NLB k8s-kourier-abc is provisioning"):
        kserve.wait_nlb_active(ctx, lb["dns"])
    with pytest.raises(WaitTimeout,
                       match="no ELBv2 load balancer has the DNS name nope.elb.amazonaws.com yet"):
        kserve.wait_nlb_active(ctx, "nope.elb.amazonaws.com")


def test_a_failed_nlb_ends_the_wait_at_once(cluster, monkeypatch):
    from moto.elbv2.models import FakeLoadBalancer

    monkeypatch.setattr(FakeLoadBalancer, "activate", lambda self: None)
    ctx = cluster.context()
    lb = nlb(cluster, state="failed")
    with pytest.raises(KservectlError, match="the gateway NLB k8s-kourier-abc failed"):
        kserve.wait_nlb_active(ctx, lb["dns"])
    assert cluster.clock.sleeps == []


# -- install -----------------------------------------------------------------------------------------

def test_the_nlb_gone_wait_polls_until_the_nlb_is_deleted(cluster):
    ctx = cluster.context()
    lb = nlb(cluster, state="active")
    arn = cluster.load_balancers()[0]["LoadBalancerArn"]
    cluster.clock.hooks.append(lambda n: cluster.elbv2.delete_load_balancer(LoadBalancerArn=arn) if n == 2
                               else None)
    kserve.wait_nlb_gone(ctx, lb["dns"])
    assert len(cluster.clock.sleeps) == 2
    assert (f"the gateway NLB {lb['dns']} to be deleted: NLB k8s-kourier-abc still exists (active)"
            in ctx.reporter.messages("waiting"))


def test_the_nlb_gone_wait_timeout_names_the_nlb_still_there(cluster):
    ctx = cluster.context(settings=short(load_balancer_deleted=10))
    lb = nlb(cluster, state="active")
    with pytest.raises(WaitTimeout) as caught:
        kserve.wait_nlb_gone(ctx, lb["dns"])
    assert caught.value.one_line() == (f"timed out after 10s waiting for the gateway NLB {lb['dns']} to be "
                                       "deleted: NLB k8s-kourier-abc still exists (active)")


def test_uninstall_reports_an_nlb_that_outlives_its_service_with_the_manual_cleanup(cluster):
    kserve.install(cluster.context())
    cluster.cluster.lbc_deletes_nlb = False  # the finalizer goes, the NLB stays (LBC#3841)
    ctx = cluster.context(settings=short(load_balancer_deleted=10))
    ctx.reporter.when_waiting("Service kourier-system/kourier still exists", lambda: cluster.kube.patch(
        "v1", "Service", "kourier", "kourier-system", {"metadata": {"finalizers": None}}))
    result = kserve.uninstall(ctx)
    [failure] = result["failures"]
    dns = cluster.cluster.nlbs["kourier-system/kourier"]["dns"]
    assert failure["step"] == "gateway Service and its NLB"
    assert failure["error"].startswith(f"timed out after 10s waiting for the gateway NLB {dns} to be deleted: "
                                       "NLB k8s-kourier-")
    assert "elbv2.k8s.aws/cluster=kservectl" in failure["manual_cleanup"]
    assert "helm uninstall cert-manager" in cluster.cluster.log  # the rest went on


def test_the_default_domain_job_wait_ends_at_once_when_the_job_fails(cluster):
    cluster.cluster.job_outcome = "failed"
    ctx = cluster.context(**{"exposure.dns": "sslip"})
    with pytest.raises(KservectlError) as caught:
        kserve.install(ctx)
    assert caught.value.one_line() == (
        "Job knative-serving/default-domain failed: BackoffLimitExceeded Job has reached the specified backoff "
        "limit (kubectl -n knative-serving logs job/default-domain)")
    assert not isinstance(caught.value, WaitTimeout)


def test_the_default_domain_job_wait_timeout_names_the_jobs_pods(cluster):
    cluster.cluster.job_outcome = "never"
    ctx = cluster.context(settings=short(job_complete=SHORT), **{"exposure.dns": "sslip"})
    with pytest.raises(WaitTimeout) as caught:
        kserve.install(ctx)
    assert caught.value.one_line().startswith(
        "timed out after 0.4s waiting for Knative's default-domain Job to set an sslip.io domain: "
        "Job knative-serving/default-domain: 1 active, 0 failed pods")


def test_a_cert_manager_webhook_that_comes_up_late_holds_kserve_back_until_it_serves(cluster):
    cluster.cluster.webhooks_not_ready.add(kserve.CERT_MANAGER_WEBHOOK)
    ready_at: list[float] = []
    kserve_at: list[float] = []
    original = cluster.cluster.helm

    def helm(argv: list[str]) -> None:
        if argv[1] == "upgrade" and argv[3] == "kserve-crd":
            kserve_at.append(time.monotonic())
        original(argv)
    cluster.cluster.helm = helm
    cluster.kube.emulator.add_listener(lambda event: ready_at.append(time.monotonic()) if (
        event.resource.plural == "endpoints" and event.object["metadata"]["name"] == kserve.CERT_MANAGER_WEBHOOK
        and any(s.get("addresses") for s in event.object.get("subsets") or [])) else None)
    ctx = cluster.context()
    ctx.reporter.when_waiting(  # the webhook's pod gets ready once kservectl has waited for it
        "Service cert-manager/cert-manager-webhook: 1 endpoints not ready yet",
        lambda: cluster.cluster.webhook_ready(kserve.CERT_MANAGER_WEBHOOK, "cert-manager"))
    kserve.install(ctx)
    assert ("the cert-manager webhook to serve (ready endpoints of Service cert-manager/cert-manager-webhook): "
            "Service cert-manager/cert-manager-webhook: 1 endpoints not ready yet (webhook pods starting)"
            ) in ctx.reporter.messages("waiting")
    assert ready_at and kserve_at and kserve_at[0] > ready_at[0]


def test_a_cert_manager_webhook_that_never_serves_stops_the_install_before_kserve(cluster):
    cluster.cluster.webhooks_not_ready.add(kserve.CERT_MANAGER_WEBHOOK)
    ctx = cluster.context(settings=short(endpoints_ready=SHORT))
    with pytest.raises(WaitTimeout) as caught:
        kserve.install(ctx)
    assert caught.value.one_line().startswith(
        "timed out after 0.4s waiting for the cert-manager webhook to serve (ready endpoints of Service "
        "cert-manager/cert-manager-webhook): Service cert-manager/cert-manager-webhook: 1 endpoints not ready "
        "yet (webhook pods starting)")
    assert cluster.cluster.log == ["helm install cert-manager"]  # nothing of Knative or KServe


def test_install_in_knative_mode_converges_the_stack_in_order(cluster):
    ctx = cluster.context()
    result = kserve.install(ctx)
    log = cluster.cluster.log
    assert log == ["helm install cert-manager", "kubectl apply serving-crds.yaml",
                   "kubectl apply serving-core.yaml", "kubectl apply kourier.yaml", "helm install kserve-crd",
                   "helm install kserve", "helm install kserve-runtime-configs"]
    # the annotated gateway Service existed before kourier.yaml was applied...
    before = cluster.cluster.service_when_kourier_applied
    assert before["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == (
        "internet-facing")
    # ...and kservectl's ports win over the ones kourier.yaml re-applied
    service = cluster.gateway()
    assert service["spec"]["ports"] == [{"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    assert service["spec"]["loadBalancerSourceRanges"] == ["0.0.0.0/0"]
    assert service["metadata"]["annotations"][kserve.ANN_TAGS] == "kservectl.io/cluster=kservectl"
    network = cluster.kube.get("v1", "ConfigMap", "config-network", "knative-serving")["data"]
    assert network["ingress-class"] == "kourier.ingress.networking.knative.dev"
    assert cluster.kube.get("v1", "ConfigMap", "config-domain", "knative-serving")["data"] == {
        "_example": "# the upstream example block", "example.com": ""}
    runtime = cluster.kube.get("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "kserve-mlserver")
    assert runtime["spec"]["containers"][0]["image"] == "docker.io/seldonio/mlserver:1.7.1"
    assert kserve.installed_mode(ctx) == "knative"
    gateway = result["gateway"]
    assert gateway["hostname"] == cluster.cluster.nlbs["kourier-system/kourier"]["dns"]
    assert gateway["nlb_state"] == "active" and gateway["port"] == 80 and gateway["tls"] is False
    assert gateway["example"] == (f"curl -H 'Host: <model>-predictor.models.example.com' "
                                  f"http://{gateway['hostname']}/v2/models/<model>/ready")
    installs = cluster.helm_calls("upgrade")
    cert_manager = next(c for c in installs if c[2] == "cert-manager")
    assert cert_manager[cert_manager.index("--values") + 1] == str(
        paths.cluster_dir("kservectl") / "rendered" / "kserve" / "cert-manager-values.yaml")
    assert "--wait=watcher" in cert_manager and "--rollback-on-failure" in cert_manager
    assert [r["name"] for r in cluster.tools.releases()] == ["cert-manager", "kserve", "kserve-crd",
                                                             "kserve-runtime-configs"]
    assert not [op for op in cluster.aws_calls if is_mutating(op)]


def test_a_second_install_makes_no_mutating_call(cluster):
    kserve.install(cluster.context())
    helm_before = len(cluster.helm_calls("upgrade"))
    ctx = cluster.context()
    writes = cluster.writes(ctx)
    cluster.aws_calls.clear()
    result = kserve.install(ctx)
    assert result["changed"] is False
    assert len(cluster.helm_calls("upgrade")) == helm_before
    assert ctx.runner.kubectl_calls == []
    assert writes == []
    assert not [op for op in cluster.aws_calls if is_mutating(op)]


def test_install_copes_with_the_orders_real_clusters_show(cluster):
    # the NLB hostname comes late, the KServe webhook has endpoints that are not ready at first,
    # and the KServe controller becomes Available a while after helm returns: each one changes
    # only once kservectl has reported waiting for it
    cluster.cluster.hold_hostnames = True
    cluster.cluster.webhooks_not_ready.add(kserve.KSERVE_WEBHOOK)
    cluster.cluster.never.add("kserve-controller-manager")
    ctx = cluster.context()
    ctx.reporter.when_waiting("Service kourier-system/kourier: no load balancer address yet",
                              cluster.cluster.release_hostnames)
    ctx.reporter.when_waiting("Service kserve/kserve-webhook-server-service: 1 endpoints not ready yet",
                              lambda: cluster.cluster.webhook_ready(kserve.KSERVE_WEBHOOK, "kserve"))
    ctx.reporter.when_waiting("Deployment kserve/kserve-controller-manager: 0/1 replicas available",
                              lambda: cluster.cluster.available("kserve-controller-manager", "kserve"))
    result = kserve.install(ctx)
    assert result["gateway"]["nlb_state"] == "active"
    waits = " ".join(ctx.reporter.messages("waiting"))
    assert "endpoints not ready yet" in waits
    assert "no load balancer address yet" in waits
    assert "Deployment kserve/kserve-controller-manager: 0/1 replicas available" in waits


def seed_gateway(cluster: Harness, scheme: str = "internet-facing") -> str:
    """A gateway Service as a previous install left it, with its NLB."""
    cluster.kube.ensure_namespace("kourier-system")
    cluster.kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "kourier", "namespace": "kourier-system",
        "annotations": {kserve.ANN_TYPE: "external", kserve.ANN_SCHEME: scheme}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    return eventually(lambda: cluster.cluster.nlbs.get("kourier-system/kourier"), "the gateway's NLB")["dns"]


def test_a_scheme_change_is_refused_without_yes_and_changes_nothing(cluster):
    old = seed_gateway(cluster)
    ctx = cluster.context(**{"exposure.scheme": "internal"})
    writes = cluster.writes(ctx)
    with pytest.raises(UsageError) as caught:
        kserve.install(ctx)
    assert caught.value.exit_code == 2
    assert caught.value.one_line() == (
        "changing exposure.scheme from internet-facing to internal makes the AWS Load Balancer Controller "
        f"replace the gateway NLB: its DNS name ({old}) stops working and clients and DNS records must move "
        "to the new one (re-run with --yes to accept, or keep exposure.scheme=internet-facing; nothing was "
        "changed)")
    assert writes == [] and cluster.helm_calls("upgrade") == []


def test_a_scheme_change_with_yes_warns_and_waits_for_the_new_nlb(cluster):
    kserve.install(cluster.context())
    old = cluster.gateway()["status"]["loadBalancer"]["ingress"][0]["hostname"]
    ctx = cluster.context(**{"exposure.scheme": "internal"})
    result = kserve.install(ctx, yes=True)
    assert "replace the gateway NLB" in ctx.reporter.messages("warn")[0]
    new = result["gateway"]["hostname"]
    assert new != old
    assert [lb["DNSName"] for lb in cluster.load_balancers()] == [new]
    assert cluster.load_balancers()[0]["Scheme"] == "internal"


def test_an_unannotated_gateway_service_is_recreated_only_with_yes(cluster):
    cluster.kube.ensure_namespace("kourier-system")
    cluster.kube.create({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "kourier", "namespace": "kourier-system"},
                         "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]}})
    with pytest.raises(UsageError, match="exists without the AWS Load Balancer Controller annotations"):
        kserve.install(cluster.context())
    assert cluster.helm_calls("upgrade") == []
    result = kserve.install(cluster.context(), yes=True)
    service = cluster.gateway()
    assert service["metadata"]["annotations"][kserve.ANN_TYPE] == "external"
    assert result["gateway"]["nlb_state"] == "active"


def test_turning_tls_off_removes_the_certificate_annotations_and_source_ranges(cluster):
    tls = cluster.context(**{"exposure.certificate_arn": ARN})
    kserve._ensure_gateway(tls, kserve.render_files(tls), kserve.check_gateway(tls), kserve.Outcome(tls))
    assert [p["port"] for p in cluster.gateway()["spec"]["ports"]] == [443]
    plain = cluster.context(**{"exposure.source_ranges": []})
    out = kserve.Outcome(plain)
    kserve._ensure_gateway(plain, kserve.render_files(plain), kserve.check_gateway(plain), out)
    service = cluster.gateway()
    assert not any("ssl" in k for k in service["metadata"]["annotations"])
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    assert "loadBalancerSourceRanges" not in service["spec"]
    assert out.steps[-1] == {"step": "Service kourier-system/kourier", "result": "changed"}


def test_standard_mode_installs_metrics_server_and_records_the_mode(cluster):
    ctx = cluster.context(**{"kserve.mode": "standard"})
    result = kserve.install(ctx)
    assert cluster.cluster.log == ["helm install cert-manager", "helm install kservectl-metrics-server",
                                   "helm install kserve-crd", "helm install kserve",
                                   "helm install kserve-runtime-configs"]
    assert result["gateway"] is None and cluster.gateway() is None
    assert kserve.installed_mode(ctx) == "standard"
    record = cluster.kube.get("v1", "ConfigMap", "kservectl-kserve", "kserve")["data"]
    assert record["mode"] == "standard" and record["metrics-server-chart"] == "3.14.0"


def test_standard_mode_leaves_a_running_metrics_server_alone(cluster):
    cluster.cluster.deployment("metrics-server", "kube-system", {"app.kubernetes.io/name": "metrics-server"})
    result = kserve.install(cluster.context(**{"kserve.mode": "standard"}))
    assert "helm install kservectl-metrics-server" not in cluster.cluster.log
    assert {"step": "metrics-server",
            "result": "unchanged (already running: Deployment kube-system/metrics-server)"} in result["steps"]


def test_switching_modes_is_refused_with_the_way_out(cluster):
    cluster.kube.ensure_namespace("kserve")
    cluster.kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kservectl-kserve",
                                                                               "namespace": "kserve"},
                         "data": {"mode": "knative"}})
    with pytest.raises(UsageError) as caught:
        kserve.install(cluster.context(**{"kserve.mode": "standard"}))
    assert caught.value.one_line() == (
        "KServe is installed in knative mode on cluster kservectl; switching to standard mode needs "
        "`kservectl kserve uninstall` first (every InferenceService is then redeployed) "
        "(or keep kserve.mode=knative)")
    assert cluster.helm_calls("upgrade") == []


def test_sslip_mode_runs_knatives_default_domain_job_after_the_nlb_is_up(cluster):
    ctx = cluster.context(**{"exposure.dns": "sslip"})
    result = kserve.install(ctx)
    assert cluster.cluster.log[-1] == "kubectl apply serving-default-domain.yaml"
    assert result["gateway"]["domain"] == "203.0.113.7.sslip.io"
    assert "203.0.113.7.sslip.io" in result["gateway"]["example"]


def test_installed_mode_reads_kserves_own_config_for_an_installation_kservectl_did_not_make(cluster):
    ctx = cluster.context()
    assert kserve.installed_mode(ctx) is None
    cluster.kube.ensure_namespace("kserve")
    cluster.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
                         "data": {"deploy": '{"defaultDeploymentMode": "RawDeployment"}'}})
    assert kserve.installed_mode(ctx) == "standard"


def test_a_missing_kubectl_stops_the_install_before_anything_changes(cluster):
    import sys

    ctx = cluster.context()
    path = {"PATH": f"{Path(sys.executable).parent}"}  # python for the fake helm, no kubectl
    runner = ClusterRunner(cluster.cluster, settings=FAST, env=cluster.tools.env(path))
    runner.version = lambda tool: Runner.version(runner, tool)  # the real lookup, on that PATH
    ctx.runner = runner
    with pytest.raises(KservectlError, match="kubectl was not found on PATH") as caught:
        kserve.install(ctx)
    assert caught.value.exit_code == 2
    assert cluster.helm_calls("upgrade") == []


def test_a_dry_run_records_the_commands_and_changes_nothing(cluster):
    ctx = cluster.context(dry_run=True)
    before = cluster.kube.emulator.resource_version
    result = kserve.install(ctx)
    assert cluster.kube.emulator.resource_version == before
    assert cluster.helm_calls("upgrade") == [] and cluster.cluster.log == []
    commands = result["commands"]
    assert commands[0].startswith("helm upgrade --install cert-manager cert-manager "
                                  "--repo https://charts.jetstack.io")
    assert any(c.endswith("serving-crds.yaml") for c in commands)
    assert {"step": "Service kourier-system/kourier", "result": "would create"} in result["steps"]
    assert {"step": "ConfigMap knative-serving/config-network",
            "result": "would patch once serving-core.yaml has created it"} in result["steps"]
    assert result["gateway"]["hostname"] is None


def test_install_warns_once_that_the_values_are_checked_against_older_key_lists(cluster):
    ctx = cluster.context(dry_run=True)
    result = kserve.install(ctx)
    warned = [w for w in ctx.reporter.messages("warn") if "older charts than the pinned ones" in w]
    assert len(warned) == 1
    assert "kserve-resources v0.20.0 (keys from v0.16.0)" in warned[0]
    assert result["warnings"] == warned


def test_a_dry_run_in_sslip_mode_lists_knatives_default_domain_job(cluster):
    result = kserve.install(cluster.context(dry_run=True, **{"exposure.dns": "sslip"}))
    assert result["commands"][-1].endswith("knative-v1.21.1/serving-default-domain.yaml")
    assert result["steps"][-1] == {"step": "Knative default-domain Job (sslip.io)",
                                   "result": "would apply once the NLB has an address"}


# -- uninstall ----------------------------------------------------------------------------------------
def test_uninstall_removes_the_gateway_and_waits_for_its_nlb_then_the_rest_in_reverse(cluster):
    kserve.install(cluster.context())
    # things uninstall must not touch: another LoadBalancer and its NLB, a model namespace, kube-system
    cluster.kube.ensure_namespace("models")
    cluster.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "keep", "namespace": "models"}})
    cluster.kube.ensure_namespace("mlflow")
    cluster.kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "mlflow", "namespace": "mlflow", "annotations": {kserve.ANN_TYPE: "external"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    other = eventually(lambda: cluster.cluster.nlbs.get("mlflow/mlflow"), "the mlflow Service's NLB")["dns"]
    cluster.cluster.lbc_deletes_nlb = False  # the controller is slow: the NLB goes a few polls later
    gateway_arn = cluster.cluster.nlbs["kourier-system/kourier"]["arn"]

    def lbc(polls: int) -> None:
        if polls == 2:
            cluster.elbv2.delete_load_balancer(LoadBalancerArn=gateway_arn)
    cluster.clock.hooks.append(lbc)
    ctx = cluster.context()
    ctx.reporter.when_waiting("Service kourier-system/kourier still exists", lambda: cluster.kube.patch(
        "v1", "Service", "kourier", "kourier-system", {"metadata": {"finalizers": None}}))
    cluster.cluster.log.clear()
    result = kserve.uninstall(ctx)
    assert result["failures"] == []
    assert result["steps"][:2] == [{"step": "Service kourier-system/kourier", "result": "deleted"},
                                   {"step": f"NLB {cluster.cluster.nlbs['kourier-system/kourier']['dns']}",
                                    "result": "deleted"}]
    assert len(cluster.clock.sleeps) == 2
    assert cluster.cluster.log == ["helm uninstall kserve-runtime-configs", "helm uninstall kserve",
                                   "helm uninstall kserve-crd", "kubectl delete kourier.yaml",
                                   "kubectl delete serving-core.yaml", "kubectl delete serving-crds.yaml",
                                   "helm uninstall cert-manager"]
    assert cluster.tools.releases() == []
    for namespace in ("kserve", "cert-manager"):  # gone, or going (namespaces terminate asynchronously)
        left = cluster.kube.find("v1", "Namespace", namespace)
        assert left is None or left["metadata"].get("deletionTimestamp"), namespace
    # what was NOT deleted
    assert [lb["DNSName"] for lb in cluster.load_balancers()] == [other]
    assert cluster.kube.find("v1", "Service", "mlflow", "mlflow") is not None
    assert cluster.kube.find("v1", "ConfigMap", "keep", "models") is not None
    assert cluster.kube.find("v1", "Namespace", "kube-system") is not None


def test_a_second_uninstall_changes_nothing(cluster):
    kserve.install(cluster.context())
    kserve.uninstall(cluster.context())
    # the namespaces `kubectl delete -f` removed terminate asynchronously; uninstall tells whether
    # kourier.yaml / serving-core.yaml are installed by their namespace, so wait until they are gone
    for namespace in (kserve.KOURIER_NS, kserve.KNATIVE_NS):
        eventually(lambda ns=namespace: cluster.kube.find("v1", "Namespace", ns) is None,
                   f"Namespace {namespace} to be gone")
    ctx = cluster.context()
    writes = cluster.writes(ctx)
    helm_before = len(cluster.helm_calls("uninstall"))
    result = kserve.uninstall(ctx)
    assert result["changed"] is False and result["failures"] == []
    assert writes == [] and ctx.runner.kubectl_calls == []
    assert len(cluster.helm_calls("uninstall")) == helm_before


def test_uninstall_keeps_going_past_a_stuck_gateway_and_says_what_to_clean_up(cluster):
    kserve.install(cluster.context())
    cluster.cluster.lbc_deletes_nlb = False  # the controller is gone: the finalizer stays
    result = kserve.uninstall(cluster.context(settings=short(load_balancer_deleted=SHORT)))
    [failure] = result["failures"]
    assert failure["step"] == "gateway Service and its NLB"
    assert ("timed out after 0.4s waiting for Service kourier-system/kourier to be deleted: Service "
            "kourier-system/kourier still exists; finalizers service.k8s.aws/resources: the AWS Load "
            "Balancer Controller removes them once the NLB is deleted") in failure["error"]
    assert "service.k8s.aws/stack=kourier-system/kourier" in failure["manual_cleanup"]
    assert "helm uninstall cert-manager" in cluster.cluster.log  # the rest went on


# -- status --------------------------------------------------------------------------------------------
def test_status_reports_versions_against_the_pins_readiness_and_the_gateway(cluster):
    kserve.install(cluster.context())
    data = kserve.status(cluster.context())
    assert data["mode"] == "knative" and data["ready"] is True
    by_name = {c["component"]: c for c in data["components"]}
    assert set(by_name) == {"cert-manager", "knative-serving", "net-kourier", "kserve-crd",
                            "kserve-resources", "kserve-runtime-configs", "mlserver-runtime"}
    assert by_name["mlserver-runtime"] == {
        "component": "mlserver-runtime", "pinned": "docker.io/seldonio/mlserver:1.7.1",
        "installed": "docker.io/seldonio/mlserver:1.7.1", "ready": True, "up_to_date": True,
        "detail": "ClusterServingRuntime kserve-mlserver runs docker.io/seldonio/mlserver:1.7.1"}
    assert data["drift"] == []
    assert by_name["knative-serving"] == {"component": "knative-serving", "pinned": "1.21.1",
                                          "installed": "1.21.1", "ready": True, "up_to_date": True,
                                          "detail": "5 Deployments Available"}
    assert by_name["cert-manager"]["installed"] == "v1.17.0" and by_name["cert-manager"]["up_to_date"]
    gateway = data["gateway"]
    assert gateway["hostname"] == cluster.cluster.nlbs["kourier-system/kourier"]["dns"]
    assert gateway["scheme"] == "internet-facing" and gateway["nlb_state"] == "active"
    assert gateway["ports"] == [80] and gateway["domains"] == ["example.com"]


def test_status_shows_an_outdated_component_and_one_not_ready(cluster):
    kserve.install(cluster.context(**{"versions.knative_serving": "1.20.0",
                                      "versions.net_kourier": "1.20.0"}))
    cluster.kube.patch_status("apps/v1", "Deployment", "kserve-controller-manager", "kserve", {
        "availableReplicas": 0,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]})
    data = kserve.status(cluster.context())
    by_name = {c["component"]: c for c in data["components"]}
    assert by_name["knative-serving"]["installed"] == "1.20.0"
    assert by_name["knative-serving"]["up_to_date"] is False
    assert by_name["kserve-resources"]["ready"] is False
    assert "Deployment kserve/kserve-controller-manager: 0/1 replicas available (Available=False " \
           "MinimumReplicasUnavailable)" in by_name["kserve-resources"]["detail"]
    assert data["ready"] is False


def test_status_reports_an_mlserver_image_that_drifted_from_the_pin(cluster):
    kserve.install(cluster.context())
    cluster.kube.patch("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "kserve-mlserver", None, {
        "spec": {"containers": [{"name": "kserve-container", "image": "docker.io/seldonio/mlserver:1.5.0"}]}})
    data = kserve.status(cluster.context())
    runtime = next(c for c in data["components"] if c["component"] == "mlserver-runtime")
    assert runtime["installed"] == "docker.io/seldonio/mlserver:1.5.0" and runtime["up_to_date"] is False
    assert runtime["detail"] == (
        "drift: ClusterServingRuntime kserve-mlserver runs docker.io/seldonio/mlserver:1.5.0, pinned "
        "docker.io/seldonio/mlserver:1.7.1; models are checked against the pin: re-run `kservectl kserve "
        "install`")
    assert data["drift"] == ["mlserver-runtime: installed docker.io/seldonio/mlserver:1.5.0, pinned "
                             "docker.io/seldonio/mlserver:1.7.1"]


def test_standard_mode_status_judges_metrics_server_by_its_own_deployment_only(cluster):
    kserve.install(cluster.context(**{"kserve.mode": "standard"}))
    cluster.cluster.never.add("coredns")  # an unrelated Deployment in kube-system that is not Available
    cluster.cluster.deployment("coredns", "kube-system")
    data = kserve.status(cluster.context(**{"kserve.mode": "standard"}))
    metrics = next(c for c in data["components"] if c["component"] == "metrics-server")
    assert metrics["ready"] is True, metrics
    assert metrics["detail"] == "1 Deployments Available"
    assert data["ready"] is True
    cluster.kube.patch_status("apps/v1", "Deployment", "kservectl-metrics-server", "kube-system", {
        "availableReplicas": 0,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]})
    metrics = next(c for c in kserve.status(cluster.context(**{"kserve.mode": "standard"}))["components"]
                   if c["component"] == "metrics-server")
    assert metrics["ready"] is False
    assert "Deployment kube-system/kservectl-metrics-server: 0/1 replicas available" in metrics["detail"]


# -- the CLI --------------------------------------------------------------------------------------------
@pytest.fixture
def cli_cluster(kube, fake_tools):
    kube.install_kubeconfig(paths.kubeconfig_path("kservectl"))
    return kube


def test_kserve_install_dry_run_prints_the_command_lines_and_runs_nothing(cli, cli_cluster, fake_tools):
    before = cli_cluster.emulator.resource_version
    result = cli("kserve", "install", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "(dry run) would run:" in result.stdout
    assert ("  helm upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io "
            "--version v1.17.0") in result.stdout
    assert "apply -f https://github.com/knative/serving/releases/download/knative-v1.21.1/serving-crds.yaml" \
        in result.stdout
    assert "(dry run) Service kourier-system/kourier: would create" in result.stdout
    assert cli_cluster.emulator.resource_version == before
    assert {c[0] for c in fake_tools.calls("helm")} <= {"version", "list", "get"}


def test_kserve_install_dry_run_output_json_in_standard_mode(cli, cli_cluster, fake_tools):
    result = cli("kserve", "install", "--dry-run", "--mode", "standard", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == "standard" and data["dry_run"] is True and data["gateway"] is None
    assert any("kservectl-metrics-server" in c for c in data["commands"])
    assert not any("kourier" in c for c in data["commands"])


def test_kserve_install_rejects_an_unknown_mode(cli):
    result = cli("kserve", "install", "--mode", "serverless")
    assert result.exit_code == 2
    assert "serverless" in result.stderr


def test_kserve_install_refuses_a_scheme_change_without_yes_with_exit_2(cli, cli_cluster, fake_tools):
    cli_cluster.ensure_namespace("kourier-system")
    cli_cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "kourier", "namespace": "kourier-system",
        "annotations": {kserve.ANN_TYPE: "external", kserve.ANN_SCHEME: "internal"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    result = cli("kserve", "install")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: changing exposure.scheme from internal to internet-facing")
    assert fake_tools.calls("helm") == []


def test_kserve_uninstall_asks_first_and_refuses_without_a_terminal(cli, cli_cluster):
    result = cli("kserve", "uninstall")
    assert result.exit_code == 2
    assert "needs confirmation and there is no terminal to ask (re-run with --yes)" in result.stderr
    assert result.stdout == ""


def test_kserve_uninstall_dry_run_needs_no_confirmation_and_deletes_nothing(cli, cli_cluster, fake_tools):
    cli_cluster.ensure_namespace("kserve")
    before = cli_cluster.emulator.resource_version
    result = cli("kserve", "uninstall", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"step": "Namespace kserve", "result": "would delete"} in data["steps"]
    assert cli_cluster.emulator.resource_version == before


def test_kserve_status_prints_json(cli, cluster, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: one line per component
    kserve.install(cluster.context())
    cluster.kube.install_kubeconfig(paths.kubeconfig_path("kservectl"))
    result = cli("kserve", "status", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ready"] is True and data["gateway"]["nlb_state"] == "active"
    table = cli("kserve", "status")
    assert "knative-serving" in table.stdout and "internet-facing" in table.stdout
    assert "as pinned" in table.stdout and "drift:" not in table.stdout
    cluster.kube.patch("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "kserve-mlserver", None, {
        "spec": {"containers": [{"name": "kserve-container", "image": "docker.io/seldonio/mlserver:1.5.0"}]}})
    drifted = cli("kserve", "status")
    row = next(line for line in drifted.stdout.splitlines() if "mlserver-runtime" in line)
    assert "DRIFT" in row
    assert ("drift: mlserver-runtime: installed docker.io/seldonio/mlserver:1.5.0, pinned "
            "docker.io/seldonio/mlserver:1.7.1 (re-run `kservectl kserve install` to converge)") in drifted.stdout
