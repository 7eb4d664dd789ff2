"""The mlflow phase: rendered manifests (real schemas + golden files), install/uninstall/status/url
on the Kubernetes emulator (the test acts as the controllers), secrets that never leak, and the
rendered ``mlflow server`` command line started for real."""

from __future__ import annotations

import base64
import configparser
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kservectl import paths
from kservectl.clock import FakeClock
from kservectl.config import Config, ExposureSection, MlflowSection, NamespacesSection, VersionsSection
from kservectl.context import Context
from kservectl.errors import ConfigError, KservectlError, KubeError, UsageError, WaitTimeout
from kservectl.events import RecordingReporter
from kservectl.kube import Kube, load_api_client
from kservectl.phases import mlflow
from kservectl.phases import plan as plan_phase
from kservectl.phases.base import LiveValues
from kservectl.settings import DEFAULT_SETTINGS, WaitDeadlines
from support.golden import assert_golden

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"  # moto's account
LIVE = LiveValues(account_id=ACCOUNT)
NS = "mlflow"
DB_URI = "postgresql+psycopg2://mlflow:Db-Passw0rd-7731@db.example.internal:5432/mlflow"
LB_HOST = "k8s-mlflow-mlflow-0123456789.elb.us-west-2.amazonaws.com"
BUCKET = f"kservectl-kservectl-{ACCOUNT}-us-west-2"  # the storage phase's bucket of cluster kservectl

PUBLIC = Config(mlflow=MlflowSection(public=True), exposure=ExposureSection(source_ranges=["203.0.113.0/24"]))
EXTERNAL_DB = Config(mlflow=MlflowSection(database_uri=DB_URI))


def rendered(config: Config, lb_hostname: str | None = None) -> mlflow.Rendered:
    ctx = Context(config=config)
    return mlflow.render_manifests(mlflow.template_values(ctx, mlflow.storage_refs(ctx, LIVE), lb_hostname))


def container(docs: dict[str, Any], name: str = "mlflow") -> dict[str, Any]:
    spec = docs["deployment"]["spec"]["template"]["spec"]
    return next(c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == name)


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


# -- rendering ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("golden", "config", "lb"),
    [
        ("default.yaml", Config(), None),
        ("public-with-auth.yaml", PUBLIC, LB_HOST),
        ("external-database.yaml", EXTERNAL_DB, None),
    ],
)
def test_rendered_manifests_are_valid_against_the_real_schemas_and_match_the_golden_files(
    schema_validator, golden, config, lb
):
    out = rendered(config, lb)
    schema_validator.assert_all_valid(out.text)
    assert_golden(f"mlflow/{golden}", out.text)


def test_the_deployment_runs_the_pinned_full_image_recreated_with_probes_limits_and_no_root():
    docs = rendered(Config()).docs
    dep = docs["deployment"]
    c = container(docs)
    assert c["image"] == "ghcr.io/mlflow/mlflow:v3.15.2-full"  # boto3 is in the -full image
    assert c["command"] == ["mlflow"] and "pip" not in " ".join(c["command"] + c["args"])
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "AWS_DEFAULT_REGION", "value": "us-west-2"} in c["env"]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "mlflow"
    sa = docs["serviceaccount"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        f"arn:aws:iam::{ACCOUNT}:role/kservectl/kservectl-kservectl-mlflow"
    )


def test_the_server_stores_runs_in_sqlite_on_the_pvc_and_proxies_artifacts_to_the_bucket():
    docs = rendered(Config()).docs
    args = container(docs)["args"]
    assert args[:7] == ["server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]
    assert arg(args, "--backend-store-uri") == "sqlite:////mlflow/mlflow.db"
    assert (
        arg(args, "--artifacts-destination")
        == f"s3://kservectl-kservectl-{ACCOUNT}-us-west-2/mlflow-artifacts"
    )
    assert "--serve-artifacts" in args and "--app-name" not in args
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["data"] == "/mlflow"
    assert docs["pvc"]["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "gp3",
        "resources": {"requests": {"storage": "10Gi"}},
    }
    assert docs["service"]["spec"]["type"] == "ClusterIP"


def test_allowed_hosts_name_the_cluster_dns_names_with_and_without_the_port_and_the_public_hostname():
    private = arg(container(rendered(Config()).docs)["args"], "--allowed-hosts").split(",")
    for name in ("mlflow", "mlflow.mlflow", "mlflow.mlflow.svc", "mlflow.mlflow.svc.cluster.local"):
        assert name in private and f"{name}:5000" in private
    assert {"localhost:*", "127.0.0.1:*"} <= set(private)  # kubectl port-forward
    assert not any("elb" in host for host in private)
    public = arg(container(rendered(PUBLIC, LB_HOST).docs)["args"], "--allowed-hosts").split(",")
    assert LB_HOST in public and f"{LB_HOST}:5000" in public


def test_the_public_service_is_an_internet_facing_nlb_limited_to_the_source_ranges_and_auth_is_on():
    docs = rendered(PUBLIC, LB_HOST).docs
    svc = docs["service"]
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    notes = svc["metadata"]["annotations"]
    assert notes["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert notes["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert notes["service.beta.kubernetes.io/aws-load-balancer-additional-resource-tags"] == (
        "kservectl.io/cluster=kservectl"
    )
    c = container(docs)
    assert c["args"][-2:] == ["--app-name", "basic-auth"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow/auth/basic_auth.ini"
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "mlflow-auth", "key": "flask-secret-key"}
    }
    init = container(docs, "auth-config")
    assert {
        "name": "MLFLOW_AUTH_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "mlflow-auth", "key": "admin-password"}},
    } in init["env"]
    ini = docs["auth-config"]["data"]["basic_auth.ini"]
    assert "database_uri = sqlite:////mlflow/basic_auth.db" in ini  # the user store is on the PVC
    assert "admin_password" not in ini.replace("# admin_password is not here", "")


def test_an_external_database_reaches_the_pod_only_through_a_secret_and_needs_no_pvc():
    out = rendered(EXTERNAL_DB)
    assert DB_URI not in out.text and "Db-Passw0rd" not in out.text
    c = container(out.docs)
    assert "--backend-store-uri" not in c["args"]
    assert {
        "name": "MLFLOW_BACKEND_STORE_URI",
        "valueFrom": {"secretKeyRef": {"name": "mlflow-backend-store", "key": "database-uri"}},
    } in c["env"]
    assert "pvc" not in out.docs and "data" not in {
        v["name"] for v in out.docs["deployment"]["spec"]["template"]["spec"]["volumes"]
    }
    # public + external database: the PVC still holds the basic-auth user store
    both = rendered(replace(PUBLIC, mlflow=MlflowSection(public=True, database_uri=DB_URI)), LB_HOST)
    assert "pvc" in both.docs and "The basic-auth user store" in both.text


def test_secrets_are_built_from_their_template_valid_and_base64_encoded(schema_validator):
    ctx = Context(config=PUBLIC)
    values = mlflow.template_values(ctx, mlflow.storage_refs(ctx, LIVE), LB_HOST)
    creds = mlflow.generate_auth_credentials()
    secret = mlflow.secret_manifest(values, "mlflow-auth", creds)
    schema_validator.assert_valid(secret)
    assert secret["type"] == "Opaque" and secret["metadata"]["namespace"] == NS
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == creds
    assert (
        len(creds["admin-password"]) >= 32
        and creds["admin-password"] != mlflow.generate_auth_credentials()["admin-password"]
    )


def test_a_database_uri_that_is_not_a_database_url_is_refused_without_echoing_it():
    ctx = Context(config=Config(mlflow=MlflowSection(database_uri="mongodb://root:Hunter2-secret@db/x")))
    with pytest.raises(ConfigError) as info:
        mlflow.plan(ctx, LIVE, Path("out"))
    assert info.value.exit_code == 2
    assert (
        "mlflow.database_uri='<redacted>' is invalid: must be a SQLAlchemy database URL"
        in info.value.one_line()
    )
    assert "Hunter2" not in info.value.one_line()


def test_the_namespace_comes_from_config():
    docs = rendered(Config(namespaces=NamespacesSection(mlflow="tracking"))).docs
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs.values()} == {"tracking"}
    assert "mlflow.tracking.svc.cluster.local:5000" in arg(container(docs)["args"], "--allowed-hosts")


