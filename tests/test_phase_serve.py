"""The serve phase against the Kubernetes emulator, the test acting as KServe: deploy and wait
(showing KServe's conditions meanwhile), canary, promote, rollback, scale to zero on a first
deploy, delete; and the rendered InferenceService checked against the real CRD and golden files."""

from __future__ import annotations

import copy
import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kservectl import config as config_mod
from kservectl.context import Context
from kservectl.errors import UsageError, WaitTimeout
from kservectl.events import RecordingReporter
from kservectl.phases import serve
from kservectl.phases.base import LiveValues
from kservectl.settings import DEFAULT_SETTINGS
from support.golden import assert_golden

API = "serving.kserve.io/v1beta1"
V1 = "s3://bkt/mlflow-artifacts/1/models/m-1/artifacts"
V2 = "s3://bkt/mlflow-artifacts/1/models/m-2/artifacts"
V3 = "s3://bkt/mlflow-artifacts/1/models/m-3/artifacts"


class FakeKServe:
    """Acts as KServe's controller (Knative mode, Kourier) for InferenceServices: for every new
    generation it makes a revision when the model changed, splits traffic by
    ``canaryTrafficPercent`` between the latest and the rolled-out revision, and reports Ready
    after ``delay_s`` (first reporting PredictorReady=False when ``not_ready_first``)."""

    def __init__(self, kube, *, delay_s: float = 0.1, not_ready_first: bool = False,
                 domain: str = "example.com"):
        self.kube, self.delay_s, self.not_ready_first, self.domain = kube, delay_s, not_ready_first, domain
        self.revisions: dict[str, list[tuple[str, str]]] = {}
        self.rolled_out: dict[str, str] = {}
        self.previous: dict[str, str] = {}
        self.errors: list[BaseException] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="fake-kserve", daemon=True)
        self._thread.start()
        kube.emulator.add_listener(self._on_event)

    def _on_event(self, event) -> None:  # on the emulator's loop: never block
        if event.resource.plural != "inferenceservices" or event.type == "DELETED":
            return
        obj = event.object
        if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"].get("generation"):
            self._queue.put(copy.deepcopy(obj))

    def _work(self) -> None:
        while (obj := self._queue.get()) is not None:
            try:
                time.sleep(self.delay_s)
                self.reconcile(obj["metadata"]["name"], obj["metadata"]["namespace"])
            except BaseException as exc:  # surfaced by close()
                self.errors.append(exc)

    def reconcile(self, name: str, namespace: str) -> None:
        isvc = self.kube.find(API, "InferenceService", name, namespace)
        if isvc is None:
            return
        generation = isvc["metadata"]["generation"]
        if (isvc.get("status") or {}).get("observedGeneration") == generation:
            return
        predictor = isvc["spec"]["predictor"]
        revisions = self.revisions.setdefault(name, [])
        storage = predictor["model"]["storageUri"]
        if not revisions or revisions[-1][1] != storage:
            revisions.append((f"{name}-predictor-{len(revisions) + 1:05d}", storage))
        latest = revisions[-1][0]
        # as KServe's ksvc reconciler: a canary splits the latest revision and the last rolled-out
        # one ("prev"); without canaryTrafficPercent the latest revision is rolled out at 100%
        stable = self.rolled_out.get(name)
        percent = predictor.get("canaryTrafficPercent")
        if percent is None or stable is None:
            if stable is not None and stable != latest:
                self.previous[name] = stable
            self.rolled_out[name] = latest
            traffic = [{"revisionName": latest, "percent": 100, "latestRevision": True}]
        else:
            traffic = [{"latestRevision": True, "percent": percent, "revisionName": latest}]
            if percent < 100:
                traffic.append({"revisionName": stable, "percent": 100 - percent, "latestRevision": False,
                                "tag": "prev"})
        host = f"{name}-predictor.{namespace}"
        if self.not_ready_first:
            self.kube.patch_status(API, "InferenceService", name, namespace, {"conditions": [
                {"type": "PredictorReady", "status": "False", "reason": "RevisionMissing",
                 "message": f"Configuration {name}-predictor is waiting for a Revision to become ready."},
                {"type": "Ready", "status": "False", "reason": "RevisionMissing"}]})
            time.sleep(self.delay_s)
        self.kube.patch_status(API, "InferenceService", name, namespace, {
            "observedGeneration": generation,
            "url": f"http://{host}.{self.domain}",
            "address": {"url": f"http://{host}.svc.cluster.local"},
            "conditions": [{"type": t, "status": "True"}
                           for t in ("IngressReady", "PredictorReady", "Ready")],
            "components": {"predictor": {
                "url": f"http://{host}.{self.domain}",
                "latestCreatedRevision": latest, "latestReadyRevision": latest,
                "latestRolledoutRevision": self.rolled_out[name],
                "previousRolledoutRevision": self.previous.get(name),
                "traffic": traffic}},
        })

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        if self.errors:
            raise self.errors[0]


