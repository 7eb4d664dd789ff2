"""``kservectl logs``: the logs of a model's predictor pods or of a platform component.

A name is a component (``COMPONENTS``: a namespace, a label selector and the container to show)
or an InferenceService in the models namespace (label ``serving.kserve.io/inferenceservice=<name>``,
container ``kserve-container``); ``model/<name>`` forces the model when a model shares a
component's name. An unknown name is a usage error listing every valid one.

Logs come through the Kubernetes API (``Kube.pod_logs``: the pods' ``/log`` subresource with
``sinceSeconds``, ``tailLines`` and ``follow``). A pod that is not running is explained before
its logs: its phase, each container's state (``waiting: CrashLoopBackOff``, the last exit) and
the pod's recent events; a container in a crash loop shows the logs of its previous attempt
(the current one has none). ``--follow`` streams every selected container at once (up to
``MAX_FOLLOW``), each line prefixed by ``[pod/container]`` when there is more than one.

With the local provider, the logs are the files the local processes write
(``LocalState``: ``mlflow.log``, ``model-<name>.log``); ``follow`` re-reads the file until the
process exits.

Nothing here prints: lines go to ``out``, explanations to ``note`` (the CLI sends them to stdout
and stderr).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl.context import Context
from kservectl.errors import ConfigError, KservectlError, KubeError, UsageError
from kservectl.kube import Obj, Ref

Write = Callable[[str], None]

PREDICTOR_LABEL = "serving.kserve.io/inferenceservice"
PREDICTOR_CONTAINER = "kserve-container"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
MAX_FOLLOW = 8  # streams followed at once (kubectl's --max-log-requests is 5)
MODEL_PREFIX = "model/"


@dataclass(frozen=True)
class Component:
    name: str
    namespace: str  # a literal namespace, or "@kserve" / "@mlflow" for the configured one
    selector: str
    container: str | None  # None: the pod's default container
    description: str
    aliases: tuple[str, ...] = ()

    def resolve_namespace(self, ctx: Context) -> str:
        if self.namespace == "@kserve":
            return ctx.config.namespaces.kserve
        if self.namespace == "@mlflow":
            return ctx.config.namespaces.mlflow
        return self.namespace


# Labels from each project's own manifests/charts: KServe (charts/kserve-resources: control-plane),
# Knative Serving (serving-core.yaml: app=activator), net-kourier (app=3scale-kourier-gateway), the AWS
# Load Balancer Controller chart (selector labels app.kubernetes.io/name + instance), cert-manager's
# chart (app.kubernetes.io/component=controller), the Cluster Autoscaler chart (instance = release).
COMPONENTS: tuple[Component, ...] = (
    Component("mlflow", "@mlflow", "app.kubernetes.io/name=mlflow,app.kubernetes.io/component=tracking-server",
              "mlflow", "the MLflow tracking server"),
    Component("kserve-controller", "@kserve", "control-plane=kserve-controller-manager", "manager",
              "the KServe controller", ("kserve",)),
    Component("activator", "knative-serving", "app=activator", "activator",
              "Knative's activator (buffers requests while a model scales from zero)", ("knative-activator",)),
    Component("kourier", "kourier-system", "app=3scale-kourier-gateway", None,
              "the Kourier gateway behind the NLB", ("gateway",)),
    Component("load-balancer-controller", "kube-system", "app.kubernetes.io/name=aws-load-balancer-controller",
              "aws-load-balancer-controller", "the AWS Load Balancer Controller",
              ("alb", "aws-load-balancer-controller")),
    Component("cert-manager", "cert-manager",
              "app.kubernetes.io/instance=cert-manager,app.kubernetes.io/component=controller",
              "cert-manager-controller", "cert-manager's controller"),
    Component("cluster-autoscaler", "kube-system", "app.kubernetes.io/instance=cluster-autoscaler", None,
              "the Cluster Autoscaler", ("autoscaler",)),
)


def component(name: str) -> Component | None:
    for c in COMPONENTS:
        if name == c.name or name in c.aliases:
            return c
    return None


@dataclass(frozen=True)
class Options:
    follow: bool = False
    since_seconds: int | None = None
    tail: int | None = 100  # None: every line
    container: str | None = None
    timestamps: bool = False


_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, field_name: str = "--since") -> int:
    """``30s``, ``5m``, ``2h``, ``1h30m``, ``1d`` -> seconds (a positive whole number)."""
    value = text.strip().lower()
    if not value or _DURATION.sub("", value) != "":
        raise ConfigError(field_name, text, "a duration such as 30s, 5m, 2h, 1h30m or 1d")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(value))
    if seconds <= 0:
        raise ConfigError(field_name, text, "a duration longer than zero, such as 30s, 5m or 2h")
    return seconds


@dataclass(frozen=True)
class Target:
    kind: str  # component | model
    name: str
    namespace: str
    selector: str
    container: str | None
    description: str


def valid_names(ctx: Context, models: list[str]) -> str:
    ns = ctx.config.namespaces.models
    return (f"components: {', '.join(c.name for c in COMPONENTS)}; "
            f"models in namespace {ns}: {', '.join(models) if models else 'none'}")


def resolve(ctx: Context, name: str) -> Target:
    """The component or model ``name`` means; ``UsageError`` (exit 2) listing the valid names."""
    from kservectl.phases import serve

    ns = ctx.config.namespaces.models
    forced = name.startswith(MODEL_PREFIX)
    bare = name.removeprefix(MODEL_PREFIX)

    def model() -> Target:
        return Target("model", bare, ns, f"{PREDICTOR_LABEL}={bare}", PREDICTOR_CONTAINER,
                      f"the predictor of InferenceService {ns}/{bare}")

    comp = None if forced else component(bare)
    if comp is not None:
        try:
            shadowed = serve.get(ctx, bare) is not None
        except KservectlError:
            shadowed = False
        if shadowed:
            ctx.reporter.warn(f"{bare!r} names both a component and an InferenceService; showing the component "
                              f"(`kservectl logs {MODEL_PREFIX}{bare}` shows the model)")
        return Target("component", comp.name, comp.resolve_namespace(ctx), comp.selector, comp.container,
                      comp.description)
    if serve.get(ctx, bare) is not None:
        return model()
    try:
        models = [i["metadata"]["name"] for i in serve.list_objects(ctx)]
    except KubeError as exc:
        if exc.status != 404:  # 404: KServe's CRDs are not installed, so no model
            raise
        models = []
    raise UsageError(f"unknown component or model {name!r}: {valid_names(ctx, models)}",
                     hint="pass one of those names")


# -- pods ---------------------------------------------------------------------------------------------
@dataclass
class PodView:
    name: str
    namespace: str
    phase: str
    containers: list[str]
    diagnosis: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # containers whose logs were requested

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "phase": self.phase,
                "containers": self.containers, "diagnosis": self.diagnosis, "shown": self.shown}


def _statuses(pod: Obj) -> dict[str, Obj]:
    status = pod.get("status") or {}
    every = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return {s.get("name", ""): s for s in every}


def container_state(status: Obj | None) -> tuple[str, str]:
    """(state, text) of one container: running, waiting or terminated, with reason and message."""
    if not status:
        return "unknown", "no status reported yet"
    state = status.get("state") or {}
    restarts = status.get("restartCount") or 0
    last = (status.get("lastState") or {}).get("terminated")
    tail = f"; restarts {restarts}" if restarts else ""
    if last:
        tail += f"; last exit {last.get('exitCode')} ({last.get('reason') or 'no reason'})"
    if "waiting" in state:
        w = state["waiting"] or {}
        message = f": {w['message']}" if w.get("message") else ""
        return "waiting", f"waiting ({w.get('reason') or 'no reason'}){message}{tail}"
    if "terminated" in state:
        t = state["terminated"] or {}
        message = f": {t['message']}" if t.get("message") else ""
        return "terminated", f"terminated ({t.get('reason')}, exit {t.get('exitCode')}){message}{tail}"
    if "running" in state:
        ready = "ready" if status.get("ready") else "not ready"
        return "running", f"running, {ready}{tail}"
    return "unknown", "no state reported yet"


def diagnose(ctx: Context, pod: Obj) -> list[str]:
    """Why a pod is not running well (phase, container states, events); empty when it is."""
    meta = pod.get("metadata") or {}
    name, ns = meta.get("name", "?"), meta.get("namespace", "?")
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    statuses = _statuses(pod)
    troubled = []
    for cname in _names(pod, "initContainers"):
        st = statuses.get(cname)
        if _init_failed(st) or container_state(st)[0] in ("running", "waiting"):
            troubled.append(f"  init container {cname}: {container_state(st)[1]}")
    for cname in _names(pod, "containers"):
        st = statuses.get(cname)
        state, text = container_state(st)
        if state != "running" or not (st or {}).get("ready", True) or (st or {}).get("restartCount"):
            troubled.append(f"  container {cname}: {text}")
    if phase == "Running" and not troubled and not meta.get("deletionTimestamp"):
        return []
    conditions = [c for c in (pod.get("status") or {}).get("conditions") or []
                  if c.get("status") != "True" and (c.get("reason") or c.get("message"))]
    lines = [f"pod {ns}/{name} is {phase}" + (" (being deleted)" if meta.get("deletionTimestamp") else "")]
    lines += [f"  condition {c.get('type')}: {c.get('reason') or ''} {c.get('message') or ''}".rstrip()
              for c in conditions]
    lines += troubled
    lines += [f"  {e}" for e in ctx.kube.recent_events(Ref("v1", "Pod", name, ns))]
    return lines


def _names(pod: Obj, key: str) -> list[str]:
    return [c.get("name", "") for c in (pod.get("spec") or {}).get(key) or []]


def _init_failed(status: Obj | None) -> bool:
    """An init container that failed (exit != 0) or is crash-looping (e.g. KServe's storage-initializer
    on a wrong storageUri or an S3 403)."""
    if not status:
        return False
    state = status.get("state") or {}
    terminated = state.get("terminated")
    if terminated is not None:
        return terminated.get("exitCode") not in (0, None)
    return "waiting" in state and bool((status.get("lastState") or {}).get("terminated"))


def _pick_container(pod: Obj, target: Target, options: Options) -> str:
    spec_names = _names(pod, "containers")
    meta = pod.get("metadata") or {}
    if options.container:
        every = spec_names + _names(pod, "initContainers")
        if options.container not in every:
            raise UsageError(f"pod {meta.get('namespace')}/{meta.get('name')} has no container "
                             f"{options.container!r} (containers: {', '.join(every)})",
                             hint="pass one of those with --container")
        return options.container
    if target.container in spec_names:
        return target.container  # type: ignore[return-value]
    default = (meta.get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if default in spec_names:
        return default
    return spec_names[0] if spec_names else ""


def _created(pod: Obj) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


@dataclass
class Result:
    target: Target
    pods: list[PodView] = field(default_factory=list)
    lines: int = 0
    errors: list[str] = field(default_factory=list)
    scaled_to_zero: bool = False

    @property
    def found(self) -> bool:
        return bool(self.pods) or self.scaled_to_zero

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {"target": {"kind": t.kind, "name": t.name, "namespace": t.namespace, "selector": t.selector},
                "pods": [p.as_dict() for p in self.pods], "lines": self.lines, "errors": self.errors,
                "scaled_to_zero": self.scaled_to_zero}


@dataclass(frozen=True)
class _Stream:
    pod: str
    namespace: str
    container: str
    previous: bool


def show(ctx: Context, target: Target, options: Options, *, out: Write, note: Write) -> Result:
    """Write the logs of the target's pods to ``out`` (explanations to ``note``)."""
    result = Result(target)
    pods, _ = ctx.kube.list("v1", "Pod", target.namespace, label_selector=target.selector)
    pods.sort(key=_created)
    if not pods:
        _explain_no_pods(ctx, target, result, note)
        return result
    streams: list[_Stream] = []
    for pod in pods:
        meta = pod["metadata"]
        view = PodView(meta["name"], target.namespace, (pod.get("status") or {}).get("phase") or "Unknown",
                       [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []])
        result.pods.append(view)
        view.diagnosis = diagnose(ctx, pod)
        for line in view.diagnosis:
            note(line)
        cname = _pick_container(pod, target, options)
        statuses = _statuses(pod)
        state, text = container_state(statuses.get(cname))
        last = (statuses.get(cname) or {}).get("lastState", {}).get("terminated")
        if state == "waiting" and not last and not options.container:
            init = next((n for n in _names(pod, "initContainers")
                         if _init_failed(statuses.get(n)) or container_state(statuses.get(n))[0] == "running"), None)
            if init is not None:  # the main container waits for it: its logs say why
                why = "failed" if _init_failed(statuses.get(init)) else "is still running"
                note(f"{view.name}/{cname} is {text}; its init container {init} {why}: showing its logs")
                cname = init
                state, text = container_state(statuses.get(init))
                last = (statuses.get(init) or {}).get("lastState", {}).get("terminated")
        if state == "waiting" and not last:
            note(f"no logs from {view.name}/{cname} yet: {text}")
            continue
        previous = state == "waiting" and bool(last)
        if previous:
            note(f"{view.name}/{cname} is {text}: showing the logs of its previous attempt")
        view.shown.append(cname)
        streams.append(_Stream(view.name, target.namespace, cname, previous))
    if options.follow and len(streams) > MAX_FOLLOW:
        note(f"following the first {MAX_FOLLOW} of {len(streams)} containers")
        streams = streams[:MAX_FOLLOW]
    prefix = len(streams) > 1
    lock = threading.Lock()

    def emit(stream: _Stream, lines: Iterator[str]) -> None:
        head = f"[{stream.pod}/{stream.container}] " if prefix else ""
        for line in lines:
            with lock:
                out(head + line)
                result.lines += 1

    def open_stream(stream: _Stream) -> Iterator[str] | None:
        try:
            return ctx.kube.pod_logs(stream.namespace, stream.pod, container=stream.container,
                                     since_seconds=options.since_seconds,
                                     tail_lines=options.tail if options.tail is not None and options.tail >= 0
                                     else None,
                                     previous=stream.previous, timestamps=options.timestamps,
                                     follow=options.follow and not stream.previous)
        except KservectlError as exc:
            message = f"{stream.pod}/{stream.container}: {exc.one_line()}"
            result.errors.append(message)
            note(f"cannot read the logs of {message}")
            return None

    if not options.follow or len(streams) <= 1:
        for stream in streams:
            lines = open_stream(stream)
            if lines is not None:
                emit(stream, lines)
        return result
    opened = [(s, lines) for s in streams if (lines := open_stream(s)) is not None]
    threads = [threading.Thread(target=emit, args=pair, daemon=True, name=f"logs-{pair[0].pod}") for pair in opened]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # join with a timeout so Ctrl-C reaches the main thread
            thread.join(0.5)
    return result


