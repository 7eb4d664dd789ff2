"""Model references, their resolution to the folder holding MLmodel, the mapping of proxied
artifacts to S3, and the version check against the serving runtime."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kservectl import models
from kservectl.errors import UsageError

MODEL_ID = "m-" + "ab" * 16
RUN_ID = "cd" * 16


# -- parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("uri, kind, fields", [
    ("models:/wine/3", "version", {"name": "wine", "version": "3"}),
    ("models:/wine@champion", "alias", {"name": "wine", "alias": "champion"}),
    (f"models:/{MODEL_ID}", "logged", {"model_id": MODEL_ID}),
    (f"runs:/{RUN_ID}/model", "run", {"run_id": RUN_ID, "path": "model"}),
    ("s3://bucket/mlflow-artifacts/1/models/m-1/artifacts", "storage", {}),
])
def test_every_reference_form_is_understood(uri, kind, fields):
    ref = models.parse(uri)

    assert ref.kind == kind
    for key, value in fields.items():
        assert getattr(ref, key) == value


@pytest.mark.parametrize("uri", ["wine", "models:/wine", "models:/wine/latest", "models:/wine@",
                                 "runs:/x/model"])
def test_a_malformed_reference_names_the_accepted_forms(uri):
    with pytest.raises(UsageError) as err:
        models.parse(uri)

    assert err.value.exit_code == 2
    assert f"model reference {uri!r} is not understood: use models:/<name>/<version>" in err.value.message


# -- resolution ------------------------------------------------------------------------------------
@dataclass
class Version:
    version: str
    source: str
    run_id: str = RUN_ID
    aliases: list = field(default_factory=list)


class FakeRegistry:
    """Answers like MlflowClient for one registered model (MLflow 3 layout) and raises the real
    MlflowException otherwise."""

    def __init__(self, versions: dict[str, Version], aliases: dict[str, str], root: str) -> None:
        self.versions, self.aliases, self.root = versions, aliases, root

    def _missing(self, what: str):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        return MlflowException(f"{what} not found", error_code=RESOURCE_DOES_NOT_EXIST)

    def get_model_version(self, name, version):
        if name != "wine" or version not in self.versions:
            raise self._missing(f"{name}/{version}")
        return self.versions[version]

    def get_model_version_by_alias(self, name, alias):
        if name != "wine" or alias not in self.aliases:
            raise self._missing(f"{name}@{alias}")
        return self.versions[self.aliases[alias]]

    def get_model_version_download_uri(self, name, version):
        model_id = self.versions[version].source.removeprefix("models:/")
        return f"{self.root}/1/models/{model_id}/artifacts"

    def get_logged_model(self, model_id):
        @dataclass
        class Logged:
            artifact_location: str
            source_run_id: str = RUN_ID

        return Logged(f"{self.root}/1/models/{model_id}/artifacts/")

    def get_run(self, run_id):
        from types import SimpleNamespace

        return SimpleNamespace(info=SimpleNamespace(artifact_uri=f"{self.root}/1/{run_id}/artifacts"))

    def search_model_versions(self, filter_string):
        return list(self.versions.values()) if "'wine'" in filter_string else []

    def get_registered_model(self, name):
        if name != "wine":
            raise self._missing(name)


@pytest.fixture
def registry() -> FakeRegistry:
    m1, m2 = "m-" + "1" * 32, "m-" + "2" * 32
    versions = {"1": Version("1", f"models:/{m1}"), "2": Version("2", f"models:/{m2}", aliases=["champion"])}
    return FakeRegistry(versions, {"champion": "2"}, "mlflow-artifacts:")


def test_a_version_resolves_to_its_logged_models_artifact_folder(registry):
    resolved = models.resolve(models.parse("models:/wine/1"), registry)

    assert resolved.artifact_uri == f"mlflow-artifacts:/1/models/m-{'1' * 32}/artifacts"
    assert resolved.model_id == "m-" + "1" * 32
    assert (resolved.registered_name, resolved.version, resolved.run_id) == ("wine", "1", RUN_ID)


def test_an_alias_resolves_to_the_version_it_points_at(registry):
    resolved = models.resolve(models.parse("models:/wine@champion"), registry)

    assert resolved.version == "2"
    assert resolved.aliases == ("champion",)
    assert resolved.artifact_uri.endswith(f"m-{'2' * 32}/artifacts")


def test_a_logged_model_and_a_run_path_resolve_without_the_registry(registry):
    logged = models.resolve(models.parse(f"models:/{MODEL_ID}"), registry)
    run = models.resolve(models.parse(f"runs:/{RUN_ID}/model"), registry)

    assert logged.artifact_uri == f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts"
    assert run.artifact_uri == f"mlflow-artifacts:/1/{RUN_ID}/artifacts/model"


def test_a_missing_version_lists_the_versions_that_exist(registry):
    with pytest.raises(models.ModelNotFound) as err:
        models.resolve(models.parse("models:/wine/9"), registry)

    assert err.value.message == ("registered model 'wine' has no version 9 (models:/wine/9); "
                                 "its versions: 1, 2")
    assert "kservectl serve example" in err.value.hint


def test_a_missing_alias_and_a_missing_model_say_which(registry):
    with pytest.raises(models.ModelNotFound, match=r"has no alias @prod \(models:/wine@prod\); its versions"):
        models.resolve(models.parse("models:/wine@prod"), registry)
    with pytest.raises(models.ModelNotFound, match=r"registered model 'beer' does not exist in MLflow"):
        models.resolve(models.parse("models:/beer/1"), registry)


# -- to S3 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("artifact_uri, expected", [
    ("mlflow-artifacts:/1/models/m-1/artifacts", "s3://bkt/mlflow-artifacts/1/models/m-1/artifacts"),
    ("mlflow-artifacts://mlflow.mlflow:5000/1/models/m-1/artifacts/",
     "s3://bkt/mlflow-artifacts/1/models/m-1/artifacts"),
    ("s3://other/1/models/m-1/artifacts/", "s3://other/1/models/m-1/artifacts"),
])
def test_proxied_artifacts_map_onto_the_servers_s3_destination(artifact_uri, expected):
    assert models.to_storage_uri(artifact_uri, "s3://bkt/mlflow-artifacts/") == expected


def test_proxied_artifacts_without_a_known_destination_ask_for_it():
    with pytest.raises(UsageError) as err:
        models.to_storage_uri("mlflow-artifacts:/1/models/m-1/artifacts", None)

    assert "artifacts destination is unknown" in err.value.message
    assert "--artifacts-destination s3://<bucket>/<prefix> or --storage-uri" in err.value.hint


def test_a_local_artifact_path_is_refused_for_the_cluster():
    with pytest.raises(UsageError, match=r"KServe cannot download from the cluster"):
        models.to_storage_uri("file:///home/me/mlruns/1/models/m-1/artifacts", "s3://bkt/x")


# -- the model's recorded versions and the runtime's -----------------------------------------------
def write_model(folder: Path, *, mlflow="3.17.2", python="3.11.7", sklearn="1.9.1",
                fmt="cloudpickle") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inputs = json.dumps([{"type": "double", "name": "a", "required": True},
                         {"type": "long", "name": "b", "required": True}])
    (folder / "MLmodel").write_text(
        f"flavors:\n  python_function:\n    python_version: {python}\n    loader_module: mlflow.sklearn\n"
        f"  sklearn:\n    serialization_format: {fmt}\n    sklearn_version: {sklearn}\n"
        f"mlflow_version: {mlflow}\nsaved_input_example_info:\n  artifact_path: input_example.json\n"
        f"  type: dataframe\n  pandas_orient: split\nsignature:\n  inputs: '{inputs}'\n")
    (folder / "requirements.txt").write_text(
        f"mlflow=={mlflow}\nscikit-learn=={sklearn}\ncloudpickle==3.1.3\n"
        "# a comment\n-r other.txt\npandas>=2\n")
    example = {"columns": ["a", "b"], "data": [[1.5, 2], [2.5, 3]]}
    (folder / "input_example.json").write_text(json.dumps(example))
    return folder


def test_reading_a_model_folder_gives_its_versions_signature_and_example(tmp_path):
    info = models.read_model_info(write_model(tmp_path / "m"))

    assert (info.mlflow_version, info.python_version, info.serialization_format) == ("3.17.2", "3.11.7",
                                                                                      "cloudpickle")
    assert info.flavor_versions == {"scikit-learn": "1.9.1"}
    assert info.requirements == {"mlflow": "3.17.2", "scikit-learn": "1.9.1", "cloudpickle": "3.1.3"}
    assert [c["name"] for c in info.signature_inputs] == ["a", "b"]
    assert info.input_example == {"columns": ["a", "b"], "data": [[1.5, 2], [2.5, 3]]}


def test_a_folder_without_mlmodel_says_the_uri_must_name_it(tmp_path):
    with pytest.raises(UsageError, match="holds no MLmodel") as err:
        models.read_model_info(tmp_path)

    assert err.value.hint == "the model URI must name the folder that holds MLmodel"


def test_an_mlflow_3_model_on_mlserver_1_7_1_warns_with_the_fix(tmp_path):
    info = models.read_model_info(write_model(tmp_path / "m"))
    runtime = models.runtime_for_image("docker.io/seldonio/mlserver:1.7.1")

    findings = {f.what: f for f in models.check_compatibility(info, runtime)}

    assert findings["mlflow"].level == "warn"
    assert findings["mlflow"].message == ("the model was logged by MLflow 3.17.2; MLServer 1.7.1 loads it "
                                          "with MLflow 2.20")
    assert "`kservectl test`" in findings["mlflow"].fix and "mlflow==2.20.*" in findings["mlflow"].fix
    assert findings["python"].message.endswith("MLServer 1.7.1 runs Python 3.10")
    assert "train with Python 3.10" in findings["python"].fix
    # MLServer does not pin scikit-learn: said plainly, as information
    assert findings["scikit-learn"].level == "info"
    assert "not recorded" in findings["scikit-learn"].message


def test_a_skops_model_cannot_be_served_by_mlflow_2(tmp_path):
    info = models.read_model_info(write_model(tmp_path / "m", fmt="skops"))

    findings = models.check_compatibility(info, models.runtime_for_image("docker.io/seldonio/mlserver:1.7.1"))

    error = next(f for f in findings if f.level == "error")
    assert "skops format" in error.message
    assert 'serialization_format="cloudpickle"' in error.fix


def test_a_library_version_mismatch_names_both_versions(tmp_path):
    info = models.read_model_info(write_model(tmp_path / "m", sklearn="1.9.1"))
    runtime = models.RuntimeVersions("custom", python="3.11", mlflow="3.17.2",
                                     packages={"scikit-learn": "1.5.2"})

    findings = models.check_compatibility(info, runtime)

    assert [(f.level, f.what) for f in findings] == [("warn", "scikit-learn")]
    assert findings[0].message == ("the model was pickled with scikit-learn 1.9.1; "
                                   "custom has scikit-learn 1.5.2")
    assert findings[0].fix == ("retrain with scikit-learn==1.5.2, or serve with an image that has "
                               "scikit-learn==1.9.1")


def test_matching_versions_report_nothing(tmp_path):
    info = models.read_model_info(write_model(tmp_path / "m", mlflow="2.20.4", python="3.10.12"))
    runtime = models.RuntimeVersions("same", python="3.10", mlflow="2.20", packages={"scikit-learn": "1.9.1"})

    assert models.check_compatibility(info, runtime) == []


def test_runtime_versions_are_recorded_with_their_source():
    known = models.runtime_for_image("docker.io/seldonio/mlserver:1.7.1")
    variant = models.runtime_for_image("seldonio/mlserver:1.7.1-mlflow")
    unknown = models.runtime_for_image("registry.example.com/mlserver:9.9.9")

    assert (known.python, known.mlflow) == ("3.10", "2.20")
    assert "Dockerfile" in known.source and "mlserver-mlflow 1.7.1" in known.source
    assert variant == known
    assert (unknown.python, unknown.mlflow) == (None, None)
    assert "versions unknown" in unknown.source


def test_this_environment_as_a_runtime_reads_the_installed_packages():
    from importlib import metadata

    runtime = models.installed_runtime()

    assert runtime.mlflow == metadata.version("mlflow")
    assert runtime.packages["scikit-learn"] == metadata.version("scikit-learn")


def test_a_password_in_a_tracking_uri_is_never_shown():
    assert models.safe_uri("http://admin:s3cret@mlflow.example.com:5000/") == (
        "http://admin:<redacted>@mlflow.example.com:5000/")
    assert models.safe_uri("http://localhost:5000") == "http://localhost:5000"
    with pytest.raises(models.MlflowUnavailable) as err:
        models.check_reachable("http://admin:s3cret@127.0.0.1:9", timeout=2)
    assert "s3cret" not in err.value.one_line()
