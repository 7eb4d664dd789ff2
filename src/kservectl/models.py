"""Model references, their resolution through the MLflow registry, and the runtime check.

* ``parse(uri)``: ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/m-<id>``
  (an MLflow 3 logged model), ``runs:/<run-id>/<path>`` or a storage URI (``s3://...``).
* ``resolve(ref, client, ...)``: the artifact location that holds ``MLmodel``. MLflow 3 model
  versions record ``source: models:/<model_id>``; the registry's download URI is the logged
  model's artifact location (``mlflow-artifacts:/<exp>/models/<id>/artifacts`` behind a proxying
  server, or ``s3://...``). ``to_storage_uri`` maps ``mlflow-artifacts:`` onto the server's
  ``--artifacts-destination`` so KServe's storage initializer can download it from S3.
* ``fetch_model_info`` reads ``MLmodel``, ``requirements.txt`` and the input example;
  ``check_compatibility`` compares the model's recorded MLflow, Python and library versions with
  what the serving runtime bundles (``runtime_for_image``: data with sources), returning
  findings with the fix.

Provider-agnostic (no Kubernetes, no Typer); MLflow is imported inside the functions.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from kservectl.errors import KservectlError, UsageError

_VERSION_REF = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_ALIAS_REF = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)/?$")
_LOGGED_REF = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]{32})/?$")
_RUN_REF = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{32})/(?P<path>.+)$")
_STORAGE_SCHEMES = ("s3://", "gs://", "https://", "http://", "pvc://", "file://", "/")

FORMS = ("models:/<name>/<version>, models:/<name>@<alias>, models:/m-<logged-model-id>, "
         "runs:/<run-id>/<path> or s3://<bucket>/<path>")


class ModelNotFound(KservectlError):
    """The registry has no such model, version or alias."""


class MlflowUnavailable(KservectlError):
    """The MLflow tracking server cannot be reached or refused the request."""


class ModelUnreadable(KservectlError):
    """A model's MLmodel cannot be downloaded (MLflow, S3 credentials, a wrong path)."""


@dataclass(frozen=True)
class ModelRef:
    uri: str
    kind: str  # version | alias | logged | run | storage
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    model_id: str | None = None
    run_id: str | None = None
    path: str | None = None

    @property
    def registered(self) -> bool:
        return self.kind in ("version", "alias")


def parse(uri: str) -> ModelRef:
    """Parse a model reference; a malformed one is a ``UsageError`` naming the accepted forms."""
    uri = uri.strip()
    if m := _VERSION_REF.match(uri):
        return ModelRef(uri, "version", name=m["name"], version=m["version"])
    if m := _ALIAS_REF.match(uri):
        return ModelRef(uri, "alias", name=m["name"], alias=m["alias"])
    if m := _LOGGED_REF.match(uri):
        return ModelRef(uri, "logged", model_id=m["model_id"])
    if m := _RUN_REF.match(uri):
        return ModelRef(uri, "run", run_id=m["run_id"], path=m["path"].strip("/"))
    if uri.startswith(_STORAGE_SCHEMES) and not uri.startswith("models:"):
        return ModelRef(uri, "storage")
    raise UsageError(f"model reference {uri!r} is not understood: use {FORMS}")


@dataclass(frozen=True)
class ResolvedModel:
    ref: ModelRef
    artifact_uri: str  # where MLmodel lives, as MLflow records it
    registered_name: str | None = None
    version: str | None = None
    model_id: str | None = None
    run_id: str | None = None
    source: str | None = None  # the model version's source field
    aliases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.ref.uri, "artifact_uri": self.artifact_uri,
                "registered_name": self.registered_name, "version": self.version, "model_id": self.model_id,
                "run_id": self.run_id, "source": self.source, "aliases": list(self.aliases)}


