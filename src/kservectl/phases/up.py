"""``kservectl up``: every phase, in dependency order, concurrently where the graph allows.

The work is a graph held as data (``tasks``): each ``Task`` has a name, the phase it belongs to,
the tasks it needs and the phase function it runs. ``schedule`` runs such a graph on a few worker
threads: a task starts as soon as everything it needs is done; the first failure stops scheduling
new tasks and lets the running ones finish; Ctrl-C sets the run's stop event, at whose next
checkpoint (a sleep, a tool run, an API request: ``clock.StoppableClock``) each running task
ends, its tool's process group stopped by the runner, and reports them interrupted.

The graph of the EKS platform::

    cluster ──────────┬──────────────────► alb ──► kserve ──────┐
    alb/policy ───────┘                                          │
    cluster ─────────────────────────────┐                       ├─► serve ──► test
    storage/bucket ──► storage/policies ──┴─► storage ─► mlflow ──┘

The bucket, the storage phase's two IAM policies (they name only the bucket's ARN) and the load
balancer controller's IAM policy need no cluster, so they are made while eksctl creates it (about
14 of the 20 minutes); the IRSA roles (task ``storage``) trust the cluster's OIDC provider and
wait for it. Every phase reads the real state first and changes only the difference, so ``up``
again after a failure (or after Ctrl-C) resumes where it stopped, and ``up`` on a finished
platform makes no mutating call. A phase that fails with a transient error (throttling, an API
server 5xx, a webhook that does not serve yet) runs again from its real state, a bounded number
of times (``settings.phase_retry``).

Progress goes to a listener as ``Event`` records (the CLI draws them); nothing here prints.
Errors and tool output in the result pass through ``ctx.redactor``. At the end, ``running_cost``
prices what exists then (after a failure too), read from AWS, not the config.
``diff`` compares the rendered plan with what exists (``plan --diff`` and ``up --dry-run``).
"""

from __future__ import annotations

import copy
import dataclasses
import queue
import re
import shlex
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl import costs, paths
from kservectl.clock import StoppableClock
from kservectl.context import Context
from kservectl.errors import AwsError, KservectlError, KubeError, ToolError, UsageError
from kservectl.events import Reporter
from kservectl.phases import ORDER
from kservectl.redact import Redactor

# -- the graph -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    phase: str  # one of phases.ORDER: what --from / --only / --skip select
    needs: tuple[str, ...]
    fn: Callable[[Context], dict[str, Any]]
    describe: str = ""


class MlflowAccess:
    """The MLflow tracking URI the serve and test phases use: ``--tracking-uri`` (or
    ``MLFLOW_TRACKING_URI``), else the public MLflow of the cluster, else a ``kubectl port-forward``
    to its private Service, opened on first use and closed when ``up`` ends."""

    def __init__(self, explicit: str | None = None) -> None:
        self.explicit = explicit.rstrip("/") if explicit else None
        self._uri: str | None = self.explicit
        self._proc: Any = None
        self._lock = threading.Lock()

    def known(self, ctx: Context) -> str | None:
        """A tracking URI without opening anything (explicit, or the public MLflow)."""
        if self._uri is not None:
            return self._uri
        from kservectl.phases import serve

        try:
            return serve.mlflow_public_url(ctx)
        except KservectlError:
            return None

    def uri(self, ctx: Context) -> str:
        with self._lock:
            if self._uri is None:
                self._uri = self.known(ctx) or self._port_forward(ctx)
            return self._uri

    def _port_forward(self, ctx: Context) -> str:
        from kservectl.local import procs
        from kservectl.phases import mlflow

        kubectl = ctx.runner.which("kubectl")
        port = procs.free_port()
        kubeconfig = ctx.kubeconfig or paths.kubeconfig_path(ctx.cluster)
        argv = [kubectl, "--kubeconfig", str(kubeconfig), "--namespace", ctx.config.namespaces.mlflow,
                "port-forward", f"service/{mlflow.NAME}", f"{port}:{mlflow.PORT}"]
        ctx.reporter.step("serve", f"reaching the private MLflow through `kubectl port-forward` on port {port}")
        proc = procs.start("mlflow-port-forward", argv, log=paths.logs_dir(ctx.cluster) / "mlflow-port-forward.log",
                           port=port)
        self._proc = proc
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=ctx.settings.http.server_start,
                            clock=ctx.clock, what="kubectl port-forward to MLflow")
        except KservectlError as exc:
            raise KservectlError(f"cannot reach the private MLflow: {exc.message}",
                                 hint="pass --tracking-uri (e.g. after `kservectl mlflow url`)") from exc
        return f"http://127.0.0.1:{port}"

    def close(self, ctx: Context) -> None:
        with self._lock:
            if self._proc is not None:
                from kservectl.local import procs

                procs.stop(self._proc, ctx.clock, grace=ctx.settings.tools.kill_grace)
                self._proc = None
                self._uri = self.explicit


def ensure_bucket(ctx: Context) -> dict[str, Any]:
    """The artifact bucket alone (no cluster needed), so it is made while eksctl runs. The storage
    phase proper (policies, IRSA roles, ServiceAccounts) converges it again later: read only."""
    from kservectl import iam
    from kservectl.phases import storage

    storage.check_kms_key_id(ctx.config.storage.kms_key_id)
    account = storage.account_id(ctx)
    name = storage.bucket_name(ctx, account)
    ctx.reporter.step("storage", f"checking bucket s3://{name}")
    state = storage.read_bucket(ctx, name)
    if state.exists:
        if state.problem:
            raise iam.OwnershipError(state.problem, hint="set storage.bucket to a name of your own")
        problem = iam.ownership_problem(f"S3 bucket {name}", state.tags, ctx.cluster)
        if problem:
            raise iam.OwnershipError(problem, hint=f"kservectl changes only buckets tagged {iam.OWNER_TAG}="
                                     f"{ctx.cluster}; set storage.bucket to another name")
    changes = storage.ensure_bucket(ctx, state, storage.resolve_kms_key_arn(ctx))
    return {"bucket": name, "changes": [c.as_dict() for c in changes]}