def test_plan_renders_this_phase_with_placeholders_and_makes_no_network_call(no_network, schema_validator):
    ctx = Context(config=PUBLIC)
    plans = {p.phase: p for p in plan_phase.build(ctx, Path("rendered"))}
    assert no_network == []
    p = plans["mlflow"]
    text = p.files["mlflow.yaml"]
    schema_validator.assert_all_valid(text)
    assert "<account-id>" in text and "<mlflow-lb-hostname>:5000" in text
    described = [s.describe() for s in p.steps]
    assert any("wait for the load balancer hostname" in d for d in described)
    assert any("create Secret mlflow/mlflow-auth once" in d for d in described)
    assert described[-1].startswith("will check the server through the load balancer")
    assert "public NLB with basic auth, source ranges 203.0.113.0/24" in p.summary


def test_the_init_container_script_writes_an_ini_mlflow_reads_with_the_password_and_mode_0600(tmp_path):
    docs = rendered(PUBLIC, LB_HOST).docs
    init = container(docs, "auth-config")
    template = tmp_path / "template.ini"
    template.write_text(docs["auth-config"]["data"]["basic_auth.ini"])
    target = tmp_path / "auth.ini"
    password = mlflow.generate_auth_credentials()["admin-password"]
    env = {
        "PATH": "/usr/bin:/bin",
        "AUTH_INI_TEMPLATE": str(template),
        "MLFLOW_AUTH_CONFIG_PATH": str(target),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
    }
    subprocess.run(init["command"], env=env, check=True, timeout=10)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    parser = configparser.ConfigParser()  # how mlflow.server.auth.config.read_auth_config reads it
    parser.read(target)
    section = parser["mlflow"]
    assert section["admin_password"] == password and section["admin_username"] == "admin"
    assert section["database_uri"] == "sqlite:////mlflow/basic_auth.db"
    assert section["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"


# -- the cluster: the Kubernetes emulator, with the test acting as the controllers ----------------------
FAST = DEFAULT_SETTINGS.with_(
    waits=WaitDeadlines(
        pvc_bound=10,
        deployment_available=10,
        load_balancer=10,
        load_balancer_deleted=10,
        http_ready=10,
        load_balancer_reachable=10,
        watch_chunk=1.0,
        poll_interval=0.05,
    )
)
SHORT = DEFAULT_SETTINGS.with_(
    waits=WaitDeadlines(
        pvc_bound=30,
        deployment_available=30,
        load_balancer=30,
        load_balancer_deleted=30,
        http_ready=30,
        load_balancer_reachable=30,
        poll_interval=2.0,
    )
)
HEALTH_PATH = "/api/v1/namespaces/mlflow/services/mlflow:5000/proxy/health"


def make_ctx(
    kube, config: Config = Config(), *, dry_run: bool = False, settings=FAST, clock=None, watch: bool = True
) -> Context:
    reporter = RecordingReporter()
    ctx = Context(config=config, dry_run=dry_run, reporter=reporter, settings=settings)
    if clock is not None:
        ctx.clock = clock
    ctx.kube = Kube(
        load_api_client(kube.kubeconfig, settings=settings),
        settings=settings,
        clock=ctx.clock,
        on_wait=reporter.waiting,
        watch=watch,
    )
    return ctx


def bind_pvcs(kube, delay_s: float = 0.05) -> None:
    """Act as the EBS CSI driver + PV controller: new PVCs become Bound."""

    def bind(pvc: dict[str, Any]) -> None:
        kube.patch_status(
            "v1",
            "PersistentVolumeClaim",
            pvc["metadata"]["name"],
            pvc["metadata"]["namespace"],
            {"phase": "Bound", "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]}},
        )

    kube.on_created("PersistentVolumeClaim", bind, api_version="v1", delay_s=delay_s)


def serve_health(kube, status: int = 200, body: bytes = b"OK") -> None:
    kube.on_loop(lambda emulator: emulator[f"get {HEALTH_PATH}"] << status << body)


@pytest.fixture
def cluster(kube, mock_aws):
    """The emulator with every controller MLflow needs, and moto for the account id."""
    kube.simulate_deployment_rollout(delay_s=0.05)
    kube.simulate_load_balancers(delay_s=0.05, hostname=LB_HOST)
    bind_pvcs(kube)
    serve_health(kube)
    return kube


class FakeLoadBalancer:
    """Stands in for the NLB in front of a basic-auth MLflow: the admin password it accepts is the
    one in the cluster's Secret (what the init container hands to MLflow)."""

    def __init__(self, kube, *, unauthenticated: int = 401) -> None:
        self.kube = kube
        self.unauthenticated = unauthenticated
        self.calls: list[tuple[str, bool]] = []

    def password(self) -> str:
        secret = self.kube.get("v1", "Secret", "mlflow-auth", NS)
        return base64.b64decode(secret["data"]["admin-password"]).decode()

    def __call__(
        self, url: str, *, auth: tuple[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[int, str]:
        self.calls.append((url, auth is not None))
        if url.endswith("/health"):
            return 200, "OK"
        if auth is None:
            return self.unauthenticated, "You are not authenticated."
        return (200, "{}") if auth == ("admin", self.password()) else (401, "bad credentials")


def everything_printed(ctx: Context, *results: Any) -> str:
    """Every place a secret could leak to: progress, results, rendered files, logs."""
    texts = [json.dumps(ctx.reporter.events), *(json.dumps(r, default=str) for r in results)]
    for path in paths.cluster_dir(ctx.cluster).rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_install_creates_the_private_server_waits_for_it_and_checks_health_through_the_service_proxy(cluster):
    ctx = make_ctx(cluster)
    result = mlflow.install(ctx)
    assert cluster.get("v1", "Namespace", NS)
    assert (
        cluster.get("v1", "ServiceAccount", "mlflow", NS)["metadata"]["annotations"][
            "eks.amazonaws.com/role-arn"
        ]
        == f"arn:aws:iam::{ACCOUNT}:role/kservectl/kservectl-kservectl-mlflow"
    )
    assert cluster.get("v1", "PersistentVolumeClaim", "mlflow-data", NS)["status"]["phase"] == "Bound"
    assert cluster.get("v1", "Service", "mlflow", NS)["spec"]["type"] == "ClusterIP"
    dep = cluster.get("apps/v1", "Deployment", "mlflow", NS)
    assert arg(dep["spec"]["template"]["spec"]["containers"][0]["args"], "--artifacts-destination") == (
        f"s3://kservectl-kservectl-{ACCOUNT}-us-west-2/mlflow-artifacts"
    )
    assert cluster.find("v1", "Secret", "mlflow-auth", NS) is None  # no auth when private
    assert [c["action"] for c in result["changes"]] == ["created"] * 5
    assert result["health"].startswith("GET /health through the API service proxy answered 200")
    assert result["tracking_uri"] == "http://localhost:5000" and result["public_url"] is None
    assert result["port_forward"].endswith("--namespace mlflow port-forward service/mlflow 5000:5000")
    assert "mlflow: MLflow is ready: http://localhost:5000 after `kubectl" in "\n".join(
        ctx.reporter.messages("step")
    )
    written = paths.cluster_dir("kservectl") / "rendered" / "mlflow" / "mlflow.yaml"
    assert "kind: Deployment" in written.read_text()


def test_a_second_install_writes_nothing_to_the_cluster_and_makes_no_mutating_aws_call(cluster):
    from kservectl.aws import is_mutating

    mlflow.install(make_ctx(cluster))
    version = cluster.emulator.resource_version
    ctx = make_ctx(cluster)
    calls: list[str] = []
    ctx.aws.observers.append(lambda service, op: calls.append(op))
    again = mlflow.install(ctx)
    assert {c["action"] for c in again["changes"]} == {"unchanged"}
    assert cluster.emulator.resource_version == version  # not a single write
    assert calls == ["GetCallerIdentity"] and not any(is_mutating(op) for op in calls)


def test_dry_run_on_an_empty_cluster_lists_what_would_be_created_and_writes_nothing(cluster):
    version = cluster.emulator.resource_version
    ctx = make_ctx(cluster, PUBLIC, dry_run=True)
    result = mlflow.install(ctx)
    assert cluster.emulator.resource_version == version
    actions = {c["object"]: c["action"] for c in result["changes"]}
    assert actions["Namespace mlflow"] == "would create"
    assert actions["Deployment mlflow/mlflow"] == "would create"
    assert actions[
        "Secret mlflow/mlflow-auth (admin password and Flask secret key generated at install)"
    ] == ("would create")
    assert "health" not in result and result["dry_run"] is True
    assert not (paths.cluster_dir("kservectl") / "rendered").exists()


def test_dry_run_after_a_config_change_names_only_what_would_change(cluster):
    mlflow.install(make_ctx(cluster))
    version = cluster.emulator.resource_version
    newer = Config(
        versions=VersionsSection(mlflow_image="ghcr.io/mlflow/mlflow:v3.17.2-full"),
        mlflow=MlflowSection(pvc_size="20Gi"),
    )
    result = mlflow.install(make_ctx(cluster, newer, dry_run=True))
    changed = {c["object"]: c["action"] for c in result["changes"] if c["action"] != "unchanged"}
    assert changed == {
        "Deployment mlflow/mlflow": "would change",
        "PersistentVolumeClaim mlflow/mlflow-data (grows 10Gi -> 20Gi)": "would change",
    }
    assert cluster.emulator.resource_version == version


def test_a_public_install_waits_for_the_nlb_allows_its_hostname_and_proves_auth_through_it(cluster):
    ctx = make_ctx(cluster, PUBLIC)
    lb = FakeLoadBalancer(cluster)
    result = mlflow.install(ctx, http=lb)
    svc = cluster.get("v1", "Service", "mlflow", NS)
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["loadBalancerSourceRanges"] == [
        "203.0.113.0/24"
    ]
    args = cluster.get("apps/v1", "Deployment", "mlflow", NS)["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert f"{LB_HOST}:5000" in arg(args, "--allowed-hosts").split(",")
    assert args[-2:] == ["--app-name", "basic-auth"]
    assert lb.calls == [
        (f"http://{LB_HOST}:5000/health", False),
        (f"http://{LB_HOST}:5000{mlflow.API_PROBE}", False),
        (f"http://{LB_HOST}:5000{mlflow.API_PROBE}", True),
    ]
    assert result["health"] == (
        f"http://{LB_HOST}:5000: /health 200, API 401 without credentials and 200 as admin"
    )
    assert result["tracking_uri"] == f"http://{LB_HOST}:5000"
    # the Deployment was created once, already knowing the hostname
    assert cluster.get("apps/v1", "Deployment", "mlflow", NS)["metadata"]["generation"] == 1
    password = lb.password()
    assert len(password) >= 32
    assert password not in everything_printed(ctx, result)
    assert (
        password not in (paths.cluster_dir("kservectl") / "rendered" / "mlflow" / "mlflow.yaml").read_text()
    )


def test_the_auth_secret_is_generated_once_and_reused_by_every_later_install(cluster):
    mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    first = cluster.get("v1", "Secret", "mlflow-auth", NS)["data"]
    version = cluster.emulator.resource_version
    again = mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    assert cluster.get("v1", "Secret", "mlflow-auth", NS)["data"] == first
    assert {c["action"] for c in again["changes"]} == {"unchanged"}
    assert cluster.emulator.resource_version == version


def test_a_public_server_that_answers_without_credentials_is_an_error_that_says_what_to_do(cluster):
    ctx = make_ctx(cluster, PUBLIC)
    lb = FakeLoadBalancer(cluster, unauthenticated=200)
    with pytest.raises(KservectlError) as info:
        mlflow.install(ctx, http=lb)
    message = info.value.one_line()
    assert (
        "answered 200 to a request without credentials (expected 401): basic auth is not in force" in message
    )
    assert "kservectl mlflow install --private" in message
    assert lb.password() not in message + everything_printed(ctx)


def test_going_public_and_back_replaces_the_service_and_the_deployment_and_keeps_the_data(cluster):
    mlflow.install(make_ctx(cluster))
    pvc_uid = cluster.get("v1", "PersistentVolumeClaim", "mlflow-data", NS)["metadata"]["uid"]
    public = mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    replaced = [c["object"] for c in public["changes"] if c["action"] == "deleted"]
    assert replaced == [
        "Service mlflow/mlflow (exposure changes to LoadBalancer: deleted, re-created next)",
        "Deployment mlflow/mlflow (basic auth is turned on: deleted, re-created next)",
    ]
    assert cluster.get("v1", "Service", "mlflow", NS)["spec"]["type"] == "LoadBalancer"
    private = mlflow.install(make_ctx(cluster))
    dep = cluster.get("apps/v1", "Deployment", "mlflow", NS)
    assert "initContainers" not in dep["spec"]["template"]["spec"]
    assert "--app-name" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cluster.get("v1", "Service", "mlflow", NS)["spec"]["type"] == "ClusterIP"
    assert cluster.find("v1", "ConfigMap", "mlflow-auth-config", NS) is None
    assert {"object": "ConfigMap mlflow/mlflow-auth-config (no longer used)", "action": "deleted"} in private[
        "changes"
    ]
    # what was NOT deleted: the data, and the Secret that matches the user store on it
    assert cluster.get("v1", "PersistentVolumeClaim", "mlflow-data", NS)["metadata"]["uid"] == pvc_uid
    assert cluster.find("v1", "Secret", "mlflow-auth", NS) is not None


def test_an_external_database_uri_goes_into_a_secret_and_a_new_uri_restarts_the_pod(cluster):
    ctx = make_ctx(cluster, EXTERNAL_DB)
    result = mlflow.install(ctx)
    secret = cluster.get("v1", "Secret", "mlflow-backend-store", NS)
    assert base64.b64decode(secret["data"]["database-uri"]).decode() == DB_URI
    assert cluster.find("v1", "PersistentVolumeClaim", "mlflow-data", NS) is None
    assert DB_URI not in everything_printed(ctx, result) and "Db-Passw0rd" not in everything_printed(
        ctx, result
    )
    moved = DB_URI.replace("db.example.internal", "db2.example.internal")
    ctx2 = make_ctx(cluster, Config(mlflow=MlflowSection(database_uri=moved)))
    again = mlflow.install(ctx2)
    assert {
        "object": "Deployment mlflow/mlflow (restarted: the database URI changed)",
        "action": "changed",
    } in (again["changes"])
    dep = cluster.get("apps/v1", "Deployment", "mlflow", NS)
    assert "kservectl.io/restarted-at" in dep["spec"]["template"]["metadata"]["annotations"]
    assert moved not in everything_printed(ctx2, again)


# -- waits that time out: they say what is still pending ----------------------------------------------
def test_a_pvc_that_never_binds_times_out_naming_it_with_its_events(kube, mock_aws):
    kube.ensure_namespace(NS)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "mlflow-data.1", "namespace": NS},
            "involvedObject": {"kind": "PersistentVolumeClaim", "name": "mlflow-data", "namespace": NS},
            "type": "Normal",
            "reason": "WaitForFirstConsumer",
            "message": "waiting for first consumer to be created before binding",
        }
    )
    ctx = make_ctx(kube, settings=SHORT, clock=FakeClock(), watch=False)
    with pytest.raises(WaitTimeout) as info:
        mlflow.install(ctx)
    assert info.value.one_line() == (
        "timed out after 30s waiting for PersistentVolumeClaim mlflow/mlflow-data to be Bound: "
        "PersistentVolumeClaim mlflow/mlflow-data: no phase yet; event Normal WaitForFirstConsumer: "
        "waiting for first consumer to be created before binding"
    )


def test_a_deployment_that_never_becomes_available_times_out_naming_its_replicas(kube, mock_aws):
    bind_pvcs(kube, delay_s=0)
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "mlflow-data", "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "gp3",
                "resources": {"requests": {"storage": "10Gi"}},
            },
            "status": {"phase": "Bound"},
        }
    )
    ctx = make_ctx(kube, settings=SHORT, clock=FakeClock(), watch=False)
    with pytest.raises(WaitTimeout) as info:
        mlflow.install(ctx)
    assert info.value.one_line() == (
        "timed out after 30s waiting for Deployment mlflow/mlflow to be Available: "
        "Deployment mlflow/mlflow: 0/1 replicas available"
    )