def safe_uri(uri: str) -> str:
    """The URI as shown to people: a password in its user-info (http://user:pass@host) is masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:<redacted>@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def client(tracking_uri: str):
    """An ``MlflowClient`` for ``tracking_uri`` (tracking and registry)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def check_reachable(tracking_uri: str, timeout: float) -> None:
    """Fail fast when an HTTP tracking server does not answer (MLflow's own client retries for
    minutes). Non-HTTP URIs (sqlite:, file:) are local and always 'reachable'."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import httpx

    shown = safe_uri(tracking_uri)
    try:
        response = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise MlflowUnavailable(f"MLflow at {shown} does not answer: {exc}",
                                hint="check --tracking-uri / MLFLOW_TRACKING_URI, or that the server runs"
                                ) from exc
    if response.status_code == 403:
        raise MlflowUnavailable(f"MLflow at {shown} refused the request (403): {response.text[:120]}",
                                hint="the server's --allowed-hosts must list this host name")
    if response.status_code >= 500:
        raise MlflowUnavailable(f"MLflow at {shown} answered {response.status_code} on /health")


def resolve(ref: ModelRef, mlflow_client: Any) -> ResolvedModel:
    """The artifact location holding ``MLmodel`` for ``ref`` (storage URIs pass through)."""
    from mlflow.exceptions import MlflowException

    if ref.kind == "storage":
        return ResolvedModel(ref, ref.uri.rstrip("/"))
    try:
        if ref.kind == "logged":
            logged = mlflow_client.get_logged_model(ref.model_id)
            return ResolvedModel(ref, logged.artifact_location.rstrip("/"), model_id=ref.model_id,
                                 run_id=getattr(logged, "source_run_id", None))
        if ref.kind == "run":
            run = mlflow_client.get_run(ref.run_id)
            return ResolvedModel(ref, f"{run.info.artifact_uri.rstrip('/')}/{ref.path}", run_id=ref.run_id)
        assert ref.name is not None
        if ref.kind == "alias":
            mv = mlflow_client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            mv = mlflow_client.get_model_version(ref.name, ref.version)
        download_uri = mlflow_client.get_model_version_download_uri(ref.name, mv.version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise ModelNotFound(_not_found_message(ref, mlflow_client), hint=_not_found_hint(ref)) from exc
        raise MlflowUnavailable(f"MLflow could not resolve {ref.uri}: {exc.message}") from exc
    source = mv.source
    model_id = source.removeprefix("models:/") if source and _LOGGED_REF.match(source) else None
    return ResolvedModel(ref, download_uri.rstrip("/"), registered_name=ref.name, version=str(mv.version),
                         model_id=model_id, run_id=mv.run_id or None, source=source,
                         aliases=tuple(getattr(mv, "aliases", None) or ()))


def _not_found_message(ref: ModelRef, mlflow_client: Any) -> str:
    if ref.kind in ("version", "alias"):
        versions = _versions(mlflow_client, ref.name)
        what = f"version {ref.version}" if ref.kind == "version" else f"alias @{ref.alias}"
        if versions is None:
            return f"registered model {ref.name!r} does not exist in MLflow ({ref.uri})"
        listed = ", ".join(versions) if versions else "none"
        return f"registered model {ref.name!r} has no {what} ({ref.uri}); its versions: {listed}"
    return f"MLflow has no model at {ref.uri}"


def _not_found_hint(ref: ModelRef) -> str:
    if ref.kind in ("version", "alias"):
        return "register one (`kservectl serve example` registers the wine classifier) or fix the reference"
    return "check the id in the MLflow UI"


def _versions(mlflow_client: Any, name: str | None) -> list[str] | None:
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    if not found:
        try:
            mlflow_client.get_registered_model(name)
        except MlflowException:
            return None
    return sorted((str(v.version) for v in found), key=int)


def to_storage_uri(artifact_uri: str, artifacts_destination: str | None) -> str:
    """Map an artifact URI to what KServe's storage initializer can download.

    ``mlflow-artifacts:/<path>`` (a proxying tracking server) becomes
    ``<artifacts-destination>/<path>``; ``s3://`` passes through. Anything else cannot be read by
    the cluster: ``UsageError`` with the fix.
    """
    uri = artifact_uri.rstrip("/")
    if uri.startswith("mlflow-artifacts:"):
        path = uri[len("mlflow-artifacts:"):]
        if path.startswith("//"):  # mlflow-artifacts://host:port/path
            path = "/" + path[2:].partition("/")[2]
        if not artifacts_destination:
            raise UsageError(
                f"the model's artifacts are proxied by MLflow ({uri}) and the server's artifacts destination "
                "is unknown", hint="pass --artifacts-destination s3://<bucket>/<prefix> or --storage-uri s3://...")
        return f"{artifacts_destination.rstrip('/')}/{path.lstrip('/')}"
    if uri.startswith("s3://"):
        return uri
    raise UsageError(f"the model's artifacts are at {uri}, which KServe cannot download from the cluster",
                     hint="log models to an MLflow server whose artifacts live in S3, or pass --storage-uri s3://...")


# -- the model's recorded versions -------------------------------------------------------------

@dataclass(frozen=True)
class ModelInfo:
    """What ``MLmodel`` and ``requirements.txt`` record about a logged model."""

    mlflow_version: str | None = None
    python_version: str | None = None
    flavors: tuple[str, ...] = ()
    serialization_format: str | None = None
    flavor_versions: dict[str, str] = field(default_factory=dict)  # e.g. {"scikit-learn": "1.9.1"}
    requirements: dict[str, str] = field(default_factory=dict)  # pinned name -> version
    signature_inputs: list[dict[str, Any]] | None = None
    input_example: Any = None  # the saved input example (pandas split orient for data frames)
    input_example_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"mlflow_version": self.mlflow_version, "python_version": self.python_version,
                "flavors": list(self.flavors), "serialization_format": self.serialization_format,
                "flavor_versions": dict(self.flavor_versions), "requirements": dict(self.requirements)}


_FLAVOR_PACKAGES = {"sklearn": ("sklearn_version", "scikit-learn"), "xgboost": ("xgb_version", "xgboost"),
                    "lightgbm": ("lgb_version", "lightgbm")}


def read_model_info(folder: Path) -> ModelInfo:
    """Read a model folder (``MLmodel``, ``requirements.txt``, the input example)."""
    import yaml

    mlmodel_path = folder / "MLmodel"
    if not mlmodel_path.is_file():
        raise UsageError(f"{folder} holds no MLmodel",
                         hint="the model URI must name the folder that holds MLmodel")
    try:
        mlmodel = yaml.safe_load(mlmodel_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{mlmodel_path} cannot be read: {exc}",
                         hint="the model URI must name the folder that holds MLmodel") from exc
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    flavor_versions: dict[str, str] = {}
    serialization = None
    for flavor, (key, package) in _FLAVOR_PACKAGES.items():
        if flavor in flavors and (flavors[flavor] or {}).get(key):
            flavor_versions[package] = str(flavors[flavor][key])
        if flavor in flavors and (flavors[flavor] or {}).get("serialization_format"):
            serialization = str(flavors[flavor]["serialization_format"])
    requirements: dict[str, str] = {}
    req_path = folder / "requirements.txt"
    if req_path.is_file():
        requirements = parse_requirements(req_path.read_text(encoding="utf-8"))
    inputs = None
    signature = mlmodel.get("signature") or {}
    if signature.get("inputs"):
        try:
            inputs = json.loads(signature["inputs"])
        except ValueError:
            inputs = None
    example, example_type = None, None
    info = mlmodel.get("saved_input_example_info") or {}
    if info.get("artifact_path") and (folder / info["artifact_path"]).is_file():
        try:
            example = json.loads((folder / info["artifact_path"]).read_text(encoding="utf-8"))
            example_type = info.get("type")
        except ValueError:
            example = None
    return ModelInfo(
        mlflow_version=_str_or_none(mlmodel.get("mlflow_version")),
        python_version=_str_or_none(pyfunc.get("python_version")),
        flavors=tuple(flavors),
        serialization_format=serialization,
        flavor_versions=flavor_versions,
        requirements=requirements,
        signature_inputs=inputs,
        input_example=example,
        input_example_type=example_type,
    )


def parse_requirements(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements file (other lines ignored), names normalised."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if m:
            out[_normalise(m.group(1))] = m.group(3)
    return out


def fetch_model_info(artifact_uri: str, tracking_uri: str | None) -> ModelInfo:
    """Download ``MLmodel``, ``requirements.txt`` and the input example of a model and read them."""
    import yaml
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    base = artifact_uri.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="kservectl-model-") as tmp:
        folder = Path(tmp)
        try:
            download_artifacts(artifact_uri=f"{base}/MLmodel", dst_path=tmp, tracking_uri=tracking_uri)
        except (MlflowException, OSError, *_storage_errors()) as exc:
            raise ModelUnreadable(f"cannot read {base}/MLmodel: {_short(exc)}",
                                  hint="the URI must name the folder that holds MLmodel, readable with "
                                  "your MLflow or AWS credentials") from exc
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
        wanted = ["requirements.txt"]
        example_info = mlmodel.get("saved_input_example_info") or {}
        if example_info.get("artifact_path"):
            wanted.append(example_info["artifact_path"])
        for name in wanted:
            try:
                download_artifacts(artifact_uri=f"{base}/{name}", dst_path=tmp, tracking_uri=tracking_uri)
            except (MlflowException, OSError, *_storage_errors()):
                continue  # optional files
        return read_model_info(folder)


# -- the serving runtime's versions ------------------------------------------------------------

@dataclass(frozen=True)
class RuntimeVersions:
    """What a serving runtime loads models with. ``None`` = not recorded (checked as unknown)."""

    name: str
    python: str | None
    mlflow: str | None
    packages: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "python": self.python, "mlflow": self.mlflow,
                "packages": dict(self.packages), "source": self.source}


# MLServer images by tag. Versions are what the image bundles, each with where that comes from.
RUNTIMES: dict[str, RuntimeVersions] = {
    "1.7.1": RuntimeVersions(
        name="MLServer 1.7.1",
        python="3.10",
        mlflow="2.20",
        packages={},
        source=("SeldonIO/MLServer Dockerfile (ARG PYTHON_VERSION=3.10.x, conda); mlserver-mlflow 1.7.1 "
                "requires mlflow>=2.19.0 and the image's lock resolves the 2.20 line (a model logged by "
                "MLflow 3.17.2 with cloudpickle loaded under 2.20.4, see docs/serving.md); scikit-learn is "
                "unpinned (runtimes/sklearn/pyproject.toml: scikit-learn = \"*\"), so not recorded here"),
    ),
    "1.5.0": RuntimeVersions(
        name="MLServer 1.5.0",
        python="3.10",
        mlflow="2",
        packages={},
        source=("KServe Helm chart kserve-runtime-configs default tag; SeldonIO/MLServer Dockerfile "
                "(Python 3.10); MLflow 2.x (minor not recorded)"),
    ),
}


def runtime_for_image(image: str) -> RuntimeVersions:
    """The runtime versions of an MLServer image (``docker.io/seldonio/mlserver:1.7.1``)."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    tag = tag.split("-", 1)[0]  # 1.7.1-sklearn, 1.7.1-mlflow
    known = RUNTIMES.get(tag)
    if known is not None:
        return known
    return RuntimeVersions(name=f"MLServer image {image}", python=None, mlflow=None,
                           source="not in kservectl's runtime table (models.RUNTIMES): versions unknown")