def ensure_storage_policies(ctx: Context) -> dict[str, Any]:
    """The storage phase's two IAM policies (model servers read, MLflow reads and writes the
    artifact prefix). A policy names only the bucket's ARN, so they are made while eksctl creates
    the cluster; the IRSA roles that attach them trust the cluster's OIDC provider and come after
    it (the storage phase proper, which converges these policies again: read only). Ownership of
    both is checked before either changes."""
    from kservectl import iam
    from kservectl.phases import storage
    from kservectl.phases.base import LiveValues

    storage.check_kms_key_id(ctx.config.storage.kms_key_id)
    account = storage.account_id(ctx)
    bucket = storage.bucket_name(ctx, account)
    sas = storage.service_accounts(ctx, LiveValues(account_id=account))  # policy names need no OIDC issuer
    for sa in sas.values():
        iam.check_policy_owner(ctx, sa.policy_arn)
    kms_key_arn = storage.resolve_kms_key_arn(ctx)
    ctx.reporter.step("storage", "checking IAM policies " + ", ".join(sa.policy_name for sa in sas.values()))
    changes = storage.ensure_policies(ctx, account, bucket, kms_key_arn, sas)
    return {"policies": [sa.policy_name for sa in sas.values()],
            "changes": [c.as_dict() for made in changes.values() for c in made]}


def serve_model(ctx: Context, access: MlflowAccess) -> dict[str, Any]:
    """Deploy the configured model, or the example model: trained and registered into the
    cluster's MLflow the first time, its latest registered version afterwards."""
    from kservectl import models
    from kservectl.phases import serve

    m = ctx.config.model
    out: dict[str, Any] = {"name": m.name, "example": None}
    if m.uri.startswith("s3://"):
        out["deploy"] = serve.deploy(ctx, m.name)
        return out
    tracking = access.uri(ctx)
    model = m.uri
    if not model:
        models.check_reachable(tracking, ctx.settings.http.mlflow_reachable)
        try:
            model = serve.latest_example_uri(models.client(tracking))
            ctx.reporter.step("serve", f"the example model is registered: {model}")
        except UsageError:
            model = ""
        if not model:
            example = serve.example(ctx, tracking_uri=tracking)
            out["example"] = example
            model = example["model_uri"]
    out["deploy"] = serve.deploy(ctx, m.name, model=model, tracking_uri=tracking)
    return out


def test_model(ctx: Context, access: MlflowAccess) -> dict[str, Any]:
    """``kservectl test`` of the served model; a failed check fails the phase."""
    from kservectl.phases import test

    uses_registry = not ctx.config.model.uri.startswith("s3://")
    tracking = access.uri(ctx) if uses_registry else access.known(ctx)
    result = test.run(ctx, name=ctx.config.model.name, tracking_uri=tracking)
    if not result["ok"]:
        verdicts = "; ".join(r.get("verdict", "") for r in result["results"])
        raise test.TestFailed(f"the served model failed its checks: {verdicts}",
                              hint=f"see `kservectl test {ctx.config.model.name}` and `kservectl serve status`")
    return result


def tasks(ctx: Context, *, yes: bool = False, access: MlflowAccess | None = None) -> list[Task]:
    """The EKS platform as a graph, in display order."""
    from kservectl.phases import alb, cluster, kserve, mlflow, storage

    access = access or MlflowAccess()
    mlflow_needs = ("cluster", "storage") + (("alb",) if ctx.config.mlflow.public else ())
    return [
        Task("cluster", "cluster", (), lambda c: cluster.create(c, yes=yes),
             "EKS cluster, nodes Ready, default gp3, Cluster Autoscaler"),
        Task("alb/policy", "alb", (), alb.ensure_policy, "the load balancer controller's IAM policy"),
        Task("alb", "alb", ("cluster", "alb/policy"), alb.install, "AWS Load Balancer Controller (IRSA, Helm)"),
        Task("kserve", "kserve", ("alb",), lambda c: kserve.install(c, yes=yes),
             "cert-manager, Knative + Kourier behind an NLB, KServe"),
        Task("storage/bucket", "storage", (), ensure_bucket, "S3 artifact bucket"),
        Task("storage/policies", "storage", ("storage/bucket",), ensure_storage_policies,
             "IAM policies of the model servers and MLflow"),
        Task("storage", "storage", ("cluster", "storage/bucket", "storage/policies"),
             lambda c: storage.create(c, with_service_accounts=True), "IRSA roles, ServiceAccounts"),
        Task("mlflow", "mlflow", mlflow_needs, mlflow.install, "MLflow tracking server"),
        Task("serve", "serve", ("kserve", "mlflow", "storage"), lambda c: serve_model(c, access),
             "the model as an InferenceService"),
        Task("test", "test", ("serve",), lambda c: test_model(c, access), "V2 and /invocations checks"),
    ]


def select(all_tasks: Sequence[Task], *, start: str | None = None, only: Iterable[str] = (),
           skip: Iterable[str] = ()) -> list[Task]:
    """The tasks of the phases ``--from`` / ``--only`` / ``--skip`` keep. Needs on left-out tasks
    are dropped: those phases are taken as done (each phase reads the real state and says what is
    missing)."""
    only, skip = list(only), list(skip)
    for flag, names in (("--from", [start] if start else []), ("--only", only), ("--skip", skip)):
        for name in names:
            if name not in ORDER:
                raise UsageError(f"{flag} {name!r} is not a phase; phases are {', '.join(ORDER)}")
    if start and only:
        raise UsageError("give either --from or --only, not both")
    keep = set(only) if only else set(ORDER[ORDER.index(start):] if start else ORDER)
    keep -= set(skip)
    chosen = [t for t in all_tasks if t.phase in keep]
    if not chosen:
        raise UsageError("nothing to run: the phase options leave out every phase",
                         hint=f"phases are {', '.join(ORDER)}")
    names = {t.name for t in chosen}
    return [dataclasses.replace(t, needs=tuple(n for n in t.needs if n in names)) for t in chosen]


