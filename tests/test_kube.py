"""kservectl.kube against the Kubernetes emulator over real HTTP: ensure semantics and waits
with deadlines that explain a timeout."""

from __future__ import annotations

import time

import pytest

from kservectl import kube as k
from kservectl.errors import KubeError, WaitTimeout
from kservectl.settings import Settings, WaitDeadlines

FAST = Settings(waits=WaitDeadlines(watch_chunk=1.0, poll_interval=0.05), kube_request_timeout=5)


@pytest.fixture
def client(kube):
    return k.Kube(k.load_api_client(kube.kubeconfig, settings=FAST), settings=FAST)


def deployment(name="web", replicas=1, image="nginx:1.27"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}}}


def test_apply_creates_then_leaves_alone_then_changes_only_what_differs(client, kube):
    assert client.apply(deployment()) == "created"
    version = kube.get("apps/v1", "Deployment", "web", "default")["metadata"]["resourceVersion"]
    assert client.apply(deployment()) == "unchanged"
    assert kube.get("apps/v1", "Deployment", "web", "default")["metadata"]["resourceVersion"] == version
    assert client.apply(deployment(replicas=3)) == "changed"
    assert kube.get("apps/v1", "Deployment", "web", "default")["spec"]["replicas"] == 3


def test_get_of_a_missing_object_is_none_and_delete_of_it_is_false(client):
    assert client.get("v1", "ConfigMap", "nope", "default") is None
    assert client.delete(k.Ref("v1", "ConfigMap", "nope", "default")) is False


def test_a_wait_returns_when_the_controller_makes_the_deployment_available(kube):
    slow_chunks = Settings(waits=WaitDeadlines(watch_chunk=30.0, poll_interval=30.0), kube_request_timeout=40)
    client = k.Kube(k.load_api_client(kube.kubeconfig, settings=slow_chunks), settings=slow_chunks)
    kube.simulate_deployment_rollout(delay_s=0.3)
    client.apply(deployment())
    started = time.monotonic()
    obj = client.wait_for(k.Ref("apps/v1", "Deployment", "web", "default"), k.deployment_available,
                          what="Deployment default/web Available", timeout=60)
    assert obj["status"]["availableReplicas"] == 1
    assert time.monotonic() - started < 15  # woken by the watch event, not by the 30 s chunk or poll


def test_a_wait_that_times_out_names_what_is_pending_and_recent_events(kube):
    from kservectl.clock import FakeClock

    # polling on a fake clock: the deadline passes after a few polls, however slow the machine
    client = k.Kube(k.load_api_client(kube.kubeconfig, settings=FAST), settings=FAST, clock=FakeClock(), watch=False)
    client.apply(deployment(replicas=2))
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
                 "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
                 "type": "Warning", "reason": "FailedCreate", "message": "exceeded quota: compute-resources",
                 "lastTimestamp": "2026-11-27T05:00:00Z"})
    waits: list[tuple[str, str]] = []
    client.on_wait = lambda what, detail: waits.append((what, detail))
    with pytest.raises(WaitTimeout) as info:
        client.wait_for(k.Ref("apps/v1", "Deployment", "web", "default"), k.deployment_available,
                        what="Deployment default/web Available", timeout=0.5)
    message = info.value.one_line()
    assert "timed out after 0.5s waiting for Deployment default/web Available" in message
    assert "Deployment default/web: 0/2 replicas available" in message
    assert "event Warning FailedCreate: exceeded quota: compute-resources" in message
    assert waits and waits[0] == ("Deployment default/web Available", "Deployment default/web: 0/2 replicas available")


def test_a_late_load_balancer_hostname_is_waited_for(client, kube):
    kube.simulate_load_balancers(delay_s=0.5, hostname="k8s-kourier-abc.elb.us-west-2.amazonaws.com")
    client.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace": "default"},
                  "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]}})
    obj = client.wait_for(k.Ref("v1", "Service", "kourier", "default"), k.service_hostname,
                          what="the gateway NLB hostname", timeout=10)
    assert k.service_hostname(obj) == (True, "k8s-kourier-abc.elb.us-west-2.amazonaws.com")


