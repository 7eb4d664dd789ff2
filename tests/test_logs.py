"""``kservectl logs``: a model's predictor or a platform component through the Kubernetes API
(the emulator serves pods' ``/log`` from text the test stores, and records each request's
query), explanations for pods that do not run, usage errors that list the valid names, and the
local provider's log files."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kservectl import config as config_mod
from kservectl.context import Context
from kservectl.errors import ConfigError, UsageError
from kservectl.events import RecordingReporter
from kservectl.phases import logs

ISVC = "serving.kserve.io/v1beta1"


@pytest.fixture
def cluster(kube, isolated_env: Path):
    """The emulator as cluster ``kservectl`` (its kubeconfig where kservectl keeps it)."""
    kube.install_kubeconfig(isolated_env / "kservectl" / "kubeconfig", "models", "mlflow", "kserve",
                            "knative-serving")
    return kube


def ctx_for(kube) -> Context:
    return Context(config=config_mod.load(env={}).config, reporter=RecordingReporter(), kubeconfig=kube.kubeconfig)


def isvc(kube, name: str, *, min_replicas: int = 1, ready: bool = True) -> None:
    kube.create({"apiVersion": ISVC, "kind": "InferenceService", "metadata": {"name": name, "namespace": "models"},
                 "spec": {"predictor": {"minReplicas": min_replicas, "model": {"modelFormat": {"name": "mlflow"}}}},
                 "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                            "reason": None if ready else "RevisionMissing",
                                            "message": None if ready else "the revision failed"}]}})


def pod(kube, name: str, namespace: str, labels: dict[str, str], containers: list[str], *,
        phase: str = "Running", states: dict[str, dict] | None = None, created: str = "2026-01-01T00:00:00Z") -> None:
    states = states or {}
    statuses = []
    for c in containers:
        st = states.get(c, {"state": {"running": {"startedAt": created}}, "ready": True})
        statuses.append({"name": c, "restartCount": 0, **st})
    kube.create({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": name, "namespace": namespace, "labels": labels,
                              "creationTimestamp": created},
                 "spec": {"containers": [{"name": c, "image": f"example/{c}"} for c in containers]},
                 "status": {"phase": phase, "containerStatuses": statuses}})


def event(kube, namespace: str, pod_name: str, reason: str, message: str, n: int = 1) -> None:
    kube.create({"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{pod_name}.{reason.lower()}{n}", "namespace": namespace},
                 "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace},
                 "type": "Warning", "reason": reason, "message": message,
                 "lastTimestamp": f"2026-01-01T00:0{n}:00Z"})


PREDICTOR = {"serving.kserve.io/inferenceservice": "wine", "component": "predictor"}


# -- names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1h30m", 5400),
                                               ("1d", 86400), (" 10M ", 600)])
def test_durations_are_read_like_kubectl_reads_them(text, seconds):
    assert logs.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "5 minutes", "-5m", "0s", "1.5h", "m"])
def test_a_bad_duration_is_a_usage_error_naming_since(text):
    with pytest.raises(ConfigError, match="--since=") as caught:
        logs.parse_duration(text)
    assert caught.value.exit_code == 2
    assert "30s, 5m" in caught.value.one_line()


def test_every_component_is_found_by_its_name_and_aliases():
    for name, expected in (("mlflow", "mlflow"), ("kserve", "kserve-controller"), ("alb", "load-balancer-controller"),
                           ("activator", "activator"), ("cert-manager", "cert-manager"),
                           ("gateway", "kourier"), ("cluster-autoscaler", "cluster-autoscaler")):
        found = logs.component(name)
        assert found is not None and found.name == expected
    assert logs.component("wine") is None


def test_an_unknown_name_is_a_usage_error_listing_components_and_models(cluster):
    isvc(cluster, "wine")
    isvc(cluster, "iris")
    with pytest.raises(UsageError) as caught:
        logs.resolve(ctx_for(cluster), "winee")
    text = caught.value.one_line()
    assert caught.value.exit_code == 2
    assert "unknown component or model 'winee'" in text
    assert "components: mlflow, kserve-controller, activator, kourier, load-balancer-controller, cert-manager" in text
    assert "models in namespace models: iris, wine" in text


def test_an_unknown_name_on_a_cluster_without_kserve_lists_no_model(cluster):
    cluster.fail_next("list", ISVC, "InferenceService", code=404, reason="NotFound",
                               message="the server could not find the requested resource")
    with pytest.raises(UsageError, match="models in namespace models: none"):
        logs.resolve(ctx_for(cluster), "nope")


def test_a_model_named_like_a_component_needs_the_model_prefix(cluster):
    isvc(cluster, "mlflow")
    ctx = ctx_for(cluster)
    assert logs.resolve(ctx, "mlflow").kind == "component"
    assert any("names both a component and an InferenceService" in m for m in ctx.reporter.messages("warn"))
    target = logs.resolve(ctx, "model/mlflow")
    assert (target.kind, target.selector, target.container) == (
        "model", "serving.kserve.io/inferenceservice=mlflow", "kserve-container")


# -- a model ------------------------------------------------------------------------------------------
def test_a_model_shows_its_predictor_pods_kserve_container_through_the_log_subresource(cluster):
    isvc(cluster, "wine")
    pod(cluster, "wine-predictor-1", "models", PREDICTOR, ["kserve-container", "queue-proxy"])
    pod(cluster, "other-predictor-1", "models", {"serving.kserve.io/inferenceservice": "other"}, ["kserve-container"])
    cluster.set_pod_log("models", "wine-predictor-1", "kserve-container", ["loading model", "ready on 8080"])
    cluster.set_pod_log("models", "wine-predictor-1", "queue-proxy", ["queue noise"])
    out, notes = [], []

    ctx = ctx_for(cluster)
    result = logs.show(ctx, logs.resolve(ctx, "wine"), logs.Options(), out=out.append, note=notes.append)

    assert out == ["loading model", "ready on 8080"]  # one container: no prefix
    assert notes == [] and result.found and result.lines == 2
    assert cluster.emulator.pod_log_requests == [
        {"namespace": "models", "pod": "wine-predictor-1", "container": "kserve-container", "tailLines": "100"}]


def test_a_component_with_several_pods_prefixes_each_line_with_pod_and_container(cluster):
    labels = {"control-plane": "kserve-controller-manager"}
    pod(cluster, "kserve-controller-manager-a", "kserve", labels, ["manager", "kube-rbac-proxy"],
        created="2026-01-01T00:00:00Z")
    pod(cluster, "kserve-controller-manager-b", "kserve", labels, ["manager", "kube-rbac-proxy"],
        created="2026-01-01T00:05:00Z")
    pod(cluster, "unrelated", "kserve", {"app": "x"}, ["x"])
    cluster.set_pod_log("kserve", "kserve-controller-manager-a", "manager", ["reconciling wine"])
    cluster.set_pod_log("kserve", "kserve-controller-manager-b", "manager", ["leader elected"])
    out: list[str] = []

    ctx = ctx_for(cluster)
    logs.show(ctx, logs.resolve(ctx, "kserve"), logs.Options(tail=None), out=out.append, note=print)

    assert out == ["[kserve-controller-manager-a/manager] reconciling wine",
                   "[kserve-controller-manager-b/manager] leader elected"]
    assert all("tailLines" not in r for r in cluster.emulator.pod_log_requests)


def test_the_pods_default_container_annotation_is_used_when_the_component_names_none(cluster):
    cluster.ensure_namespace("kourier-system")
    cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "gw", "namespace": "kourier-system", "labels": {"app": "3scale-kourier-gateway"},
        "annotations": {"kubectl.kubernetes.io/default-container": "kourier-gateway"}},
        "spec": {"containers": [{"name": "sidecar"}, {"name": "kourier-gateway"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "sidecar", "ready": True, "state": {"running": {}}},
            {"name": "kourier-gateway", "ready": True, "state": {"running": {}}}]}})
    cluster.set_pod_log("kourier-system", "gw", "kourier-gateway", ["envoy started"])
    out: list[str] = []
    ctx = ctx_for(cluster)
    logs.show(ctx, logs.resolve(ctx, "kourier"), logs.Options(), out=out.append, note=print)
    assert out == ["envoy started"]


def test_a_pending_pod_is_explained_with_its_container_state_and_events_and_no_log_is_requested(cluster):
    isvc(cluster, "wine")
    pod(cluster, "wine-predictor-1", "models", PREDICTOR, ["kserve-container"], phase="Pending",
        states={"kserve-container": {"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}})
    event(cluster, "models", "wine-predictor-1", "FailedScheduling",
          "0/2 nodes are available: 2 Insufficient memory.", 1)
    event(cluster, "models", "another-pod", "Unrelated", "not this pod", 2)
    out, notes = [], []

    ctx = ctx_for(cluster)
    result = logs.show(ctx, logs.resolve(ctx, "wine"), logs.Options(), out=out.append, note=notes.append)

    assert out == []
    assert notes[0] == "pod models/wine-predictor-1 is Pending"
    assert "  container kserve-container: waiting (ContainerCreating)" in notes
    assert "  event Warning FailedScheduling: 0/2 nodes are available: 2 Insufficient memory." in notes
    assert not any("not this pod" in n for n in notes)
    assert notes[-1] == "no logs from wine-predictor-1/kserve-container yet: waiting (ContainerCreating)"
    assert cluster.emulator.pod_log_requests == []
    assert result.pods[0].diagnosis and result.found


def test_a_crash_looping_container_shows_why_and_the_logs_of_its_previous_attempt(cluster):
    isvc(cluster, "wine")
    pod(cluster, "wine-predictor-1", "models", PREDICTOR, ["kserve-container"], states={"kserve-container": {
        "ready": False, "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}})
    event(cluster, "models", "wine-predictor-1", "BackOff", "Back-off restarting failed container")
    cluster.set_pod_log("models", "wine-predictor-1", "kserve-container",
                        ["TypeError: __init__() got an unexpected keyword argument 'required'"], previous=True)
    out, notes = [], []

    ctx = ctx_for(cluster)
    logs.show(ctx, logs.resolve(ctx, "wine"), logs.Options(), out=out.append, note=notes.append)

    assert "  container kserve-container: waiting (CrashLoopBackOff): back-off 1m20s restarting failed container; " \
           "restarts 4; last exit 1 (Error)" in notes
    assert "  event Warning BackOff: Back-off restarting failed container" in notes
    assert any("showing the logs of its previous attempt" in n for n in notes)
    assert out == ["TypeError: __init__() got an unexpected keyword argument 'required'"]
    assert cluster.emulator.pod_log_requests[0]["previous"] == "true"


def test_a_failing_storage_initializer_is_explained_and_its_logs_shown(cluster):
    """The most common InferenceService failure: KServe's init container cannot download the model
    (a storageUri one level off, or S3 refusing the IRSA role)."""
    isvc(cluster, "wine")
    cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "wine-predictor-1", "namespace": "models", "labels": PREDICTOR},
        "spec": {"initContainers": [{"name": "storage-initializer"}],
                 "containers": [{"name": "kserve-container"}, {"name": "queue-proxy"}]},
        "status": {"phase": "Pending",
                   "initContainerStatuses": [{"name": "storage-initializer", "restartCount": 3, "ready": False,
                                              "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                              "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                   "containerStatuses": [{"name": "kserve-container", "ready": False,
                                          "state": {"waiting": {"reason": "PodInitializing"}}},
                                         {"name": "queue-proxy", "ready": False,
                                          "state": {"waiting": {"reason": "PodInitializing"}}}]}})
    cluster.set_pod_log("models", "wine-predictor-1", "storage-initializer",
                        ["botocore.exceptions.ClientError: An error occurred (403) when calling the HeadObject "
                         "operation: Forbidden"], previous=True)
    out, notes = [], []
    ctx = ctx_for(cluster)
    logs.show(ctx, logs.resolve(ctx, "wine"), logs.Options(), out=out.append, note=notes.append)
    assert "  init container storage-initializer: waiting (CrashLoopBackOff); restarts 3; last exit 1 (Error)" \
        in notes
    assert any("its init container storage-initializer failed: showing its logs" in n for n in notes)
    assert out == ["botocore.exceptions.ClientError: An error occurred (403) when calling the HeadObject "
                   "operation: Forbidden"]
    assert cluster.emulator.pod_log_requests[0]["container"] == "storage-initializer"
    assert cluster.emulator.pod_log_requests[0]["previous"] == "true"


def test_an_init_container_can_be_asked_for_by_name(cluster):
    cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "mlflow-1", "namespace": "mlflow", "labels": {"app.kubernetes.io/name": "mlflow",
                                                              "app.kubernetes.io/component": "tracking-server"}},
        "spec": {"initContainers": [{"name": "auth-config"}], "containers": [{"name": "mlflow"}]},
        "status": {"phase": "Running",
                   "initContainerStatuses": [{"name": "auth-config", "state": {"terminated": {"exitCode": 0}}}],
                   "containerStatuses": [{"name": "mlflow", "ready": True, "state": {"running": {}}}]}})
    cluster.set_pod_log("mlflow", "mlflow-1", "auth-config", ["wrote basic_auth.ini"])
    out: list[str] = []
    ctx = ctx_for(cluster)
    result = logs.show(ctx, logs.resolve(ctx, "mlflow"), logs.Options(container="auth-config"), out=out.append,
                       note=print)
    assert out == ["wrote basic_auth.ini"] and result.pods[0].diagnosis == []


def test_a_model_scaled_to_zero_says_so_and_is_not_an_error(cluster):
    isvc(cluster, "wine", min_replicas=0)
    notes: list[str] = []
    ctx = ctx_for(cluster)
    result = logs.show(ctx, logs.resolve(ctx, "wine"), logs.Options(), out=print, note=notes.append)
    assert result.scaled_to_zero and result.found
    assert "scaled to zero (minReplicas 0)" in notes[0]


def test_a_model_without_pods_shows_why_kserve_says_it_is_not_ready(cluster):
    isvc(cluster, "wine", ready=False)
    notes: list[str] = []
    ctx = ctx_for(cluster)
    result = logs.show(ctx, logs.resolve(ctx, "wine"), logs.Options(), out=print, note=notes.append)
    assert not result.found
    assert "Ready=False (RevisionMissing: the revision failed)" in " ".join(notes)


def test_follow_streams_lines_as_the_container_writes_them_until_it_stops(cluster):
    pod(cluster, "mlflow-1", "mlflow", {"app.kubernetes.io/name": "mlflow",
                                        "app.kubernetes.io/component": "tracking-server"}, ["mlflow"])
    cluster.set_pod_log("mlflow", "mlflow-1", "mlflow", ["started"], open=True)
    out: list[str] = []

    def receive(line: str) -> None:  # the container writes once the stream is open, stops once it was read
        out.append(line)
        if line == "started":
            cluster.append_pod_log("mlflow", "mlflow-1", "mlflow", "GET /health 200")
        elif line == "GET /health 200":
            cluster.close_pod_log("mlflow", "mlflow-1", "mlflow")

    ctx = ctx_for(cluster)
    logs.show(ctx, logs.resolve(ctx, "mlflow"), logs.Options(follow=True, since_seconds=600), out=receive,
              note=print)
    assert out == ["started", "GET /health 200"]
    assert cluster.emulator.pod_log_requests[0] == {
        "namespace": "mlflow", "pod": "mlflow-1", "container": "mlflow", "follow": "true", "sinceSeconds": "600",
        "tailLines": "100"}


def test_follow_of_several_pods_streams_them_at_once(cluster):
    labels = {"app": "activator"}
    for name in ("activator-a", "activator-b"):
        pod(cluster, name, "knative-serving", labels, ["activator"])
        cluster.set_pod_log("knative-serving", name, "activator", [f"{name} up"], open=True)
    out: list[str] = []
    lock = threading.Lock()

    def receive(line: str) -> None:
        """Once both streams are open, activator-b writes a line; once it was read, both stop."""
        with lock:
            out.append(line)
            if line.endswith(" up") and sum(seen.endswith(" up") for seen in out) == 2:
                cluster.append_pod_log("knative-serving", "activator-b", "activator", "b buffering request")
            elif line.endswith("b buffering request"):
                cluster.close_pod_log("knative-serving", "activator-b", "activator")
                cluster.close_pod_log("knative-serving", "activator-a", "activator")

    ctx = ctx_for(cluster)
    logs.show(ctx, logs.resolve(ctx, "activator"), logs.Options(follow=True), out=receive, note=print)
    assert sorted(out) == ["[activator-a/activator] activator-a up", "[activator-b/activator] activator-b up",
                           "[activator-b/activator] b buffering request"]


# -- through the CLI ----------------------------------------------------------------------------------
def test_cli_logs_of_a_model_map_every_option_to_the_request(cli, cluster):
    isvc(cluster, "wine")
    pod(cluster, "wine-predictor-1", "models", PREDICTOR, ["kserve-container", "queue-proxy"])
    cluster.set_pod_log("models", "wine-predictor-1", "queue-proxy",
                        [("2020-01-01T10:00:00Z", "too old for --since"), "proxy line"])

    result = cli("logs", "wine", "--since", "1h30m", "--tail", "5", "--container", "queue-proxy",
                 "--timestamps", "--cluster", "kservectl", "-r", "eu-west-1")

    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    stamp, text = line.split(" ", 1)
    assert text == "proxy line" and stamp.endswith("Z") and stamp[:2] == "20"
    assert cluster.emulator.pod_log_requests == [{
        "namespace": "models", "pod": "wine-predictor-1", "container": "queue-proxy", "sinceSeconds": "5400",
        "tailLines": "5", "timestamps": "true"}]


def test_cli_logs_tail_minus_one_asks_for_every_line_and_f_follows(cli, cluster):
    labels = {"app.kubernetes.io/name": "aws-load-balancer-controller"}
    pod(cluster, "lbc-1", "kube-system", labels, ["aws-load-balancer-controller"])
    cluster.set_pod_log("kube-system", "lbc-1", "aws-load-balancer-controller",
                        [f"line {i}" for i in range(150)])

    result = cli("logs", "load-balancer-controller", "--tail", "-1", "-f", "-c", "kservectl")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [f"line {i}" for i in range(150)]
    assert cluster.emulator.pod_log_requests == [{"namespace": "kube-system", "pod": "lbc-1",
                                                  "container": "aws-load-balancer-controller", "follow": "true"}]


def test_cli_logs_reads_the_cluster_from_a_config_file(cli, cluster, isolated_env, tmp_path):
    cluster.install_kubeconfig(isolated_env / "ml" / "kubeconfig")
    conf = tmp_path / "platform.yaml"
    conf.write_text("cluster:\n  name: ml\n")
    pod(cluster, "mlflow-1", "mlflow", {"app.kubernetes.io/name": "mlflow",
                                        "app.kubernetes.io/component": "tracking-server"}, ["mlflow"])
    cluster.set_pod_log("mlflow", "mlflow-1", "mlflow", ["hello from ml"])
    result = cli("logs", "mlflow", "--config", str(conf))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "hello from ml\n"


def test_cli_logs_of_an_unknown_name_exits_2_with_one_line_listing_the_names(cli, cluster):
    isvc(cluster, "wine")
    result = cli("logs", "wnie")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown component or model 'wnie'" in lines[0] and "models in namespace models: wine" in lines[0]
    assert "cert-manager" in lines[0] and result.stdout == ""


def test_cli_logs_with_a_bad_since_or_container_exits_2(cli, cluster):
    isvc(cluster, "wine")
    pod(cluster, "wine-predictor-1", "models", PREDICTOR, ["kserve-container"])
    bad_since = cli("logs", "wine", "--since", "yesterday")
    assert bad_since.exit_code == 2 and "--since='yesterday'" in bad_since.stderr
    bad_container = cli("logs", "wine", "--container", "nope")
    assert bad_container.exit_code == 2
    assert "has no container 'nope' (containers: kserve-container)" in bad_container.stderr


def test_cli_logs_of_a_component_that_is_not_installed_exits_1_and_says_so(cli, cluster):
    result = cli("logs", "cert-manager")
    assert result.exit_code == 1
    assert "no pod of cert-manager's controller in namespace cert-manager" in result.stderr
    assert "kservectl status" in result.stderr


def test_cli_logs_pending_pod_explanation_goes_to_stderr_and_exits_0(cli, cluster):
    isvc(cluster, "wine")
    pod(cluster, "wine-predictor-1", "models", PREDICTOR, ["kserve-container"], phase="Pending",
        states={"kserve-container": {"ready": False, "state": {"waiting": {"reason": "ImagePullBackOff",
                                                                           "message": "pull access denied"}}}})
    event(cluster, "models", "wine-predictor-1", "Failed", "Failed to pull image \"example/kserve-container\"")
    result = cli("logs", "wine")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "waiting (ImagePullBackOff): pull access denied" in result.stderr
    assert "event Warning Failed: Failed to pull image" in result.stderr


# -- the local provider ---------------------------------------------------------------------------------
def local_state(home: Path, cluster: str = "kservectl"):
    from kservectl.local.state import LocalState

    state = LocalState.load(cluster)
    state.logs_dir.mkdir(parents=True, exist_ok=True)
    return state


def test_local_logs_show_the_tail_of_mlflows_log_file(cli, isolated_env):
    from kservectl.local.procs import Proc

    state = local_state(isolated_env)
    log = state.logs_dir / "mlflow.log"
    log.write_text("".join(f"mlflow line {i}\n" for i in range(10)))
    state.mlflow = Proc("mlflow", 999_999, ["mlflow"], 5000, str(log), 0.0, 1)
    state.save()

    result = cli("logs", "mlflow", "--provider", "local", "--tail", "3")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["mlflow line 7", "mlflow line 8", "mlflow line 9"]


def test_local_logs_of_a_model_and_the_names_when_unknown(cli, isolated_env):
    state = local_state(isolated_env)
    (state.logs_dir / "model-wine.log").write_text("model ready\n")  # a stopped server's file remains
    (state.logs_dir / "mlflow.log").write_text("")
    assert cli("logs", "wine", "-p", "local").stdout == "model ready\n"
    result = cli("logs", "iris", "-p", "local", "--since", "5m")
    assert result.exit_code == 2
    assert "unknown local component or model 'iris': valid names are mlflow, wine" in result.stderr


def test_local_logs_with_nothing_started_exit_2_and_say_how_to_start(cli, isolated_env):
    result = cli("logs", "mlflow", "--provider", "local")
    assert result.exit_code == 2
    assert "kservectl up --provider local" in result.stderr


def test_local_follow_prints_what_a_running_process_appends_until_it_exits(isolated_env):
    from kservectl.local import procs
    from kservectl.local.state import ServedModel

    state = local_state(isolated_env)
    log = state.logs_dir / "model-wine.log"
    log.write_text("first\n")
    # the child writes its line i once the test has read the line before it (go file i): it is
    # running when show_local first looks, and exits only after the follow has read "more 1"
    go = isolated_env / "go"
    script = ("import os, sys, time\n"
              "for i in range(3):\n"
              "    deadline = time.monotonic() + 30\n"
              "    while not os.path.exists(f'{sys.argv[1]}-{i}'):\n"
              "        if time.monotonic() > deadline:\n"
              "            sys.exit(f'no go file {i} within 30 s')\n"
              "        time.sleep(0.01)\n"
              "    print('more', i, flush=True)\n")
    with log.open("a") as fh:
        child = subprocess.Popen([sys.executable, "-c", script, str(go)], stdout=fh, stderr=subprocess.STDOUT)
    proc = procs.Proc("model wine", child.pid, [sys.executable], 0, str(log), time.time(),
                      procs._stat(child.pid)[1])
    state.models["wine"] = ServedModel("wine", "models:/wine/1", str(isolated_env), proc)
    state.save()
    reaper = threading.Thread(target=child.wait)
    reaper.start()
    out: list[str] = []
    notes: list[str] = []

    def receive(line: str) -> None:
        out.append(line)
        if len(out) <= 3:
            Path(f"{go}-{len(out) - 1}").touch()

    ctx = Context(config=config_mod.load(env={}).config, reporter=RecordingReporter())
    ctx.settings = ctx.settings.with_(waits=dataclasses.replace(ctx.settings.waits, log_follow_poll=0.05))

    written = logs.show_local(ctx, "wine", logs.Options(follow=True), out=receive, note=notes.append)

    reaper.join(10)
    assert out == ["first", "more 0", "more 1", "more 2"] and written == 4
    assert notes == ["wine exited"]


def test_local_follow_of_a_stopped_process_prints_the_file_and_ends(isolated_env):
    state = local_state(isolated_env)
    (state.logs_dir / "mlflow.log").write_text("a\nb\n")
    notes: list[str] = []
    ctx = Context(config=config_mod.load(env={}).config, reporter=RecordingReporter())
    out: list[str] = []
    logs.show_local(ctx, "mlflow", logs.Options(follow=True, tail=None), out=out.append, note=notes.append)
    assert out == ["a", "b"]
    assert "mlflow is not running" in notes[0]


def test_local_follow_prints_the_last_lines_of_a_process_that_exits_as_following_begins(isolated_env,
                                                                                           monkeypatch):
    from kservectl.local import procs
    from kservectl.local.state import ServedModel

    state = local_state(isolated_env)
    log = state.logs_dir / "model-wine.log"
    log.write_text("first\n")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    proc = procs.Proc("model wine", child.pid, [sys.executable], 0, str(log), time.time(), procs._stat(child.pid)[1])
    child.wait()
    state.models["wine"] = ServedModel("wine", "models:/wine/1", str(isolated_env), proc)
    state.save()

    def alive(p: procs.Proc) -> bool:  # it writes its last line and exits just as it is asked
        with log.open("a") as fh:
            fh.write("last words\n")
        return False

    monkeypatch.setattr(procs, "alive", alive)
    out: list[str] = []
    notes: list[str] = []
    ctx = Context(config=config_mod.load(env={}).config, reporter=RecordingReporter())
    written = logs.show_local(ctx, "wine", logs.Options(follow=True), out=out.append, note=notes.append)
    assert out == ["first", "last words"] and written == 2  # not lost between the read and the check
    assert notes == [f"wine is not running: nothing more will be written to {log}"]


def test_the_cli_module_stays_fast_to_import():
    code = ("import sys; import kservectl.cli.logs_cmd; "
            "print(','.join(m for m in ('boto3', 'kubernetes', 'rich', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert out.stdout.strip() == ""
