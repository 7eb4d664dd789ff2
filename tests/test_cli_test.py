"""``kservectl test`` without NAME on a cluster: every served model is tested through the gateway
(each with its own Host header), and the exit code is 1 as soon as one check of one model fails.

The cluster is the Kubernetes emulator (the InferenceServices and the Kourier Service with its
load balancer address); the gateway is a local V2 server that routes by Host header, as Kourier
does, and answers for two models: each counts the rows it is sent, and a broken one returns one
prediction too few."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.http_server import QuietHandler, serving

DOMAIN = "models.example.com"
COLUMNS = ("alcohol", "malic_acid", "ash")


def metadata(name: str) -> dict[str, Any]:
    """What MLServer answers on /v2/models/<name> for an MLflow model with named columns."""
    return {"name": name, "versions": [], "platform": "",
            "inputs": [{"name": c, "datatype": "FP64", "shape": [-1, 1]} for c in COLUMNS],
            "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
            "parameters": {"content_type": "pd"}}


class Gateway(QuietHandler):
    """Kourier in front of one MLServer per InferenceService: the Host header picks the model."""

    broken: set[str] = set()  # models that answer one prediction fewer than the rows sent
    seen: list[tuple[str, str]] = []  # (Host, path)

    def _model(self) -> str | None:
        host = self.headers.get("Host", "")
        Gateway.seen.append((host, self.path))
        suffix = f"-predictor.{DOMAIN}"
        return host.removesuffix(suffix) if host.endswith(suffix) else None

    def do_GET(self) -> None:
        model = self._model()
        if model is None:
            self.send_json(404, {"error": "no route for this Host"})
        elif self.path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{model}/ready"):
            self.send_json(200, {"ready": True} if "models" not in self.path else {"name": model, "ready": True})
        elif self.path == f"/v2/models/{model}":
            self.send_json(200, metadata(model))
        else:
            self.send_json(404, {"error": f"Model {self.path.split('/')[3]} not found"})

    def do_POST(self) -> None:
        model = self._model()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == f"/v2/models/{model}/infer":
            rows = body["inputs"][0]["shape"][0]
        elif self.path == "/invocations":
            rows = len(body["dataframe_split"]["data"])
        else:
            self.send_json(404, {"error": "not found"})
            return
        rows -= 1 if model in Gateway.broken else 0
        if self.path == "/invocations":
            self.send_json(200, {"predictions": [0] * rows})
        else:
            self.send_json(200, {"model_name": model,
                             "outputs": [{"name": "output-0", "shape": [rows], "datatype": "INT64",
                                          "data": [0] * rows}]})


@pytest.fixture
def gateway() -> Iterator[str]:
    Gateway.broken, Gateway.seen = set(), []
    with serving(Gateway) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture
def cluster(kube, isolated_env: Path, gateway: str, monkeypatch) -> Any:
    """Cluster ``kservectl`` with the wine and beer InferenceServices Ready behind the gateway."""
    monkeypatch.setenv("COLUMNS", "250")
    kube.install_kubeconfig(isolated_env / "kservectl" / "kubeconfig", "models", "mlflow", "kourier-system")
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "kourier", "namespace": "kourier-system"},
                 "spec": {"type": "LoadBalancer", "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]},
                 "status": {"loadBalancer": {"ingress": [{"hostname": gateway}]}}})
    for name in ("wine", "beer"):
        kube.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                     "metadata": {"name": name, "namespace": "models"},
                     "spec": {"predictor": {"minReplicas": 1, "model": {"modelFormat": {"name": "mlflow"},
                                                                         "storageUri": f"s3://b/{name}"}}},
                     "status": {"url": f"http://{name}-predictor.{DOMAIN}",
                                "conditions": [{"type": "Ready", "status": "True"}]}})
    return kube


def test_without_a_name_every_served_model_is_tested_through_the_gateway(cli, cluster):
    result = cli("test", "-o", "json")

    assert result.exit_code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [(r["model"], r["host"], r["ok"]) for r in data["results"]] == [
        ("beer", f"beer-predictor.{DOMAIN}", True), ("wine", f"wine-predictor.{DOMAIN}", True)]
    for report in data["results"]:  # every check ran, over both protocols, for each model
        assert {c["name"] for c in report["checks"] if c["ok"]} >= {"metadata", "infer (V2)", "invocations"}
    assert {host for host, path in Gateway.seen if path == "/invocations"} == {
        f"beer-predictor.{DOMAIN}", f"wine-predictor.{DOMAIN}"}


def test_one_failing_check_of_one_model_makes_the_command_exit_1_after_testing_them_all(cli, cluster):
    Gateway.broken = {"beer"}

    as_json = cli("test", "-o", "json")
    as_table = cli("test")

    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False
    by_model = {r["model"]: r for r in data["results"]}
    assert set(by_model) == {"beer", "wine"}  # the failure of the first did not stop the second
    assert by_model["wine"]["ok"] is True
    assert by_model["beer"]["ok"] is False
    failed = {c["name"]: c["detail"] for c in by_model["beer"]["checks"] if not c["ok"] and not c["skipped"]}
    assert failed == {"infer (V2)": "2 predictions for 3 rows", "invocations": "2 predictions for 3 rows"}
    assert as_table.exit_code == 1
    assert "1/2 models passed" in as_table.stdout
    assert "FAIL: 2 of 6 checks failed for model 'beer'" in as_table.stdout


def test_a_named_model_is_the_only_one_tested(cli, cluster):
    Gateway.broken = {"beer"}  # not tested, so it cannot fail the run

    result = cli("test", "wine", "-o", "json")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert [r["model"] for r in json.loads(result.stdout)["results"]] == ["wine"]
    assert not any(host.startswith("beer-") for host, _ in Gateway.seen)