def critical_path(durations: dict[str, float], needs: dict[str, Sequence[str]]) -> tuple[float, list[str]]:
    """The longest chain of needs, weighted by each task's duration: the least wall time any
    schedule can take."""
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(name: str) -> tuple[float, list[str]]:
        if name not in best:
            before = max((longest(n) for n in needs.get(name, ()) if n in durations),
                         key=lambda x: (x[0], len(x[1])), default=(0.0, []))
            best[name] = (before[0] + durations[name], [*before[1], name])
        return best[name]

    return max((longest(n) for n in durations), key=lambda x: (x[0], len(x[1])), default=(0.0, []))


# -- the scheduler ---------------------------------------------------------------------------------

_current = threading.local()


def current_task() -> str | None:
    """The name of the task the calling thread works for (None outside ``schedule``)."""
    return getattr(_current, "name", None)


@dataclass
class Outcome:
    """What ``schedule`` did: per task ``done``, ``failed``, ``interrupted`` or ``not started``."""

    states: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s == "done" for s in self.states.values())


def schedule(nodes: Sequence[Any], work: Callable[[Any], Any], *, max_workers: int = 4,
             grace: float = 20.0, stop: threading.Event | None = None) -> Outcome:
    """Run ``work(node)`` for every node once all its ``needs`` are done, at most ``max_workers``
    at a time. The first failure stops scheduling; running nodes finish. Ctrl-C (SIGINT, counted by
    a handler while this runs in the main thread; elsewhere a KeyboardInterrupt in the calling
    thread) sets ``stop``, which the running nodes' work watches (see ``task_context``: their next
    sleep, tool run or API request raises KeyboardInterrupt, and the runner stops the tool it
    runs), and waits up to ``grace`` seconds for them to end; a second Ctrl-C stops the waiting.
    Work that never looks at ``stop`` is reported interrupted when the grace ends."""
    stop = stop if stop is not None else threading.Event()
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        unknown = [need for need in node.needs if need not in by_name]
        if unknown:
            raise ValueError(f"task {node.name} needs unknown task(s) {', '.join(unknown)}")
    _check_acyclic(nodes)
    out = Outcome()
    pending = list(nodes)
    running: dict[str, threading.Thread] = {}
    done: set[str] = set()
    finished: queue.Queue[tuple[str, str, Any]] = queue.Queue()

    def worker(node: Any) -> None:
        _current.name = node.name
        try:
            value = work(node)
        except KeyboardInterrupt as exc:
            finished.put((node.name, "interrupted", exc))
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, none lost
            finished.put((node.name, "failed", exc))
        else:
            finished.put((node.name, "done", value))
        finally:
            _current.name = None

    def record(name: str, state: str, value: Any) -> None:
        running.pop(name, None)
        out.states[name] = state
        if state == "done":
            done.add(name)
            out.values[name] = value
        else:
            out.errors[name] = value

    def start_ready() -> None:
        for node in list(pending):
            if len(running) >= max_workers:
                break
            if all(need in done for need in node.needs):
                pending.remove(node)
                out.states[node.name] = "running"
                thread = threading.Thread(target=worker, args=(node,), name=f"up-{node.name}", daemon=True)
                running[node.name] = thread
                thread.start()

    stopping = False  # after a failure nothing new starts; the running nodes finish
    with _CtrlC() as presses:
        try:
            while not presses.count:
                if not stopping:
                    start_ready()
                if not running:
                    break
                try:
                    name, state, value = finished.get(timeout=0.1)
                except queue.Empty:
                    continue
                record(name, state, value)
                stopping = stopping or state != "done"
        except KeyboardInterrupt:  # not in the main thread: Ctrl-C arrives as the exception
            presses.count += 1
        if presses.count:
            out.interrupted = True
            stop.set()
            deadline = time.monotonic() + grace
            try:
                while running and time.monotonic() < deadline and presses.count < 2:  # a 2nd Ctrl-C: stop waiting
                    try:
                        name, state, value = finished.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    record(name, state, value)
            except KeyboardInterrupt:
                pass
            for name in list(running):
                record(name, "interrupted", KeyboardInterrupt())
    for node in pending:
        out.states[node.name] = "not started"
    return out


class _CtrlC:
    """While entered (in the main thread), Ctrl-C only counts: a handler that sets a number cannot
    be lost, while a KeyboardInterrupt raised at an arbitrary instruction can be (one landing in a
    garbage-collector callback is swallowed). Elsewhere it changes nothing."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _check_acyclic(nodes: Sequence[Any]) -> None:
    needs = {n.name: list(n.needs) for n in nodes}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"the task graph has a cycle: {' -> '.join([*path, name])}")
        state[name] = 1
        for need in needs[name]:
            visit(need, [*path, name])
        state[name] = 2

    for name in needs:
        visit(name, [])


# -- running the graph -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One progress record for the listener (the CLI's live view)."""

    kind: str  # start | step | line | wait | info | warn | retry | done | failed | interrupted | not started
    task: str
    phase: str
    text: str = ""
    attempt: int = 1


Listener = Callable[[Event], None]


class TaskReporter(Reporter):
    """The reporter of one task: turns progress into ``Event``s and remembers the current step and
    the last lines of tool output (for the failure report). Every text passes ``redactor``."""

    def __init__(self, task: Task, emit: Listener, tail: int = 20, redactor: Redactor | None = None) -> None:
        self.task = task
        self.emit = emit
        self.redactor = redactor or Redactor()
        self.step_text: str | None = None
        self.lines: deque[str] = deque(maxlen=tail)
        self._lock = threading.Lock()

    def _event(self, kind: str, text: str) -> None:
        self.emit(Event(kind, self.task.name, self.task.phase, self.redactor.text(text)))

    def step(self, phase: str, message: str) -> None:
        self.step_text = self.redactor.text(message)
        self._event("step", message)

    def info(self, message: str) -> None:
        self._event("info", message)

    def warn(self, message: str) -> None:
        self._event("warn", message)

    def waiting(self, what: str, detail: str) -> None:
        self._event("wait", f"waiting for {what}: {detail}")

    def tool_line(self, tool: str, stream: str, line: str) -> None:
        line = self.redactor.text(f"{tool}: {line}")
        with self._lock:
            self.lines.append(line)
        self.emit(Event("line", self.task.name, self.task.phase, line))


