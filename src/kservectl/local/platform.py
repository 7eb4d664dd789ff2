"""The local platform: start, heal, serve, describe and stop. Called by the CLI with a Context.

One MLflow tracking server (sqlite + local artifacts) and one MLServer process per served model
(its own port: ``/invocations`` belongs to one model), each detached and supervised by pid.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl import validation
from kservectl.context import Context
from kservectl.errors import ExtraMissingError, UsageError
from kservectl.local import procs
from kservectl.local.state import LocalState, ServedModel

HOST = "127.0.0.1"
EXTRA_HINT = "pip install 'kservectl[local]'"


def require_extra() -> None:
    """The local provider needs MLServer and its MLflow runtime (the ``local`` extra)."""
    missing = [m for m in ("mlserver", "mlserver_mlflow") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExtraMissingError(f"the local provider needs {' and '.join(missing)}, which are not installed",
                                hint=f"run: {EXTRA_HINT}")


def _bin(name: str) -> str:
    """An executable of this environment (mlflow, mlserver), next to the running Python."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ExtraMissingError(f"{name} is not installed in this environment", hint=f"run: {EXTRA_HINT}")
    return found


def tracking_uri(proc: procs.Proc) -> str:
    return f"http://{HOST}:{proc.port}"


def model_url(model: ServedModel) -> str:
    assert model.proc is not None
    return f"http://{HOST}:{model.proc.port}"


# -- MLflow ------------------------------------------------------------------------------------
def ensure_mlflow(ctx: Context, state: LocalState) -> tuple[procs.Proc, bool]:
    """Reuse a running tracking server or start one. Returns (proc, started)."""
    if state.mlflow is not None and procs.alive(state.mlflow):
        return state.mlflow, False
    if state.mlflow is not None:
        ctx.reporter.warn(f"the MLflow server (pid {state.mlflow.pid}) had exited; starting it again")
    port = procs.choose_port(ctx.config.local.mlflow_port, "local.mlflow_port")
    store = state.mlflow_dir
    (store / "artifacts").mkdir(parents=True, exist_ok=True)
    argv = [
        _bin("mlflow"), "server", "--host", HOST, "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts",
    ]
    ctx.reporter.step("mlflow", f"starting the MLflow tracking server on {HOST}:{port}")
    # Job execution (MLflow 3's background job runner) is off: it starts several extra processes
    # a local tracking server does not need.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = procs.start("mlflow", argv, log=state.logs_dir / "mlflow.log", port=port, env=env)
    state.mlflow = proc
    state.save()
    procs.wait_http(f"{tracking_uri(proc)}/health", proc, timeout=ctx.settings.waits.http_ready,
                    clock=ctx.clock, what="the MLflow server")
    return proc, True


# -- model servers ----------------------------------------------------------------------------
def _write_settings(folder: Path, name: str, model_path: Path, http_port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"host": HOST, "http_port": http_port, "grpc_port": procs.free_port(), "metrics_endpoint": None,
                "parallel_workers": 0, "load_models_at_startup": True}
    model = {"name": name, "implementation": "mlserver_mlflow.MLflowRuntime",
             "parameters": {"uri": str(model_path)}}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))


def _download(ctx: Context, model_uri: str, dest: Path, tracking: str) -> Path:
    import mlflow.artifacts

    from kservectl import models

    ref = models.parse(model_uri)
    client = models.client(tracking)
    resolved = models.resolve(ref, client)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ctx.reporter.step("serve", f"downloading {model_uri} (version {resolved.version})")
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=resolved.artifact_uri, dst_path=str(dest),
                                                    tracking_uri=tracking))
    if not (path / "MLmodel").is_file():
        found = next(iter(path.rglob("MLmodel")), None)
        if found is None:
            raise UsageError(f"{model_uri} holds no MLmodel file",
                             hint="register an MLflow model (mlflow.<flavor>.log_model)")
        path = found.parent
    return path


def start_model_server(ctx: Context, state: LocalState, served: ServedModel, port: int) -> ServedModel:
    folder = state.models_dir / served.name
    _write_settings(folder, served.name, Path(served.path), port)
    argv = [_bin("mlserver"), "start", str(folder)]
    ctx.reporter.step("serve", f"starting MLServer for {served.name} on {HOST}:{port}")
    proc = procs.start(f"model {served.name}", argv, log=state.logs_dir / f"model-{served.name}.log", port=port)
    served = ServedModel(served.name, served.model_uri, served.path, proc)
    state.models[served.name] = served
    state.save()
    procs.wait_http(f"http://{HOST}:{port}/v2/models/{served.name}/ready", proc,
                    timeout=ctx.settings.waits.http_ready, clock=ctx.clock, what=f"MLServer for {served.name}")
    return served


