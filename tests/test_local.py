"""The local provider end to end, with the real executable, a real MLflow and real MLServer
processes: up → url (json) → test both protocols → a second model → a killed model server
restarted → cleanup leaves no process and no listening port. Plus the bad cases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


@pytest.mark.slow
@pytest.mark.timeout(600)
# MLflow's input-example code trips these pandas/mlflow deprecations while logging the second version
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.models.utils")
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
def test_the_local_journey_from_up_to_cleanup(isolated_env):
    cluster = ("--cluster", "journey", "--provider", "local")
    state_pids: list[int] = []
    ports: list[int] = []
    try:
        # up: MLflow, the example trained + registered + served, tested; returns with servers detached
        up = run("up", *cluster, "--output", "json")
        assert up.returncode == 0, up.stderr[-3000:]
        result = json.loads(up.stdout)  # stdout is only JSON
        assert result["test"]["ok"] is True and result["test"]["verdict"].startswith("PASS")
        assert "started MLflow" in result["actions"] and "serving wine" in result["actions"]
        state = LocalState.load("journey")
        state_pids += [state.mlflow.pid, state.models["wine"].proc.pid]
        ports += [state.mlflow.port, state.models["wine"].proc.port]

        # url --output json: only JSON, absolute URLs
        url = run("url", *cluster, "--output", "json")
        assert url.returncode == 0, url.stderr
        urls = json.loads(url.stdout)
        wine = next(s for s in urls["services"] if s["name"] == "wine")
        port = state.models["wine"].proc.port
        assert wine["v2_infer_url"] == f"http://127.0.0.1:{port}/v2/models/wine/infer"
        assert wine["invocations_url"] == f"http://127.0.0.1:{port}/invocations"
        assert urls["mlflow"]["url"] == f"http://127.0.0.1:{state.mlflow.port}"
        # the printed curl command works as pasted
        curl_v2 = subprocess.run(wine["curl_v2"], shell=True, capture_output=True, text=True, timeout=30)
        assert '"outputs"' in curl_v2.stdout

        # test: both protocols pass, with requests built from the model's input example
        test = run("test", *cluster, "--output", "json")
        assert test.returncode == 0, test.stdout + test.stderr
        checks = {c["name"]: c for c in json.loads(test.stdout)["results"][0]["checks"]}
        assert checks["infer (V2)"]["ok"] and checks["invocations"]["ok"]
        assert checks["infer (V2)"]["predictions"] == checks["infer (V2)"]["rows_sent"] > 0

        # a second model: a new version registered, served on its own port, listed
        from kservectl import example

        second = example.log_and_register(urls["mlflow"]["url"], n_estimators=10)
        assert second.version == "2"
        deploy = run("serve", "deploy", "wine-v2", "--model", second.model_uri, *cluster, "--output", "json")
        assert deploy.returncode == 0, deploy.stderr[-2000:]
        listed = json.loads(run("serve", "list", *cluster, "--output", "json").stdout)["services"]
        assert {s["name"]: s["model_uri"] for s in listed} == {"wine": "models:/wine/1",
                                                              "wine-v2": "models:/wine/2"}
        v2port = LocalState.load("journey").models["wine-v2"].proc.port
        assert v2port != port
        state_pids.append(LocalState.load("journey").models["wine-v2"].proc.pid)
        ports.append(v2port)
        assert run("test", "wine-v2", *cluster).returncode == 0

        # a killed model server is restarted by the next command, which says so
        old = LocalState.load("journey").models["wine"].proc.pid
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        status = run("status", *cluster)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "model server for wine" in status.stderr and "restarting it" in status.stderr
        new = LocalState.load("journey").models["wine"].proc
        assert new.pid != old and alive(new.pid)
        state_pids.append(new.pid)
        ports.append(new.port)
        assert httpx.get(f"http://127.0.0.1:{new.port}/v2/models/wine/ready", timeout=5).status_code == 200

        # cleanup: no process and no listening port left; the MLflow store is kept
        clean = run("cleanup", *cluster, "--yes", "--output", "json")
        assert clean.returncode == 0, clean.stderr
        report = json.loads(clean.stdout)
        assert len(report["stopped"]) == 3 and report["kept"]
        deadline = time.monotonic() + 10
        while any(alive(p) for p in state_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in state_pids if alive(p)] == []
        assert [p for p in ports if listening(p)] == []
        assert (isolated_env / "journey" / "local" / "mlflow" / "mlflow.db").is_file()
    finally:
        for pid in state_pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


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


def test_testing_a_model_that_is_not_served_locally_names_what_is(cli):
    result = cli("test", "nope", "--provider", "local", "--cluster", "empty")
    assert result.exit_code != 0
    assert "no models are served locally" in result.stderr or "is not served locally" in result.stderr
