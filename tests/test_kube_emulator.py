"""Behaviour of the test-only Kubernetes API emulator (tests/support/kube_emulator.py)."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pytest
import yaml
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api, CustomObjectsApi

from support.kube_emulator import (
    KubeApiError,
    KubeEmulatorError,
    KubeEmulatorServer,
)

pytestmark = pytest.mark.timeout(10)

KSERVE = ("serving.kserve.io", "v1beta1")
TIMEOUT = 5  # _request_timeout for every client call: a hang fails instead of blocking
KUBECTL = Path(__file__).resolve().parents[1] / ".tools" / "bin" / "kubectl"  # from `make test-tools`


@pytest.fixture
def api_client(kube: KubeEmulatorServer) -> Iterator[ApiClient]:
    """The official client, configured the way kservectl does it: from the default kubeconfig."""
    client = kubernetes.config.new_client_from_config()
    yield client
    client.close()


def config_map(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


def deployment(name: str, replicas: int = 1, image: str = "mlflow:2") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}}},
    }


def inference_service(name: str, storage_uri: str = "s3://models/iris/1") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "mlflow"}, "storageUri": storage_uri}}},
    }


def wait_until(condition: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout_s} s: {condition}")


def watch_events(func: Callable[..., Any], *args: Any, until: Callable[[dict[str, Any]], bool],
                 timeout_s: float = 30.0, **kwargs: Any) -> list[dict[str, Any]]:
    """Stream watch events until one satisfies ``until`` (or the server-side timeout ends it)."""
    events: list[dict[str, Any]] = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(func, *args, timeout_seconds=int(timeout_s),
                              _request_timeout=timeout_s + 2, **kwargs):
        events.append(event)
        if until(event):
            watch.stop()
    return events


# ---- the fixture and the harness ------------------------------------------------------------

def test_the_fixture_points_kubeconfig_and_the_client_default_location_at_the_emulator(
        kube: KubeEmulatorServer) -> None:
    assert os.environ["KUBECONFIG"] == str(kube.kubeconfig)
    config = yaml.safe_load(kube.kubeconfig.read_text())
    assert config["current-context"] == "kservectl-test"
    assert config["clusters"][0]["cluster"]["server"] == kube.url

    kubernetes.config.load_kube_config()  # no arguments: the default location must be patched
    assert kubernetes.client.Configuration.get_default_copy().host == kube.url
    namespaces = CoreV1Api().list_namespace(_request_timeout=TIMEOUT)
    assert {ns.metadata.name for ns in namespaces.items} == {
        "default", "kube-system", "kube-public", "kube-node-lease"}


def test_the_server_starts_and_stops_quickly_and_the_port_is_then_closed() -> None:
    started = time.monotonic()
    with KubeEmulatorServer() as kube:
        assert kube.list_objects("v1", "Namespace")
        url = kube.url
    assert time.monotonic() - started < 5.0  # stop() gives up on a stuck server after 10 s
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/version", timeout=1)


def test_two_servers_can_be_stopped_in_the_order_they_were_started() -> None:
    first, second = KubeEmulatorServer().start(), KubeEmulatorServer().start()
    assert first.port != second.port
    first.stop()
    second.stop()


# ---- CRUD through the official client ----------------------------------------------------------

def test_config_maps_can_be_created_read_listed_patched_replaced_and_deleted_with_core_v1(
        api_client: ApiClient) -> None:
    core = CoreV1Api(api_client)
    created = core.create_namespaced_config_map("default", config_map("settings", tier="dev"),
                                                _request_timeout=TIMEOUT)
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp

    read = core.read_namespaced_config_map("settings", "default", _request_timeout=TIMEOUT)
    assert read.data == {"tier": "dev"}
    listed = core.list_namespaced_config_map("default", _request_timeout=TIMEOUT)
    assert [item.metadata.name for item in listed.items] == ["settings"]

    patched = core.patch_namespaced_config_map("settings", "default", {"data": {"region": "eu"}},
                                               _request_timeout=TIMEOUT)
    assert patched.data == {"tier": "dev", "region": "eu"}

    body = core.read_namespaced_config_map("settings", "default", _request_timeout=TIMEOUT)
    body.data = {"tier": "prod"}
    replaced = core.replace_namespaced_config_map("settings", "default", body, _request_timeout=TIMEOUT)
    assert replaced.data == {"tier": "prod"}
    assert replaced.metadata.uid == created.metadata.uid

    core.delete_namespaced_config_map("settings", "default", _request_timeout=TIMEOUT)
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("settings", "default", _request_timeout=TIMEOUT)
    assert error.value.status == 404


def test_deployments_round_trip_through_apps_v1_and_generation_counts_spec_changes_only(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    apps = AppsV1Api(api_client)
    created = apps.create_namespaced_deployment("default", deployment("mlflow"), _request_timeout=TIMEOUT)
    assert created.metadata.generation == 1

    scaled = apps.patch_namespaced_deployment("mlflow", "default", {"spec": {"replicas": 3}},
                                              _request_timeout=TIMEOUT)
    assert (scaled.spec.replicas, scaled.metadata.generation) == (3, 2)
    labelled = apps.patch_namespaced_deployment("mlflow", "default", {"metadata": {"labels": {"a": "b"}}},
                                                _request_timeout=TIMEOUT)
    assert labelled.metadata.generation == 2

    # A strategic merge patch merges containers by name instead of replacing the list.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy"}]}}}}
    merged = apps.patch_namespaced_deployment("mlflow", "default", patch, _request_timeout=TIMEOUT)
    assert [c.name for c in merged.spec.template.spec.containers] == ["mlflow", "sidecar"]

    # .status is written only through /status, as controllers do.
    apps.patch_namespaced_deployment("mlflow", "default", {"status": {"readyReplicas": 9}},
                                     _request_timeout=TIMEOUT)
    assert "status" not in kube.get("apps/v1", "Deployment", "mlflow", "default")
    status = apps.patch_namespaced_deployment_status("mlflow", "default", {"status": {"readyReplicas": 3}},
                                                     _request_timeout=TIMEOUT)
    assert status.status.ready_replicas == 3 and status.spec.replicas == 3


def test_an_inference_service_can_be_created_read_listed_patched_and_deleted_with_custom_objects_api(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.ensure_namespace("models")
    custom = CustomObjectsApi(api_client)
    created = custom.create_namespaced_custom_object(*KSERVE, "models", "inferenceservices",
                                                     inference_service("iris"), _request_timeout=TIMEOUT)
    assert created["metadata"]["namespace"] == "models"  # 201 with the object, not None
    assert created["metadata"]["generation"] == 1

    read = custom.get_namespaced_custom_object(*KSERVE, "models", "inferenceservices", "iris",
                                               _request_timeout=TIMEOUT)
    assert read["spec"]["predictor"]["model"]["storageUri"] == "s3://models/iris/1"
    listed = custom.list_cluster_custom_object(*KSERVE, "inferenceservices", _request_timeout=TIMEOUT)
    assert listed["kind"] == "InferenceServiceList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["iris"]

    patch = {"spec": {"predictor": {"model": {"storageUri": "s3://models/iris/2"}}}}
    patched = custom.patch_namespaced_custom_object(*KSERVE, "models", "inferenceservices", "iris", patch,
                                                    _request_timeout=TIMEOUT)
    assert patched["spec"]["predictor"]["model"] == {"modelFormat": {"name": "mlflow"}, "storageUri": "s3://models/iris/2"}
    assert patched["metadata"]["generation"] == 2

    ready = {"status": {"url": "http://iris-predictor.models.example.com",
                        "conditions": [{"type": "Ready", "status": "True"}]}}
    with_status = custom.patch_namespaced_custom_object_status(*KSERVE, "models", "inferenceservices", "iris",
                                                               ready, _request_timeout=TIMEOUT)
    assert with_status["status"]["url"] == "http://iris-predictor.models.example.com"

    deleted = custom.delete_namespaced_custom_object(*KSERVE, "models", "inferenceservices", "iris",
                                                     _request_timeout=TIMEOUT)
    assert deleted["metadata"]["name"] == "iris"
    assert kube.find("serving.kserve.io/v1beta1", "InferenceService", "iris", "models") is None


def test_the_raw_api_client_call_api_path_reaches_the_emulator(api_client: ApiClient) -> None:
    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        _, url, headers, _, _ = api_client.param_serialize(
            method, path, header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body, auth_settings=["BearerToken"])
        response = api_client.call_api(method, url, header_params=headers, body=body,
                                       _request_timeout=TIMEOUT)
        response.read()
        return response.status, json.loads(response.data)

    status, group = call("GET", "/apis/serving.kserve.io")
    assert status == 200 and group["preferredVersion"]["version"] == "v1beta1"
    status, created = call("POST", "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices",
                           inference_service("raw"))
    assert status == 201 and created["metadata"]["name"] == "raw"


def test_namespaces_can_be_created_listed_and_deleted_with_their_contents(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.emulator.namespace_termination_s = 0.5  # long enough to look at it while it terminates
    core = CoreV1Api(api_client)
    namespace = core.create_namespace({"metadata": {"name": "mlflow"}}, _request_timeout=TIMEOUT)
    assert namespace.status.phase == "Active"
    assert "mlflow" in {ns.metadata.name for ns in core.list_namespace(_request_timeout=TIMEOUT).items}
    kube.create({**config_map("settings"), "metadata": {"name": "settings", "namespace": "mlflow"}})

    core.delete_namespace("mlflow", _request_timeout=TIMEOUT)
    assert core.read_namespace("mlflow", _request_timeout=TIMEOUT).status.phase == "Terminating"
    with pytest.raises(ApiException) as forbidden:  # like a real server while it terminates
        core.create_namespaced_config_map("mlflow", config_map("late"), _request_timeout=TIMEOUT)
    assert forbidden.value.status == 403

    wait_until(lambda: kube.find("v1", "Namespace", "mlflow") is None)
    assert kube.list_objects("v1", "ConfigMap", "mlflow") == []


def test_creating_into_a_namespace_that_does_not_exist_is_a_404(api_client: ApiClient) -> None:
    with pytest.raises(ApiException) as error:
        CoreV1Api(api_client).create_namespaced_config_map("nowhere", config_map("x"),
                                                           _request_timeout=TIMEOUT)
    assert error.value.status == 404
    assert json.loads(error.value.body)["message"] == 'namespaces "nowhere" not found'


# ---- selectors and metadata ----------------------------------------------------------------------

def test_label_selectors_filter_lists_by_equality_inequality_sets_and_existence(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.create(config_map("a", {"app": "mlflow", "tier": "web"}))
    kube.create(config_map("b", {"app": "mlflow", "tier": "db"}))
    kube.create(config_map("c", {"app": "kserve"}))
    core = CoreV1Api(api_client)

    def names(selector: str) -> list[str]:
        listed = core.list_namespaced_config_map("default", label_selector=selector, _request_timeout=TIMEOUT)
        return [item.metadata.name for item in listed.items]

    assert names("app=mlflow") == ["a", "b"]
    assert names("app==mlflow,tier=db") == ["b"]
    assert names("app!=mlflow") == ["c"]
    assert names("tier in (web, db)") == ["a", "b"]
    assert names("app,tier notin (web)") == ["b", "c"]
    assert names("!tier") == ["c"]
    with pytest.raises(ApiException) as error:
        names("app=(oops")
    assert error.value.status == 400


def test_field_selectors_filter_by_metadata_name_and_namespace(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.ensure_namespace("mlflow")
    kube.create(config_map("a"))
    kube.create({**config_map("a"), "metadata": {"name": "a", "namespace": "mlflow"}})
    kube.create(config_map("b"))
    core = CoreV1Api(api_client)

    by_name = core.list_config_map_for_all_namespaces(field_selector="metadata.name=a",
                                                      _request_timeout=TIMEOUT)
    assert sorted(item.metadata.namespace for item in by_name.items) == ["default", "mlflow"]
    by_both = core.list_config_map_for_all_namespaces(
        field_selector="metadata.name==a,metadata.namespace!=default", _request_timeout=TIMEOUT)
    assert [(i.metadata.namespace, i.metadata.name) for i in by_both.items] == [("mlflow", "a")]
    in_mlflow = core.list_namespaced_config_map("mlflow", _request_timeout=TIMEOUT)
    assert [(i.metadata.namespace, i.metadata.name) for i in in_mlflow.items] == [("mlflow", "a")]


def test_every_write_bumps_the_resource_version_and_lists_carry_their_kind_and_version(
        kube: KubeEmulatorServer) -> None:
    def version(obj: dict[str, Any]) -> int:
        return int(obj["metadata"]["resourceVersion"])

    versions = [version(kube.create(config_map("a")))]
    versions.append(version(kube.patch("v1", "ConfigMap", "a", "default", {"data": {"k": "1"}})))
    kube.create(config_map("b"))
    listed = kube.request("GET", "/api/v1/namespaces/default/configmaps")
    versions.append(version(listed))
    assert versions == sorted(set(versions)), versions
    assert listed["kind"] == "ConfigMapList" and listed["apiVersion"] == "v1"

    unchanged = kube.patch("v1", "ConfigMap", "a", "default", {"data": {"k": "1"}})  # a no-op write
    assert version(unchanged) == versions[1]
    assert kube.emulator.resource_version == versions[-1]


# ---- watches ------------------------------------------------------------------------------------

def test_a_watch_from_a_listed_resource_version_gets_modified_after_patch_status_from_another_thread(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.create(deployment("mlflow"))
    apps = AppsV1Api(api_client)
    listed = apps.list_namespaced_deployment("default", _request_timeout=TIMEOUT)
    assert listed.items[0].status is None

    patcher = threading.Timer(0.1, kube.patch_status, ("apps/v1", "Deployment", "mlflow", "default",
                                                        {"availableReplicas": 1}))
    patcher.start()
    started = time.monotonic()
    events = watch_events(apps.list_namespaced_deployment, "default",
                          resource_version=listed.metadata.resource_version,
                          until=lambda event: event["type"] == "MODIFIED", timeout_s=30)
    patcher.join()
    assert [event["type"] for event in events] == ["MODIFIED"]  # nothing replayed from before the list
    assert events[0]["object"].status.available_replicas == 1
    assert time.monotonic() - started < 15  # the event, not the watch's 30 s timeout, ended it


def test_a_watch_without_a_resource_version_starts_with_the_current_objects_as_added(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.create(config_map("a"))
    kube.create(config_map("b", {"pick": "me"}))
    events = watch_events(CoreV1Api(api_client).list_namespaced_config_map, "default", label_selector="pick",
                          until=lambda event: True)
    assert [(event["type"], event["object"].metadata.name) for event in events] == [("ADDED", "b")]


def test_a_watch_from_a_resource_version_replays_only_the_later_events_of_its_namespace(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.ensure_namespace("elsewhere")
    kube.create(config_map("a"))
    step_1 = kube.patch("v1", "ConfigMap", "a", "default", {"data": {"step": "1"}})
    since = step_1["metadata"]["resourceVersion"]
    kube.create({**config_map("a", step="x"), "metadata": {"name": "a", "namespace": "elsewhere"}})
    kube.patch("v1", "ConfigMap", "a", "default", {"data": {"step": "2"}})
    kube.delete("v1", "ConfigMap", "a", "default")
    events = watch_events(CoreV1Api(api_client).list_namespaced_config_map, "default", resource_version=since,
                          until=lambda event: event["type"] == "DELETED")
    assert [(event["type"], (event["object"].data or {}).get("step")) for event in events] == [
        ("MODIFIED", "2"), ("DELETED", "2")]


def test_a_watch_with_a_label_selector_sees_objects_leave_and_enter_the_selection(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    since = kube.create(config_map("a", {"app": "mlflow"}))["metadata"]["resourceVersion"]
    kube.patch("v1", "ConfigMap", "a", "default", {"metadata": {"labels": {"app": "other"}}})
    kube.patch("v1", "ConfigMap", "a", "default", {"data": {"unseen": "yes"}})
    kube.patch("v1", "ConfigMap", "a", "default", {"metadata": {"labels": {"app": "mlflow"}}})
    events = watch_events(CoreV1Api(api_client).list_namespaced_config_map, "default", resource_version=since,
                          label_selector="app=mlflow", until=lambda event: event["type"] == "ADDED")
    assert [event["type"] for event in events] == ["DELETED", "ADDED"]


def test_a_watch_on_nodes_gets_modified_events_for_cluster_scoped_objects(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-0-1"}})
    core = CoreV1Api(api_client)
    since = core.list_node(_request_timeout=TIMEOUT).metadata.resource_version
    threading.Timer(0.1, kube.patch_status, ("v1", "Node", "ip-10-0-0-1", None,
                                             {"conditions": [{"type": "Ready", "status": "True"}]})).start()
    events = watch_events(core.list_node, resource_version=since,
                          until=lambda event: event["type"] == "MODIFIED")
    assert [event["type"] for event in events] == ["MODIFIED"]
    assert events[0]["object"].status.conditions[0].type == "Ready"


def test_a_watch_ends_when_its_timeout_seconds_elapse(api_client: ApiClient) -> None:
    started = time.monotonic()
    events = watch_events(CoreV1Api(api_client).list_namespaced_pod, "default", timeout_s=1,
                          until=lambda event: True)
    assert events == []
    assert time.monotonic() - started > 0.9  # (a server ignoring it would hit the 3 s client timeout)


def test_a_watch_from_a_compacted_resource_version_gets_410_gone(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    old = kube.create(config_map("a"))["metadata"]["resourceVersion"]
    kube.patch("v1", "ConfigMap", "a", "default", {"data": {"k": "v"}})
    kube.on_loop(lambda emulator: emulator.compact_history())  # not while the loop serves a watch
    with pytest.raises(ApiException) as error:
        watch_events(CoreV1Api(api_client).list_namespaced_config_map, "default", resource_version=old,
                     until=lambda event: True)
    assert error.value.status == 410


def test_stopping_the_server_ends_an_open_watch_at_once() -> None:
    kube = KubeEmulatorServer().start()
    client = kubernetes.config.new_client_from_config(str(kube.kubeconfig))
    ended = threading.Event()

    def watch_forever() -> None:
        try:
            for _ in kubernetes.watch.Watch().stream(CoreV1Api(client).list_namespaced_pod, "default",
                                                     timeout_seconds=30, _request_timeout=30):
                pass
        finally:
            ended.set()

    watcher = threading.Thread(target=watch_forever, daemon=True)
    watcher.start()
    wait_until(lambda: kube.emulator.open_watches)
    started = time.monotonic()
    kube.stop()
    assert ended.wait(10)
    assert time.monotonic() - started < 10  # not the watch's 30 s timeout
    client.close()


# ---- controller simulation ------------------------------------------------------------------------

def test_an_on_created_hook_can_act_as_the_deployment_controller(kube: KubeEmulatorServer) -> None:
    seen: list[str] = []

    def become_available(obj: dict[str, Any]) -> None:
        seen.append(obj["metadata"]["name"])
        kube.patch_status("apps/v1", "Deployment", obj["metadata"]["name"], obj["metadata"]["namespace"], {
            "availableReplicas": obj["spec"]["replicas"],
            "conditions": [{"type": "Available", "status": "True"}],
        })

    kube.on_created("Deployment", become_available, delay_s=0.3)
    created_at = time.monotonic()
    kube.create(deployment("mlflow", replicas=2))

    def status() -> dict[str, Any]:
        return kube.get("apps/v1", "Deployment", "mlflow", "default").get("status") or {}

    assert status() == {}  # not before the delay
    available = wait_until(lambda: status().get("availableReplicas"))
    assert available == 2 and seen == ["mlflow"]
    assert time.monotonic() - created_at >= 0.3


def test_the_ready_made_controllers_roll_out_deployments_and_give_load_balancers_and_isvcs_addresses(
        kube: KubeEmulatorServer) -> None:
    kube.simulate_deployment_rollout(delay_s=0.05)
    kube.simulate_load_balancers(delay_s=0.05)
    kube.simulate_inference_services(delay_s=0.05)
    kube.create(deployment("mlflow"))
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier"},
                 "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "internal"},
                 "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}})
    kube.create(inference_service("iris"))

    def status(api_version: str, kind: str, name: str) -> dict[str, Any]:
        return kube.get(api_version, kind, name, "default").get("status") or {}

    conditions = wait_until(lambda: status("apps/v1", "Deployment", "mlflow").get("conditions"))
    assert {"type": "Available", "status": "True"}.items() <= conditions[0].items()
    ingress = wait_until(lambda: status("v1", "Service", "kourier").get("loadBalancer"))
    assert ingress == {"ingress": [{"hostname": "kourier-default.elb.us-east-1.amazonaws.com"}]}
    url = wait_until(lambda: status("serving.kserve.io/v1beta1", "InferenceService", "iris").get("url"))
    assert url == "http://iris-predictor.default.example.com"
    time.sleep(0.1)
    assert status("v1", "Service", "internal") == {}


def test_react_after_merges_status_into_an_object_created_later_and_once_only(
        kube: KubeEmulatorServer) -> None:
    reaction = kube.react_after("serving.kserve.io/v1beta1", "InferenceService", "iris", "default", 0.1,
                                {"conditions": [{"type": "Ready", "status": "True"}]})
    assert not reaction.done()
    kube.create(inference_service("iris"))
    patched = reaction.result(timeout=2)
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "True"}]

    kube.patch_status("serving.kserve.io/v1beta1", "InferenceService", "iris", "default", {"conditions": []})
    kube.delete("serving.kserve.io/v1beta1", "InferenceService", "iris", "default")
    kube.create(inference_service("iris"))  # a re-creation does not fire it again
    time.sleep(0.2)
    assert "status" not in kube.get("serving.kserve.io/v1beta1", "InferenceService", "iris", "default")


def test_react_after_on_an_existing_object_fires_at_once_after_the_delay(kube: KubeEmulatorServer) -> None:
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier"},
                 "spec": {"type": "LoadBalancer"}})
    hostname = {"loadBalancer": {"ingress": [{"hostname": "k8s-kourier.elb.amazonaws.com"}]}}
    patched = kube.react_after("v1", "Service", "kourier", "default", 0.05, hostname).result(timeout=2)
    assert patched["status"] == hostname


def test_a_failing_controller_hook_makes_stop_raise() -> None:
    kube = KubeEmulatorServer().start()
    called = threading.Event()

    def broken(obj: dict[str, Any]) -> None:
        called.set()
        raise ValueError("the simulated controller is broken")

    kube.on_created("ConfigMap", broken)
    kube.create(config_map("a"))
    assert called.wait(2)
    with pytest.raises(KubeEmulatorError, match="the simulated controller is broken"):
        kube.stop()


# ---- errors and write semantics --------------------------------------------------------------------

def test_reading_a_missing_object_is_a_404_not_found_status(kube: KubeEmulatorServer) -> None:
    with pytest.raises(KubeApiError) as error:
        kube.get("serving.kserve.io/v1beta1", "InferenceService", "ghost", "default")
    assert error.value.code == 404
    assert error.value.status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "code": 404, "reason": "NotFound",
        "message": 'inferenceservices.serving.kserve.io "ghost" not found',
        "details": {"name": "ghost", "group": "serving.kserve.io", "kind": "inferenceservices"},
    }
    with pytest.raises(KubeApiError) as unknown:
        kube.request("GET", "/apis/example.com/v1/namespaces/default/widgets")
    assert unknown.value.code == 404


def test_creating_an_existing_object_is_a_409_already_exists(api_client: ApiClient) -> None:
    core = CoreV1Api(api_client)
    core.create_namespaced_config_map("default", config_map("a"), _request_timeout=TIMEOUT)
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map("default", config_map("a"), _request_timeout=TIMEOUT)
    assert error.value.status == 409
    assert json.loads(error.value.body)["reason"] == "AlreadyExists"


def test_replacing_with_a_stale_resource_version_is_a_409_conflict(kube: KubeEmulatorServer) -> None:
    stale = kube.create(config_map("a", tier="dev"))
    kube.patch("v1", "ConfigMap", "a", "default", {"data": {"tier": "prod"}})
    with pytest.raises(KubeApiError) as error:
        kube.request("PUT", "/api/v1/namespaces/default/configmaps/a", stale)
    assert (error.value.code, error.value.reason) == (409, "Conflict")
    assert kube.get("v1", "ConfigMap", "a", "default")["data"] == {"tier": "prod"}


def test_invalid_names_are_rejected_with_422_like_a_real_server(kube: KubeEmulatorServer) -> None:
    with pytest.raises(KubeApiError) as error:
        kube.create(inference_service("Iris_Model"))
    assert (error.value.code, error.value.reason) == (422, "Invalid")
    generated = kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "run-"}})
    assert generated["metadata"]["name"].startswith("run-") and len(generated["metadata"]["name"]) == 9


def test_server_side_apply_creates_a_missing_object_then_merges_into_it(kube: KubeEmulatorServer) -> None:
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/iris"
    manifest = inference_service("iris")
    with pytest.raises(KubeApiError) as no_manager:
        kube.request("PATCH", path, manifest, content_type="application/apply-patch+yaml")
    assert no_manager.value.code == 400

    def apply(manifest: dict[str, Any]) -> dict[str, Any]:
        params = {"fieldManager": "kservectl", "force": "true"}
        applied: dict[str, Any] = kube.request("PATCH", path, manifest, params=params,
                                               content_type="application/apply-patch+yaml")
        return applied

    created = apply(manifest)
    assert created["metadata"]["generation"] == 1
    manifest["spec"]["predictor"]["minReplicas"] = 1
    applied = apply(manifest)
    assert applied["spec"]["predictor"]["minReplicas"] == 1
    assert applied["metadata"]["uid"] == created["metadata"]["uid"]
    assert applied["metadata"]["generation"] == 2


def test_a_strategic_merge_patch_of_a_custom_resource_is_refused_like_a_real_server(
        kube: KubeEmulatorServer) -> None:
    kube.create(inference_service("iris"))
    with pytest.raises(KubeApiError) as error:
        kube.patch("serving.kserve.io/v1beta1", "InferenceService", "iris", "default", {"spec": {}},
                   patch_type="application/strategic-merge-patch+json")
    assert (error.value.code, error.value.reason) == (415, "UnsupportedMediaType")


def test_an_injected_error_fails_only_the_next_request_and_changes_nothing(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    kube.fail_next("create", "apps/v1", "Deployment", code=503, reason="ServiceUnavailable")
    apps = AppsV1Api(api_client)
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_deployment("default", deployment("mlflow"), _request_timeout=TIMEOUT)
    assert error.value.status == 503
    assert kube.find("apps/v1", "Deployment", "mlflow", "default") is None
    apps.create_namespaced_deployment("default", deployment("mlflow"), _request_timeout=TIMEOUT)
    assert kube.find("apps/v1", "Deployment", "mlflow", "default") is not None


def test_forgetting_served_requests_keeps_those_in_flight_so_each_is_still_answered(
        api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    core = CoreV1Api(api_client)
    kube.create(config_map("a"))
    events: list[dict[str, Any]] = []
    watcher = threading.Thread(target=lambda: events.extend(watch_events(
        core.list_namespaced_config_map, "default", until=lambda e: e["object"].metadata.name == "b",
        timeout_s=30)))
    watcher.start()
    wait_until(lambda: kube.emulator.open_watches == 1)
    for _ in range(5):
        core.read_namespaced_config_map("a", "default", _request_timeout=TIMEOUT)
    kube.forget_served_requests()
    # only the open watch is still recorded (kmock routes a request only while its root lists it)
    wait_until(lambda: len(list(kube.emulator)) == 1)
    kube.create(config_map("b"))
    watcher.join(timeout=30)
    assert [e["object"].metadata.name for e in events][-1] == "b"

    # worst case: the record is trimmed while a request is being routed (a catcher runs first)
    kube.on_loop(lambda emulator: emulator["get /api/v1/namespaces/default/configmaps/b"]
                 >> (lambda: emulator.forget_served_requests()))
    answer = core.read_namespaced_config_map("b", "default", _request_timeout=TIMEOUT)
    assert answer.metadata.name == "b"


def test_dry_run_writes_change_nothing(api_client: ApiClient, kube: KubeEmulatorServer) -> None:
    core = CoreV1Api(api_client)
    version = kube.emulator.resource_version
    answer = core.create_namespaced_config_map("default", config_map("a"), dry_run="All",
                                               _request_timeout=TIMEOUT)
    assert answer.metadata.name == "a"
    assert kube.find("v1", "ConfigMap", "a", "default") is None
    assert kube.emulator.resource_version == version


def test_finalizers_hold_a_deletion_until_the_last_one_is_removed(kube: KubeEmulatorServer) -> None:
    kube.create({**config_map("a"), "metadata": {"name": "a", "finalizers": ["kservectl.io/cleanup"]}})
    kube.delete("v1", "ConfigMap", "a", "default")
    marked = kube.get("v1", "ConfigMap", "a", "default")
    assert marked["metadata"]["deletionTimestamp"]
    kube.patch("v1", "ConfigMap", "a", "default", {"metadata": {"finalizers": None}})
    assert kube.find("v1", "ConfigMap", "a", "default") is None


# ---- discovery and CRDs -----------------------------------------------------------------------------

def test_discovery_lists_the_kserve_knative_and_cert_manager_resources(api_client: ApiClient) -> None:
    groups = kubernetes.client.ApisApi(api_client).get_api_versions(_request_timeout=TIMEOUT)
    preferred = {group.name: group.preferred_version.version for group in groups.groups}
    assert preferred["serving.kserve.io"] == "v1beta1"
    assert preferred["serving.knative.dev"] == "v1"
    assert preferred["cert-manager.io"] == "v1"

    custom = CustomObjectsApi(api_client)
    alpha = custom.get_api_resources("serving.kserve.io", "v1alpha1", _request_timeout=TIMEOUT)
    scopes = {resource.kind: resource.namespaced for resource in alpha.resources if "/" not in resource.name}
    assert scopes == {"ServingRuntime": True, "ClusterServingRuntime": False}
    core = CoreV1Api(api_client).get_api_resources(_request_timeout=TIMEOUT)
    assert core.group_version == "v1"


def test_creating_a_crd_serves_its_resource_and_reports_it_established(kube: KubeEmulatorServer) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "trainedmodels.serving.kserve.io"},
        "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
                 "names": {"plural": "trainedmodels", "singular": "trainedmodel", "kind": "TrainedModel"},
                 "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                               "subresources": {"status": {}}}]},
    }
    created = kube.create(crd)
    assert {c["type"]: c["status"] for c in created["status"]["conditions"]} == {"NamesAccepted": "True",
                                                                                  "Established": "True"}
    model = kube.create({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel",
                         "metadata": {"name": "iris"}, "spec": {"model": {}}})
    assert model["metadata"]["namespace"] == "default"


# ---- real kubectl --------------------------------------------------------------------------------------

kubectl_present = pytest.mark.skipif(not KUBECTL.is_file(), reason=f"no kubectl at {KUBECTL}")

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: models}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mlflow, namespace: models}
spec:
  replicas: 1
  selector: {matchLabels: {app: mlflow}}
  template:
    metadata: {labels: {app: mlflow}}
    spec: {containers: [{name: mlflow, image: "mlflow:2"}]}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris, namespace: models}
spec:
  predictor: {model: {modelFormat: {name: mlflow}, storageUri: "s3://models/iris/1"}}
"""


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(kube: KubeEmulatorServer, tmp_path: Path) -> Kubectl:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "HOME": str(tmp_path),
           "KUBECACHEDIR": str(tmp_path / "kube-cache")}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(KUBECTL), *args], capture_output=True, text=True, env=env, timeout=8,
                              stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done
    return run