def _forward(reporter: Reporter) -> Listener:
    """A listener that hands events to a plain ``Reporter`` (when no live view listens)."""

    def listen(event: Event) -> None:
        if event.kind == "step":
            reporter.step(event.task, event.text)
        elif event.kind == "warn":
            reporter.warn(f"{event.task}: {event.text}")
        elif event.kind in ("info", "retry", "start", "done"):
            reporter.info(f"{event.task}: {event.text}" if event.text else event.task)
        elif event.kind == "wait":
            reporter.waiting(event.task, event.text)
        elif event.kind == "line":
            tool, _, line = event.text.partition(": ")
            reporter.tool_line(tool, "stdout", line)
        elif event.kind in ("failed", "interrupted"):
            reporter.warn(f"{event.task} {event.kind}: {event.text}")

    return listen


def task_context(ctx: Context, reporter: TaskReporter, stop: threading.Event | None = None) -> Context:
    """A Context for one task: its own reporter and a copy of the runner whose tool lines go to
    it; config, settings, log file and AWS clients are shared. With ``stop``, the task runs on a
    StoppableClock (its runner and Kubernetes client too): once ``stop`` is set, its next sleep,
    tool run or Kubernetes request raises KeyboardInterrupt in its own thread."""
    clock = ctx.clock if stop is None else StoppableClock(ctx.clock, stop)
    runner = copy.copy(ctx.runner)
    runner.sink = reporter.tool_line
    runner.clock = clock
    kube = None
    if ctx._kube is not None:
        kube = copy.copy(ctx._kube)
        if hasattr(kube, "on_wait"):
            kube.on_wait = reporter.waiting
        if hasattr(kube, "clock"):
            kube.clock = clock
    return dataclasses.replace(ctx, reporter=reporter, clock=clock, _runner=runner, _kube=kube)


def is_transient(exc: BaseException) -> bool:
    """Worth running the phase again: throttling, an API server 5xx or 429 (a webhook without
    endpoints answers 500), an unreachable API right after a change."""
    from kservectl import aws as aws_mod

    if isinstance(exc, AwsError):
        return exc.code in aws_mod.RETRYABLE_CODES or exc.code in ("SlowDown", "RequestTimeout",
                                                                    "InternalFailure", "503", "500")
    if isinstance(exc, KubeError):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return False


@dataclass
class TaskReport:
    name: str
    phase: str
    needs: list[str]
    describe: str
    state: str = "excluded"
    started_s: float | None = None  # since the start of `up`
    elapsed_s: float | None = None
    attempts: int = 0
    step: str | None = None
    tail: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.name, "phase": self.phase, "needs": self.needs, "describe": self.describe,
                "state": self.state, "started_s": _r(self.started_s), "elapsed_s": _r(self.elapsed_s),
                "attempts": self.attempts, "step": self.step, "error": self.error, "result": self.result}