def installed_runtime() -> RuntimeVersions:
    """This Python environment as the runtime (the local provider serves with it)."""
    packages = {}
    for dist in ("scikit-learn", "cloudpickle", "xgboost", "lightgbm"):
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        mlflow_version: str | None = metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        mlflow_version = None
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return RuntimeVersions(name="this Python environment", python=python,
                           mlflow=mlflow_version, packages=packages,
                           source=f"installed packages of {sys.executable}")


@dataclass(frozen=True)
class Finding:
    level: str  # error | warn | info
    what: str  # mlflow | python | <package> | serialization
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "what": self.what, "message": self.message, "fix": self.fix}

    def line(self) -> str:
        return f"{self.message}; fix: {self.fix}"


def check_compatibility(info: ModelInfo, runtime: RuntimeVersions) -> list[Finding]:
    """Compare a model's recorded versions with a runtime's. Empty means nothing to report."""
    findings: list[Finding] = []
    model_mlflow = info.mlflow_version or info.requirements.get("mlflow")
    if model_mlflow and runtime.mlflow and _major(model_mlflow) != _major(runtime.mlflow):
        if info.serialization_format == "skops" and _major(runtime.mlflow) < 3:
            findings.append(Finding(
                "error", "serialization",
                f"the model was logged by MLflow {model_mlflow} in skops format, which {runtime.name} "
                f"(MLflow {runtime.mlflow}) cannot load",
                "re-log it with mlflow.sklearn.log_model(..., serialization_format=\"cloudpickle\") "
                "(`kservectl serve example` does)"))
        else:
            findings.append(Finding(
                "warn", "mlflow",
                f"the model was logged by MLflow {model_mlflow}; {runtime.name} loads it with "
                f"MLflow {runtime.mlflow}",
                f"pickled scikit-learn models logged by MLflow 3 load under MLflow 2.20, but verify with "
                f"`kservectl test` after deploying, or log with mlflow=={runtime.mlflow}.* to match"))
    if info.python_version and runtime.python and _minor(info.python_version) != _minor(runtime.python):
        findings.append(Finding(
            "warn", "python",
            f"the model was saved with Python {info.python_version}; {runtime.name} runs "
            f"Python {runtime.python}",
            f"pickles usually load across minor versions, but train with Python {runtime.python} to be sure"))
    recorded = dict(info.requirements)
    recorded.update({_normalise(k): v for k, v in info.flavor_versions.items()})
    for package, wanted in sorted(recorded.items()):
        if package not in _PICKLE_SENSITIVE:
            continue
        have = runtime.packages.get(package)
        if have is None:
            findings.append(Finding(
                "info", package,
                f"the model needs {package}=={wanted}; {runtime.name}'s {package} version is not recorded "
                f"by kservectl",
                f"pickled models load reliably only under the same {package}; check the image "
                f"(pip show {package}) or serve with a matching image"))
        elif have != wanted:
            findings.append(Finding(
                "warn", package,
                f"the model was pickled with {package} {wanted}; {runtime.name} has {package} {have}",
                f"retrain with {package}=={have}, or serve with an image that has {package}=={wanted}"))
    return findings


_PICKLE_SENSITIVE = {"scikit-learn", "xgboost", "lightgbm"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return -1


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What reading s3:// artifacts raises besides MLflow's own errors (missing credentials, denied)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return ()
    return (BotoCoreError, ClientError)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(text.split())[:300]
