"""``kservectl test``'s checks: requests built from the model itself, both protocols, and a
verdict that passes only when every check does and predictions match the rows sent.

The slow tests run a REAL data plane: an MLflow server (sqlite, local artifacts) where the
example model is logged and registered by ``kservectl.example``, and MLServer 1.7.1 with
``mlserver_mlflow.MLflowRuntime`` serving that model, as KServe's ``kserve-mlserver`` runtime does.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kservectl import models, probe
from kservectl.settings import DEFAULT_SETTINGS
from support.http_server import QuietHandler, serving

MLFLOW_WARNINGS = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.models.utils"),
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]
pytestmark = MLFLOW_WARNINGS
VENV_BIN = Path(sys.executable).parent

MLSERVER_METADATA = {
    "name": "wine", "versions": [], "platform": "",
    "inputs": [{"name": n, "datatype": "FP64", "shape": [-1, 1], "parameters": {"content_type": "np"}}
               for n in ("alcohol", "malic_acid", "od280/od315_of_diluted_wines")],
    "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1],
                 "parameters": {"content_type": "np"}}],
    "parameters": {"content_type": "pd"},
}


# -- requests built from the model -----------------------------------------------------------------
def test_mlserver_metadata_gives_one_named_column_per_input():
    payload = probe.payload_from_metadata(MLSERVER_METADATA)

    assert payload.named and payload.n_rows == 3
    assert payload.source == "V2 metadata of wine"
    body = payload.v2_body()
    assert body["parameters"] == {"content_type": "pd"}
    assert [i["name"] for i in body["inputs"]] == ["alcohol", "malic_acid", "od280/od315_of_diluted_wines"]
    assert body["inputs"][0] == {"name": "alcohol", "shape": [3, 1], "datatype": "FP64",
                                 "data": [1.0, 1.5, 2.0]}
    split = payload.invocations_body()["dataframe_split"]
    assert split["columns"] == ["alcohol", "malic_acid", "od280/od315_of_diluted_wines"]
    assert split["data"][1] == [1.5, 1.5, 1.5]


def test_a_tensor_model_gets_one_input_with_a_row_per_instance():
    meta = {"name": "digits", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}

    payload = probe.payload_from_metadata(meta, rows=2)

    assert not payload.named
    body = payload.v2_body()
    assert body == {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                "data": [1.0, 1.5, 2.0, 2.5, 1.5, 2.0, 2.5, 3.0]}]}
    assert payload.invocations_body() == {"inputs": [[1.0, 1.5, 2.0, 2.5], [1.5, 2.0, 2.5, 3.0]]}


def test_a_one_dimensional_input_sends_one_value_per_row():
    payload = probe.payload_from_metadata({"name": "m", "inputs": [{"name": "n", "datatype": "INT64",
                                                                    "shape": [-1]}]})

    assert payload.v2_body()["inputs"][0] == {"name": "n", "shape": [3], "datatype": "INT64",
                                              "data": [1, 2, 3]}


def test_metadata_without_inputs_cannot_make_a_request():
    with pytest.raises(probe.ProbeError) as err:
        probe.payload_from_metadata({"name": "opaque", "inputs": []})

    assert err.value.message == ("model 'opaque' publishes no inputs in its V2 metadata, "
                                 "so no request can be built")
    assert "signature" in err.value.hint


def test_an_mlflow_input_example_keeps_its_rows_and_the_signature_types():
    example = {"columns": ["a", "b"], "data": [[1.5, 2], [2.5, 3], [3.5, 4]]}
    signature = [{"type": "double", "name": "a"}, {"type": "long", "name": "b"}]

    payload = probe.payload_from_model_info(example, "dataframe", signature,
                                            "MLflow input example of models:/m/1")

    assert [(c.name, c.datatype) for c in payload.columns] == [("a", "FP64"), ("b", "INT64")]
    assert payload.v2_body()["inputs"][1] == {"name": "b", "shape": [3, 1], "datatype": "INT64",
                                              "data": [2, 3, 4]}
    assert payload.invocations_body() == {"dataframe_split": example}


def test_a_serving_example_an_ndarray_or_a_bare_signature_also_make_requests():
    served = probe.payload_from_model_info({"dataframe_split": {"columns": ["a"], "data": [[1.0]]}},
                                           None, None, "s")
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]
    array = probe.payload_from_model_info({"inputs": [[1, 2], [3, 4]]}, "ndarray", tensor, "s")
    bare = probe.payload_from_model_info(None, None, [{"type": "double", "name": "a"}], "s")

    assert served.named and served.rows == ([1.0],)
    first = array.v2_body()["inputs"][0]
    assert (first["shape"], first["datatype"]) == ([2, 2], "FP32")
    assert bare.n_rows == 3 and bare.source == "s (signature only)"
    assert probe.payload_from_model_info(None, None, None, "s") is None


def test_predictions_are_counted_from_either_protocols_answer():
    assert probe.count_v2_predictions({"outputs": [{"name": "o", "shape": [5, 1], "data": [0] * 5}]}) == 5
    assert probe.count_v2_predictions({"outputs": [{"name": "o", "data": [0, 1]}]}) == 2
    assert probe.count_v2_predictions({"outputs": []}) == 0
    assert probe.count_invocation_predictions({"predictions": [0, 1, 2]}) == 3
    assert probe.count_invocation_predictions({"predictions": {"label": [0, 1], "score": [0.1, 0.2]}}) == 2
    assert probe.count_invocation_predictions([0, 1]) == 2


# -- checks against a scripted server --------------------------------------------------------------
class FakeV2(QuietHandler):
    """A V2 server that serves model 'wine' and answers ONE prediction whatever it is sent."""

    hosts: list[str] = []

    def do_GET(self) -> None:
        FakeV2.hosts.append(self.headers.get("Host", ""))
        if self.path in ("/v2/health/live", "/v2/health/ready", "/v2/models/wine/ready"):
            self.send_json(200, {"ready": True})
        elif self.path == "/v2/models/wine":
            self.send_json(200, MLSERVER_METADATA)
        else:
            self.send_json(404, {"error": f"Model {self.path.split('/')[3]} not found"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v2/models/wine/infer":
            output = {"name": "o", "shape": [1], "datatype": "INT64", "data": [0]}
            self.send_json(200, {"model_name": "wine", "outputs": [output]})
        elif self.path == "/invocations":
            self.send_json(200, {"predictions": [0]})
        elif self.path == "/v2/repository/index":
            self.send_json(200, [{"name": "wine", "state": "READY"}])
        else:
            self.send_json(404, {"error": "not found"})


@pytest.fixture
def fake_v2() -> Iterator[str]:
    FakeV2.hosts = []
    with serving(FakeV2) as port:
        yield f"http://127.0.0.1:{port}"


def test_a_check_fails_when_predictions_do_not_match_the_rows_sent(fake_v2):
    report = probe.run_checks(probe.Target(fake_v2, "wine"))

    checks = {c.name: c for c in report.checks}
    assert [c.name for c in report.checks if c.ok] == ["server live", "server ready", "model ready",
                                                       "metadata"]
    infer = checks["infer (V2)"]
    assert (infer.status, infer.predictions, infer.rows_sent) == (200, 1, 3)
    assert checks["infer (V2)"].detail == "1 predictions for 3 rows"
    assert checks["invocations"].detail == "1 predictions for 3 rows"
    assert not report.ok
    assert report.verdict() == (f"FAIL: 2 of 6 checks failed for model 'wine' at {fake_v2}: "
                                "infer (V2), invocations")


def test_the_host_header_is_sent_with_every_check(fake_v2):
    probe.run_checks(probe.Target(fake_v2, "wine", host="wine-predictor.models.example.com"))

    assert set(FakeV2.hosts) == {"wine-predictor.models.example.com"}


def test_an_unknown_model_stops_the_checks_and_names_what_the_server_serves(fake_v2):
    report = probe.run_checks(probe.Target(fake_v2, "beer"))

    assert report.model_found is False
    assert report.served_models == ["wine"]
    assert [c.skipped for c in report.checks] == [False, False, False, True, True, True]
    assert report.verdict() == f"FAIL: model 'beer' does not exist at {fake_v2} (the server serves: wine)"


def test_a_server_that_is_not_there_fails_every_check():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    report = probe.run_checks(probe.Target(url, "wine"), timeout=2, connect_timeout=1)

    assert not report.ok
    assert all(c.detail.startswith("cannot connect") for c in report.checks[:3])


# -- the real data plane -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KSERVECTL_", "AWS_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    return env


def start(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env(), start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Stop the process group this test started (its own id), politely first."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g}s:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class DataPlane:
    mlflow_url: str
    mlserver_url: str
    model: str  # the model's name on MLServer
    registered: object  # example.ExampleModel
    model_dir: Path


# the first test to use `dataplane` (any of them, run alone) also starts it: MLflow and MLServer
# each within server_start, the example trained, logged and downloaded; then its own work
DATAPLANE_TEST_TIMEOUT_S = 2 * DEFAULT_SETTINGS.http.server_start + 360


@pytest.fixture(scope="module")
def dataplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """MLflow (sqlite, local artifacts) with the example registered, and MLServer serving it."""
    from kservectl import example

    root = tmp_path_factory.mktemp("dataplane")
    timeout = DEFAULT_SETTINGS.http.server_start
    processes: list[subprocess.Popen] = []
    try:
        port = free_port()
        mlflow_url = f"http://127.0.0.1:{port}"
        log = root / "mlflow.log"
        processes.append(start([str(VENV_BIN / "mlflow"), "server", "--backend-store-uri",
                                f"sqlite:///{root}/mlflow.db", "--artifacts-destination",
                                str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "1"], log, root))
        wait_http(f"{mlflow_url}/health", processes[-1], log, timeout)
        registered = example.log_and_register(mlflow_url)

        # MLServer's model repository: one folder per model with its model-settings.json
        repo = root / "models"
        from mlflow.artifacts import download_artifacts

        # the registry reference resolved first: a models:/ download would ask the default registry
        resolved = models.resolve(models.parse(registered.model_uri), models.client(mlflow_url))
        model_dir = Path(download_artifacts(artifact_uri=resolved.artifact_uri, dst_path=str(repo / "wine"),
                                            tracking_uri=mlflow_url))
        (repo / "wine" / "model-settings.json").write_text(json.dumps({
            "name": "wine", "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": str(model_dir)}}))
        http_port = free_port()
        # parallel_workers 0: inference in the server process. MLServer 1.7.1's worker processes
        # call asyncio.get_event_loop() at start, which uvloop 0.23 refuses (they die at once).
        (repo / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": http_port, "grpc_port": free_port(),
            "metrics_port": free_port(), "parallel_workers": 0}))
        log = root / "mlserver.log"
        processes.append(start([str(VENV_BIN / "mlserver"), "start", str(repo)], log, repo))
        mlserver_url = f"http://127.0.0.1:{http_port}"
        wait_http(f"{mlserver_url}/v2/models/wine/ready", processes[-1], log, timeout)
        yield DataPlane(mlflow_url, mlserver_url, "wine", registered, model_dir)
    finally:
        for process in reversed(processes):
            stop(process)




@pytest.mark.slow
@pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT_S)
def test_a_real_mlserver_passes_every_check_over_both_protocols(cli, dataplane):
    result = cli("test", "--url", dataplane.mlserver_url, "--model", dataplane.model, "-o", "json")

    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)["results"][0]
    assert report["ok"] and report["model_found"]
    assert report["payload_source"] == "V2 metadata of wine"
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["status"] for c in report["checks"]] == [200] * 6
    for name in ("infer (V2)", "invocations"):
        assert checks[name]["predictions"] == checks[name]["rows_sent"] == 3
        assert checks[name]["latency_ms"] > 0
    assert report["verdict"] == f"PASS: 6/6 checks passed for model 'wine' at {dataplane.mlserver_url}"


@pytest.mark.slow
@pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT_S)
def test_a_model_name_the_server_does_not_serve_fails_with_exit_1(cli, dataplane):
    result = cli("test", "--url", dataplane.mlserver_url, "--model", "wine-v9")

    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        f"Error: model 'wine-v9' does not exist at {dataplane.mlserver_url} (the server serves: wine)")
    assert "404" in result.stdout and "skip" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT_S)
def test_requests_built_from_the_mlflow_input_example_pass_on_the_real_server(dataplane):
    registered = dataplane.registered
    resolved = models.resolve(models.parse(registered.model_uri), models.client(dataplane.mlflow_url))
    info = models.fetch_model_info(resolved.artifact_uri, dataplane.mlflow_url)
    source = f"MLflow input example of {registered.model_uri}"
    payload = probe.payload_from_model_info(info.input_example, info.input_example_type,
                                            info.signature_inputs, source)

    report = probe.run_checks(probe.Target(dataplane.mlserver_url, "wine"), payload)

    # the proxied artifact location maps onto the server's S3 destination for KServe
    assert resolved.artifact_uri == f"mlflow-artifacts:/1/models/{registered.model_id}/artifacts"
    assert models.to_storage_uri(resolved.artifact_uri, "s3://bkt/mlflow-artifacts") == (
        f"s3://bkt/mlflow-artifacts/1/models/{registered.model_id}/artifacts")
    assert report.ok, report.as_dict()
    assert [c.predictions for c in report.checks if c.rows_sent] == [5, 5]
    assert report.payload_source == f"MLflow input example of {registered.model_uri}"


@pytest.mark.slow
@pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT_S)
def test_serve_example_registers_a_new_version_and_checks_it_against_the_runtime(cli, dataplane):
    result = cli("serve", "example", "--tracking-uri", dataplane.mlflow_url, "-o", "json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model_uri"] == "models:/wine/2"
    assert data["serialization_format"] == "cloudpickle"
    assert data["runtime"]["name"] == "MLServer 1.7.1"
    assert {f["what"] for f in data["findings"]} >= {"mlflow", "python"}
    assert data["next"] == "kservectl serve deploy wine --model models:/wine/2"


# -- cluster mode against the emulator, with the gateway pointing at the real MLServer ---------------
def use_cluster(kube, home: Path) -> None:
    kube.install_kubeconfig(home / "kservectl" / "kubeconfig", "models", "mlflow", "kourier-system")


def gateway_to(kube, url: str) -> None:
    """The Kourier Service with its load balancer address: here the local MLServer."""
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "kourier", "namespace": "kourier-system"},
                 "spec": {"type": "LoadBalancer",
                          "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]},
                 "status": {"loadBalancer": {"ingress": [{"hostname": url.removeprefix("http://")}]}}})


@pytest.mark.slow
@pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT_S)
def test_serve_deploy_resolves_the_registry_reference_to_the_s3_folder_and_waits(cli, dataplane, kube,
                                                                                 isolated_env,
                                                                                 schema_validator):
    use_cluster(kube, isolated_env)
    args = ["server", "--artifacts-destination", "s3://bkt/mlflow-artifacts", "--serve-artifacts"]
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "mlflow", "namespace": "mlflow"},
                 "spec": {"selector": {"matchLabels": {"app": "mlflow"}}, "template": {
                     "metadata": {"labels": {"app": "mlflow"}},
                     "spec": {"containers": [{"name": "mlflow", "image": "mlflow", "args": args}]}}}})
    kube.simulate_inference_services(delay_s=0.3)

    result = cli("serve", "deploy", "wine", "--model", "models:/wine/1",
                 "--tracking-uri", dataplane.mlflow_url, "-o", "json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    model_id = dataplane.registered.model_id
    assert data["storage_uri"] == f"s3://bkt/mlflow-artifacts/1/models/{model_id}/artifacts"
    assert data["model"]["source"] == f"models:/{model_id}"
    assert data["service"]["ready"] is True
    assert data["service"]["url"] == "http://wine-predictor.models.example.com"
    # the version check ran against MLServer 1.7.1 and said what to do
    assert "the model was logged by MLflow" in result.stderr and "MLServer 1.7.1" in result.stderr
    isvc = kube.get("serving.kserve.io/v1beta1", "InferenceService", "wine", "models")
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == data["storage_uri"]
    assert isvc["metadata"]["annotations"]["kservectl.io/model-uri"] == "models:/wine/1"
    schema_validator.assert_valid({k: isvc[k] for k in ("apiVersion", "kind", "spec")}
                                  | {"metadata": {"name": "wine", "namespace": "models"}})


@pytest.mark.slow
@pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT_S)
def test_kservectl_test_and_url_reach_every_served_model_through_the_gateway(cli, dataplane, kube,
                                                                             isolated_env):
    use_cluster(kube, isolated_env)
    gateway_to(kube, dataplane.mlserver_url)
    kube.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                 "metadata": {"name": "wine", "namespace": "models",
                              "annotations": {"kservectl.io/model-uri": "models:/wine/1"}},
                 "spec": {"predictor": {"minReplicas": 1, "model": {"modelFormat": {"name": "mlflow"},
                                                                     "storageUri": "s3://bkt/x"}}},
                 "status": {"url": "http://wine-predictor.models.example.com",
                            "conditions": [{"type": "Ready", "status": "True"}]}})

    tested = cli("test", "--tracking-uri", dataplane.mlflow_url, "--load", "--duration", "1",
                 "--concurrency", "2", "-o", "json")
    urls = cli("url", "--tracking-uri", dataplane.mlflow_url, "-o", "json")

    assert tested.exit_code == 0, tested.stdout + tested.stderr
    report = json.loads(tested.stdout)["results"][0]
    assert report["host"] == "wine-predictor.models.example.com"
    assert report["payload_source"] == "MLflow input example of models:/wine/1"
    load = report["load"]
    assert load["requests"] > 0 and load["status_codes"] == {"200": load["requests"]}
    assert report["load"]["cold_start"] is None
    assert report["load"]["cold_start_note"] == "not measured: the service has running replicas"
    assert urls.exit_code == 0, urls.stderr
    service = json.loads(urls.stdout)["services"][0]
    assert service["host_header"] == "wine-predictor.models.example.com"
    # the printed commands are ready to paste: run them
    for key in ("curl_v2", "curl_invocations"):
        argv = shlex.split(service[key])
        assert argv[:4] == ["curl", "-sS", "-H", "Host: wine-predictor.models.example.com"]
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        answer = json.loads(ran.stdout)
        if key == "curl_v2":
            assert probe.count_v2_predictions(answer) == 1
        else:
            assert probe.count_invocation_predictions(answer) == 1