def make_ctx(kube, **flags: Any) -> Context:
    loaded = config_mod.load(env={}, flags=flags)
    waits = dataclasses.replace(DEFAULT_SETTINGS.waits, inference_service_ready=15.0, watch_chunk=1.0,
                                poll_interval=0.1)
    return Context(config=loaded.config, settings=DEFAULT_SETTINGS.with_(waits=waits),
                   reporter=RecordingReporter(), kubeconfig=kube.kubeconfig, command="serve test")


@pytest.fixture
def cluster(kube) -> Iterator[Any]:
    for ns in ("models", "mlflow", "kourier-system"):
        kube.ensure_namespace(ns)
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "kservectl-model-server", "namespace": "models"}})
    yield kube


@pytest.fixture
def kserve(cluster) -> Iterator[FakeKServe]:
    controller = FakeKServe(cluster)
    yield controller
    controller.close()


def isvc(kube, name: str = "wine") -> dict[str, Any]:
    return kube.get(API, "InferenceService", name, "models")


def doc_of(spec: serve.ServeSpec) -> dict[str, Any]:
    return yaml.safe_load(serve.render(spec))


# -- rendering -------------------------------------------------------------------------------------
def test_plan_renders_the_example_with_a_marked_placeholder_that_still_validates(schema_validator, tmp_path):
    ctx = Context(config=config_mod.load(env={}).config)

    plan = serve.plan(ctx, LiveValues(), tmp_path)

    text = plan.files["wine-inferenceservice.yaml"]
    assert_golden("serve/plan-example.yaml", text)
    schema_validator.assert_all_valid(text)
    doc = yaml.safe_load(text)
    assert doc["spec"]["predictor"]["model"]["storageUri"] == (
        "s3://<artifact-bucket>/mlflow-artifacts/<experiment-id>/models/<model-id>/artifacts")
    assert "# PLAN ONLY: storageUri below is a placeholder" in text
    assert doc["metadata"]["annotations"]["kservectl.io/model-uri"] == "models:/wine/<latest-version>"
    assert [s.kind for s in plan.steps] == ["http", "http", "http", "kube", "kube"]
    assert plan.steps[0].describe().startswith("will train the example wine classifier")


def test_a_canary_with_several_replicas_spreads_over_zones_and_nodes(schema_validator):
    ctx = Context(config=config_mod.load(env={}, flags={"model.max_replicas": 4}).config)
    spec = serve.spec_from_config(ctx, name="wine", model_uri="models:/wine/2", storage_uri=V2,
                                  service_account="kservectl-model-server", canary_percent=10,
                                  previous_model_uri="models:/wine/1")

    text = serve.render(spec)

    assert_golden("serve/canary.yaml", text)
    schema_validator.assert_all_valid(text)
    predictor = yaml.safe_load(text)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert [c["topologyKey"] for c in predictor["topologySpreadConstraints"]] == [
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert predictor["topologySpreadConstraints"][0]["labelSelector"] == {
        "matchLabels": {"serving.kserve.io/inferenceservice": "wine"}}
    assert predictor["model"] == {
        "modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "runtime": "kserve-mlserver",
        "storageUri": V2,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}}