def _explain_no_pods(ctx: Context, target: Target, result: Result, note: Write) -> None:
    if target.kind == "model":
        from kservectl.phases import serve

        isvc = serve.get(ctx, target.name)
        predictor = ((isvc or {}).get("spec") or {}).get("predictor") or {}
        if isvc is not None and predictor.get("minReplicas") == 0:
            result.scaled_to_zero = True
            note(f"no predictor pod of {target.name} is running: it is scaled to zero (minReplicas 0); "
                 "the next request starts one (`kservectl test` sends one)")
            return
        note(f"no predictor pod of {target.name} in namespace {target.namespace} ({target.selector})")
        if isvc is not None:
            ready, detail = serve.isvc_ready(isvc)
            if not ready:
                note(f"InferenceService {target.namespace}/{target.name}: {detail}")
            for event in ctx.kube.recent_events(serve.ref(ctx, target.name)):
                note(f"  {event}")
        return
    note(f"no pod of {target.description} in namespace {target.namespace} ({target.selector}): "
         "is it installed? (`kservectl status`)")


# -- the local provider --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalLog:
    name: str
    path: Path
    proc: Any  # procs.Proc | None


def local_logs(ctx: Context) -> dict[str, LocalLog]:
    """The local processes' log files by name (``mlflow`` and each served model), also those of
    processes no longer recorded (after ``cleanup``) whose files remain."""
    from kservectl.local.state import LocalState

    state = LocalState.load(ctx.cluster)
    found: dict[str, LocalLog] = {}
    if state.logs_dir.is_dir():
        for path in sorted(state.logs_dir.glob("*.log")):
            if path.name == "mlflow.log":
                found["mlflow"] = LocalLog("mlflow", path, None)
            elif path.name.startswith("model-"):
                name = path.name.removeprefix("model-").removesuffix(".log")
                found[name] = LocalLog(name, path, None)
    if state.mlflow is not None:
        found["mlflow"] = LocalLog("mlflow", Path(state.mlflow.log), state.mlflow)
    for served in state.models.values():
        if served.proc is not None:
            found[served.name] = LocalLog(served.name, Path(served.proc.log), served.proc)
    return found