def _wanted_port(ctx: Context, state: LocalState, name: str, requested: int = 0) -> tuple[int, str]:
    """The port ``name`` must serve on and the setting that asks for it, or ``(0, "")`` for any.

    ``--port`` wins. ``local.model_port`` belongs to one model: the first served while it is set
    (with ``up``, the example model), which keeps it across new versions and restarts; while
    another recorded model holds it, every other model gets a free port.
    """
    if requested:
        return requested, "--port"
    pinned = ctx.config.local.model_port
    if pinned and not any(other != name and m.proc and m.proc.port == pinned for other, m in state.models.items()):
        return pinned, "local.model_port"
    return 0, ""


def check_port(ctx: Context, state: LocalState, name: str, requested: int = 0) -> tuple[int, str]:
    """``_wanted_port``, checked before anything starts: a configured port that anything but
    ``name``'s own running server holds is a ConfigError naming the setting (exit 2)."""
    port, setting = _wanted_port(ctx, state, name, requested)
    current = state.models.get(name)
    ours = current is not None and current.proc is not None and current.proc.port == port \
        and procs.alive(current.proc)
    if port and not ours:
        procs.choose_port(port, setting)
    return port, setting


def deploy(ctx: Context, state: LocalState, name: str, model_uri: str, *, port: int = 0) -> ServedModel:
    """Serve ``model_uri`` as ``name`` (replacing what ``name`` served before)."""
    validation.dns_label("NAME", name)
    validation.model_uri("--model", model_uri)
    wanted, setting = check_port(ctx, state, name, port)
    mlflow_proc, _ = ensure_mlflow(ctx, state)
    current = state.models.get(name)
    if current and current.model_uri == model_uri and current.proc and procs.alive(current.proc) \
            and wanted in (0, current.proc.port):
        return current
    path = _download(ctx, model_uri, state.models_dir / name / "model", tracking_uri(mlflow_proc))
    if current and current.proc:
        procs.stop(current.proc, ctx.clock)
    if wanted:
        chosen = procs.choose_port(wanted, setting)
    elif current and current.proc and not procs.port_in_use(current.proc.port):
        chosen = current.proc.port
    else:
        chosen = procs.free_port()
    return start_model_server(ctx, state, ServedModel(name, model_uri, str(path)), chosen)


def heal(ctx: Context, state: LocalState) -> list[str]:
    """Restart any recorded model server that has exited (self-healing). Returns what it did."""
    healed = []
    for served in list(state.models.values()):
        if served.proc is not None and not procs.alive(served.proc):
            wanted, _ = check_port(ctx, state, served.name)
            ctx.reporter.warn(f"the model server for {served.name} (pid {served.proc.pid}) had exited; restarting it")
            if wanted:
                port = wanted
            else:
                port = served.proc.port if not procs.port_in_use(served.proc.port) else procs.free_port()
            start_model_server(ctx, state, served, port)
            healed.append(served.name)
    return healed


def remove(ctx: Context, state: LocalState, name: str) -> bool:
    served = state.models.pop(name, None)
    if served is None:
        return False
    if served.proc:
        procs.stop(served.proc, ctx.clock)
    shutil.rmtree(state.models_dir / name, ignore_errors=True)
    state.save()
    return True


# -- the journey ------------------------------------------------------------------------------
@dataclass
class UpResult:
    tracking_uri: str
    models: list[dict[str, Any]]
    report: Any = None  # probe.Report
    actions: list[str] = field(default_factory=list)


