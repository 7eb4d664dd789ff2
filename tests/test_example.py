"""The example model: trained on the bundled wine data, logged in a form MLServer's MLflow 2.x
can load (cloudpickle), with a signature and an input example, and registered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from kservectl import example, models

# Third-party deprecations raised inside MLflow's own code (named, not a blanket ignore).
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.store.tracking.sqlalchemy_store"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.models.utils"),
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


def test_the_wine_classifier_trains_on_thirteen_float_columns():
    trained = example.train()

    assert trained.accuracy >= 0.9
    assert len(trained.columns) == 13
    assert "od280/od315_of_diluted_wines" in trained.columns
    assert set(trained.features.dtypes.astype(str)) == {"float64"}
    assert trained.model.n_estimators == example.N_ESTIMATORS


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mlflow")
    cwd = Path.cwd()
    os.chdir(root)  # a sqlite store keeps artifacts under ./mlruns
    try:
        uri = f"sqlite:///{root}/mlflow.db"
        first = example.log_and_register(uri, alias="champion")
        second = example.log_and_register(uri)
    finally:
        os.chdir(cwd)
    return uri, first, second


def test_logging_registers_a_new_version_each_time(logged):
    uri, first, second = logged

    assert (first.registered_name, first.version, first.model_uri) == ("wine", "1", "models:/wine/1")
    assert (second.version, second.model_uri) == ("2", "models:/wine/2")
    assert first.source == f"models:/{first.model_id}"  # MLflow 3: versions point at a logged model
    assert first.model_id.startswith("m-")
    assert first.tracking_uri == uri
    client = models.client(uri)
    assert str(client.get_model_version_by_alias("wine", "champion").version) == "1"


def test_the_model_is_logged_with_cloudpickle_a_signature_and_an_input_example(logged):
    uri, first, _ = logged
    folder = Path(models.resolve(models.parse(first.model_uri), models.client(uri)).artifact_uri)

    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert (folder / "model.pkl").is_file()
    info = models.read_model_info(folder)
    assert [c["name"] for c in info.signature_inputs] == first.columns
    assert {c["type"] for c in info.signature_inputs} == {"double"}
    assert info.input_example["columns"] == first.columns
    assert len(info.input_example["data"]) == example.EXAMPLE_ROWS
    # exact pins from this environment, and no stray packages from import tracing
    assert set(info.requirements) == {"mlflow", "scikit-learn", "cloudpickle", "numpy", "pandas", "scipy"}
    assert info.requirements["scikit-learn"] == info.flavor_versions["scikit-learn"]


def test_the_tracking_uri_is_restored_after_logging(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://before:5000")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)

    with example.tracking("sqlite:///elsewhere.db"):
        assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"

    assert os.environ["MLFLOW_TRACKING_URI"] == "http://before:5000"
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    import mlflow

    # nothing pinned process-wide: MLflow follows the environment afterwards
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://after:5000")
    assert mlflow.get_tracking_uri() == "http://after:5000"


def test_an_unreachable_tracking_server_is_a_clear_error():
    with pytest.raises(models.MlflowUnavailable, match=r"MLflow at http://127.0.0.1:9 does not answer"):
        models.check_reachable("http://127.0.0.1:9", timeout=2)