@dataclass
class UpResult:
    cluster: str
    region: str
    tasks: list[TaskReport]
    wall_s: float
    interrupted: bool = False
    failure: dict[str, Any] | None = None
    urls: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    log: str = ""
    resume: str = ""

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.failure is None

    @property
    def sequential_s(self) -> float:
        return sum(t.elapsed_s or 0.0 for t in self.tasks)

    def critical(self) -> tuple[float, list[str]]:
        ran = {t.name: t.elapsed_s for t in self.tasks if t.elapsed_s is not None}
        return critical_path(ran, {t.name: t.needs for t in self.tasks})

    def as_dict(self) -> dict[str, Any]:
        length, chain = self.critical()
        return {
            "provider": "eks", "cluster": self.cluster, "region": self.region, "ok": self.ok,
            "interrupted": self.interrupted,
            "timing": {"wall_s": _r(self.wall_s), "sequential_s": _r(self.sequential_s),
                       "critical_path_s": _r(length), "critical_path": chain},
            "tasks": [t.as_dict() for t in self.tasks],
            "failure": self.failure, "urls": self.urls, "cost": self.cost, "test": self.test,
            "log": self.log, "resume": self.resume,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def resume_command(ctx: Context, config_path: Path | None = None) -> str:
    """The exact command that resumes: ``up`` again reads the real state and goes on."""
    argv = ["kservectl", "up", "-c", ctx.cluster, "-r", ctx.region]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    return shlex.join(argv)


def preflight(ctx: Context, chosen: Sequence[Task]) -> dict[str, Any]:
    """Before anything changes: the tools the chosen phases run, and the AWS identity."""
    from kservectl import aws as aws_mod

    phases_ = {t.phase for t in chosen}
    need = []
    if phases_ & {"cluster", "alb"}:
        need.append("eksctl")
    if phases_ & {"cluster", "alb", "kserve"}:
        need.append("helm")
    if "kserve" in phases_ and ctx.config.kserve.mode == "knative":
        need.append("kubectl")
    tools = {tool: ".".join(map(str, ctx.runner.version(tool))) for tool in need}
    sts = ctx.aws.client("sts")
    identity = aws_mod.call("sts:GetCallerIdentity", sts.get_caller_identity)
    return {"tools": tools, "account_id": identity["Account"], "identity": identity["Arn"]}


def run(ctx: Context, *, yes: bool = False, start: str | None = None, only: Iterable[str] = (),
        skip: Iterable[str] = (), tracking_uri: str | None = None, listener: Listener | None = None,
        config_path: Path | None = None, max_workers: int = 4,
        graph: Callable[..., list[Task]] | None = None) -> UpResult:
    """Create (or converge) the platform. Never raises for a failed phase: the result names the
    failure; raises ``UsageError`` for bad phase options before anything runs."""
    access = MlflowAccess(tracking_uri)
    all_tasks = (graph or tasks)(ctx, yes=yes, access=access)
    chosen = select(all_tasks, start=start, only=only, skip=skip)
    emit = listener or _forward(ctx.reporter)
    _ = ctx.log_path, ctx.runner, ctx.aws  # created once here, shared by the tasks' contexts
    reports = {t.name: TaskReport(t.name, t.phase, list(t.needs), t.describe) for t in all_tasks}
    for t in chosen:
        reports[t.name].state = "pending"
    result = UpResult(ctx.cluster, ctx.region, list(reports.values()), 0.0, log=str(ctx.log_path),
                      resume=resume_command(ctx, config_path))
    began = ctx.clock.monotonic()
    reporters: dict[str, TaskReporter] = {}
    stop = threading.Event()  # set by Ctrl-C: the tasks end at their next checkpoint

    def no_aws_call_once_stopped(service: str, operation: str) -> None:
        if stop.is_set() and getattr(_current, "name", None) is not None:  # in a task's thread
            raise KeyboardInterrupt

    # kept after the run: a task still running when the grace ended makes no AWS call either
    ctx.aws.observers.append(no_aws_call_once_stopped)
    backoff = ctx.settings.phase_retry
    try:
        preflight(ctx, chosen)

        def work(task: Task) -> Any:
            reporter = reporters[task.name] = TaskReporter(task, emit, redactor=ctx.redactor)
            tctx = task_context(ctx, reporter, stop)
            report = reports[task.name]
            report.started_s = ctx.clock.monotonic() - began
            delay = backoff.initial
            emit(Event("start", task.name, task.phase, task.describe))
            try:
                for attempt in range(1, backoff.attempts + 1):
                    report.attempts = attempt
                    try:
                        value = task.fn(tctx)
                        break
                    except KservectlError as exc:
                        if attempt == backoff.attempts or not is_transient(exc):
                            raise
                        emit(Event("retry", task.name, task.phase,
                                   f"{_describe_error(exc, ctx)}; running the phase again in {delay:g}s "
                                   f"(attempt {attempt + 1}/{backoff.attempts})", attempt + 1))
                        tctx.clock.sleep(delay)
                        delay = min(delay * 2, backoff.maximum)
            except KeyboardInterrupt:
                report.elapsed_s = ctx.clock.monotonic() - began - report.started_s
                emit(Event("interrupted", task.name, task.phase, _describe_error(KeyboardInterrupt(), ctx)))
                raise
            except BaseException as exc:
                report.elapsed_s = ctx.clock.monotonic() - began - report.started_s
                emit(Event("failed", task.name, task.phase, _describe_error(exc, ctx)))
                raise
            report.elapsed_s = ctx.clock.monotonic() - began - report.started_s
            emit(Event("done", task.name, task.phase, f"{report.elapsed_s:.1f}s"))
            return value

        outcome = schedule(chosen, work, max_workers=max_workers, grace=ctx.settings.interrupt_grace, stop=stop)
    finally:
        access.close(ctx)
    result.wall_s = ctx.clock.monotonic() - began
    result.interrupted = outcome.interrupted
    for name, state in outcome.states.items():
        report = reports[name]
        report.state = state
        reporter = reporters.get(name)
        if reporter is not None:  # its texts are redacted already
            report.step = reporter.step_text
            report.tail = list(reporter.lines)
        if state == "done":
            report.result = outcome.values[name]
        elif state in ("failed", "interrupted"):
            report.error = _describe_error(outcome.errors[name], ctx)
            if state == "interrupted" and report.elapsed_s is None:  # did not stop within the grace time
                emit(Event(state, name, report.phase, report.error))
        else:
            emit(Event(state, name, report.phase))
    failed = [r for r in result.tasks if r.state in ("failed", "interrupted")]
    if failed:
        first = next((r for r in failed if r.state == "failed"), failed[0])
        error = outcome.errors[first.name]
        result.failure = {
            "task": first.name, "phase": first.phase, "state": first.state, "step": first.step,
            "error": first.error, "tool_output": [ctx.redactor.text(line) for line in _tool_output(error, first.tail)],
            "others": [{"task": r.name, "state": r.state, "error": r.error} for r in failed if r is not first],
            "log": str(ctx.log_path), "resume": result.resume,
        }
    if "test" in outcome.values:
        result.test = outcome.values["test"]
    result.cost = running_cost(ctx)
    if result.ok and {"serve", "test"} & {t.name for t in chosen}:
        try:
            from kservectl.phases import serve

            result.urls = serve.urls(ctx)
        except KservectlError as exc:
            result.urls = {"error": ctx.redactor.text(exc.one_line())}
    return result


def _describe_error(error: BaseException, ctx: Context) -> str:
    """One line for the report, with the secrets ``ctx.redactor`` knows masked."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C); its tools were stopped"
    if isinstance(error, KservectlError):
        return ctx.redactor.text(error.one_line())
    return ctx.redactor.text(f"{type(error).__name__}: {error}")


def _tool_output(error: BaseException, tail: list[str], lines: int = 10) -> list[str]:
    if isinstance(error, ToolError) and error.stderr_tail:
        return error.stderr_tail[-lines:]
    return tail[-lines:]


# -- what the platform costs now -------------------------------------------------------------------


#: What ``running_cost`` reads besides the cluster: the billed pieces a cluster's own reads miss.
COST_FINDERS = ("elbv2 load balancers", "classic load balancers", "ec2 NAT gateways", "ec2 Elastic IPs",
                "ec2 volumes")


def running_cost(ctx: Context) -> dict[str, Any]:
    """The cost of what exists now, as ``costs.Estimate.as_dict()`` plus ``basis`` and ``notes``.

    Read from AWS (never changed), after a failed ``up`` too: the EKS control plane when the
    cluster exists; each node group at its actual desired size and instance type, with its root
    volumes; the load balancers, NAT gateways, Elastic IPs and unattached EBS volumes that
    ``orphans.search`` finds with this cluster's ownership evidence (it lists a live cluster's
    infrastructure the same way); the public IPv4 addresses of internet-facing NLBs; and the
    volumes of the cluster's bound PersistentVolumeClaims. Priced with ``costs.price``.
    ``basis`` is ``"what exists"``; when AWS cannot be read it is ``"config"``: the estimate of
    the configured platform (as ``plan``), and ``notes`` say why."""
    quiet = dataclasses.replace(ctx, reporter=Reporter())
    try:
        estimate, notes = _price_what_exists(quiet)
    except KservectlError as exc:
        data = costs.platform_estimate(ctx.config).as_dict()
        data["basis"] = "config"
        data["notes"] = [f"what exists could not be read ({ctx.redactor.text(exc.one_line())}): this is the "
                         "estimate of the configured platform, as `kservectl plan` prints it"]
        return data
    data = estimate.as_dict()
    data["basis"] = "what exists"
    data["notes"] = notes
    return data


def _zones(ctx: Context) -> int:
    """The subnets (one per zone) an NLB of this cluster spans, as the config makes them."""
    return len(ctx.config.cluster.availability_zones) or (2 if ctx.region == "us-east-1" else 3)


def _price_what_exists(ctx: Context) -> tuple[costs.Estimate, list[str]]:
    from kservectl import orphans
    from kservectl.phases import cluster

    region, price, item = ctx.region, costs.price, costs.LineItem
    items: list[costs.LineItem] = []
    notes: list[str] = []
    found = cluster.describe_cluster(ctx)
    if found is not None:
        items.append(item("EKS control plane", 1, price("eks-cluster", region),
                          f"cluster {ctx.cluster}, {found.get('status')}, Kubernetes {found.get('version')}"))
        for group in cluster.nodegroups(ctx):
            name = group.get("nodegroupName", "?")
            scaling = group.get("scalingConfig") or {}
            desired = int(scaling.get("desiredSize") or 0)
            types = group.get("instanceTypes") or []
            instance = types[0] if types else ctx.config.nodes.instance_type
            detail = (f"node group {name}: desired {desired} (min {scaling.get('minSize')}, max "
                      f"{scaling.get('maxSize')}), {str(group.get('capacityType') or 'ON_DEMAND').lower()}")
            if not types:
                detail += "; instance type from the config (the node group names none)"
            elif len(types) > 1:
                detail += f"; priced as {instance}, the first of {', '.join(types)}"
            items.append(item(f"nodes ({instance})", desired, price(costs.INSTANCE, region, instance_type=instance),
                              detail))
            disk = group.get("diskSize")
            size = float(disk) if disk else float(ctx.config.nodes.volume_size)
            items.append(item("node root volumes (gp3)", desired, price("ebs-gp3", region, gb=size),
                              f"{size:g} GiB each" + ("" if disk else " (size from the config: a launch template "
                                                                        "holds it)")))
    search = orphans.search(ctx, only=COST_FINDERS)
    notes += [f"could not search {error}: the figure may be too low" for error in search.errors]
    public_lbs = 0
    for o in search.orphans:
        label = o.name or o.id
        if o.type == orphans.LOAD_BALANCER:
            kind = {"network": "nlb", "application": "alb"}.get(o.detail.split(",")[0].strip())  # ELBv2's Type
            if kind is None:
                notes.append(f"load balancer {o.id}: not priced (neither network nor application)")
                continue
            public = "internet-facing" in o.detail
            public_lbs += public
            items.append(item(f"{kind.upper()} {label}", 1, price(kind, region),
                              "internet-facing" if public else "internal"))
        elif o.type == orphans.CLASSIC_ELB:
            items.append(item(f"classic ELB {label}", 1, price("elb-classic", region)))
        elif o.type == orphans.NAT_GATEWAY:
            items.append(item(f"NAT gateway {o.id}", 1, price("nat-gateway", region), o.name))
        elif o.type == orphans.ELASTIC_IP:
            items.append(item(f"Elastic IP {o.name or o.id}", 1, price("public-ipv4", region), o.detail))
        elif o.type == orphans.VOLUME and ", PVC " not in o.detail:  # a claim's volume is priced with the claim
            size_kind = re.match(r"(\d+(?:\.\d+)?) GiB (\w+)", o.detail)
            if size_kind is None:
                notes.append(f"volume {o.id}: not priced ({o.detail})")
                continue
            items.append(item(f"EBS volume {o.id} ({size_kind.group(2)})", 1,
                              price(f"ebs-{size_kind.group(2)}", region, gb=float(size_kind.group(1))),
                              f"{o.detail}; not attached"))
    if public_lbs:
        zones = _zones(ctx)
        items.append(item("public IPv4 addresses of the NLBs", public_lbs * zones, price("public-ipv4", region),
                          f"{zones} per internet-facing NLB"))
    claims: list[dict[str, Any]] = []
    if found is not None and found.get("status") == "ACTIVE" and cluster.kubeconfig_path(ctx).is_file():
        try:
            claims, _ = ctx.kube.list("v1", "PersistentVolumeClaim")
        except KubeError as exc:
            notes.append(f"the cluster's volume claims could not be read ({exc.one_line()}): not priced")
    for pvc in claims:
        status = pvc.get("status") or {}
        capacity = (status.get("capacity") or {}).get("storage")
        if status.get("phase") != "Bound" or not capacity:
            continue
        klass = (pvc.get("spec") or {}).get("storageClassName") or ""
        kind = "gp2" if klass == "gp2" else "gp3"
        meta = pvc["metadata"]
        items.append(item(f"volume of PVC {meta.get('namespace')}/{meta['name']} ({kind})", 1,
                          price(f"ebs-{kind}", region, gb=costs.gib(capacity)),
                          f"{capacity}, StorageClass {klass or 'default'}"))
    if not items:
        notes.append(f"nothing of cluster {ctx.cluster} that is billed by the hour exists in {region}")
    return costs.Estimate(region, items, list(costs.NOT_INCLUDED)), notes


# -- what exists already (plan --diff, up --dry-run) ----------------------------------------------


def _documents(text: str) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if doc]


def _row(phase: str, resource: str, action: str, detail: str = "") -> dict[str, str]:
    return {"phase": phase, "resource": resource, "action": action, "detail": detail}


def _kube_diff(ctx: Context, phase: str, obj: dict[str, Any], label: str | None = None) -> dict[str, str]:
    from kservectl.kube import Ref

    action = ctx.kube.diff(obj)
    return _row(phase, label or str(Ref.of(obj)), "keep" if action == "unchanged" else action,
                "the live object differs from the rendered manifest" if action == "change" else "")


def _release_row(ctx: Context, phase: str, name: str, namespace: str, chart: str, version: str,
                 values: dict[str, Any] | None) -> dict[str, str]:
    from kservectl.phases import cluster

    label = f"Helm release {namespace}/{name} ({chart} {version})"
    current = cluster.helm_release(ctx, name, namespace)
    if current is None:
        return _row(phase, label, "create")
    have = str(current.get("chart", ""))
    if current.get("status") != "deployed":
        return _row(phase, label, "change", f"release is {current.get('status')}")
    if have != f"{chart}-{version}":
        return _row(phase, label, "change", f"installed {have}")
    if values is not None and cluster.helm_values(ctx, name, namespace) != values:
        return _row(phase, label, "change", "values differ")
    return _row(phase, label, "keep")


def diff(ctx: Context, *, phases_: Iterable[str] = ORDER) -> list[dict[str, str]]:
    """Per resource of the plan: ``create``, ``change`` or ``keep`` (``unknown`` when it cannot be
    read, with why). Reads only: AWS describe/get/list calls, Kubernetes gets, ``helm list`` and
    ``helm get values``."""
    from kservectl.phases import cluster

    wanted = list(phases_)
    rows: list[dict[str, str]] = []
    state = cluster.detect(ctx)
    kube_ok = state.kind == "active" and cluster.kubeconfig_path(ctx).is_file()
    if state.kind == "active" and not kube_ok:
        why = f"no kubeconfig at {cluster.kubeconfig_path(ctx)} (`kservectl up` writes it)"
    else:
        why = ""
    in_cluster = "read" if kube_ok else ("unknown" if state.kind == "active" else "create")
    sections = {"cluster": _diff_cluster, "alb": _diff_alb, "kserve": _diff_kserve, "storage": _diff_storage,
                "mlflow": _diff_mlflow, "serve": _diff_serve}
    for name in wanted:
        section = sections.get(name)
        if section is None:
            continue
        try:
            rows += section(ctx, state, in_cluster, why)
        except KservectlError as exc:
            rows.append(_row(name, f"{name} resources", "unknown", exc.one_line()))
    return rows


def _in_cluster(phase: str, resource: str, mode: str, why: str, read: Callable[[], dict[str, str]]
                ) -> dict[str, str]:
    if mode == "create":
        return _row(phase, resource, "create", "the cluster does not exist yet")
    if mode == "unknown":
        return _row(phase, resource, "unknown", why)
    return read()


def _diff_cluster(ctx: Context, state: Any, mode: str, why: str) -> list[dict[str, str]]:
    from kservectl.phases import autoscaler, cluster

    rows = []
    name = f"EKS cluster {ctx.cluster} ({ctx.region})"
    drift: list[dict[str, Any]] = []
    if state.kind == "absent":
        rows.append(_row("cluster", name, "create"))
    elif state.kind == "active":
        drift = cluster.drift(ctx, state.cluster, cluster.nodegroups(ctx))
        rows.append(_row("cluster", name, "keep", f"ACTIVE, Kubernetes {state.cluster.get('version')}"))
    elif state.kind == "failed":
        rows.append(_row("cluster", name, "change", f"a failed create is cleared first ({state.detail})"))
    else:
        rows.append(_row("cluster", name, "unknown", state.detail))
    group = f"node group {cluster.NODEGROUP}"
    if state.kind == "active":
        rows.append(_row("cluster", group, "change" if drift else "keep", "; ".join(d["message"] for d in drift)))
    else:
        rows.append(_row("cluster", group, "create"))
    rows.append(_in_cluster("cluster", f"StorageClass {cluster.STORAGECLASS} (default)", mode, why,
                            lambda: _kube_diff(ctx, "cluster", cluster.storage_class(ctx),
                                               f"StorageClass {cluster.STORAGECLASS} (default)")))
    if ctx.config.cluster.autoscaler:
        rel = autoscaler.release(ctx)
        rows.append(_in_cluster("cluster", f"Helm release {rel.namespace}/{rel.name}", mode, why,
                                lambda: _release_row(ctx, "cluster", rel.name, rel.namespace, rel.chart_name,
                                                     rel.version, rel.values)))
    return rows


def _diff_alb(ctx: Context, state: Any, mode: str, why: str) -> list[dict[str, str]]:
    from kservectl.phases import alb

    rows = []
    arn = alb.policy_arn(ctx)
    found = alb.get_policy(ctx, arn)
    label = f"IAM policy {alb.policy_name(ctx.cluster)}"
    if found is None:
        rows.append(_row("alb", label, "create"))
    elif alb.default_document(ctx, arn, found["DefaultVersionId"]) == alb.policy_document():
        rows.append(_row("alb", label, "keep"))
    else:
        rows.append(_row("alb", label, "change", "a new default version from the shipped policy"))

    def service_account() -> dict[str, str]:
        sa = ctx.kube.get("v1", "ServiceAccount", alb.SERVICE_ACCOUNT, alb.NAMESPACE)
        annotated = ((sa or {}).get("metadata", {}).get("annotations") or {}).get(alb.ROLE_ANNOTATION)
        return _row("alb", f"IRSA ServiceAccount {alb.NAMESPACE}/{alb.SERVICE_ACCOUNT}",
                    "keep" if annotated else "create")

    def release() -> dict[str, str]:
        rel = alb.release(ctx, alb.cluster_vpc(ctx))
        return _release_row(ctx, "alb", rel.name, rel.namespace, rel.chart_name, rel.version, rel.values)

    rows.append(_in_cluster("alb", f"IRSA ServiceAccount {alb.NAMESPACE}/{alb.SERVICE_ACCOUNT}", mode, why,
                            service_account))
    rows.append(_in_cluster("alb", f"Helm release {alb.NAMESPACE}/{alb.RELEASE}", mode, why, release))
    return rows


def _diff_kserve(ctx: Context, state: Any, mode: str, why: str) -> list[dict[str, str]]:
    from kservectl.phases import kserve

    rels = kserve.releases(ctx)
    keys = ["cert-manager"] + ([] if kserve.knative(ctx) else ["metrics-server"]) + [
        "kserve-crd", "kserve-resources", "kserve-runtime-configs"]
    if mode != "read":
        labels = [f"Helm release {rels[k].namespace}/{rels[k].name}" for k in keys]
        if kserve.knative(ctx):
            labels += ["Knative Serving", "net-kourier", f"Service {kserve.KOURIER_NS}/{kserve.GATEWAY} (NLB)"]
        return [_in_cluster("kserve", label, mode, why, dict) for label in labels]
    files = kserve.render_files(ctx)
    values = kserve.chart_values(ctx, files)
    rows = [_release_row(ctx, "kserve", rels[k].name, rels[k].namespace, rels[k].chart, rels[k].version,
                         values[k] if rels[k].values_file else None) for k in keys]
    if kserve.knative(ctx):
        installed = kserve.installed_knative(ctx)
        v = ctx.config.versions
        for label, have, pin in (("Knative Serving", installed["core"], v.knative_serving),
                                 ("net-kourier", installed["kourier"], v.net_kourier)):
            if have is None:
                rows.append(_row("kserve", f"{label} {pin}", "create"))
            else:
                same = have.lstrip("v") == pin.lstrip("v")
                rows.append(_row("kserve", f"{label} {pin}", "keep" if same else "change",
                                 "" if same else f"installed {have}"))
        gateway = kserve.check_gateway(ctx)
        service = next(d for d in _documents(files[kserve.GATEWAY_FILE]) if d["kind"] == "Service")
        row = _kube_diff(ctx, "kserve", service, f"Service {kserve.KOURIER_NS}/{kserve.GATEWAY} (NLB)")
        if gateway.replaces_nlb:
            row = _row("kserve", row["resource"], "change", gateway.message)
        rows.append(row)
    rows.append(_kube_diff(ctx, "kserve", _documents(files[kserve.RECORD_FILE])[0]))
    return rows


def _diff_storage(ctx: Context, state: Any, mode: str, why: str) -> list[dict[str, str]]:
    from kservectl.phases import storage
    from kservectl.phases.base import LiveValues

    status = storage.status(ctx)
    b = status["bucket"]
    rows = [_row("storage", f"S3 bucket {b['name']}",
                 "create" if not b["exists"] else ("keep" if b["ok"] else "change"),
                 b.get("problem") or ("" if b["ok"] or not b["exists"] else _bucket_drift(ctx, b)))]
    for p in status["policies"]:
        action = "create" if not p["exists"] else ("keep" if p.get("matches") else "change")
        rows.append(_row("storage", f"IAM policy {p['name']}", action,
                         "a new default version: the live document differs from the rendered one"
                         if action == "change" else ""))
    for r in status["roles"]:
        attached = any(p["name"] in r.get("attached_policies", []) for p in status["policies"]
                       if p["component"] == r["component"])
        action = "create" if not r["exists"] else ("keep" if r.get("trust_matches") and attached else "change")
        rows.append(_row("storage", f"IAM role {r['name']}", action))
    issuer = status["oidc"]["issuer"]
    live = LiveValues(account_id=status["account_id"], **({"oidc_issuer": issuer} if issuer else {}))
    for doc in storage.service_account_manifests(ctx, live):
        label = f"ServiceAccount {doc['metadata']['namespace']}/{doc['metadata']['name']}"
        rows.append(_in_cluster("storage", label, mode, why, lambda d=doc, lb=label: _kube_diff(ctx, "storage", d, lb)))
    return rows


def _bucket_drift(ctx: Context, bucket: dict[str, Any]) -> str:
    """What of the bucket's managed settings differs from the config (``storage.status`` fields)."""
    days = ctx.config.storage.noncurrent_version_days or None
    found = []
    if bucket.get("owner") != ctx.cluster:
        found.append(f"owner tag {bucket.get('owner')!r}")
    if bucket.get("versioning") != "Enabled":
        found.append(f"versioning {bucket.get('versioning')}")
    if not bucket.get("public_access_blocked"):
        found.append("public access not fully blocked")
    if not bucket.get("tls_only"):
        found.append("no TLS-only bucket policy")
    if bucket.get("noncurrent_version_days") != days:
        found.append(f"noncurrent versions expire after {bucket.get('noncurrent_version_days')} days, config {days}")
    return "; ".join(found) or f"encryption {bucket.get('encryption')}"