def test_a_load_balancer_without_a_hostname_times_out_before_the_deployment_is_made(kube, mock_aws):
    ctx = make_ctx(kube, PUBLIC, settings=SHORT, clock=FakeClock(), watch=False)
    with pytest.raises(WaitTimeout) as info:
        mlflow.install(ctx)
    assert info.value.one_line() == (
        "timed out after 30s waiting for the load balancer of Service mlflow/mlflow: "
        "Service mlflow/mlflow: no load balancer address yet"
    )
    assert kube.find("apps/v1", "Deployment", "mlflow", NS) is None
    password = base64.b64decode(
        kube.get("v1", "Secret", "mlflow-auth", NS)["data"]["admin-password"]
    ).decode()
    assert password not in info.value.one_line() + everything_printed(ctx)


def test_a_server_that_never_answers_health_times_out_with_its_last_answer(kube, mock_aws):
    kube.simulate_deployment_rollout(delay_s=0)
    bind_pvcs(kube, delay_s=0)
    serve_health(kube, 503, b'no endpoints available for service "mlflow"')
    ctx = make_ctx(kube, settings=FAST.with_(waits=replace(FAST.waits, http_ready=1.0)))
    with pytest.raises(WaitTimeout) as info:
        mlflow.install(ctx)
    assert info.value.one_line().startswith(
        "timed out after 1s waiting for MLflow in mlflow to answer /health (API service proxy): "
        "GET /health through the API service proxy answered 503"
    )


