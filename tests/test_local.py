"""The local provider end to end, with the real executable, a real MLflow and real MLServer
processes: up → url (json) → test both protocols → a second model → a killed model server
restarted → cleanup leaves no process and no listening port. Plus the bad cases."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import httpx
import pytest

from kservectl.local import procs
from kservectl.local.procs import Proc
from kservectl.local.state import LocalState

KSERVECTL = str(Path(sys.executable).parent / "kservectl")


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KSERVECTL, *args], capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy(), stdin=subprocess.DEVNULL)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Platform:
    """The local platform of the journey: its own KSERVECTL_HOME, `local.model_port` pinned."""

    home: Path
    cwd: Path
    env: dict[str, str]
    model_port: int
    up: dict = field(default_factory=dict)
    deploy: dict = field(default_factory=dict)
    mlflow_url: str = ""
    seen: list[Proc] = field(default_factory=list)  # every process it started, for the last resort

    def run(self, *args: str, timeout: float = 240, env: dict[str, str] | None = None):
        return subprocess.run([KSERVECTL, *args, *CLUSTER], capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL, cwd=self.cwd)

    def state(self) -> LocalState:
        with mock.patch.dict(os.environ, {"KSERVECTL_HOME": str(self.home)}):
            state = LocalState.load("journey")
        self.seen += [p for p in [state.mlflow, *(m.proc for m in state.models.values())] if p]
        return state

    @property
    def root(self) -> Path:
        return self.home / "journey" / "local"


CLUSTER = ("--cluster", "journey", "--provider", "local")
REAL = [pytest.mark.slow, pytest.mark.timeout(600)]  # the first test to use `platform` starts it


def real(test):
    for mark in REAL:
        test = mark(test)
    return test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    """`up --provider local` run once for the module (with `local.model_port` pinned), and a second
    model (a new version of the example) deployed beside it. The tests run in file order: the
    cleanup test, which ends the platform, is the last one; the finalizer cleans up in any case."""
    from kservectl import example

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KSERVECTL_", "AWS_", "MLFLOW_")) and k != "KUBECONFIG"}
    home = tmp_path_factory.mktemp("local-home")
    model_port = free_port()
    env |= {"KSERVECTL_HOME": str(home), "KSERVECTL_LOCAL_MODEL_PORT": str(model_port)}
    p = Platform(home, tmp_path_factory.mktemp("local-cwd"), env, model_port)
    try:
        up = p.run("up", "--output", "json")
        assert up.returncode == 0, up.stderr[-3000:]
        p.up = json.loads(up.stdout)  # stdout is only JSON
        p.mlflow_url = p.up["tracking_uri"]
        p.state()
        # a second model: a new version registered, served beside the first
        with warnings.catch_warnings():  # MLflow's input-example code trips pandas/mlflow deprecations
            warnings.simplefilter("ignore")
            second = example.log_and_register(p.mlflow_url, n_estimators=10)
        assert second.model_uri == "models:/wine/2"
        deploy = p.run("serve", "deploy", "wine-v2", "--model", second.model_uri, "--output", "json")
        assert deploy.returncode == 0, deploy.stderr[-2000:]
        p.deploy = json.loads(deploy.stdout)
        p.state()
        yield p
    finally:
        p.run("cleanup", "--yes", "--delete-data", timeout=120)
        for proc in p.seen:  # only if cleanup failed: the process group of a process we started
            if procs.alive(proc):
                os.killpg(proc.pid, signal.SIGKILL)


@real
def test_up_serves_the_example_on_the_configured_model_port_and_leaves_the_servers_running(platform):
    result = platform.up
    assert result["test"]["ok"] is True and result["test"]["verdict"].startswith("PASS")
    assert "started MLflow" in result["actions"] and "serving wine" in result["actions"]
    state = platform.state()
    assert state.models["wine"].proc.port == platform.model_port  # local.model_port
    assert alive(state.mlflow.pid) and alive(state.models["wine"].proc.pid)  # detached: up has returned
    assert listening(platform.model_port)


@real
def test_a_second_model_gets_its_own_free_port_while_the_first_keeps_local_model_port(platform):
    assert platform.deploy["action"] == "created"
    state = platform.state()
    ports = {name: m.proc.port for name, m in state.models.items()}
    assert ports["wine"] == platform.model_port
    assert ports["wine-v2"] not in (platform.model_port, state.mlflow.port)
    listed = json.loads(platform.run("serve", "list", "--output", "json").stdout)["services"]
    assert {s["name"]: (s["model_uri"], s["url"]) for s in listed} == {
        "wine": ("models:/wine/1", f"http://127.0.0.1:{ports['wine']}"),
        "wine-v2": ("models:/wine/2", f"http://127.0.0.1:{ports['wine-v2']}")}
    assert platform.run("test", "wine-v2").returncode == 0


@real
def test_url_prints_only_json_with_absolute_urls_and_curl_commands_that_work(platform):
    url = platform.run("url", "--output", "json")
    assert url.returncode == 0, url.stderr
    urls = json.loads(url.stdout)
    wine = next(s for s in urls["services"] if s["name"] == "wine")
    port = platform.model_port
    assert wine["v2_infer_url"] == f"http://127.0.0.1:{port}/v2/models/wine/infer"
    assert wine["invocations_url"] == f"http://127.0.0.1:{port}/invocations"
    assert urls["mlflow"]["url"] == platform.mlflow_url == f"http://127.0.0.1:{platform.state().mlflow.port}"
    # the printed curl command works as pasted
    curl_v2 = subprocess.run(wine["curl_v2"], shell=True, capture_output=True, text=True, timeout=30)
    assert '"outputs"' in curl_v2.stdout


@real
def test_test_passes_both_protocols_with_requests_from_the_models_input_example(platform):
    test = platform.run("test", "--output", "json")
    assert test.returncode == 0, test.stdout + test.stderr
    results = {r["model"]: r for r in json.loads(test.stdout)["results"]}
    assert set(results) == {"wine", "wine-v2"}
    checks = {c["name"]: c for c in results["wine"]["checks"]}
    assert checks["infer (V2)"]["ok"] and checks["invocations"]["ok"]
    assert checks["infer (V2)"]["predictions"] == checks["infer (V2)"]["rows_sent"] > 0
    assert results["wine"]["payload_source"] == "MLflow input example of models:/wine/1"


@real
def test_testing_a_model_that_is_not_served_locally_names_the_served_ones(platform):
    result = platform.run("test", "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: model 'nope' is not served locally for 'journey' (served: wine, wine-v2) "
        "(deploy it with `kservectl serve deploy NAME --model URI --provider local`)")


@real
def test_serve_status_name_shows_that_model_and_its_process(platform):
    served = platform.state().models["wine-v2"].proc
    result = platform.run("serve", "status", "wine-v2", "--output", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["name"], status["model_uri"], status["ready"], status["pid"], status["url"],
            status["deployment_mode"]) == ("wine-v2", "models:/wine/2", True, served.pid,
                                           f"http://127.0.0.1:{served.port}", "local")
    table = platform.run("serve", "status", "wine-v2", env={"COLUMNS": "200"})  # no cell wrapped at 80
    assert table.returncode == 0 and "wine-v2" in table.stdout and "models:/wine/2" in table.stdout
    assert "models:/wine/1" not in table.stdout  # only the model asked for

    unknown = platform.run("serve", "status", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "Error: model 'nope' is not served locally for 'journey' (served: wine, wine-v2)"


@real
def test_a_short_load_test_reports_throughput_latency_and_status_codes(platform):
    result = platform.run("test", "wine", "--load", "--duration", "1", "--concurrency", "2", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)["results"]
    load = entry["load"]
    assert load["passed"] is True and load["endpoint"] == "v2" and load["concurrency"] == 2
    assert load["requests"] > 0 and load["errors"] == 0 and load["status_codes"] == {"200": load["requests"]}
    assert load["rps"] > 0 and 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"]


class Listener:
    """A TCP port that accepts and counts connections (a stand-in MLflow that must stay untouched)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@real
