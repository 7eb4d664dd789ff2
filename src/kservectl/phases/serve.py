"""Phase ``serve``: MLflow models as KServe InferenceServices (V2 protocol, MLServer runtime).

* ``deploy``: resolve the model reference through the MLflow registry to the S3 folder holding
  ``MLmodel`` (``kservectl.models``), check the model's recorded versions against the runtime,
  render the InferenceService (``templates/serve/inferenceservice.yaml.j2``), apply only the
  difference and watch until KServe reports it Ready, showing its conditions meanwhile.
  ``--min-replicas 0`` (scale to zero) deploys a new service with one replica first and lowers
  it after the first Ready, so a slow first start (model download) is not scaled away.
* Canary (Knative mode): deploying a new model to a live service with ``canary_percent`` sets
  ``canaryTrafficPercent``; ``promote`` removes it (all traffic to the latest revision),
  ``rollback`` sets it to 0: during a canary all traffic goes back to the rolled-out revision;
  after a promotion KServe moves ``latestRolledoutRevision`` back to ``previousRolledoutRevision``
  and pins all traffic there (KServe's own rollback), and the wait lasts until it has.
* The mode comes from the cluster: KServe's installed mode (``kserve.installed_mode``: the
  ``kservectl kserve install`` record, else KServe's own config), else ``kserve.mode``. Canary
  and scale to zero are refused in standard mode.
* ``list_services`` / ``status``: URL, readiness, conditions, revisions and traffic split.
* ``urls``: the gateway NLB, the MLflow URL and, per service, the Host header and curl commands.

Values owned by other phases are read from the cluster through one small function each:
``gateway_hostname`` (the Kourier Service), ``mlflow_tracking_uri`` and
``artifacts_destination`` (MLflow's Service and Deployment), ``predictor_service_account``
(the storage phase's model-server ServiceAccount).
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kservectl import models, paths
from kservectl.context import Context
from kservectl.errors import KservectlError, UsageError, WaitTimeout
from kservectl.kube import Ref, condition
from kservectl.phases.base import LiveValues, PhasePlan, Step
from kservectl.render import Renderer, placeholder

PHASE = "serve"
API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
RUNTIME = "kserve-mlserver"
TEMPLATE = "serve/inferenceservice.yaml.j2"
SPREAD_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
POD_LABEL = "serving.kserve.io/inferenceservice"
ANN_MODEL_URI = "kservectl.io/model-uri"
ANN_PREVIOUS = "kservectl.io/previous-model-uri"
ANN_MODE = "serving.kserve.io/deploymentMode"

# Where other phases put things (read from the cluster; these are the fallbacks).
GATEWAY_SERVICES = (("kourier-system", "kourier"), ("knative-serving", "kourier"))
MLFLOW_SERVICE = "mlflow"
MLFLOW_PORT = 5000
MODEL_SERVER_SA = "kservectl-model-server"
ARTIFACT_PREFIX = "mlflow-artifacts"
EXAMPLE_REGISTERED_NAME = "wine"


class ServeError(KservectlError):
    """A serving operation cannot go on (exit 1)."""


# -- desired state ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ServeSpec:
    name: str
    namespace: str
    cluster: str
    model_uri: str  # what the user asked for (models:/..., or the storage URI itself)
    storage_uri: str  # the folder holding MLmodel, as KServe downloads it
    service_account: str
    deployment_mode: str  # Knative | Standard
    min_replicas: int
    max_replicas: int
    scale_metric: str
    scale_target: int
    cpu: str
    memory: str
    canary_percent: int | None = None
    previous_model_uri: str | None = None
    placeholder: bool = False

    def values(self) -> dict[str, Any]:
        values = asdict(self)
        values.update(runtime=RUNTIME, spread_keys=SPREAD_KEYS)
        return values


def deployment_mode(ctx: Context) -> str:
    """The InferenceService annotation for the configured mode (``plan``: no cluster call)."""
    return ServingMode(ctx.config.kserve.mode, "config").annotation


@dataclass(frozen=True)
class ServingMode:
    mode: str  # knative | standard
    source: str  # "installed" (what the cluster runs) or "config" (kserve.mode; KServe not installed)

    @property
    def knative(self) -> bool:
        return self.mode == "knative"

    @property
    def annotation(self) -> str:
        return "Knative" if self.knative else "Standard"

    def why(self, ctx: Context) -> str:
        if self.source == "installed":
            return f"KServe on cluster {ctx.cluster} is installed in {self.mode} mode"
        return f"this cluster is configured for {self.mode} mode"


def serving_mode(ctx: Context) -> ServingMode:
    """What the cluster really runs: the installed mode (the ``kservectl kserve install`` record,
    else KServe's own ``inferenceservice-config``) and only when KServe is not installed,
    ``kserve.mode`` from the config. Read-only, so also right in a dry run."""
    from kservectl.phases import kserve

    installed = kserve.installed_mode(ctx)
    if installed is not None:
        if installed != ctx.config.kserve.mode:
            ctx.reporter.warn(f"KServe on cluster {ctx.cluster} is installed in {installed} mode but "
                              f"kserve.mode is {ctx.config.kserve.mode}; serving for the installed mode")
        return ServingMode(installed, "installed")
    return ServingMode(ctx.config.kserve.mode, "config")


def spec_from_config(ctx: Context, *, name: str, model_uri: str, storage_uri: str,
                     service_account: str | None = None, **overrides: Any) -> ServeSpec:
    m = ctx.config.model
    spec = ServeSpec(
        name=name, namespace=ctx.config.namespaces.models, cluster=ctx.cluster, model_uri=model_uri,
        storage_uri=storage_uri, service_account=service_account or MODEL_SERVER_SA,
        deployment_mode=deployment_mode(ctx), min_replicas=m.min_replicas, max_replicas=m.max_replicas,
        scale_metric=m.scale_metric, scale_target=m.scale_target, cpu=m.cpu, memory=m.memory,
    )
    return replace(spec, **overrides)


def render(spec: ServeSpec, renderer: Renderer | None = None) -> str:
    return (renderer or Renderer()).render(TEMPLATE, spec.values())


def document(spec: ServeSpec, renderer: Renderer | None = None) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(render(spec, renderer))


def placeholder_storage_uri(ctx: Context) -> str:
    """A visibly marked storage URI for ``plan``: the real one needs MLflow. Still a valid
    ``storageUri`` for the CRD (a plain string); never applied."""
    bucket = ctx.config.storage.bucket or placeholder("artifact-bucket")
    return f"s3://{bucket}/{ARTIFACT_PREFIX}/{placeholder('experiment-id')}/models/{placeholder('model-id')}/artifacts"


# -- plan --------------------------------------------------------------------------------------
def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    m = ctx.config.model
    ns = ctx.config.namespaces.models
    example = not m.uri
    model_uri = m.uri or f"models:/{EXAMPLE_REGISTERED_NAME}/{placeholder('latest-version')}"
    direct = m.uri.startswith("s3://")
    spec = spec_from_config(ctx, name=m.name, model_uri=model_uri,
                            storage_uri=m.uri if direct else placeholder_storage_uri(ctx),
                            service_account=predictor_service_account_planned(ctx),
                            min_replicas=max(m.min_replicas, 1), placeholder=not direct)
    file = f"{m.name}-inferenceservice.yaml"
    runtime = models.runtime_for_image(ctx.config.versions.mlserver_image)
    steps: list[Step] = []
    if example:
        steps.append(Step(PHASE, "train the example wine classifier, log it to MLflow (cloudpickle, "
                          "signature, input example) and register it as 'wine' (`kservectl serve example`)",
                          "http",
                          calls=("mlflow: create run, log model, create model version",)))
    if not direct:
        steps.append(Step(PHASE, f"resolve {model_uri} through the MLflow registry to the S3 folder holding "
                          "MLmodel", "http",
                          calls=("mlflow: get model version", "get model version download uri")))
    steps.append(Step(PHASE, f"check the model's MLflow, Python and library versions against {runtime.name} "
                      f"(MLflow {runtime.mlflow or 'unknown'}, Python {runtime.python or 'unknown'})", "http",
                      calls=("download MLmodel and requirements.txt",)))
    steps.append(Step(PHASE, f"apply InferenceService {ns}/{m.name}", "kube",
                      calls=(f"apply InferenceService {ns}/{m.name}",), files=(f"{PHASE}/{file}",)))
    steps.append(Step(PHASE, f"wait until InferenceService {ns}/{m.name} is Ready (KServe's conditions shown "
                      "meanwhile)", "kube", calls=(f"watch InferenceService {ns}/{m.name}",)))
    if m.min_replicas == 0:
        steps.append(Step(PHASE, f"then set minReplicas 0 (scale to zero) on InferenceService {ns}/{m.name}",
                          "kube", calls=(f"patch InferenceService {ns}/{m.name}",)))
    return PhasePlan(
        phase=PHASE,
        summary=f"InferenceService {ns}/{m.name} serving {model_uri} with {RUNTIME} "
                f"({ctx.config.versions.mlserver_image}), V2 protocol, {ctx.config.kserve.mode} mode",
        files={file: render(spec)},
        steps=steps,
    )


# -- values read from the cluster (owned by other phases) -------------------------------------
def gateway_hostname(ctx: Context) -> str | None:
    """The gateway NLB's hostname: ``status.loadBalancer.ingress[0]`` of the Kourier Service."""
    for namespace, name in GATEWAY_SERVICES:
        svc = ctx.kube.get("v1", "Service", name, namespace)
        if svc is None:
            continue
        for entry in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if entry.get("hostname") or entry.get("ip"):
                return entry.get("hostname") or entry.get("ip")
        return None
    return None


def gateway_scheme(ctx: Context) -> str:
    return "https" if ctx.config.exposure.certificate_arn else "http"


def mlflow_public_url(ctx: Context) -> str | None:
    """MLflow's URL when its Service is a load balancer (the mlflow phase's ``--public``)."""
    svc = ctx.kube.get("v1", "Service", MLFLOW_SERVICE, ctx.config.namespaces.mlflow)
    if svc is None or (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return None
    for entry in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        host = entry.get("hostname") or entry.get("ip")
        if host:
            return f"http://{host}:{MLFLOW_PORT}"
    return None


def mlflow_port_forward(ctx: Context) -> str:
    kubeconfig = ctx.kubeconfig or paths.kubeconfig_path(ctx.cluster)
    return shlex.join(["kubectl", "--kubeconfig", str(kubeconfig), "--namespace",
                       ctx.config.namespaces.mlflow, "port-forward", f"service/{MLFLOW_SERVICE}",
                       f"{MLFLOW_PORT}:{MLFLOW_PORT}"])


def mlflow_tracking_uri(ctx: Context, explicit: str | None = None) -> str:
    """``--tracking-uri`` / ``MLFLOW_TRACKING_URI`` first, then the cluster's public MLflow."""
    if explicit:
        return explicit.rstrip("/")
    public = mlflow_public_url(ctx)
    if public:
        return public
    raise UsageError(
        "no MLflow tracking URI: MLflow is private in this cluster",
        hint=f"run `{mlflow_port_forward(ctx)}` and pass --tracking-uri http://localhost:{MLFLOW_PORT} "
             "(or set MLFLOW_TRACKING_URI)")


def artifacts_destination(ctx: Context, explicit: str | None = None) -> str | None:
    """Where the MLflow server keeps proxied artifacts (its ``--artifacts-destination``): the
    option, else the MLflow Deployment's argument, else ``s3://<storage.bucket>/mlflow-artifacts``."""
    if explicit:
        return explicit.rstrip("/")
    dep = ctx.kube.get("apps/v1", "Deployment", MLFLOW_SERVICE, ctx.config.namespaces.mlflow)
    pod_spec = (((dep or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod_spec.get("containers") or []:
        args = list(container.get("args") or []) + list(container.get("command") or [])
        for i, arg in enumerate(args):
            if arg == "--artifacts-destination" and i + 1 < len(args):
                return args[i + 1].rstrip("/")
            if arg.startswith("--artifacts-destination="):
                return arg.split("=", 1)[1].rstrip("/")
        for env in container.get("env") or []:
            if env.get("name") == "MLFLOW_ARTIFACTS_DESTINATION" and env.get("value"):
                return env["value"].rstrip("/")
    if ctx.config.storage.bucket:
        return f"s3://{ctx.config.storage.bucket}/{ARTIFACT_PREFIX}"
    return None


def predictor_service_account_planned(ctx: Context) -> str:
    """The model servers' IRSA ServiceAccount name (the storage phase owns it)."""
    try:
        from kservectl.phases import storage
    except ImportError:  # pragma: no cover - the storage phase ships with kservectl
        return MODEL_SERVER_SA
    try:
        return storage.service_accounts(ctx, LiveValues())[storage.MODEL_SERVER].name
    except (AttributeError, KeyError, TypeError):
        return MODEL_SERVER_SA


def predictor_service_account(ctx: Context) -> str:
    """The ServiceAccount name, and a warning when it is missing from the models namespace (the
    storage initializer then has no S3 credentials)."""
    name = predictor_service_account_planned(ctx)
    ns = ctx.config.namespaces.models
    if ctx.kube.get("v1", "ServiceAccount", name, ns) is None:
        ctx.reporter.warn(f"ServiceAccount {ns}/{name} does not exist: the model download from S3 will fail "
                          "(run `kservectl storage create` to create it)")
    return name


# -- reading InferenceServices -------------------------------------------------------------------
def ref(ctx: Context, name: str) -> Ref:
    return Ref(API_VERSION, KIND, name, ctx.config.namespaces.models)


def get(ctx: Context, name: str) -> dict[str, Any] | None:
    return ctx.kube.get(API_VERSION, KIND, name, ctx.config.namespaces.models)


def require(ctx: Context, name: str) -> dict[str, Any]:
    isvc = get(ctx, name)
    if isvc is None:
        ns = ctx.config.namespaces.models
        others = [i["metadata"]["name"] for i in list_objects(ctx)]
        served = ", ".join(others) if others else "none"
        raise ServeError(f"InferenceService {ns}/{name} does not exist (served in {ns}: {served})",
                         hint="deploy it with `kservectl serve deploy`")
    return isvc


def list_objects(ctx: Context) -> list[dict[str, Any]]:
    items, _ = ctx.kube.list(API_VERSION, KIND, ctx.config.namespaces.models)
    return sorted(items, key=lambda i: i["metadata"]["name"])


def isvc_ready(obj: dict[str, Any]) -> tuple[bool, str]:
    """Ready for the current spec: KServe has seen this generation and says Ready. Otherwise the
    conditions that are not True, with their reasons."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False, f"KServe has not reconciled generation {generation} yet (observed {observed})"
    ready = condition(obj, "Ready")
    if ready is not None and ready.get("status") == "True":
        return True, "Ready"
    pending = [_condition_text(c) for c in status.get("conditions") or [] if c.get("status") != "True"]
    return False, "; ".join(pending) if pending else "no conditions reported yet"


def _condition_text(c: dict[str, Any]) -> str:
    text = f"{c.get('type')}={c.get('status')}"
    why = ": ".join(filter(None, [c.get("reason"), c.get("message")]))
    return f"{text} ({why})" if why else text


def traffic(obj: dict[str, Any]) -> list[dict[str, Any]]:
    predictor = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    return [{"revision": t.get("revisionName"), "percent": t.get("percent"),
             "latest": bool(t.get("latestRevision")), "tag": t.get("tag")}
            for t in predictor.get("traffic") or []]


def describe(obj: dict[str, Any], pods: int | None = None) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    predictor_spec = (obj.get("spec") or {}).get("predictor") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    ready, detail = isvc_ready(obj)
    url = status.get("url")
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "url": url,
        "host": urlparse(url).hostname if url else None,
        "ready": ready,
        "detail": detail,
        "conditions": [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
                        "message": c.get("message")} for c in status.get("conditions") or []],
        "model_uri": (meta.get("annotations") or {}).get(ANN_MODEL_URI),
        "previous_model_uri": (meta.get("annotations") or {}).get(ANN_PREVIOUS),
        "storage_uri": (predictor_spec.get("model") or {}).get("storageUri"),
        "canary_percent": predictor_spec.get("canaryTrafficPercent"),
        "min_replicas": predictor_spec.get("minReplicas"),
        "max_replicas": predictor_spec.get("maxReplicas"),
        "replicas": pods,
        "deployment_mode": status.get("deploymentMode") or (meta.get("annotations") or {}).get(ANN_MODE),
        "revisions": {
            "latest_created": predictor.get("latestCreatedRevision"),
            "latest_ready": predictor.get("latestReadyRevision"),
            "latest_rolled_out": predictor.get("latestRolledoutRevision"),
            "previous_rolled_out": predictor.get("previousRolledoutRevision"),
        },
        "traffic": traffic(obj),
    }


def running_pods(ctx: Context, name: str) -> int:
    items, _ = ctx.kube.list("v1", "Pod", ctx.config.namespaces.models, label_selector=f"{POD_LABEL}={name}")
    return sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running"
               and not (p.get("metadata") or {}).get("deletionTimestamp"))


def at_zero(ctx: Context, obj: dict[str, Any]) -> bool:
    """Scaled to zero: minReplicas 0 and no running predictor pod."""
    min_replicas = ((obj.get("spec") or {}).get("predictor") or {}).get("minReplicas")
    return min_replicas == 0 and running_pods(ctx, obj["metadata"]["name"]) == 0


def list_services(ctx: Context) -> list[dict[str, Any]]:
    return [describe(i, running_pods(ctx, i["metadata"]["name"])) for i in list_objects(ctx)]


def status(ctx: Context, name: str | None = None) -> dict[str, Any]:
    if name is None:
        return {"namespace": ctx.config.namespaces.models, "services": list_services(ctx)}
    isvc = require(ctx, name)
    return describe(isvc, running_pods(ctx, name))


# -- resolving the model -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    model_uri: str
    storage_uri: str
    resolved: models.ResolvedModel | None
    findings: tuple[models.Finding, ...]


def resolve_model(ctx: Context, *, model: str | None, storage_uri: str | None, tracking_uri: str | None,
                  artifacts_dest: str | None, check: bool = True) -> ModelChoice:
    """Turn ``--model`` / ``--storage-uri`` (or ``model.uri``, or the latest example version)
    into the storage URI KServe downloads, and check versions against the runtime."""
    if model and storage_uri:
        raise UsageError("give either --model or --storage-uri, not both")
    runtime = models.runtime_for_image(ctx.config.versions.mlserver_image)
    if storage_uri:
        check_storage_uri(storage_uri)
        findings: tuple[models.Finding, ...] = ()
        if check:
            findings = _check_storage(ctx, storage_uri, tracking_uri, runtime)
        return ModelChoice(storage_uri.rstrip("/"), storage_uri.rstrip("/"), None, findings)
    uri = model or ctx.config.model.uri
    if uri and uri.startswith("s3://"):
        return resolve_model(ctx, model=None, storage_uri=uri, tracking_uri=tracking_uri,
                             artifacts_dest=artifacts_dest, check=check)
    tracking = mlflow_tracking_uri(ctx, tracking_uri)
    models.check_reachable(tracking, ctx.settings.http.mlflow_reachable)
    client = models.client(tracking)
    if not uri:
        uri = latest_example_uri(client)
        ctx.reporter.info(f"no model given: serving the example model's latest version {uri}")
    ref_ = models.parse(uri)
    ctx.reporter.step(PHASE, f"resolving {uri} through MLflow at {models.safe_uri(tracking)}")
    resolved = models.resolve(ref_, client)
    dest = artifacts_destination(ctx, artifacts_dest)
    storage = models.to_storage_uri(resolved.artifact_uri, dest)
    found: tuple[models.Finding, ...] = ()
    if check:
        info = models.fetch_model_info(resolved.artifact_uri, tracking)
        found = tuple(models.check_compatibility(info, runtime))
    return ModelChoice(uri, storage, resolved, found)


def check_storage_uri(storage_uri: str) -> None:
    if not storage_uri.startswith("s3://") or models.parse(storage_uri).kind != "storage":
        raise UsageError(f"--storage-uri {storage_uri!r} must be an s3:// URI of the folder that holds MLmodel")
    from kservectl import validation

    validation.model_uri("--storage-uri", storage_uri)  # a valid bucket name and a path


def latest_example_uri(client: Any) -> str:
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{EXAMPLE_REGISTERED_NAME}'")
    except MlflowException as exc:
        raise UsageError(f"cannot list versions of {EXAMPLE_REGISTERED_NAME!r}: {exc.message}") from exc
    if not versions:
        raise UsageError("no --model given and the example model is not registered",
                         hint="run `kservectl serve example` first, or pass --model models:/<name>/<version>")
    latest = max(int(v.version) for v in versions)
    return f"models:/{EXAMPLE_REGISTERED_NAME}/{latest}"


def _check_storage(ctx: Context, storage_uri: str, tracking_uri: str | None,
                   runtime: models.RuntimeVersions) -> tuple[models.Finding, ...]:
    try:
        info = models.fetch_model_info(storage_uri, tracking_uri)
    except KservectlError as exc:
        ctx.reporter.warn(f"could not read MLmodel at {storage_uri} ({exc.message}); "
                          "skipping the version check")
        return ()
    return tuple(models.check_compatibility(info, runtime))


def report_findings(ctx: Context, findings: tuple[models.Finding, ...] | list[models.Finding]) -> None:
    for f in findings:
        if f.level == "info":
            ctx.reporter.info(f.line())
        else:
            ctx.reporter.warn(f.line())


# -- deploy ------------------------------------------------------------------------------------
def deploy(ctx: Context, name: str | None = None, *, model: str | None = None,
           storage_uri: str | None = None, canary_percent: int | None = None,
           tracking_uri: str | None = None, artifacts_dest: str | None = None, wait: bool = True,
           check_versions: bool = True) -> dict[str, Any]:
    """Deploy (or update) one InferenceService and wait until it is Ready."""
    name = name or ctx.config.model.name
    ns = ctx.config.namespaces.models
    if model:
        models.parse(model)  # bad input fails before anything is called
    if model and storage_uri:
        raise UsageError("give either --model or --storage-uri, not both")
    if storage_uri:
        check_storage_uri(storage_uri)
    if canary_percent is not None and not 1 <= canary_percent <= 99:
        raise UsageError(f"--canary-percent {canary_percent} must be between 1 and 99 "
                         "(use `serve promote` for 100 and `serve rollback` for 0)")
    mode = serving_mode(ctx)
    if canary_percent is not None and not mode.knative:
        raise UsageError(f"canary rollouts need kserve.mode=knative; {mode.why(ctx)} "
                         "(deploy without --canary-percent to replace the model in place)")
    if ctx.config.model.min_replicas == 0 and not mode.knative:
        raise UsageError(f"scale to zero (--min-replicas 0) needs kserve.mode=knative; {mode.why(ctx)} "
                         "(use --min-replicas 1 or more)")

    current = get(ctx, name)
    if canary_percent is not None:
        if current is None:
            raise UsageError(f"there is no live InferenceService {ns}/{name} to canary against",
                             hint="deploy it first without --canary-percent")
        live, detail = isvc_ready(current)
        if not live:
            raise UsageError(f"InferenceService {ns}/{name} is not Ready ({detail}); "
                             "a canary needs a live service")

    choice = resolve_model(ctx, model=model, storage_uri=storage_uri, tracking_uri=tracking_uri,
                           artifacts_dest=artifacts_dest, check=check_versions)
    report_findings(ctx, choice.findings)
    if any(f.level == "error" for f in choice.findings):
        raise UsageError(f"{choice.model_uri} cannot be served by {ctx.config.versions.mlserver_image}: "
                         + "; ".join(f.line() for f in choice.findings if f.level == "error"))

    current_model = describe(current) if current is not None else {}
    same_model = current_model.get("storage_uri") == choice.storage_uri
    if canary_percent is not None and same_model and current_model.get("canary_percent") is None:
        raise UsageError(f"{choice.model_uri} is what {ns}/{name} already serves; "
                         "a canary needs a new model version")
    # what the service served before this model: the stable model of a canary (still what it
    # serves when the canary was rolled back to 0%), else the model it serves now
    serving_previous = same_model or current_model.get("canary_percent") == 0
    previous = current_model.get("previous_model_uri") if serving_previous else current_model.get("model_uri")

    wanted_min = ctx.config.model.min_replicas
    first_min = 1 if (current is None and wanted_min == 0) else wanted_min
    spec = spec_from_config(
        ctx, name=name, model_uri=choice.model_uri, storage_uri=choice.storage_uri,
        service_account=predictor_service_account(ctx), min_replicas=first_min,
        canary_percent=canary_percent, deployment_mode=mode.annotation,
        previous_model_uri=previous,
    )
    text = render(spec)
    doc = document(spec)
    manifest = _write_rendered(ctx, name, text)
    action = _apply(ctx, doc, current)
    out: dict[str, Any] = {
        "name": name, "namespace": ns, "action": action, "model_uri": choice.model_uri,
        "previous_model_uri": previous,
        "storage_uri": choice.storage_uri, "canary_percent": canary_percent,
        "model": choice.resolved.as_dict() if choice.resolved else None,
        "findings": [f.as_dict() for f in choice.findings], "manifest": str(manifest) if manifest else None,
        "notes": [],
    }
    if ctx.dry_run:
        out["rendered"] = text
        return out
    ctx.reporter.step(PHASE, f"{action} InferenceService {ns}/{name} ({choice.model_uri})")
    if not wait:
        if wanted_min != first_min:
            out["notes"].append("minReplicas is 1 until the service is Ready; "
                                "re-run deploy to enable scale to zero")
        out["service"] = describe(get(ctx, name) or doc)
        return out
    obj = wait_ready(ctx, name)
    if wanted_min != first_min:
        ctx.kube.patch(ref(ctx, name), {"spec": {"predictor": {"minReplicas": wanted_min}}})
        out["notes"].append("first deploy: started with minReplicas 1; "
                            "scale to zero enabled after the first Ready")
        obj = get(ctx, name) or obj
    out["service"] = describe(obj, running_pods(ctx, name))
    return out


def _apply(ctx: Context, doc: dict[str, Any], current: dict[str, Any] | None) -> str:
    """Create, or patch only the difference (fields dropped from the desired spec are removed
    with JSON merge-patch nulls), or leave it. ``would …`` under dry-run."""
    target = Ref.of(doc)
    if current is None:
        if ctx.dry_run:
            return "would create"
        ctx.kube.create(doc)
        return "created"
    removals = _removals(current, doc)
    desired = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "status")}
    if not removals and _contains(current, desired):
        return "unchanged"
    if ctx.dry_run:
        return "would change"
    ctx.kube.patch(target, _merge(desired, removals))
    return "changed"


_REMOVABLE = (("spec", "predictor", "canaryTrafficPercent"),
              ("spec", "predictor", "topologySpreadConstraints"),
              ("metadata", "annotations", ANN_PREVIOUS))


def _removals(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in _REMOVABLE:
        if _dig(current, path) is not None and _dig(desired, path) is None:
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = None
    return out


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _contains(current: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            k in current and _contains(current[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(current, list) and len(current) == len(desired)
                and all(_contains(c, d) for c, d in zip(current, desired, strict=True)))
    return current == desired


def _write_rendered(ctx: Context, name: str, text: str) -> Path | None:
    path = paths.cluster_dir(ctx.cluster) / "rendered" / PHASE / f"{name}-inferenceservice.yaml"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return None
    return path


def wait_ready(ctx: Context, name: str) -> dict[str, Any]:
    ns = ctx.config.namespaces.models
    return ctx.kube.wait_for(ref(ctx, name), isvc_ready, what=f"InferenceService {ns}/{name} to be Ready",
                             timeout=ctx.settings.waits.inference_service_ready)


# -- canary ------------------------------------------------------------------------------------
def _require_knative(ctx: Context, verb: str) -> None:
    mode = serving_mode(ctx)
    if not mode.knative:
        raise UsageError(f"`serve {verb}` manages canary traffic, which needs kserve.mode=knative; "
                         f"{mode.why(ctx)}")


def promote(ctx: Context, name: str, *, wait: bool = True) -> dict[str, Any]:
    """All traffic to the latest revision: remove ``canaryTrafficPercent``."""
    _require_knative(ctx, "promote")
    isvc = require(ctx, name)
    percent = ((isvc.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    ns = ctx.config.namespaces.models
    if percent is None:
        raise UsageError(f"InferenceService {ns}/{name} has no canary to promote (no canaryTrafficPercent)",
                         hint="deploy a new version with --canary-percent N first")
    # the previous-model annotation stays: it names the model a later rollback returns to
    patch = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    latest = describe(isvc)["revisions"]["latest_ready"]
    return _traffic_change(ctx, name, patch, f"promote: 100% to the latest revision (was {percent}%)", wait,
                           target=latest)


def rollback(ctx: Context, name: str, *, wait: bool = True) -> dict[str, Any]:
    """All traffic back to the previous ready revision: ``canaryTrafficPercent: 0``.

    During a canary, KServe sends the remaining traffic to ``latestRolledoutRevision`` (the stable
    revision), so 0% on the canary puts everything there. After a promotion the latest revision
    *is* the rolled-out one; KServe then sees 0% on it and moves ``latestRolledoutRevision`` back
    to ``previousRolledoutRevision`` (the revision rolled out before the promotion) and pins all
    traffic to it, in a second reconcile. Both ways the wait lasts until the status shows 100% on
    that revision, not merely Ready."""
    _require_knative(ctx, "rollback")
    isvc = require(ctx, name)
    ns = ctx.config.namespaces.models
    d = describe(isvc)
    if d["canary_percent"] == 0:
        return {"name": name, "namespace": ns, "action": "unchanged", "service": d,
                "notes": ["already rolled back: canaryTrafficPercent is 0"]}
    target = rollback_target(isvc)
    if target is None:
        command = _redeploy_command(name, d["previous_model_uri"])
        again = (f"deploy the previous model again: {command}" if command
                 else f"deploy the previous model again with `kservectl serve deploy {name}`")
        raise UsageError(f"InferenceService {ns}/{name} has no previous revision to roll back to: it has "
                         "had one rolled-out revision only", hint=again)
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    latest = d["revisions"]["latest_ready"] or "the latest revision"
    model = f" ({d['previous_model_uri']})" if d["previous_model_uri"] else ""
    if d["canary_percent"] is None:
        note = (f"rollback after a promotion: 100% back to the previously rolled-out revision {target}{model}; "
                f"{latest} stays deployed with 0% traffic until another version is deployed")
    else:
        note = (f"rollback: 100% to the previous revision {target}{model}; {latest} stays deployed with 0% "
                "traffic until another version is deployed")
    return _traffic_change(ctx, name, patch, note, wait, target=target,
                           hint=_gone_hint(name, d["previous_model_uri"]))


def rollback_target(isvc: dict[str, Any]) -> str | None:
    """The revision ``canaryTrafficPercent: 0`` sends all traffic to: the rolled-out (stable)
    revision while a canary runs, else the revision rolled out before the latest one (what
    KServe returns to after a promotion). None when there is no such revision."""
    d = describe(isvc)
    revisions = d["revisions"]
    rolled, latest = revisions["latest_rolled_out"], revisions["latest_ready"]
    previous = revisions["previous_rolled_out"]
    if d["canary_percent"] is not None and rolled and rolled != latest:
        return rolled
    if previous and previous != latest:
        return previous
    return None


def _redeploy_command(name: str, previous_model: str | None) -> str | None:
    """The command that deploys the previous model again (None when it is not recorded)."""
    if not previous_model:
        return None
    flag = "--storage-uri" if previous_model.startswith("s3://") else "--model"
    return f"kservectl serve deploy {name} {flag} {previous_model}"


def _gone_hint(name: str, previous_model: str | None) -> str:
    """What to do when the old revision no longer exists (Knative garbage-collected it)."""
    again = _redeploy_command(name, previous_model) or f"kservectl serve deploy {name} --model <the previous model>"
    return f"if Knative has garbage-collected that revision, deploy the previous model again: {again}"


def traffic_on(obj: dict[str, Any], revision: str | None) -> tuple[bool, str]:
    """Ready for the current spec, and ``revision`` holds 100% of the traffic."""
    ready, detail = isvc_ready(obj)
    if not ready:
        return False, detail
    if revision is None:
        return True, detail
    split = traffic(obj)
    percent = sum(t["percent"] or 0 for t in split if t["revision"] == revision)
    if percent == 100:
        return True, f"100% on {revision}"
    shown = ", ".join(f"{t['revision']}: {t['percent']}%" for t in split) or "no traffic reported"
    return False, f"traffic not on {revision} yet ({shown})"


def _traffic_change(ctx: Context, name: str, patch: dict[str, Any], note: str, wait: bool, *,
                    target: str | None = None, hint: str | None = None) -> dict[str, Any]:
    ns = ctx.config.namespaces.models
    out: dict[str, Any] = {"name": name, "namespace": ns, "notes": [note], "target_revision": target}
    if ctx.dry_run:
        out["action"] = "would change"
        out["patch"] = patch
        return out
    ctx.kube.patch(ref(ctx, name), patch)
    ctx.reporter.step(PHASE, note)
    out["action"] = "changed"
    if wait:
        try:
            obj = ctx.kube.wait_for(ref(ctx, name), lambda o: traffic_on(o, target),
                                    what=f"InferenceService {ns}/{name} to be Ready with all traffic on "
                                         f"{target or 'the latest revision'}",
                                    timeout=ctx.settings.waits.inference_service_ready)
        except WaitTimeout as exc:
            if hint:
                exc.hint = hint
            raise
    else:
        obj = get(ctx, name) or {}
    out["service"] = describe(obj, running_pods(ctx, name))
    return out


# -- delete ------------------------------------------------------------------------------------
def delete(ctx: Context, name: str, *, wait: bool = True) -> dict[str, Any]:
    """Delete one InferenceService. Other services, the model in MLflow and its S3 artifacts stay."""
    ns = ctx.config.namespaces.models
    isvc = get(ctx, name)
    kept = [i["metadata"]["name"] for i in list_objects(ctx) if i["metadata"]["name"] != name]
    out: dict[str, Any] = {"name": name, "namespace": ns, "kept": kept,
                           "notes": ["the registered model and its S3 artifacts are kept"]}
    if isvc is None:
        out["action"] = "absent"
        return out
    if ctx.dry_run:
        out["action"] = "would delete"
        return out
    ctx.kube.delete(ref(ctx, name))
    if wait:
        ctx.kube.wait_deleted(ref(ctx, name), what=f"InferenceService {ns}/{name} to be deleted",
                              timeout=ctx.settings.waits.inference_service_ready)
    out["action"] = "deleted"
    return out


# -- the example -------------------------------------------------------------------------------
def example(ctx: Context, *, tracking_uri: str | None = None, registered_name: str = EXAMPLE_REGISTERED_NAME,
            alias: str | None = None) -> dict[str, Any]:
    """Train, log and register the wine classifier, then check it against the runtime."""
    from kservectl import example as example_mod

    tracking = mlflow_tracking_uri(ctx, tracking_uri)
    models.check_reachable(tracking, ctx.settings.http.mlflow_reachable)
    if ctx.dry_run:
        return {"action": "would train, log and register", "registered_name": registered_name,
                "tracking_uri": models.safe_uri(tracking)}
    ctx.reporter.step(PHASE, f"training the wine classifier and logging it to MLflow at {models.safe_uri(tracking)}")
    made = example_mod.log_and_register(tracking, registered_name=registered_name, alias=alias)
    out = made.as_dict()
    runtime = models.runtime_for_image(ctx.config.versions.mlserver_image)
    try:
        resolved = models.resolve(models.parse(made.model_uri), models.client(tracking))
        info = models.fetch_model_info(resolved.artifact_uri, tracking)
        findings = models.check_compatibility(info, runtime)
        out["artifact_uri"] = resolved.artifact_uri
    except KservectlError as exc:
        ctx.reporter.warn(f"could not read the logged model back ({exc.message}); skipping the version check")
        findings = []
    report_findings(ctx, findings)
    out["runtime"] = runtime.as_dict()
    out["findings"] = [f.as_dict() for f in findings]
    out["next"] = f"kservectl serve deploy {ctx.config.model.name} --model {made.model_uri}"
    return out


# -- url ---------------------------------------------------------------------------------------
def urls(ctx: Context, *, payloads: dict[str, Any] | None = None) -> dict[str, Any]:
    """The gateway, MLflow and, per service, URL, Host header and curl commands. ``payloads``
    maps a service name to a ``probe.Payload`` for the request bodies (else a file reference)."""
    import json

    host = gateway_hostname(ctx)
    scheme = gateway_scheme(ctx)
    gateway_url = f"{scheme}://{host}" if host else None
    mlflow_url = mlflow_public_url(ctx)
    services = []
    for isvc in list_objects(ctx):
        d = describe(isvc)
        name = d["name"]
        base = gateway_url or (d["url"] or "").rstrip("/") or None
        host_header = d["host"] if gateway_url else None
        payload = (payloads or {}).get(name)
        v2_body = json.dumps(payload.v2_body(), separators=(",", ":")) if payload else None
        inv_body = json.dumps(payload.invocations_body(), separators=(",", ":")) if payload else None
        entry = {"name": name, "url": d["url"], "ready": d["ready"], "host_header": host_header,
                 "v2_infer_url": f"{base}/v2/models/{name}/infer" if base else None,
                 "invocations_url": f"{base}/invocations" if base else None}
        if base:
            entry["curl_v2"] = curl(f"{base}/v2/models/{name}/infer", host_header, v2_body)
            entry["curl_invocations"] = curl(f"{base}/invocations", host_header, inv_body)
        services.append(entry)
    return {
        "cluster": ctx.cluster,
        "gateway": {"hostname": host, "url": gateway_url, "dns": ctx.config.exposure.dns},
        "mlflow": {"url": mlflow_url, "port_forward": None if mlflow_url else mlflow_port_forward(ctx),
                   "port_forward_url": None if mlflow_url else f"http://localhost:{MLFLOW_PORT}"},
        "services": services,
    }


def curl(url: str, host: str | None, body: str | None) -> str:
    argv = ["curl", "-sS"]
    if host:
        argv += ["-H", f"Host: {host}"]
    argv += ["-H", "Content-Type: application/json", "-d", body if body is not None else "@request.json", url]
    return shlex.join(argv)