def test_a_public_server_whose_nlb_never_answers_times_out_naming_the_hostname(cluster):
    ctx = make_ctx(
        cluster, PUBLIC, settings=FAST.with_(waits=replace(FAST.waits, load_balancer_reachable=0.3))
    )

    def unreachable(url: str, *, auth=None, timeout: float = 10.0) -> tuple[int, str]:
        return 0, "ConnectError: [Errno -2] Name or service not known"

    with pytest.raises(WaitTimeout) as info:
        mlflow.install(ctx, http=unreachable)
    assert info.value.one_line() == (
        f"timed out after 0.3s waiting for MLflow to answer through {LB_HOST}: "
        f"GET http://{LB_HOST}:5000/health answered ConnectError: [Errno -2] Name or service not known"
    )


# -- uninstall ------------------------------------------------------------------------------------------
def test_uninstall_removes_the_server_but_keeps_the_pvc_the_auth_secret_and_the_namespace(cluster):
    mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    ctx = make_ctx(cluster, PUBLIC)
    result = mlflow.uninstall(ctx)
    assert result["deleted"] == [
        "Deployment mlflow/mlflow",
        "Service mlflow/mlflow",
        "ConfigMap mlflow/mlflow-auth-config",
        "ServiceAccount mlflow/mlflow",
    ]
    for kind, name in (
        ("Deployment", "mlflow"),
        ("Service", "mlflow"),
        ("ConfigMap", "mlflow-auth-config"),
        ("ServiceAccount", "mlflow"),
    ):
        assert cluster.find("apps/v1" if kind == "Deployment" else "v1", kind, name, NS) is None
    # what was NOT deleted
    assert cluster.find("v1", "PersistentVolumeClaim", "mlflow-data", NS) is not None
    assert cluster.find("v1", "Secret", "mlflow-auth", NS) is not None
    assert cluster.find("v1", "Namespace", NS) is not None
    assert result["kept"] == [
        "PersistentVolumeClaim mlflow/mlflow-data",
        "Secret mlflow/mlflow-auth",
        "Namespace mlflow",
        "MLflow's artifacts in the S3 bucket (owned by `kservectl storage`)",
    ]
    assert ctx._aws is None  # no AWS call at all: without --delete-data the bucket is never touched