def test_a_single_replica_in_standard_mode_has_no_spread_and_says_its_mode(schema_validator):
    flags = {"kserve.mode": "standard", "model.max_replicas": 1, "model.cpu": "500m", "model.memory": "1Gi",
             "model.scale_metric": "cpu", "model.scale_target": 70}
    ctx = Context(config=config_mod.load(env={}, flags=flags).config)
    spec = serve.spec_from_config(ctx, name="wine", model_uri=V1, storage_uri=V1, service_account="sa")

    text = serve.render(spec)

    assert_golden("serve/standard-single.yaml", text)
    schema_validator.assert_all_valid(text)
    doc = yaml.safe_load(text)
    assert "topologySpreadConstraints" not in doc["spec"]["predictor"]
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert (doc["spec"]["predictor"]["scaleMetric"], doc["spec"]["predictor"]["scaleTarget"]) == ("cpu", 70)


def test_plan_of_a_scale_to_zero_model_starts_at_one_replica_and_says_it_lowers_later(tmp_path):
    flags = {"model.min_replicas": 0, "model.uri": V1, "storage.bucket": "my-bucket"}
    ctx = Context(config=config_mod.load(env={}, flags=flags).config)

    plan = serve.plan(ctx, LiveValues(), tmp_path)

    doc = yaml.safe_load(plan.files["wine-inferenceservice.yaml"])
    assert doc["spec"]["predictor"]["minReplicas"] == 1
    assert doc["spec"]["predictor"]["model"]["storageUri"] == V1  # an s3:// model needs no placeholder
    assert "PLAN ONLY" not in plan.files["wine-inferenceservice.yaml"]
    assert plan.steps[-1].describe().startswith("will then set minReplicas 0 (scale to zero)")


# -- deploy and wait -------------------------------------------------------------------------------
def test_deploy_creates_the_service_and_waits_showing_kserves_conditions(cluster):
    controller = FakeKServe(cluster, delay_s=0.3, not_ready_first=True)
    ctx = make_ctx(cluster)
    try:
        result = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    finally:
        controller.close()

    assert result["action"] == "created"
    service = result["service"]
    assert service["ready"] is True
    assert service["url"] == "http://wine-predictor.models.example.com"
    assert service["traffic"] == [
        {"revision": "wine-predictor-00001", "percent": 100, "latest": True, "tag": None}]
    waiting = ctx.reporter.messages("waiting")
    assert any("PredictorReady=False (RevisionMissing: Configuration wine-predictor is waiting for a Revision"
               in w for w in waiting), waiting
    assert isvc(cluster)["spec"]["predictor"]["serviceAccountName"] == "kservectl-model-server"


def test_a_second_identical_deploy_changes_nothing(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    before = isvc(cluster)["metadata"]

    again = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    assert again["action"] == "unchanged"
    after = isvc(cluster)["metadata"]
    assert after["generation"] == before["generation"]
    assert after["resourceVersion"] == before["resourceVersion"]


def test_a_deploy_that_never_turns_ready_times_out_naming_what_is_pending(cluster):
    ctx = make_ctx(cluster)
    waits = dataclasses.replace(ctx.settings.waits, inference_service_ready=1.0)
    ctx.settings = ctx.settings.with_(waits=waits)

    with pytest.raises(WaitTimeout) as err:
        serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    assert err.value.message.startswith("timed out after 1s waiting for InferenceService models/wine to be "
                                        "Ready: "
                                        "no conditions reported yet")


def test_a_dry_run_deploy_renders_and_creates_nothing(cluster):
    ctx = make_ctx(cluster)
    ctx.dry_run = True

    result = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    assert result["action"] == "would create"
    assert "storageUri: \"s3://bkt/mlflow-artifacts/1/models/m-1/artifacts\"" in result["rendered"]
    assert cluster.find(API, "InferenceService", "wine", "models") is None


def test_scale_to_zero_starts_a_new_service_at_one_replica_then_lowers_it(cluster, kserve):
    ctx = make_ctx(cluster, **{"model.min_replicas": 0})

    result = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    assert isvc(cluster)["spec"]["predictor"]["minReplicas"] == 0
    assert result["notes"] == [
        "first deploy: started with minReplicas 1; scale to zero enabled after the first Ready"]
    assert result["service"]["min_replicas"] == 0


def test_scale_to_zero_without_waiting_keeps_one_replica_and_says_so(cluster, kserve):
    ctx = make_ctx(cluster, **{"model.min_replicas": 0})

    result = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False, wait=False)

    assert isvc(cluster)["spec"]["predictor"]["minReplicas"] == 1
    assert result["notes"] == [
        "minReplicas is 1 until the service is Ready; re-run deploy to enable scale to zero"]


