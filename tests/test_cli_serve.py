"""``kservectl serve …``, ``url`` and ``test`` as a user runs them: options map to the phase, data
comes out as tables or JSON, refusals exit 2 with one line naming the fix, and a failed test
exits 1. The cluster is the Kubernetes emulator with the test acting as KServe."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kservectl import models
from test_phase_serve import API, V1, V2, FakeKServe


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # tables are drawn for a terminal; keep rows on one line


@pytest.fixture
def cluster(kube, isolated_env: Path) -> Iterator:
    """The emulator as cluster ``kservectl``: its kubeconfig where kservectl keeps it."""
    kube.install_kubeconfig(isolated_env / "kservectl" / "kubeconfig", "models", "mlflow", "kourier-system")
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "kservectl-model-server", "namespace": "models"}})
    controller = FakeKServe(kube)
    yield kube
    controller.close()


def deploy(cli, *args: str):
    return cli("serve", "deploy", *args, "--no-version-check", "-o", "json")


def test_deploy_with_a_storage_uri_waits_until_ready_and_prints_the_service(cli, cluster, monkeypatch):
    def unreadable(uri, tracking_uri):
        raise models.ModelUnreadable(f"cannot read {uri}/MLmodel: Unable to locate credentials")

    monkeypatch.setattr(models, "fetch_model_info", unreadable)

    result = cli("serve", "deploy", "wine", "--storage-uri", V1, "--max-replicas", "2")

    assert result.exit_code == 0, result.stderr
    assert "created: InferenceService models/wine serving " + V1 in result.stdout
    assert "wine-predictor-00001 (latest): 100%" in result.stdout
    # the version check is skipped, and says so
    assert f"could not read MLmodel at {V1} (cannot read {V1}/MLmodel: Unable to locate credentials); " \
           "skipping the version check" in " ".join(result.stderr.split())
    assert cluster.get(API, "InferenceService", "wine", "models")["spec"]["predictor"]["maxReplicas"] == 2


def test_canary_rollback_retry_and_promote_through_the_cli(cli, cluster):
    assert deploy(cli, "wine", "--storage-uri", V1).exit_code == 0

    canary = json.loads(deploy(cli, "wine", "--storage-uri", V2, "--canary-percent", "25").stdout)
    listed = cli("serve", "list")
    rolled = json.loads(cli("serve", "rollback", "wine", "-o", "json").stdout)
    retried = json.loads(deploy(cli, "wine", "--storage-uri", V2, "--canary-percent", "50").stdout)
    promoted = json.loads(cli("serve", "promote", "wine", "-o", "json").stdout)
    status = json.loads(cli("serve", "status", "wine", "-o", "json").stdout)
    after = cli("serve", "rollback", "wine")
    back = json.loads(cli("serve", "status", "wine", "-o", "json").stdout)

    assert [t["percent"] for t in canary["service"]["traffic"]] == [25, 75]
    assert "(canary 25%, stable" in listed.stdout
    assert "wine-predictor-00002 (latest): 25%, wine-predictor-00001 (prev): 75%" in listed.stdout
    assert [(t["revision"], t["percent"]) for t in rolled["service"]["traffic"]] == [
        ("wine-predictor-00002", 0), ("wine-predictor-00001", 100)]
    assert [t["percent"] for t in retried["service"]["traffic"]] == [50, 50]
    assert retried["previous_model_uri"] == V1  # adjusting the split keeps the stable model
    assert promoted["action"] == "changed"
    assert status["traffic"] == [
        {"revision": "wine-predictor-00002", "percent": 100, "latest": True, "tag": None}]
    assert status["revisions"]["previous_rolled_out"] == "wine-predictor-00001"
    # after the promotion, rollback returns all traffic to the revision rolled out before it
    assert after.exit_code == 0, after.stderr
    assert ("rollback after a promotion: 100% back to the previously rolled-out revision wine-predictor-00001"
            in after.stdout)
    assert [(t["revision"], t["percent"]) for t in back["traffic"]] == [
        ("wine-predictor-00002", 0), ("wine-predictor-00001", 100)]


def test_standard_mode_refuses_canary_and_scale_to_zero_with_one_line(cli, cluster, monkeypatch):
    monkeypatch.setenv("KSERVECTL_KSERVE_MODE", "standard")

    canary = cli("serve", "deploy", "wine", "--storage-uri", V2, "--canary-percent", "10")
    zero = cli("serve", "deploy", "wine", "--storage-uri", V2, "--min-replicas", "0")

    assert canary.exit_code == 2
    assert canary.stderr == (
        "Error: canary rollouts need kserve.mode=knative; this cluster is configured for standard mode "
        "(deploy without --canary-percent to replace the model in place)\n")
    assert zero.exit_code == 2
    assert "model.min_replicas=0 is invalid: scale to zero needs kserve.mode=knative" in zero.stderr
    assert cluster.find(API, "InferenceService", "wine", "models") is None


def test_list_shows_each_service_with_its_url_readiness_revisions_and_traffic(cli, cluster):
    deploy(cli, "wine", "--storage-uri", V1)
    deploy(cli, "wine", "--storage-uri", V2, "--canary-percent", "25")
    deploy(cli, "beer", "--storage-uri", V2)

    listed = cli("serve", "list")

    assert listed.exit_code == 0, listed.stderr
    header = next(line for line in listed.stdout.splitlines() if "name" in line and "traffic" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "name", "ready", "url", "model", "replicas (min-max)", "revisions", "traffic"]
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.startswith("│")}
    assert "http://wine-predictor.models.example.com" in rows["wine"]
    assert "latest wine-predictor-00002, rolled out wine-predictor-00001" in rows["wine"]
    assert "wine-predictor-00002 (latest): 25%, wine-predictor-00001 (prev): 75%" in rows["wine"]
    assert "latest beer-predictor-00001, rolled out beer-predictor-00001" in rows["beer"]
    assert "beer-predictor-00001 (latest): 100%" in rows["beer"]


def test_a_cluster_installed_in_standard_mode_refuses_a_canary_under_the_default_config(cli, cluster):
    cluster.ensure_namespace("kserve")  # what `kservectl kserve install --mode standard` recorded
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kservectl-kserve", "namespace": "kserve"}, "data": {"mode": "standard"}})
    assert deploy(cli, "wine", "--storage-uri", V1).exit_code == 0

    canary = cli("serve", "deploy", "wine", "--storage-uri", V2, "--canary-percent", "10")

    assert canary.exit_code == 2
    assert canary.stderr.endswith(
        "Error: canary rollouts need kserve.mode=knative; KServe on cluster kservectl is installed in standard "
        "mode (deploy without --canary-percent to replace the model in place)\n")
    assert cluster.get(API, "InferenceService", "wine", "models")["spec"]["predictor"]["model"]["storageUri"] == V1


def test_delete_asks_first_and_keeps_every_other_service(cli, cluster):
    deploy(cli, "wine", "--storage-uri", V1)
    deploy(cli, "beer", "--storage-uri", V2)

    refused = cli("serve", "delete", "wine")
    deleted = cli("serve", "delete", "wine", "--yes")

    assert refused.exit_code != 0
    assert "Delete InferenceService models/wine needs confirmation" in refused.stderr
    assert "--yes" in refused.stderr
    assert deleted.exit_code == 0
    assert "deleted: InferenceService models/wine" in deleted.stdout
    assert "kept: beer" in deleted.stdout
    assert cluster.find(API, "InferenceService", "beer", "models") is not None


def test_a_bad_model_reference_is_refused_before_anything_is_called(cli, no_network):
    bad_model = cli("serve", "deploy", "wine", "--model", "wine:latest")
    bad_storage = cli("serve", "deploy", "wine", "--storage-uri", "gs://bucket/model")
    bare_bucket = cli("serve", "deploy", "wine", "--storage-uri", "s3://bucket")

    assert (bad_model.exit_code, bad_storage.exit_code, bare_bucket.exit_code) == (2, 2, 2)
    assert bad_model.stderr.startswith(
        "Error: model reference 'wine:latest' is not understood: use models:/<name>/")
    assert "--storage-uri 'gs://bucket/model' must be an s3:// URI of the folder that holds MLmodel" in (
        bad_storage.stderr)
    assert "an s3:// URI must name the folder that holds MLmodel" in bare_bucket.stderr
    assert no_network == []


def test_url_prints_the_gateway_mlflow_and_curl_commands(cli, cluster):
    deploy(cli, "wine", "--storage-uri", V1)
    with socket.socket() as sock:  # a gateway address where nothing answers: bodies fall back to a file
        sock.bind(("127.0.0.1", 0))
        gateway = f"127.0.0.1:{sock.getsockname()[1]}"
    cluster.create({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "kourier", "namespace": "kourier-system"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                    "status": {"loadBalancer": {"ingress": [{"hostname": gateway}]}}})

    table = cli("url")
    data = json.loads(cli("url", "-o", "json").stdout)

    assert table.exit_code == 0, table.stderr
    assert f"gateway (Kourier NLB): {gateway}" in table.stdout
    assert "MLflow: private; run `kubectl --kubeconfig" in table.stdout
    assert "Host header: wine-predictor.models.example.com" in table.stdout
    assert data["services"][0]["curl_v2"] == (
        f"curl -sS -H 'Host: wine-predictor.models.example.com' -H 'Content-Type: application/json' "
        f"-d @request.json http://{gateway}/v2/models/wine/infer")


def test_test_without_services_or_with_a_url_but_no_model_fails_clearly(cli, cluster):
    nothing = cli("test")
    no_model = cli("test", "--url", "http://127.0.0.1:9")

    assert nothing.exit_code == 1
    assert nothing.stderr == ("Error: no InferenceServices in namespace models to test "
                              "(deploy one with `kservectl serve deploy`)\n")
    assert no_model.exit_code == 2
    assert "--url needs --model" in no_model.stderr


def test_test_of_a_service_that_does_not_exist_names_those_that_do(cli, cluster):
    deploy(cli, "beer", "--storage-uri", V2)

    result = cli("test", "wine")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: InferenceService models/wine does not exist (served in models: beer)")


def test_plan_includes_the_inference_service_and_the_test_steps(cli, tmp_path, no_network, schema_validator):
    result = cli("plan", "--out", str(tmp_path), "-o", "json")

    assert result.exit_code == 0, result.stderr
    phases = {p["phase"]: p for p in json.loads(result.stdout)["phases"]}
    assert {"serve", "test"} <= set(phases)
    schema_validator.assert_all_valid(tmp_path / "serve" / "wine-inferenceservice.yaml")
    assert any("POST http://<gateway-nlb-hostname>/v2/models/wine/infer" in c
               for s in phases["test"]["steps"] for c in s["calls"])
