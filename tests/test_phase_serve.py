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
    generation it makes a revision when the model changed, builds the Knative traffic block as
    KServe's ksvc reconciler does (``canaryTrafficPercent`` on the latest revision, the rest on
    ``latestRolledoutRevision`` tagged prev) and moves the rolled-out revisions as KServe's
    ``PropagateStatus`` does, including its rollback after a promotion (0% on a latest revision
    that is also the rolled-out one: ``latestRolledoutRevision`` goes back to
    ``previousRolledoutRevision``, and the next reconcile pins the traffic there). It reports Ready
    after ``delay_s``; with ``not_ready_until`` it first reports PredictorReady=False and holds
    that until the event is set (by the test, once the wait has seen it). A second reconcile is
    published ``settle_s`` later (``settle=False``: never)."""

    def __init__(self, kube, *, delay_s: float = 0.1, not_ready_until: threading.Event | None = None,
                 domain: str = "example.com", settle_s: float = 0.3, settle: bool = True):
        self.kube, self.delay_s, self.not_ready_until, self.domain = kube, delay_s, not_ready_until, domain
        self.settle_s, self.settle = settle_s, settle
        self.revisions: dict[str, list[tuple[str, str]]] = {}
        self.rolled_out: dict[str, str] = {}
        self.previous: dict[str, str] = {}
        self.published: list[list[dict[str, Any]]] = []  # every traffic block reported, in order
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
        percent = predictor.get("canaryTrafficPercent")
        host = f"{name}-predictor.{namespace}"
        if self.not_ready_until is not None:
            self.kube.patch_status(API, "InferenceService", name, namespace, {"conditions": [
                {"type": "PredictorReady", "status": "False", "reason": "RevisionMissing",
                 "message": f"Configuration {name}-predictor is waiting for a Revision to become ready."},
                {"type": "Ready", "status": "False", "reason": "RevisionMissing"}]})
            if not self.not_ready_until.wait(30):
                raise AssertionError(f"InferenceService {namespace}/{name}: nobody saw it not Ready in 30 s")
        traffic = self._traffic(name, latest, percent)  # from the status KServe had read
        changed = self._propagate(name, latest, traffic)
        self._publish(name, namespace, generation, host, latest, traffic)
        if changed and self.settle:  # KServe reconciles again after changing its own status
            time.sleep(self.settle_s)
            self._publish(name, namespace, generation, host, latest, self._traffic(name, latest, percent))

    def _traffic(self, name: str, latest: str, percent: int | None) -> list[dict[str, Any]]:
        """KServe's ksvc reconciler: createKnativeService's traffic targets."""
        rolled = self.rolled_out.get(name)
        if percent is None or rolled is None:
            return [{"revisionName": latest, "percent": 100, "latestRevision": True}]
        traffic = [{"latestRevision": True, "percent": percent, "revisionName": latest}]
        if percent < 100:
            traffic.append({"revisionName": rolled, "percent": 100 - percent, "latestRevision": False,
                            "tag": "prev"})
        return traffic

    def _propagate(self, name: str, latest: str, traffic: list[dict[str, Any]]) -> bool:
        """KServe's PropagateStatus for the rolled-out revisions; True when it moved one back (the
        rollback after a promotion), which makes the traffic change on the next reconcile."""
        per_revision: dict[str, int] = {}
        for t in traffic:
            per_revision[t["revisionName"]] = per_revision.get(t["revisionName"], 0) + t["percent"]
        for t in traffic:
            if t["revisionName"] != latest or not t["latestRevision"]:
                continue
            if self.rolled_out.get(name) != latest:
                if t["percent"] == 100:
                    if name in self.rolled_out:
                        self.previous[name] = self.rolled_out[name]
                    self.rolled_out[name] = latest
            elif t["percent"] < 100 and per_revision.get(latest) == 100 and self.previous.get(name):
                self.rolled_out[name] = self.previous[name]
                return True
        return False

    def _publish(self, name: str, namespace: str, generation: int, host: str, latest: str,
                 traffic: list[dict[str, Any]]) -> None:
        self.published.append(traffic)
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
    seen_not_ready = threading.Event()
    controller = FakeKServe(cluster, not_ready_until=seen_not_ready)
    ctx = make_ctx(cluster)
    report = ctx.reporter.waiting

    def waiting(what: str, detail: str) -> None:  # KServe turns Ready once the wait has shown why not
        report(what, detail)
        if "PredictorReady=False" in detail:
            seen_not_ready.set()

    ctx.reporter.waiting = waiting  # type: ignore[method-assign]
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
    assert rolled["notes"][0] == (f"rollback: 100% to the previous revision wine-predictor-00001 ({V1}); "
                                  "wine-predictor-00002 stays deployed with 0% traffic until another version "
                                  "is deployed")
    assert again["action"] == "unchanged"


def test_after_a_promotion_rollback_returns_all_traffic_to_the_previously_rolled_out_revision(cluster,
                                                                                              kserve):
    """KServe's own rollback: canaryTrafficPercent 0 on a promoted service makes KServe move
    latestRolledoutRevision back to previousRolledoutRevision, and the next reconcile pins 100% of
    the traffic there. KServe says Ready in between, with the traffic still on the promoted
    revision: the wait lasts until the traffic has moved."""
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)
    serve.promote(ctx, "wine")
    kserve.published.clear()

    rolled = serve.rollback(ctx, "wine")
    again = serve.rollback(ctx, "wine")

    assert isvc(cluster)["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert kserve.published == [  # first still all on the promoted revision, then moved back
        [{"latestRevision": True, "percent": 0, "revisionName": "wine-predictor-00002"},
         {"revisionName": "wine-predictor-00002", "percent": 100, "latestRevision": False, "tag": "prev"}],
        [{"latestRevision": True, "percent": 0, "revisionName": "wine-predictor-00002"},
         {"revisionName": "wine-predictor-00001", "percent": 100, "latestRevision": False, "tag": "prev"}]]
    assert ("InferenceService models/wine to be Ready with all traffic on wine-predictor-00001: traffic not on "
            "wine-predictor-00001 yet (wine-predictor-00002: 0%, wine-predictor-00002: 100%)"
            ) in ctx.reporter.messages("waiting")
    assert rolled["action"] == "changed" and rolled["target_revision"] == "wine-predictor-00001"
    assert rolled["service"]["traffic"] == [
        {"revision": "wine-predictor-00002", "percent": 0, "latest": True, "tag": None},
        {"revision": "wine-predictor-00001", "percent": 100, "latest": False, "tag": "prev"}]
    assert rolled["service"]["revisions"]["latest_rolled_out"] == "wine-predictor-00001"
    assert rolled["notes"] == [
        f"rollback after a promotion: 100% back to the previously rolled-out revision wine-predictor-00001 "
        f"({V1}); wine-predictor-00002 stays deployed with 0% traffic until another version is deployed"]
    assert again["action"] == "unchanged"


def test_a_deploy_after_a_rollback_records_the_model_that_was_serving_as_the_previous_one(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    serve.deploy(ctx, "wine", storage_uri=V2, check_versions=False)  # a full rollout, no canary
    serve.rollback(ctx, "wine")  # back to V1's revision

    result = serve.deploy(ctx, "wine", storage_uri=V3, check_versions=False)

    assert result["previous_model_uri"] == V1  # V2 had 0% of the traffic
    assert "canaryTrafficPercent" not in isvc(cluster)["spec"]["predictor"]
    assert result["service"]["traffic"] == [
        {"revision": "wine-predictor-00003", "percent": 100, "latest": True, "tag": None}]


def test_a_rollback_whose_traffic_never_moves_times_out_saying_where_it_is_and_what_to_do(cluster):
    controller = FakeKServe(cluster, settle=False)  # KServe's second reconcile never comes
    ctx = make_ctx(cluster)
    try:
        serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
        serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)
        serve.promote(ctx, "wine")
        ctx.settings = ctx.settings.with_(waits=dataclasses.replace(ctx.settings.waits,
                                                                    inference_service_ready=1.0))
        with pytest.raises(WaitTimeout) as err:
            serve.rollback(ctx, "wine")
    finally:
        controller.close()

    assert err.value.message == (
        "timed out after 1s waiting for InferenceService models/wine to be Ready with all traffic on "
        "wine-predictor-00001: traffic not on wine-predictor-00001 yet (wine-predictor-00002: 0%, "
        "wine-predictor-00002: 100%)")
    assert err.value.hint == ("if Knative has garbage-collected that revision, deploy the previous model "
                              f"again: kservectl serve deploy wine --storage-uri {V1}")


def test_a_first_deploy_has_nothing_to_roll_back_to(cluster, kserve):
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    with pytest.raises(UsageError) as err:
        serve.rollback(ctx, "wine")
    assert err.value.message == ("InferenceService models/wine has no previous revision to roll back to: it "
                                 "has had one rolled-out revision only")
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


def install_record(kube, mode: str) -> None:
    """What `kservectl kserve install --mode <mode>` leaves on the cluster."""
    kube.ensure_namespace("kserve")
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kservectl-kserve", "namespace": "kserve"},
                 "data": {"mode": mode, "kserve": "v0.20.0"}})


def test_a_cluster_installed_in_standard_mode_refuses_canary_and_scale_to_zero_whatever_the_config(cluster,
                                                                                                    kserve):
    install_record(cluster, "standard")  # `kserve install --mode standard`; kserve.mode stays knative
    ctx = make_ctx(cluster)
    assert ctx.config.kserve.mode == "knative"

    served = serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)
    with pytest.raises(UsageError) as canary:
        serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=10, check_versions=False)
    with pytest.raises(UsageError) as zero:
        serve.deploy(make_ctx(cluster, **{"model.min_replicas": 0}), "beer", storage_uri=V2,
                     check_versions=False)
    with pytest.raises(UsageError) as rollback:
        serve.rollback(ctx, "wine")

    assert canary.value.message == (
        "canary rollouts need kserve.mode=knative; KServe on cluster kservectl is installed in standard mode "
        "(deploy without --canary-percent to replace the model in place)")
    assert zero.value.message == (
        "scale to zero (--min-replicas 0) needs kserve.mode=knative; KServe on cluster kservectl is installed "
        "in standard mode (use --min-replicas 1 or more)")
    assert rollback.value.message == ("`serve rollback` manages canary traffic, which needs kserve.mode=knative; "
                                      "KServe on cluster kservectl is installed in standard mode")
    # the service is deployed for the installed mode, and nothing else was changed
    assert isvc(cluster)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc(cluster)["spec"]["predictor"]["model"]["storageUri"] == V1
    assert "canaryTrafficPercent" not in isvc(cluster)["spec"]["predictor"]
    assert cluster.find(API, "InferenceService", "beer", "models") is None
    assert served["action"] == "created"
    assert ctx.reporter.messages("warn")[0] == (
        "KServe on cluster kservectl is installed in standard mode but kserve.mode is knative; serving for "
        "the installed mode")


def test_a_cluster_installed_in_knative_mode_allows_a_canary(cluster, kserve):
    install_record(cluster, "knative")
    ctx = make_ctx(cluster)
    serve.deploy(ctx, "wine", storage_uri=V1, check_versions=False)

    canary = serve.deploy(ctx, "wine", storage_uri=V2, canary_percent=30, check_versions=False)

    assert [t["percent"] for t in canary["service"]["traffic"]] == [30, 70]
    assert ctx.reporter.messages("warn") == []


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