def test_uninstall_waits_for_the_load_balancer_controller_to_release_the_service(cluster):
    mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    cluster.patch("v1", "Service", "mlflow", NS, {"metadata": {"finalizers": ["service.k8s.aws/resources"]}})
    released = threading.Event()

    def release() -> None:  # the LBC deletes the NLB, then removes its finalizer
        time.sleep(0.5)
        cluster.patch("v1", "Service", "mlflow", NS, {"metadata": {"finalizers": None}})
        released.set()

    threading.Thread(target=release, daemon=True).start()
    mlflow.uninstall(make_ctx(cluster, PUBLIC))
    assert released.is_set()
    assert cluster.find("v1", "Service", "mlflow", NS) is None


def test_uninstall_with_delete_data_removes_the_pvc_the_secrets_and_the_namespace(cluster):
    mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    ctx = make_ctx(cluster, PUBLIC)
    result = mlflow.uninstall(ctx, delete_data=True)  # as the cluster teardown calls it
    assert result["deleted"][-3:] == [
        "Secret mlflow/mlflow-auth",
        "PersistentVolumeClaim mlflow/mlflow-data",
        "Namespace mlflow",
    ]
    namespace = cluster.find("v1", "Namespace", NS)  # terminating until the namespace controller finishes
    assert namespace is None or namespace["metadata"].get("deletionTimestamp")
    assert cluster.find("v1", "PersistentVolumeClaim", "mlflow-data", NS) is None
    # the artifacts are the storage step's business in a teardown: no S3 call without delete_artifacts
    assert result["kept"] == ["MLflow's artifacts in the S3 bucket (owned by `kservectl storage`)"]
    assert ctx._aws is None


def test_delete_artifacts_with_no_bucket_finds_nothing_to_delete(cluster):
    mlflow.install(make_ctx(cluster))
    result = mlflow.uninstall(make_ctx(cluster), delete_data=True, delete_artifacts=True)
    assert f"S3 bucket {BUCKET} (no MLflow artifacts to delete)" in result["not_found"]
    assert result["kept"] == [
        f"the S3 bucket {BUCKET} itself and everything outside mlflow-artifacts/ (owned by `kservectl storage`; "
        "`kservectl storage delete --delete-data --yes` or `kservectl cleanup --delete-data` removes it)"]


def artifact_bucket(tags: dict[str, str] | None) -> Any:
    """The storage phase's versioned bucket with MLflow artifacts (two versions of one object and a
    delete marker) and things that are not MLflow's: a served model, a key that only starts like the
    prefix, and a file at the top."""
    import boto3

    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    if tags is not None:
        s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    for key in ("mlflow-artifacts/1/models/m-1/artifacts/MLmodel", "mlflow-artifacts/1/models/m-1/artifacts/MLmodel",
                "mlflow-artifacts/1/run/metrics.json", "mlflow-artifacts/2/gone.txt",
                "models/wine/MLmodel", "mlflow-artifacts-backup/MLmodel", "README.txt"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="mlflow-artifacts/2/gone.txt")  # leaves a delete marker
    return s3