def show_local(ctx: Context, name: str, options: Options, *, out: Write, note: Write) -> int:
    """Write a local process's log file (its last ``tail`` lines), then, with ``follow``, what it
    appends until the process exits. Returns the number of lines written."""
    from kservectl.local import procs

    logs = local_logs(ctx)
    bare = name.removeprefix(MODEL_PREFIX)
    entry = logs.get(bare)
    if entry is None:
        names = ", ".join(sorted(logs)) or "none (start the platform with `kservectl up --provider local`)"
        raise UsageError(f"unknown local component or model {name!r}: valid names are {names}",
                         hint="pass one of those names")
    if options.since_seconds is not None:
        note("--since is ignored for local log files (their lines carry no timestamp kservectl can read)")
    if options.container:
        note("--container is ignored for local log files")
    if not entry.path.is_file():
        note(f"{entry.path} does not exist yet")
        return 0
    # alive before the read: a process that exits after it is followed until its last line
    alive = options.follow and entry.proc is not None and procs.alive(entry.proc)
    data = entry.path.read_bytes()
    lines = data.decode("utf-8", "replace").splitlines()
    if options.tail is not None and options.tail >= 0:
        lines = lines[-options.tail:] if options.tail else []
    for line in lines:
        out(line)
    written = len(lines)
    if not options.follow:
        return written
    if not alive:
        note(f"{entry.name} is not running: nothing more will be written to {entry.path}")
        return written
    offset, partial = len(data), b""
    while True:
        size = entry.path.stat().st_size if entry.path.exists() else 0
        if size < offset:  # truncated or replaced: start over
            offset, partial = 0, b""
        if size > offset:
            with entry.path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read(size - offset)
            offset += len(chunk)
            *complete, partial = (partial + chunk).split(b"\n")
            for raw in complete:
                out(raw.decode("utf-8", "replace"))
                written += 1
            continue
        if not procs.alive(entry.proc):
            if entry.path.exists() and entry.path.stat().st_size > offset:
                continue  # what it wrote just before exiting
            if partial:
                out(partial.decode("utf-8", "replace"))
                written += 1
            note(f"{entry.name} exited")
            return written
        ctx.clock.sleep(ctx.settings.waits.log_follow_poll)