def test_with_url_mlflow_is_never_contacted(platform):
    listener = Listener()
    try:
        wine = f"http://127.0.0.1:{platform.model_port}"
        result = platform.run("test", "--url", wine, "--model", "wine", "--tracking-uri", listener.url,
                              "--output", "json", env={"MLFLOW_TRACKING_URI": listener.url})
    finally:
        listener.close()
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["ok"] and entry["payload_source"] == "V2 metadata of wine"  # not MLflow's input example
    assert listener.connections == 0


@real
def test_serve_delete_stops_only_that_model_and_keeps_the_registered_model(platform):
    from mlflow import MlflowClient

    deploy = platform.run("serve", "deploy", "wine-extra", "--model", "models:/wine/1", "--output", "json")
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    extra = platform.state().models["wine-extra"].proc
    assert extra.port != platform.model_port  # local.model_port stays with wine

    result = platform.run("serve", "delete", "wine-extra", "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    deleted = json.loads(result.stdout)
    assert (deleted["action"], deleted["kept"]) == ("deleted", ["wine", "wine-v2"])
    assert wait_gone([extra.pid]) == [] and not listening(extra.port)
    assert not (platform.root / "models" / "wine-extra").exists()
    # what was not deleted: the other models still serve, the registered version is still there
    state = platform.state()
    assert sorted(state.models) == ["wine", "wine-v2"]
    assert all(alive(m.proc.pid) for m in state.models.values())
    assert MlflowClient(platform.mlflow_url).get_model_version("wine", "1").status == "READY"

    again = platform.run("serve", "delete", "wine-extra", "--yes")
    assert again.returncode == 2
    assert "model 'wine-extra' is not served locally for 'journey' (served: wine, wine-v2)" in again.stderr


@real
def test_status_reports_each_process_with_its_pid_port_and_readiness(platform):
    state = platform.state()
    expected = {"mlflow": state.mlflow, "model wine": state.models["wine"].proc,
                "model wine-v2": state.models["wine-v2"].proc}
    result = platform.run("status", "--output", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ready"] is True and data["healed"] == []
    assert {c["component"]: (c["pid"], c["port"], c["ready"], c["url"]) for c in data["components"]} == {
        name: (proc.pid, proc.port, True, f"http://127.0.0.1:{proc.port}") for name, proc in expected.items()}

    table = platform.run("status", env={"COLUMNS": "200"})  # no cell wrapped at 80 columns
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "http://127.0.0.1" in line]
    for name, proc in expected.items():
        cells = [re.split(r"\s*│\s*", row.strip("│ ")) for row in rows]
        assert [name, str(proc.pid), str(proc.port), "yes", f"http://127.0.0.1:{proc.port}"] in cells, rows


@real
def test_a_killed_model_server_is_restarted_on_its_configured_port_by_the_next_command(platform):
    old = platform.state().models["wine"].proc.pid
    os.kill(old, signal.SIGKILL)
    assert wait_gone([old]) == []
    status = platform.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"the model server for wine (pid {old}) had exited; restarting it" in status.stderr
    new = platform.state().models["wine"].proc
    assert new.pid != old and alive(new.pid)
    assert new.port == platform.model_port  # local.model_port, also after a restart
    assert httpx.get(f"http://127.0.0.1:{new.port}/v2/models/wine/ready", timeout=5).status_code == 200


@real
def test_cleanup_stops_every_process_and_keeps_the_store_and_delete_data_removes_it(platform):
    """Last in the file: it ends the platform."""
    state = platform.state()
    started = [state.mlflow, *(m.proc for m in state.models.values())]
    clean = platform.run("cleanup", "--yes", "--output", "json")
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert sorted(report["stopped"]) == sorted(
        [f"mlflow (pid {state.mlflow.pid})", *(f"model {n} (pid {m.proc.pid})" for n, m in state.models.items())])
    assert report["deleted"] == [] and report["kept"] == [str(platform.root / "mlflow")]
    assert wait_gone([p.pid for p in started]) == []
    assert [p.port for p in started if listening(p.port)] == []
    store = platform.root / "mlflow"
    assert (store / "mlflow.db").is_file() and any((store / "artifacts").rglob("MLmodel"))

    wipe = platform.run("cleanup", "--yes", "--delete-data", "--output", "json")
    assert wipe.returncode == 0, wipe.stderr
    report = json.loads(wipe.stdout)
    assert report == {"provider": "local", "stopped": [], "kept": [],
                      "deleted": [str(platform.root / "mlflow"), str(platform.root / "models")]}
    assert not store.exists() and not (platform.root / "models").exists()
    assert (platform.root / "logs").is_dir()  # the logs stay for a post-mortem


def test_cleanup_when_nothing_runs_is_a_no_op(cli):
    result = cli("cleanup", "--provider", "local", "--cluster", "idle", "--yes")
    assert result.exit_code == 0
    assert "Nothing was running for 'idle'; nothing to do." in result.stdout


def test_a_configured_port_in_use_is_a_one_line_error_naming_the_key(cli, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("KSERVECTL_LOCAL_MLFLOW_PORT", str(port))
        monkeypatch.setattr("kservectl.local.platform.require_extra", lambda: None)
        result = cli("up", "--provider", "local", "--cluster", "busy")
    assert result.exit_code == 2
    assert f"local.mlflow_port={port} is invalid: that port is already in use" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def _nothing_may_start(*args, **kwargs):
    raise AssertionError(f"a process was started: {args[:1]}")


@pytest.mark.parametrize("command", [("up",), ("serve", "deploy", "wine", "--model", "models:/wine/1")],
                         ids=["up", "serve deploy"])
def test_a_configured_model_port_in_use_is_a_one_line_error_and_nothing_starts(cli, monkeypatch, command):
    monkeypatch.setattr("kservectl.local.procs.start", _nothing_may_start)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("KSERVECTL_LOCAL_MODEL_PORT", str(port))
        result = cli(*command, "--provider", "local", "--cluster", "busy")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: local.model_port={port} is invalid: that port is already in use "
                                     "on 127.0.0.1; free it or set 0 to pick a free port")
    assert LocalState.load("busy").mlflow is None


@pytest.mark.slow
def test_mlflow_failing_to_start_shows_its_log_tail(isolated_env):
    store = isolated_env / "broken" / "local" / "mlflow"
    store.mkdir(parents=True)
    (store / "mlflow.db").write_text("this is not a sqlite database")
    result = run("up", "--provider", "local", "--cluster", "broken", timeout=180)
    assert result.returncode == 1
    assert "the MLflow server exited while starting" in result.stderr
    assert "file is not a database" in result.stderr
    assert str(isolated_env / "broken" / "local" / "logs" / "mlflow.log") in result.stderr


def test_without_the_local_extra_one_line_says_what_to_install(cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("mlserver") else real(name, *a))
    result = cli("up", "--provider", "local", "--cluster", "bare")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: the local provider needs mlserver and mlserver_mlflow, which are "
                                     "not installed (run: pip install 'kservectl[local]')")


def test_testing_a_model_when_nothing_is_served_locally_says_none_is(cli):
    result = cli("test", "nope", "--provider", "local", "--cluster", "empty")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: model 'nope' is not served locally for 'empty' (served: none) "
        "(deploy it with `kservectl serve deploy NAME --model URI --provider local`)")


def test_local_model_port_belongs_to_one_model_and_port_wins_over_it(tmp_path):
    from types import SimpleNamespace

    from kservectl.local.platform import _wanted_port
    from kservectl.local.state import ServedModel

    ctx = SimpleNamespace(config=SimpleNamespace(local=SimpleNamespace(model_port=8080)))
    state = LocalState(tmp_path)
    assert _wanted_port(ctx, state, "wine") == (8080, "local.model_port")  # the first model served
    state.models["wine"] = ServedModel("wine", "models:/wine/1", "/m", Proc("model wine", 1, ["mlserver"], 8080,
                                                                           "log", 0.0, 1))
    assert _wanted_port(ctx, state, "wine") == (8080, "local.model_port")  # keeps it: new versions, restarts
    assert _wanted_port(ctx, state, "wine-v2") == (0, "")  # any free port
    assert _wanted_port(ctx, state, "wine-v2", 9000) == (9000, "--port")