# -- canary ----------------------------------------------------------------------------------------
def test_canary_then_promote_moves_all_traffic_to_the_new_revision(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", model=None, storage_uri=V1, check_versions=False)

    canary = serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=20, check_versions=False)

    assert canary["action"] == "changed"
    assert canary["service"]["traffic"] == [
        {"revision": "wine-predictor-00002", "percent": 20, "latest": True, "tag": None},
        {"revision": "wine-predictor-00001", "percent": 80, "latest": False, "tag": "prev"}]
    assert canary["service"]["previous_model_uri"] == V1
    assert canary["service"]["canary_percent"] == 20

    promoted = serve.promote(ctx, "wine")

    spec = isvc(cluster)
    assert "canaryTrafficPercent" not in spec["spec"]["predictor"]
    assert spec["metadata"]["annotations"]["kservectl.io/previous-model-uri"] == V1  # for a later rollback
    assert promoted["service"]["traffic"] == [
        {"revision": "wine-predictor-00002", "percent": 100, "latest": True, "tag": None}]
    assert promoted["service"]["revisions"]["previous_rolled_out"] == "wine-predictor-00001"


def test_rollback_returns_all_traffic_to_the_previous_revision(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)

    rolled = serve.rollback(ctx, "wine")
    again = serve.rollback(ctx, "wine")

    assert isvc(cluster)["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert rolled["service"]["traffic"] == [
        {"revision": "wine-predictor-00002", "percent": 0, "latest": True, "tag": None},
        {"revision": "wine-predictor-00001", "percent": 100, "latest": False, "tag": "prev"}]
    assert rolled["notes"][0] == ("rollback: 100% to the previous revision wine-predictor-00001; "
                                  "wine-predictor-00002 stays deployed with 0% traffic until another version "
                                  "is deployed")
    assert again["action"] == "unchanged"


def test_after_a_promotion_rollback_says_which_model_to_deploy_again(cluster, kserve):
    """KServe pins a canary's remaining traffic to latestRolledoutRevision, which a promotion makes
    the latest revision: canaryTrafficPercent 0 would change nothing."""
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)
    serve.promote(ctx, "wine")
    generation = isvc(cluster)["metadata"]["generation"]

    with pytest.raises(UsageError) as err:
        serve.rollback(ctx, "wine")

    assert err.value.message == ("InferenceService models/wine has no canary to roll back: all traffic is on "
                                 "its latest revision")
    assert err.value.hint == f"deploy the previous model again: kservectl serve deploy wine --storage-uri {V1}"
    assert isvc(cluster)["metadata"]["generation"] == generation


