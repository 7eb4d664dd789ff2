"""The example model: a wine classifier trained, logged and registered in MLflow.

``sklearn.datasets.load_wine`` is bundled with scikit-learn (no download). The model is logged in
a form the serving runtime can load:

* ``serialization_format="cloudpickle"``: MLflow 3 defaults scikit-learn models to skops, which
  refuses tree models (``sklearn.tree._tree.Tree``) unless their types are trusted, and the
  MLflow 2.x bundled in KServe's MLServer image cannot read skops files anyway;
* a signature with named double columns and an input example, so a server can describe its
  inputs and ``kservectl test`` can build requests from the model itself.

Provider-agnostic (the local provider reuses it): no Kubernetes, no Typer. MLflow and
scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from kservectl import models
from kservectl.errors import KservectlError

REGISTERED_NAME = "wine"
EXPERIMENT = "kservectl-example"
ARTIFACT_NAME = "model"
EXAMPLE_ROWS = 5
N_ESTIMATORS = 50
RANDOM_STATE = 42
SERIALIZATION_FORMAT = "cloudpickle"
# What a pickled scikit-learn model needs at load time (recorded in requirements.txt).
PINNED_DISTRIBUTIONS = ("scikit-learn", "cloudpickle", "numpy", "pandas", "scipy")


class ExampleError(KservectlError):
    """Training, logging or registering the example model failed."""


@dataclass(frozen=True)
class Trained:
    model: Any
    features: Any  # pandas DataFrame of the training rows
    test_features: Any
    test_labels: Any
    accuracy: float
    columns: list[str]


@dataclass(frozen=True)
class ExampleModel:
    """What ``serve example`` logged and registered."""

    registered_name: str
    version: str
    model_uri: str  # models:/<name>/<version>: what `serve deploy --model` takes
    run_id: str
    model_id: str | None  # MLflow 3 logged model id (m-...)
    source: str  # the model version's source as MLflow records it
    accuracy: float
    columns: list[str]
    tracking_uri: str
    experiment: str
    serialization_format: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered_name": self.registered_name, "version": self.version, "model_uri": self.model_uri,
            "run_id": self.run_id, "model_id": self.model_id, "source": self.source,
            "accuracy": round(self.accuracy, 4), "columns": self.columns,
            "tracking_uri": models.safe_uri(self.tracking_uri),
            "experiment": self.experiment, "serialization_format": self.serialization_format,
        }


def train(n_estimators: int = N_ESTIMATORS, random_state: int = RANDOM_STATE) -> Trained:
    """Train a random forest on the wine data set (178 rows, 13 float columns, 3 classes)."""
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    data = load_wine(as_frame=True)
    features = data.data.astype("float64")  # magnesium and proline are ints: one dtype for every column
    x_train, x_test, y_train, y_test = train_test_split(
        features, data.target, test_size=0.25, random_state=random_state, stratify=data.target)
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=random_state)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    return Trained(model, x_train, x_test, y_test, accuracy, list(features.columns))


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Use ``uri`` as MLflow's tracking and registry URI for the block, then restore both."""
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # None clears MLflow's process-wide setting, so it reads the environment again (setting the
        # saved value instead would pin it for the rest of the process, past later env changes)
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log_and_register(
    tracking_uri: str,
    *,
    registered_name: str = REGISTERED_NAME,
    experiment: str = EXPERIMENT,
    n_estimators: int = N_ESTIMATORS,
    random_state: int = RANDOM_STATE,
    alias: str | None = None,
) -> ExampleModel:
    """Train the wine classifier, log it to ``tracking_uri`` with a signature and an input
    example (cloudpickle), register it as ``registered_name`` and return what was created.
    ``alias`` (e.g. ``champion``) is pointed at the new version when given."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    trained = train(n_estimators=n_estimators, random_state=random_state)
    example = trained.features.head(EXAMPLE_ROWS)
    # Pinned from this environment: exact, and no slow requirement inference in a subprocess.
    # MLflow adds its own pin (mlflow==<version>).
    pip_requirements = [f"{dist}=={metadata.version(dist)}" for dist in PINNED_DISTRIBUTIONS]
    signature = infer_signature(example, trained.model.predict(example))
    try:
        # MLflow writes "View run ... at <url>" to stdout: keep stdout for kservectl's own output
        with tracking(tracking_uri), redirect_stdout(sys.stderr):
            mlflow.set_experiment(experiment)
            with mlflow.start_run(run_name="wine-random-forest") as run:
                mlflow.log_params({"n_estimators": n_estimators, "random_state": random_state})
                mlflow.log_metric("accuracy", trained.accuracy)
                info = mlflow.sklearn.log_model(
                    trained.model,
                    name=ARTIFACT_NAME,
                    signature=signature,
                    input_example=example,
                    serialization_format=SERIALIZATION_FORMAT,
                    pip_requirements=pip_requirements,
                    registered_model_name=registered_name,
                )
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            version = str(info.registered_model_version)
            model_version = client.get_model_version(registered_name, version)
            if alias:
                client.set_registered_model_alias(registered_name, alias, version)
    except MlflowException as exc:
        raise ExampleError(f"MLflow at {models.safe_uri(tracking_uri)} refused the example model: {exc.message}",
                           hint="check the tracking URI and that the server accepts writes") from exc
    except OSError as exc:
        raise ExampleError(f"cannot reach MLflow at {models.safe_uri(tracking_uri)}: {exc}",
                           hint="start the tracking server or pass --tracking-uri") from exc
    return ExampleModel(
        registered_name=registered_name,
        version=version,
        model_uri=f"models:/{registered_name}/{version}",
        run_id=run.info.run_id,
        model_id=getattr(info, "model_id", None),
        source=model_version.source,
        accuracy=trained.accuracy,
        columns=trained.columns,
        tracking_uri=tracking_uri,
        experiment=experiment,
        serialization_format=SERIALIZATION_FORMAT,
    )