def up(ctx: Context) -> UpResult:
    """MLflow up, the model registered (the example unless model.uri is set), served, tested."""
    require_extra()
    state = LocalState.load(ctx.cluster)
    name = ctx.config.model.name
    # configured ports checked before anything starts: the served model's and those a restart needs
    for checked in {name} | {n for n, m in state.models.items() if m.proc and not procs.alive(m.proc)}:
        check_port(ctx, state, checked)
    actions: list[str] = []
    proc, started = ensure_mlflow(ctx, state)
    if started:
        actions.append("started MLflow")
    actions += [f"restarted {n}" for n in heal(ctx, state)]
    tracking = tracking_uri(proc)
    before = state.models.get(name)
    if ctx.config.model.uri:
        model_uri = ctx.config.model.uri
    elif before is not None and before.proc is not None and procs.alive(before.proc):
        model_uri = before.model_uri  # already serving the example: no need to ask MLflow
    else:
        model_uri = _example_uri(ctx, state, tracking, actions)
    served = deploy(ctx, state, name, model_uri)
    if before is None or before.proc is None or served.proc is None or before.proc.pid != served.proc.pid:
        actions.append(f"serving {name}")
    from kservectl import probe

    ctx.reporter.step("test", f"testing {name} over V2 and /invocations")
    report = probe.run_checks(probe.Target(model_url(served), name))
    return UpResult(tracking, [describe_model(m) for m in state.models.values()], report, actions)


def _example_uri(ctx: Context, state: LocalState, tracking: str, actions: list[str]) -> str:
    """The example model's latest registered version, training it when none exists."""
    from kservectl import example, models

    client = models.client(tracking)
    latest = _latest_version(client, example.REGISTERED_NAME)
    if latest is not None:
        return f"models:/{example.REGISTERED_NAME}/{latest}"
    ctx.reporter.step("serve", "training and registering the example wine classifier")
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links on stdout; keep it for data
        trained = example.log_and_register(tracking)
    actions.append(f"registered {trained.model_uri}")
    return trained.model_uri