def test_waiting_for_every_node_ready_covers_cluster_scoped_objects(client, kube):
    for i in range(3):
        kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"ip-10-0-0-{i}"},
                     "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    for i in range(3):
        kube.react_after("v1", "Node", f"ip-10-0-0-{i}", None, 0.2 * (i + 1),
                         {"conditions": [{"type": "Ready", "status": "True"}]})
    items = client.wait_for_all("v1", "Node", None, k.nodes_ready(3), what="3 nodes Ready", timeout=10)
    assert len(items) == 3


def test_the_node_wait_timeout_lists_the_nodes_not_ready(client, kube):
    kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-0-9"},
                 "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    with pytest.raises(WaitTimeout, match=r"0/3 nodes Ready \(not Ready: ip-10-0-0-9\)"):
        client.wait_for_all("v1", "Node", None, k.nodes_ready(3), what="3 nodes Ready", timeout=0.3)


def test_a_wait_survives_410_gone_by_relisting(client, kube):
    client.apply(deployment())
    kube.on_loop(lambda emulator: emulator.compact_history())  # not while the loop serves a watch
    kube.react_after("apps/v1", "Deployment", "web", "default", 0.3,
                     {"availableReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]})
    client.wait_for(k.Ref("apps/v1", "Deployment", "web", "default"), k.deployment_available,
                    what="web", timeout=10)


def test_wait_deleted_returns_once_the_object_is_gone(client, kube):
    client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
                  "data": {"a": "b"}})
    ref = k.Ref("v1", "ConfigMap", "c", "default")
    assert client.delete(ref) is True
    client.wait_deleted(ref, what="ConfigMap c deleted", timeout=5)
    assert client.get("v1", "ConfigMap", "c", "default") is None


def test_a_wait_with_polling_uses_the_injected_clock(kube):
    from kservectl.clock import FakeClock

    clock = FakeClock()
    polling = Settings(waits=WaitDeadlines(poll_interval=60.0), kube_request_timeout=5)
    c = k.Kube(k.load_api_client(kube.kubeconfig, settings=polling), settings=polling, clock=clock, watch=False)
    c.apply(deployment())
    with pytest.raises(WaitTimeout):
        c.wait_for(k.Ref("apps/v1", "Deployment", "web", "default"), k.deployment_available, what="web",
                   timeout=600)
    assert sum(clock.sleeps) == 600 and clock.sleeps == [60.0] * 10


def test_an_unreachable_api_server_is_a_kube_error_with_a_hint(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n  cluster:\n"
                   "    server: http://127.0.0.1:9\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\n"
                   "users:\n- name: x\n  user: {token: t}\n")
    quick = Settings(kube_request_timeout=1)
    api = k.load_api_client(cfg, settings=quick)
    api.configuration.retries = 0
    with pytest.raises(KubeError, match="cannot reach the Kubernetes API"):
        k.Kube(api, settings=quick).get("v1", "Namespace", "default")


def test_a_missing_kubeconfig_says_how_to_get_one(tmp_path):
    with pytest.raises(KubeError) as info:
        k.load_api_client(tmp_path / "absent")
    assert "kservectl cluster create" in info.value.one_line()


# -- an overloaded or briefly failing API server ------------------------------------------------
def test_a_read_answered_503_is_sent_again_and_succeeds(kube):
    from kservectl.clock import FakeClock

    clock = FakeClock()
    c = k.Kube(k.load_api_client(kube.kubeconfig, settings=FAST), settings=FAST, clock=clock)
    c.apply(deployment())
    kube.fail_next("get", "apps/v1", "Deployment", code=503, reason="ServiceUnavailable", times=2)
    assert c.get("apps/v1", "Deployment", "web", "default")["metadata"]["name"] == "web"
    assert clock.sleeps == [0.5, 1.0]  # FAST's backoff: initial 0.5, doubling