def versions(s3: Any) -> list[str]:
    page = s3.list_object_versions(Bucket=BUCKET)
    return sorted(v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", []))


def test_uninstall_with_delete_data_deletes_mlflows_artifacts_only_under_its_prefix(cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl", "kservectl.io/component": "storage"})
    mlflow.install(make_ctx(cluster))
    ctx = make_ctx(cluster)
    result = mlflow.uninstall(ctx, delete_data=True, delete_artifacts=True)
    assert f"MLflow artifacts under s3://{BUCKET}/mlflow-artifacts/ (5 object versions)" in result["deleted"]
    # what was NOT deleted: the bucket, a served model, keys outside the prefix (even one that starts alike)
    assert versions(s3) == ["README.txt", "mlflow-artifacts-backup/MLmodel", "models/wine/MLmodel"]
    assert s3.head_bucket(Bucket=BUCKET)
    assert result["kept"] == [
        f"the S3 bucket {BUCKET} itself and everything outside mlflow-artifacts/ (owned by `kservectl storage`; "
        "`kservectl storage delete --delete-data --yes` or `kservectl cleanup --delete-data` removes it)"]
    assert cluster.find("v1", "PersistentVolumeClaim", "mlflow-data", NS) is None


def test_a_dry_run_with_delete_data_counts_the_artifacts_and_deletes_nothing(cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    before = versions(s3)
    ctx = make_ctx(cluster, dry_run=True)
    calls: list[str] = []
    ctx.aws.observers.append(lambda service, op: calls.append(op))
    result = mlflow.uninstall(ctx, delete_data=True, delete_artifacts=True)
    assert f"MLflow artifacts under s3://{BUCKET}/mlflow-artifacts/ (5 object versions)" in result["deleted"]
    assert versions(s3) == before
    from kservectl.aws import is_mutating

    assert [op for op in calls if is_mutating(op)] == []


@pytest.mark.parametrize(("tags", "why"), [
    (None, f"S3 bucket {BUCKET} exists but has no kservectl.io/cluster tag: kservectl did not create it"),
    ({"kservectl.io/cluster": "other"},
     f"S3 bucket {BUCKET} belongs to cluster 'other' (kservectl.io/cluster=other), not 'kservectl'"),
])
def test_delete_data_refuses_a_bucket_without_this_clusters_tag_and_deletes_nothing(cluster, tags, why):
    s3 = artifact_bucket(tags)
    mlflow.install(make_ctx(cluster))
    before = versions(s3)
    with pytest.raises(KservectlError) as info:
        mlflow.uninstall(make_ctx(cluster), delete_data=True, delete_artifacts=True)
    assert info.value.one_line() == (
        f"refusing to delete MLflow's artifacts: {why} (nothing was deleted; kservectl deletes artifacts only in "
        "a bucket tagged kservectl.io/cluster=kservectl (or run without --delete-data))")
    assert versions(s3) == before
    assert cluster.find("apps/v1", "Deployment", "mlflow", NS) is not None  # checked before anything went
    assert cluster.find("v1", "PersistentVolumeClaim", "mlflow-data", NS) is not None


def test_without_delete_data_the_artifacts_stay_and_the_output_says_so(cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    before = versions(s3)
    ctx = make_ctx(cluster)
    result = mlflow.uninstall(ctx)
    assert versions(s3) == before
    assert "MLflow's artifacts in the S3 bucket (owned by `kservectl storage`)" in result["kept"]
    assert "PersistentVolumeClaim mlflow/mlflow-data" in result["kept"]
    [info] = [m for m in ctx.reporter.messages("info") if m.startswith("kept ")]
    assert "`--delete-data --yes` removes them" in info


ARTIFACT = f"s3://{BUCKET}/mlflow-artifacts/1/models/m-1/artifacts"
OUTSIDE = (["README.txt", "mlflow-artifacts-backup/MLmodel", "models/wine/MLmodel"])


def live_service(kube, name: str, storage_uri: str, previous: str | None = None) -> None:
    """An InferenceService in the models namespace as `kservectl serve deploy` writes it."""
    from kservectl.phases import serve

    ctx = Context(config=Config())
    spec = serve.spec_from_config(ctx, name=name, model_uri=storage_uri, storage_uri=storage_uri,
                                  previous_model_uri=previous)
    kube.ensure_namespace("models")
    kube.create(serve.document(spec))


def test_delete_data_refuses_while_a_live_service_loads_its_model_from_mlflows_artifacts_and_deletes_nothing(
        cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    live_service(cluster, "wine", ARTIFACT)
    live_service(cluster, "elsewhere", f"s3://{BUCKET}/models/wine")
    live_service(cluster, "canary", f"s3://{BUCKET}/models/wine-2", previous=f"{ARTIFACT}/")
    before = versions(s3)
    with pytest.raises(UsageError) as info:
        mlflow.uninstall(make_ctx(cluster), delete_data=True, delete_artifacts=True)
    assert info.value.exit_code == 2
    assert info.value.one_line() == (
        f"refusing to delete MLflow's artifacts under s3://{BUCKET}/mlflow-artifacts/: InferenceServices in "
        f"namespace models load models from there: canary (previous model {ARTIFACT}/); wine (storageUri "
        f"{ARTIFACT}) (nothing was deleted; delete them first with `kservectl serve delete NAME`, or run "
        "without --delete-data to keep the data)")
    # nothing was deleted, in S3 or in the cluster
    assert versions(s3) == before
    assert cluster.find("apps/v1", "Deployment", "mlflow", NS) is not None
    assert cluster.find("v1", "PersistentVolumeClaim", "mlflow-data", NS) is not None


@pytest.mark.parametrize("previous", [
    f"s3://{BUCKET}/mlflow-artifacts/1/models/m-0/artifacts",  # a canary's stable model, a rollback target
    "models:/wine/1",  # resolved through this MLflow: its files are in MLflow's artifacts
])
def test_a_previous_model_kept_for_a_rollback_blocks_the_deletion_too(cluster, previous):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    live_service(cluster, "wine", f"s3://{BUCKET}/models/wine-2", previous=previous)
    before = versions(s3)
    ctx = make_ctx(cluster, dry_run=True)  # a dry run says so too
    with pytest.raises(UsageError) as info:
        mlflow.uninstall(ctx, delete_data=True, delete_artifacts=True)
    assert f"loads its model from there: wine (previous model {previous}) (nothing was deleted" in info.value.one_line()
    assert versions(s3) == before


def test_services_whose_models_live_elsewhere_do_not_block_the_deletion_and_stay(cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    live_service(cluster, "outside", f"s3://{BUCKET}/models/wine")
    live_service(cluster, "alike", f"s3://{BUCKET}/mlflow-artifacts-backup", previous=f"s3://other/{ARTIFACT[5:]}")
    result = mlflow.uninstall(make_ctx(cluster), delete_data=True, delete_artifacts=True)
    assert f"MLflow artifacts under s3://{BUCKET}/mlflow-artifacts/ (5 object versions)" in result["deleted"]
    assert versions(s3) == OUTSIDE
    for name in ("outside", "alike"):  # what was NOT deleted
        assert cluster.find("serving.kserve.io/v1beta1", "InferenceService", name, "models") is not None


def test_delete_data_refuses_when_the_inference_services_cannot_be_read_and_deletes_nothing(cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    before = versions(s3)
    cluster.fail_next("list", "serving.kserve.io/v1beta1", "InferenceService", code=403, reason="Forbidden",
                      message="inferenceservices is forbidden")
    with pytest.raises(KubeError) as info:
        mlflow.uninstall(make_ctx(cluster), delete_data=True, delete_artifacts=True)
    assert info.value.one_line() == (
        "refusing to delete MLflow's artifacts: cannot list the InferenceServices in namespace models to check "
        f"that none loads its model from s3://{BUCKET}/mlflow-artifacts/ (GET "
        "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices returned 403: inferenceservices is "
        "forbidden) (nothing was deleted; run again when the cluster answers, or run without --delete-data to "
        "keep the data)")
    assert versions(s3) == before
    assert cluster.find("apps/v1", "Deployment", "mlflow", NS) is not None


def test_artifacts_are_listed_once_the_server_is_gone_so_one_it_wrote_while_stopping_is_deleted_and_counted(
        cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    ctx = make_ctx(cluster)
    kube_delete = ctx.kube.delete

    def delete(ref):  # the server logs one more artifact while it is being stopped
        if ref.kind == "Deployment":
            s3.put_object(Bucket=BUCKET, Key="mlflow-artifacts/3/late.txt", Body=b"x")
        return kube_delete(ref)

    ctx.kube.delete = delete
    result = mlflow.uninstall(ctx, delete_data=True, delete_artifacts=True)
    assert f"MLflow artifacts under s3://{BUCKET}/mlflow-artifacts/ (6 object versions)" in result["deleted"]
    assert versions(s3) == OUTSIDE


def test_the_artifacts_stay_when_the_server_could_not_be_removed(cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    mlflow.install(make_ctx(cluster))
    before = versions(s3)
    cluster.fail_next("delete", "apps/v1", "Deployment", code=500, message="etcd is down")
    with pytest.raises(KservectlError) as info:
        mlflow.uninstall(make_ctx(cluster), delete_data=True, delete_artifacts=True)
    assert (f"MLflow artifacts under s3://{BUCKET}/mlflow-artifacts/: not deleted while the MLflow Deployment "
            "may still write there") in info.value.one_line()
    assert versions(s3) == before


def test_uninstall_dry_run_deletes_nothing_and_a_second_uninstall_finds_nothing(cluster):
    mlflow.install(make_ctx(cluster))
    version = cluster.emulator.resource_version
    dry = mlflow.uninstall(make_ctx(cluster, dry_run=True), delete_data=True)
    assert cluster.emulator.resource_version == version
    assert "PersistentVolumeClaim mlflow/mlflow-data" in dry["deleted"] and dry["dry_run"] is True
    mlflow.uninstall(make_ctx(cluster))
    again = mlflow.uninstall(make_ctx(cluster))
    assert again["deleted"] == [] and "Deployment mlflow/mlflow" in again["not_found"]


# -- status and url ----------------------------------------------------------------------------------------
def test_status_shows_the_deployment_volume_service_health_and_the_tracking_uri_and_no_secret(cluster):
    mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    ctx = make_ctx(cluster, PUBLIC)
    result = mlflow.status(ctx, http=FakeLoadBalancer(cluster))
    assert result["installed"] is True and result["auth"] is True and result["public"] is True
    assert result["deployment"]["available"] is True and result["deployment"]["image_matches_config"] is True
    assert result["deployment"]["backend_store"] == "sqlite on PVC"
    assert result["pvc"] == {"name": "mlflow-data", "phase": "Bound", "size": "10Gi", "storage_class": "gp3"}
    assert result["service"] == {"type": "LoadBalancer", "hostname": LB_HOST}
    assert result["health"]["ok"] is True and result["public_health"]["ok"] is True
    assert result["tracking_uri"] == result["public_url"] == f"http://{LB_HOST}:5000"
    assert result["in_cluster_url"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert FakeLoadBalancer(cluster).password() not in json.dumps(result)


def test_status_of_a_cluster_without_mlflow_says_it_is_not_installed(cluster):
    result = mlflow.status(make_ctx(cluster))
    assert result["installed"] is False and result["pvc"] is None and result["service"] is None


def test_url_offers_the_port_forward_for_a_private_server(cluster):
    mlflow.install(make_ctx(cluster))
    result = mlflow.url(make_ctx(cluster))
    assert result["public_url"] is None and result["auth"] is False
    assert result["port_forward_tracking_uri"] == "http://localhost:5000"
    kubeconfig = paths.kubeconfig_path("kservectl")
    assert result["port_forward"] == (
        f"kubectl --kubeconfig {kubeconfig} --namespace mlflow port-forward service/mlflow 5000:5000"
    )


def test_url_shows_the_admin_password_only_when_asked(cluster):
    mlflow.install(make_ctx(cluster, PUBLIC), http=FakeLoadBalancer(cluster))
    password = FakeLoadBalancer(cluster).password()
    hidden = mlflow.url(make_ctx(cluster, PUBLIC))
    assert hidden["username"] == "admin" and "password" not in hidden and password not in json.dumps(hidden)
    shown = mlflow.url(make_ctx(cluster, PUBLIC), show_password=True)
    assert shown["password"] == password


def test_url_before_install_says_how_to_install(cluster):
    with pytest.raises(KservectlError) as info:
        mlflow.url(make_ctx(cluster))
    assert info.value.one_line() == (
        "MLflow is not installed in cluster kservectl (no Deployment mlflow/mlflow) "
        "(run `kservectl mlflow install`)"
    )


# -- the commands ------------------------------------------------------------------------------------------
@pytest.fixture
def cli_cluster(cluster, monkeypatch):
    """The emulator as the cluster of `kservectl -c kservectl`, and a fake NLB for the HTTP checks."""
    cluster.install_kubeconfig(paths.kubeconfig_path("kservectl"))
    lb = FakeLoadBalancer(cluster)
    monkeypatch.setattr(mlflow, "httpx_get", lb)
    return lb


def test_the_commands_never_print_the_password_unless_url_is_asked_for_it(cli, cli_cluster):
    installed = cli("mlflow", "install", "--public", "-o", "json")
    assert installed.exit_code == 0, installed.stderr
    assert json.loads(installed.stdout)["public_url"] == f"http://{LB_HOST}:5000"
    password = cli_cluster.password()
    status = cli("mlflow", "status", "-o", "json")
    assert status.exit_code == 0 and json.loads(status.stdout)["auth"] is True
    table = cli("mlflow", "status")
    hidden = cli("mlflow", "url")
    assert "kservectl mlflow url --show-password" in hidden.stdout
    for result in (installed, status, table, hidden):
        assert password not in result.stdout + result.stderr
    assert password not in "\n".join(
        p.read_text(errors="replace") for p in paths.home().rglob("*") if p.is_file()
    )
    shown = cli("mlflow", "url", "--show-password")
    assert f"export MLFLOW_TRACKING_PASSWORD={password}" in shown.stdout
    assert f"export MLFLOW_TRACKING_URI=http://{LB_HOST}:5000" in shown.stdout


def test_install_dry_run_prints_the_changes_and_changes_nothing(cli, cli_cluster, cluster):
    version = cluster.emulator.resource_version
    result = cli("mlflow", "install", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "  would create  Deployment mlflow/mlflow" in result.stdout
    assert "(dry run) nothing was changed" in result.stdout
    assert cluster.emulator.resource_version == version


def test_uninstall_delete_data_without_yes_asks_and_with_no_terminal_refuses(cli, cli_cluster, cluster):
    assert cli("mlflow", "install").exit_code == 0
    result = cli("mlflow", "uninstall", "--delete-data")
    assert result.exit_code == 2
    assert "needs confirmation" in result.stderr and "re-run with --yes" in result.stderr
    assert cluster.find("apps/v1", "Deployment", "mlflow", NS) is not None  # nothing was deleted
    done = cli("mlflow", "uninstall", "--delete-data", "--yes")
    assert done.exit_code == 0 and "deleted  PersistentVolumeClaim mlflow/mlflow-data" in done.stdout


def test_uninstall_delete_data_yes_deletes_the_pvc_and_mlflows_artifacts_and_says_the_bucket_stays(
        cli, cli_cluster, cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    assert cli("mlflow", "install").exit_code == 0
    done = cli("mlflow", "uninstall", "--delete-data", "--yes")
    assert done.exit_code == 0, done.stderr
    assert "deleted  PersistentVolumeClaim mlflow/mlflow-data" in done.stdout
    assert f"deleted  MLflow artifacts under s3://{BUCKET}/mlflow-artifacts/ (5 object versions)" in done.stdout
    assert (f"kept  the S3 bucket {BUCKET} itself and everything outside mlflow-artifacts/ (owned by "
            "`kservectl storage`; `kservectl storage delete --delete-data --yes` or `kservectl cleanup "
            "--delete-data` removes it)") in done.stdout
    assert versions(s3) == ["README.txt", "mlflow-artifacts-backup/MLmodel", "models/wine/MLmodel"]


def test_uninstall_delete_data_exits_2_naming_the_service_that_still_loads_from_mlflows_artifacts(
        cli, cli_cluster, cluster):
    s3 = artifact_bucket({"kservectl.io/cluster": "kservectl"})
    assert cli("mlflow", "install").exit_code == 0
    live_service(cluster, "wine", ARTIFACT)
    before = versions(s3)
    for args in (("--yes",), ()):  # without --yes the refusal comes before any question
        result = cli("mlflow", "uninstall", "--delete-data", *args)
        assert result.exit_code == 2
        assert result.stderr.startswith("Error: refusing to delete MLflow's artifacts under ")
        assert f"wine (storageUri {ARTIFACT})" in result.stderr and "`kservectl serve delete NAME`" in result.stderr
    assert versions(s3) == before and cluster.find("apps/v1", "Deployment", "mlflow", NS) is not None


def test_uninstall_without_delete_data_says_what_it_kept(cli, cli_cluster):
    assert cli("mlflow", "install").exit_code == 0
    result = cli("mlflow", "uninstall")
    assert result.exit_code == 0
    assert "kept  PersistentVolumeClaim mlflow/mlflow-data" in result.stdout
    assert "kept  MLflow's artifacts in the S3 bucket (owned by `kservectl storage`)" in result.stdout


def test_a_bad_database_uri_exits_2_naming_the_key_and_not_the_value(cli, monkeypatch, no_network):
    monkeypatch.setenv("KSERVECTL_MLFLOW_DATABASE_URI", "redis://:S3cret-Pass@cache:6379/0")
    result = cli("mlflow", "install")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: mlflow.database_uri='<redacted>' is invalid")
    assert "S3cret" not in result.stdout + result.stderr
    assert no_network == []


# -- the rendered command line, started for real ----------------------------------------------------------
MLFLOW_BIN = Path(sys.executable).parent / "mlflow"
SERVER_START_S = 90.0  # a cold start takes ~15 s alone, far more on a busy machine
# a test with a real server: SERVER_START_S to start, up to 20 s to stop it, and the test's own work
SERVER_TEST_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def substitute(args: list[str], flag: str, value: str) -> None:
    assert flag in args, f"the rendered command line has no {flag}"
    args[args.index(flag) + 1] = value


def local_command(docs: dict[str, Any], workdir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The Deployment's own command, args and literal env, moved onto this machine: sqlite in a
    temporary folder, a local folder instead of S3, a free port on 127.0.0.1, and that address
    added to the rendered --allowed-hosts."""
    c = container(docs)
    assert c["command"] == ["mlflow"]
    args = list(c["args"])
    substitute(args, "--host", "127.0.0.1")
    substitute(args, "--port", str(port))
    if "--backend-store-uri" in args:
        substitute(args, "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db")
    substitute(args, "--artifacts-destination", str(workdir / "artifacts"))
    substitute(args, "--allowed-hosts", arg(args, "--allowed-hosts") + f",127.0.0.1:{port}")
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    env.update(
        {
            "PATH": os.environ["PATH"],
            "HOME": str(workdir),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
    )
    if "PYTHONPATH" in os.environ:  # a developer's extra packages, e.g. mlflow[auth]
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.pop("MLFLOW_AUTH_CONFIG_PATH", None)
    return [str(MLFLOW_BIN), *args], env


@pytest.fixture
def start_mlflow(request) -> Callable[..., Callable[[], str]]:
    """Start `mlflow server` in its own process group; always stopped (with its workers) after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def stop() -> None:
        for proc in procs:
            if proc.poll() is not None:
                continue
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue

    request.addfinalizer(stop)

    def start(argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Callable[[], str]:
        """Launch; returns ``ready()``, which waits for /health and gives the base URL."""
        log = workdir / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        started = time.monotonic()

        def ready() -> str:
            import httpx

            base = f"http://127.0.0.1:{port}"
            while time.monotonic() - started < SERVER_START_S:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        return base
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            pytest.fail(
                f"mlflow server did not answer /health within {SERVER_START_S:g}s:\n{log.read_text()[-3000:]}"
            )

        return ready

    return start


def host_answers(base: str, host: str, auth: tuple[str, str] | None = None) -> int:
    import httpx

    return httpx.get(base + mlflow.API_PROBE, headers={"Host": host}, auth=auth, timeout=60).status_code


@pytest.mark.slow
@pytest.mark.timeout(SERVER_TEST_TIMEOUT_S)
# mlflow.pyfunc warns about its own type hints when first imported (third party, named here)
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
def test_the_rendered_server_command_line_tracks_registers_and_rejects_foreign_host_headers(
    tmp_path, start_mlflow, monkeypatch
):
    docs = rendered(Config()).docs
    port = free_port()
    argv, env = local_command(docs, tmp_path, port)
    ready = start_mlflow(argv, env, tmp_path, port)

    import mlflow as mlflow_sdk  # while the server boots
    from mlflow import MlflowClient
    from sklearn.datasets import load_wine
    from sklearn.tree import DecisionTreeClassifier

    features, labels = load_wine(return_X_y=True, as_frame=True)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, labels)
    base = ready()

    assert host_answers(base, "evil.example.com") == 403
    for host in (
        "mlflow.mlflow.svc.cluster.local:5000",
        "mlflow:5000",
        "localhost:5000",
        f"127.0.0.1:{port}",
    ):
        assert host_answers(base, host) == 200, host

    monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    client = MlflowClient(base)
    experiment = client.create_experiment("kservectl-test")
    with mlflow_sdk.start_run(experiment_id=experiment) as run:
        info = mlflow_sdk.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle", pip_requirements=["scikit-learn"]
        )
    client.create_registered_model("wine")
    version = client.create_model_version(
        "wine", source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id
    )
    assert client.get_model_version("wine", version.version).status == "READY"
    # proxied artifacts land under --artifacts-destination (S3 in the cluster, a folder here)
    download = client.get_model_version_download_uri("wine", version.version)
    assert download.startswith("mlflow-artifacts:/")
    stored = tmp_path / "artifacts" / download.removeprefix("mlflow-artifacts:/").lstrip("/")
    assert (stored / "MLmodel").is_file() and (stored / "model.pkl").is_file()
    assert (tmp_path / "mlflow.db").is_file()


@pytest.mark.slow
@pytest.mark.timeout(SERVER_TEST_TIMEOUT_S)
def test_the_rendered_basic_auth_config_demands_the_generated_admin_password(tmp_path, start_mlflow):
    pytest.importorskip(
        "flask_wtf",
        reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF); "
        "the -full image has it, this virtualenv does not",
    )
    docs = rendered(PUBLIC, LB_HOST).docs
    port = free_port()
    argv, env = local_command(docs, tmp_path, port)
    assert argv[-2:] == ["--app-name", "basic-auth"]
    # the init container's own script, with the ConfigMap's ini (user store moved to tmp_path)
    ini = docs["auth-config"]["data"]["basic_auth.ini"].replace(
        "sqlite:////mlflow/basic_auth.db", f"sqlite:///{tmp_path}/basic_auth.db"
    )
    (tmp_path / "template.ini").write_text(ini)
    creds = mlflow.generate_auth_credentials()
    init = container(docs, "auth-config")
    subprocess.run(
        init["command"],
        check=True,
        timeout=10,
        env={
            "PATH": "/usr/bin:/bin",
            "AUTH_INI_TEMPLATE": str(tmp_path / "template.ini"),
            "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": creds["admin-password"],
        },
    )
    env.update(
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth.ini"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": creds["flask-secret-key"],
        }
    )
    base = start_mlflow(argv, env, tmp_path, port)()
    admin = ("admin", creds["admin-password"])
    assert host_answers(base, f"{LB_HOST}:5000") == 401
    assert host_answers(base, f"{LB_HOST}:5000", auth=("admin", "not-the-password-123")) == 401
    assert host_answers(base, f"{LB_HOST}:5000", auth=admin) == 200
    assert host_answers(base, "evil.example.com", auth=admin) == 403
    assert creds["admin-password"] not in (tmp_path / "server.log").read_text()