def _latest_version(client: Any, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    numbers = sorted((int(v.version) for v in versions), reverse=True)
    return str(numbers[0]) if numbers else None


def describe_model(served: ServedModel) -> dict[str, Any]:
    running = served.proc is not None and procs.alive(served.proc)
    base = model_url(served) if served.proc else None
    return {
        "name": served.name,
        "model_uri": served.model_uri,
        "ready": running,
        "pid": served.proc.pid if served.proc else None,
        "url": base,
        "v2_infer": f"{base}/v2/models/{served.name}/infer" if base else None,
        "invocations": f"{base}/invocations" if base else None,
        "log": served.proc.log if served.proc else None,
    }


def payload(served: ServedModel):
    """The request rows of a served model: its MLflow input example and signature (None: the
    checks build them from the server's V2 metadata)."""
    from kservectl import models, probe

    try:
        info = models.read_model_info(Path(served.path))
    except UsageError:
        return None
    if info.input_example is None and not info.signature_inputs:
        return None
    return probe.payload_from_model_info(info.input_example, info.input_example_type, info.signature_inputs,
                                         f"MLflow input example of {served.model_uri}")


def describe_service(served: ServedModel) -> dict[str, Any]:
    """A served model, in the shape ``serve list``/``status`` show for an InferenceService."""
    ready = served.proc is not None and procs.alive(served.proc)
    return {"name": served.name, "namespace": None, "url": model_url(served) if served.proc else None,
            "host": None, "ready": ready, "detail": "running" if ready else "not running",
            "conditions": [], "model_uri": served.model_uri, "previous_model_uri": None,
            "storage_uri": served.path, "canary_percent": None, "min_replicas": 1, "max_replicas": 1,
            "replicas": 1 if ready else 0, "deployment_mode": "local",
            "revisions": {}, "traffic": [], "pid": served.proc.pid if served.proc else None,
            "log": served.proc.log if served.proc else None}


def list_services(ctx: Context) -> list[dict[str, Any]]:
    state = LocalState.load(ctx.cluster)
    heal(ctx, state)
    return [describe_service(m) for m in state.models.values()]


def urls(ctx: Context) -> dict[str, Any]:
    """The same shape as ``serve.urls`` on EKS: no gateway, absolute 127.0.0.1 URLs."""
    import json

    from kservectl.phases.serve import curl

    state = LocalState.load(ctx.cluster)
    heal(ctx, state)
    mlflow_url = tracking_uri(state.mlflow) if state.mlflow and procs.alive(state.mlflow) else None
    services = []
    for served in state.models.values():
        d = describe_service(served)
        base = d["url"]
        entry = {"name": served.name, "url": base, "ready": d["ready"], "host_header": None,
                 "v2_infer_url": f"{base}/v2/models/{served.name}/infer" if base else None,
                 "invocations_url": f"{base}/invocations" if base else None}
        if base:
            body = payload(served)
            v2 = json.dumps(body.v2_body(), separators=(",", ":")) if body else None
            inv = json.dumps(body.invocations_body(), separators=(",", ":")) if body else None
            entry["curl_v2"] = curl(entry["v2_infer_url"], None, v2)
            entry["curl_invocations"] = curl(entry["invocations_url"], None, inv)
        services.append(entry)
    return {"provider": "local", "cluster": ctx.cluster,
            "gateway": {"hostname": None, "url": None, "dns": "local"},
            "mlflow": {"url": mlflow_url, "port_forward": None, "port_forward_url": None},
            "services": services}


def test_targets(ctx: Context, name: str | None = None) -> list[Any]:
    """What ``kservectl test --provider local`` checks: every served model, or ``name``."""
    from kservectl import probe
    from kservectl.phases.test import Planned, TestFailed

    state = LocalState.load(ctx.cluster)
    heal(ctx, state)
    if name is not None and name not in state.models:
        served = ", ".join(state.models) or "none"
        raise TestFailed(f"model {name!r} is not served locally for {ctx.cluster!r} (served: {served})",
                         hint="deploy it with `kservectl serve deploy NAME --model URI --provider local`")
    chosen = [state.models[name]] if name else list(state.models.values())
    if not chosen:
        raise TestFailed(f"no models are served locally for {ctx.cluster!r}",
                         hint="start with `kservectl up --provider local`")
    return [Planned(probe.Target(model_url(m), m.name), payload(m)) for m in chosen if m.proc]


def deploy_model(ctx: Context, name: str, model_uri: str, *, port: int = 0) -> dict[str, Any]:
    require_extra()
    state = LocalState.load(ctx.cluster)
    before = state.models.get(name)
    served = deploy(ctx, state, name, model_uri, port=port)
    unchanged = before is not None and before.proc is not None and served.proc is not None \
        and before.proc.pid == served.proc.pid
    return {"action": "unchanged" if unchanged else ("replaced" if before else "created"), "name": name,
            "namespace": None, "model_uri": model_uri, "storage_uri": served.path, "canary_percent": None,
            "findings": [], "notes": [], "service": describe_service(served)}


def delete_model(ctx: Context, name: str) -> dict[str, Any]:
    state = LocalState.load(ctx.cluster)
    if name not in state.models:
        served = ", ".join(state.models) or "none"
        raise UsageError(f"model {name!r} is not served locally for {ctx.cluster!r} (served: {served})")
    remove(ctx, state, name)
    return {"action": "deleted", "name": name, "namespace": None, "kept": sorted(state.models),
            "notes": ["the registered model and the MLflow store are kept"]}


def status(ctx: Context) -> dict[str, Any]:
    state = LocalState.load(ctx.cluster)
    healed = heal(ctx, state)
    rows = []
    if state.mlflow is not None:
        rows.append({"component": "mlflow", "pid": state.mlflow.pid, "port": state.mlflow.port,
                     "ready": procs.alive(state.mlflow), "url": tracking_uri(state.mlflow),
                     "log": state.mlflow.log})
    for served in state.models.values():
        rows.append({"component": f"model {served.name}", "pid": served.proc.pid if served.proc else None,
                     "port": served.proc.port if served.proc else None,
                     "ready": bool(served.proc and procs.alive(served.proc)),
                     "url": model_url(served) if served.proc else None,
                     "log": served.proc.log if served.proc else None})
    return {"provider": "local", "cluster": ctx.cluster, "state_dir": str(state.root), "healed": healed,
            "components": rows, "ready": bool(rows) and all(r["ready"] for r in rows)}


def cleanup(ctx: Context, *, delete_data: bool = False) -> dict[str, Any]:
    """Stop every process kservectl started (by pid). Keeps the MLflow store unless delete_data."""
    state = LocalState.load(ctx.cluster)
    stopped: list[str] = []
    for served in list(state.models.values()):
        if served.proc and procs.stop(served.proc, ctx.clock):
            stopped.append(f"model {served.name} (pid {served.proc.pid})")
    if state.mlflow and procs.stop(state.mlflow, ctx.clock):
        stopped.append(f"mlflow (pid {state.mlflow.pid})")
    deleted: list[str] = []
    state.models.clear()
    state.mlflow = None
    if delete_data:
        for path in (state.mlflow_dir, state.models_dir):
            if path.exists():
                shutil.rmtree(path)
                deleted.append(str(path))
    if state.root.exists():
        state.save()
    kept = [] if delete_data or not state.mlflow_dir.exists() else [str(state.mlflow_dir)]
    return {"provider": "local", "stopped": stopped, "deleted": deleted, "kept": kept}