def _diff_mlflow(ctx: Context, state: Any, mode: str, why: str) -> list[dict[str, str]]:
    from kservectl.phases import mlflow, storage
    from kservectl.phases.base import LiveValues
    from kservectl.render import placeholder

    mlflow.check_config(ctx)
    refs = mlflow.storage_refs(ctx, LiveValues(account_id=storage.account_id(ctx)))
    lb = None
    if ctx.config.mlflow.public:
        lb = placeholder("mlflow-lb-hostname")
        if mode == "read":
            from kservectl.phases import serve

            public = serve.mlflow_public_url(ctx)
            lb = public.split("//", 1)[1].rsplit(":", 1)[0] if public else lb
    docs = mlflow.render_manifests(mlflow.template_values(ctx, refs, lb)).docs
    rows = []
    for doc in docs.values():
        from kservectl.kube import Ref

        label = str(Ref.of(doc))
        rows.append(_in_cluster("mlflow", label, mode, why, lambda d=doc, lb_=label: _kube_diff(ctx, "mlflow", d, lb_)))
    return rows


def _diff_serve(ctx: Context, state: Any, mode: str, why: str) -> list[dict[str, str]]:
    from kservectl.phases import serve

    m = ctx.config.model
    label = f"InferenceService {ctx.config.namespaces.models}/{m.name}"

    def read() -> dict[str, str]:
        current = serve.get(ctx, m.name)
        if current is None:
            return _row("serve", label, "create")
        d = serve.describe(current)
        if m.uri and m.uri.startswith("s3://") and d["storage_uri"] != m.uri.rstrip("/"):
            return _row("serve", label, "change", f"serves {d['storage_uri']}")
        if m.uri and not m.uri.startswith("s3://") and d["model_uri"] != m.uri:
            return _row("serve", label, "change", f"serves {d['model_uri']}")
        return _row("serve", label, "keep", f"serves {d['model_uri'] or d['storage_uri']}")

    return [_in_cluster("serve", label, mode, why, read)]