@kubectl_present
def test_kubectl_applies_reads_and_deletes_manifests(
        kubectl: Kubectl, kube: KubeEmulatorServer, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST)
    assert kubectl("apply", "-f", str(manifest)).stdout.split("\n")[:3] == [
        "namespace/models created", "deployment.apps/mlflow created",
        "inferenceservice.serving.kserve.io/iris created"]

    manifest.write_text(MANIFEST.replace("s3://models/iris/1", "s3://models/iris/2"))
    reapplied = kubectl("apply", "-f", str(manifest)).stdout
    assert "inferenceservice.serving.kserve.io/iris configured" in reapplied
    assert "deployment.apps/mlflow unchanged" in reapplied
    isvc = json.loads(kubectl("get", "inferenceservice", "iris", "-n", "models", "-o", "json").stdout)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://models/iris/2"
    listed = json.loads(kubectl("get", "deployments", "-n", "models", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["mlflow"]

    kubectl("delete", "-f", str(manifest))  # waits until all are gone, namespace included
    assert kube.find("v1", "Namespace", "models") is None
    assert kubectl("get", "isvc", "iris", "-n", "models", check=False).returncode == 1


@kubectl_present
def test_kubectl_wait_sees_the_conditions_set_by_simulated_controllers(
        kubectl: Kubectl, kube: KubeEmulatorServer, tmp_path: Path) -> None:
    kube.simulate_deployment_rollout(delay_s=0.2)
    kube.simulate_inference_services(delay_s=0.2)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST)
    kubectl("apply", "--server-side", "-f", str(manifest))
    kubectl("wait", "--for=condition=Available", "deployment/mlflow", "-n", "models", "--timeout=5s")
    kubectl("wait", "--for=condition=Ready", "inferenceservice/iris", "-n", "models", "--timeout=5s")
    url = kubectl("get", "isvc", "iris", "-n", "models", "-o", "jsonpath={.status.url}").stdout
    assert url == "http://iris-predictor.models.example.com"


def test_a_line_appended_while_a_follow_request_starts_is_sent_once_and_never_lost(kube):
    """The first chunk and the point following starts from are one snapshot (a line appended
    between them was once counted as sent and never delivered)."""
    import http.client
    import random

    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}})
    bodies = []
    for _ in range(40):
        kube.set_pod_log("default", "p", "c", ["first"], open=True)

        def writer() -> None:
            time.sleep(random.uniform(0, 0.004))  # around the moment the request is served
            kube.append_pod_log("default", "p", "c", "second")
            time.sleep(0.05)
            kube.close_pod_log("default", "p", "c")

        thread = threading.Thread(target=writer)
        thread.start()
        conn = http.client.HTTPConnection(kube.host, kube.port, timeout=30)
        try:
            conn.request("GET", "/api/v1/namespaces/default/pods/p/log?follow=true")
            bodies.append(conn.getresponse().read().decode())
        finally:
            conn.close()
            thread.join()
    assert bodies == ["first\nsecond\n"] * 40