def test_a_first_deploy_has_nothing_to_roll_back_to(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    with pytest.raises(UsageError, match="models/wine has no canary to roll back") as err:
        serve.rollback(ctx, "wine")
    assert err.value.hint == "deploy the previous model again with `kservectl serve deploy wine`"


def test_a_plain_deploy_over_a_canary_rolls_the_new_model_out_fully(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)

    result = serve.deploy(ctx, "wine", storage_uri=V3, check_versions=False)

    assert "canaryTrafficPercent" not in isvc(cluster)["spec"]["predictor"]
    assert result["service"]["traffic"] == [
        {"revision": "wine-predictor-00003", "percent": 100, "latest": True, "tag": None}]


def test_a_canary_needs_a_live_service_and_a_new_model(cluster, kserve):
    ctx = make_ctx(cluster)
    with pytest.raises(UsageError, match="there is no live InferenceService models/wine to canary against"):
        serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    with pytest.raises(UsageError, match=f"{V1} is what models/wine already serves; a canary needs a new"):
        serve.deploy(ctx, "wine", storage_uri=V1, canary_percent=10, check_versions=False)
    with pytest.raises(UsageError, match="--canary-percent 100 must be between 1 and 99"):
        serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=100, check_versions=False)
    with pytest.raises(UsageError, match="has no canary to promote"):
        serve.promote(ctx, "wine")


def test_standard_mode_refuses_canary_and_traffic_changes(cluster):
    ctx = make_ctx(cluster, **{"kserve.mode": "standard"})

    with pytest.raises(UsageError) as err:
        serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)
    assert err.value.message == (
        "canary rollouts need kserve.mode=knative; this cluster is configured for standard mode "
        "(deploy without --canary-percent to replace the model in place)")
    with pytest.raises(UsageError, match="`serve rollback` manages canary traffic, which needs kserve.mode="):
        serve.rollback(ctx, "wine")
    assert cluster.find(API, "InferenceService", "wine", "models") is None


# -- reading, deleting ----------------------------------------------------------------------------
def test_list_shows_every_service_with_replicas_and_knows_one_at_zero(cluster, kserve):
    ctx = make_ctx(cluster, **{"model.min_replicas": 0})
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(make_ctx(cluster), "beer", storage_uri=V2, check_versions=False)
    cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "beer-predictor-00001-abc", "namespace": "models",
        "labels": {"serving.kserve.io/inferenceservice": "beer"}},
        "spec": {"containers": [{"name": "kserve-container", "image": "mlserver"}]},
        "status": {"phase": "Running"}})

    services = {s["name"]: s for s in serve.list_services(ctx)}

    assert sorted(services) == ["beer", "wine"]
    assert (services["beer"]["replicas"], services["wine"]["replicas"]) == (1, 0)
    assert serve.at_zero(ctx, isvc(cluster, "wine")) is True
    assert serve.at_zero(ctx, isvc(cluster, "beer")) is False


def test_delete_removes_only_the_named_service(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(ctx, "beer", storage_uri=V2, check_versions=False)

    dry = dataclasses.replace(ctx, dry_run=True)
    assert serve.delete(dry, "wine")["action"] == "would delete"
    result = serve.delete(ctx, "wine")

    assert result["action"] == "deleted"
    assert result["kept"] == ["beer"]
    assert cluster.find(API, "InferenceService", "wine", "models") is None
    assert cluster.find(API, "InferenceService", "beer", "models") is not None  # NOT deleted
    assert cluster.find("v1", "ServiceAccount", "kservectl-model-server", "models") is not None
    assert serve.delete(ctx, "wine")["action"] == "absent"


def test_status_of_a_missing_service_names_those_that_exist(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "beer", storage_uri=V2, check_versions=False)

    with pytest.raises(serve.ServeError) as err:
        serve.status(ctx, "wine")

    assert err.value.message == "InferenceService models/wine does not exist (served in models: beer)"


# -- values other phases own, read from the cluster ------------------------------------------------
def test_the_artifacts_destination_comes_from_the_mlflow_deployment(cluster):
    ctx = make_ctx(cluster, **{"storage.bucket": "fallback-bucket"})
    assert serve.artifacts_destination(ctx) == "s3://fallback-bucket/mlflow-artifacts"
    cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mlflow",
                                                                                "namespace": "mlflow"},
                    "spec": {"selector": {"matchLabels": {"app": "mlflow"}}, "template": {
                        "metadata": {"labels": {"app": "mlflow"}}, "spec": {"containers": [{
                            "name": "mlflow", "image": "mlflow",
                            "args": ["server", "--artifacts-destination", "s3://real/mlflow-artifacts/"]}]}}}})

    assert serve.artifacts_destination(ctx) == "s3://real/mlflow-artifacts"
    assert serve.artifacts_destination(ctx, "s3://flag/x") == "s3://flag/x"
    assert serve.artifacts_destination(make_ctx(cluster, **{"namespaces.mlflow": "other"})) is None