def test_a_write_answered_429_waits_as_the_server_asks_and_a_write_answered_500_is_not_repeated(kube):
    from kservectl.clock import FakeClock

    clock = FakeClock()
    c = k.Kube(k.load_api_client(kube.kubeconfig, settings=FAST), settings=FAST, clock=clock)
    kube.fail_next("create", "apps/v1", "Deployment", code=429, reason="TooManyRequests", retry_after=3)
    assert c.apply(deployment()) == "created"
    assert clock.sleeps == [3.0]
    assert kube.find("apps/v1", "Deployment", "web", "default") is not None

    kube.fail_next("create", "v1", "ConfigMap", code=500, message="etcdserver: request timed out")
    with pytest.raises(KubeError, match="etcdserver: request timed out"):
        c.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}})
    assert clock.sleeps == [3.0]  # a write that may have happened is the caller's to retry
    assert kube.find("v1", "ConfigMap", "c", "default") is None


def test_a_read_that_keeps_failing_returns_the_last_answer_after_the_bounded_attempts(kube):
    from kservectl.clock import FakeClock

    clock = FakeClock()
    c = k.Kube(k.load_api_client(kube.kubeconfig, settings=FAST), settings=FAST, clock=clock)
    kube.fail_next("list", "v1", "Node", code=503, reason="ServiceUnavailable", times=10,
                   message="the server is currently unable to handle the request")
    with pytest.raises(KubeError, match="503: the server is currently unable to handle the request"):
        c.list("v1", "Node")
    assert len(clock.sleeps) == FAST.kube_retry.attempts - 1


def test_a_read_answered_429_is_retried_once_by_kservectl_on_its_clock_not_by_urllib3(kube):
    from kservectl.clock import FakeClock

    clock = FakeClock()
    c = k.Kube(k.load_api_client(kube.kubeconfig, settings=FAST), settings=FAST, clock=clock)
    c.apply(deployment())
    reads = lambda: sum(1 for r in list(kube.emulator) if r.method == "GET" and r.url.path.endswith("/web"))  # noqa: E731
    before = reads()
    kube.fail_next("get", "apps/v1", "Deployment", code=429, reason="TooManyRequests", retry_after=30)
    started = time.monotonic()
    assert c.get("apps/v1", "Deployment", "web", "default") is not None
    assert time.monotonic() - started < 15  # urllib3 did not wait the 30 s itself
    assert clock.sleeps == [10.0]  # Retry-After 30, capped by FAST's kube_retry maximum
    assert reads() - before == 2


# == a stopped run (Ctrl-C in up) ===================================================================
def test_a_stopped_run_sends_no_request_and_a_watch_under_way_ends_at_its_next_event(kube):
    import threading

    from kservectl.clock import StoppableClock, SystemClock

    stop = threading.Event()
    long_chunks = Settings(waits=WaitDeadlines(watch_chunk=30.0, poll_interval=30.0), kube_request_timeout=40)
    c = k.Kube(k.load_api_client(kube.kubeconfig, settings=long_chunks), settings=long_chunks,
               clock=StoppableClock(SystemClock(), stop))
    c.apply(deployment())

    def stop_then_change() -> None:
        stop.set()
        kube.patch("apps/v1", "Deployment", "web", "default", {"metadata": {"labels": {"touched": "yes"}}})

    changer = threading.Timer(0.5, stop_then_change)
    changer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        c.wait_for(k.Ref("apps/v1", "Deployment", "web", "default"), k.deployment_available,
                   what="Deployment default/web Available", timeout=60)
    assert time.monotonic() - started < 15  # at the change's event, not at the 30 s chunk's end
    changer.join()

    sent = len(list(kube.emulator))
    with pytest.raises(KeyboardInterrupt):
        c.get("apps/v1", "Deployment", "web", "default")
    assert len(list(kube.emulator)) == sent  # nothing was sent