def test_the_tracking_uri_is_the_flag_or_the_public_mlflow_else_a_port_forward_hint(cluster):
    ctx = make_ctx(cluster)
    with pytest.raises(UsageError) as err:
        serve.mlflow_tracking_uri(ctx)
    assert err.value.message == "no MLflow tracking URI: MLflow is private in this cluster"
    assert "port-forward service/mlflow 5000:5000" in err.value.hint
    assert "--tracking-uri http://localhost:5000" in err.value.hint

    cluster.create({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "mlflow", "namespace": "mlflow"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 5000}]},
                    "status": {"loadBalancer": {"ingress": [{"hostname": "mlflow-nlb.elb.amazonaws.com"}]}}})

    assert serve.mlflow_tracking_uri(ctx) == "http://mlflow-nlb.elb.amazonaws.com:5000"
    assert serve.mlflow_tracking_uri(ctx, "http://localhost:5000/") == "http://localhost:5000"


def test_a_missing_model_server_account_is_a_warning_with_the_fix(kube):
    kube.ensure_namespace("models")
    ctx = make_ctx(kube)

    assert serve.predictor_service_account(ctx) == "kservectl-model-server"
    assert ctx.reporter.messages("warn") == [
        "ServiceAccount models/kservectl-model-server does not exist: the model download from S3 will fail "
        "(run `kservectl storage create` to create it)"]


def test_urls_give_the_host_header_and_curl_commands_for_each_service(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier",
                                                                        "namespace": "kourier-system"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                    "status": {"loadBalancer": {"ingress": [{"hostname": "k8s-kourier.elb.amazonaws.com"}]}}})

    data = serve.urls(ctx)

    assert data["gateway"] == {"hostname": "k8s-kourier.elb.amazonaws.com",
                               "url": "http://k8s-kourier.elb.amazonaws.com", "dns": "host-header"}
    assert data["mlflow"]["url"] is None and "port-forward" in data["mlflow"]["port_forward"]
    wine = data["services"][0]
    assert wine["host_header"] == "wine-predictor.models.example.com"
    assert wine["v2_infer_url"] == "http://k8s-kourier.elb.amazonaws.com/v2/models/wine/infer"
    assert wine["curl_v2"] == ("curl -sS -H 'Host: wine-predictor.models.example.com' -H 'Content-Type: "
                               "application/json' -d @request.json "
                               "http://k8s-kourier.elb.amazonaws.com/v2/models/wine/infer")
    assert wine["curl_invocations"].endswith("http://k8s-kourier.elb.amazonaws.com/invocations")


def test_urls_fall_back_to_the_service_url_without_a_gateway_address(cluster, kserve):
    ctx = make_ctx(cluster, **{"exposure.certificate_arn": ""})
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    wine = serve.urls(ctx)["services"][0]

    assert wine["host_header"] is None
    assert wine["v2_infer_url"] == "http://wine-predictor.models.example.com/v2/models/wine/infer"


def test_every_rendered_file_is_kept_for_review(cluster, kserve, isolated_env: Path):
    ctx = make_ctx(cluster)

    result = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    path = Path(result["manifest"])
    assert path == isolated_env / "kservectl" / "rendered" / "serve" / "wine-inferenceservice.yaml"
    assert yaml.safe_load(path.read_text())["spec"]["predictor"]["model"]["storageUri"] == V1
