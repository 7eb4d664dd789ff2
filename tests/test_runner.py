"""The tool runner: timeouts, narrow retries, redaction, dry-run recording, missing tools."""

from __future__ import annotations

import os
import stat
import textwrap
import time
from pathlib import Path

import pytest

from kservectl.clock import FakeClock
from kservectl.errors import ToolError, ToolMissingError, ToolTimeout
from kservectl.redact import Redactor
from kservectl.runner import DryRunRunner, Runner, helm_wait_flags
from kservectl.settings import Backoff, Settings, ToolTimeouts


def make_tool(bindir: Path, name: str, body: str) -> Path:
    """An executable python script on a private PATH, standing in for eksctl/helm/kubectl."""
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text("#!/usr/bin/env python3\nimport os, sys, time, subprocess\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


def runner_for(bindir: Path, tmp_path: Path, **kw) -> tuple[Runner, list, FakeClock]:
    lines: list[tuple[str, str, str]] = []
    clock = FakeClock()
    settings = kw.pop("settings", Settings(tools=ToolTimeouts(kill_grace=1.0)))
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "COUNTER": str(tmp_path / "count")}
    cls = kw.pop("cls", Runner)
    r = cls(settings=settings, log_path=tmp_path / "run.log", sink=lambda *a: lines.append(a), clock=clock,
            env=env, **kw)
    return r, lines, clock


COUNTING = """
counter = os.environ["COUNTER"]
n = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(n + 1))
"""


def test_output_lines_stream_to_the_sink_and_the_log(bindir, tmp_path):
    make_tool(bindir, "kubectl", 'print("line one"); print("line two", flush=True); print("warn", file=sys.stderr)')
    r, lines, _ = runner_for(bindir, tmp_path)
    result = r.run(["kubectl", "get", "pods"])
    assert result.returncode == 0 and result.stdout == "line one\nline two"
    assert ("kubectl", "stdout", "line one") in lines and ("kubectl", "stderr", "warn") in lines
    log = (tmp_path / "run.log").read_text()
    assert "$ kubectl get pods" in log and "[kubectl stdout] line two" in log and "# exit 0" in log


def test_stdin_is_closed_so_a_prompting_tool_cannot_hang(bindir, tmp_path):
    make_tool(bindir, "eksctl", 'data = sys.stdin.read(); print(f"read {len(data)} bytes")')
    r, _, _ = runner_for(bindir, tmp_path)
    assert r.run(["eksctl", "create", "cluster"], timeout=10).stdout == "read 0 bytes"


def test_a_call_past_its_timeout_is_stopped_with_its_children(bindir, tmp_path):
    pidfile = tmp_path / "child.pid"
    make_tool(bindir, "helm", f"""
child = subprocess.Popen(["sleep", "60"])
open({str(pidfile)!r}, "w").write(str(child.pid))
print("installing...", flush=True)
time.sleep(60)
""")
    r, _, _ = runner_for(bindir, tmp_path)
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        r.run(["helm", "upgrade", "--install", "x", "chart"], timeout=1.0)
    assert time.monotonic() - started < 10
    assert "timed out after 1s" in info.value.one_line()
    assert info.value.argv == ["helm", "upgrade", "--install", "x", "chart"]
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the tool's child process outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_known_transient_message_is_retried_with_backoff_until_success(bindir, tmp_path):
    make_tool(bindir, "kubectl", COUNTING + """
if n < 2:
    print('Error from server (InternalError): Internal error occurred: failed calling webhook '
          '"inferenceservice.kserve-webhook-server.validator": no endpoints available for service', file=sys.stderr)
    sys.exit(1)
print("inferenceservice.serving.kserve.io/wine created")
""")
    attempts: list[tuple[int, int]] = []
    r, _, clock = runner_for(bindir, tmp_path, on_attempt=lambda argv, i, n, exc: attempts.append((i, n)))
    result = r.run(["kubectl", "apply", "-f", "isvc.yaml"])
    assert result.stdout.endswith("created")
    assert (tmp_path / "count").read_text() == "3"
    assert attempts == [(1, 4), (2, 4)]
    assert len(clock.sleeps) == 2 and all(0 <= s <= 30 for s in clock.sleeps)
    assert "transient failure, attempt 1/4" in (tmp_path / "run.log").read_text()


def test_retries_are_bounded_and_end_with_the_last_error(bindir, tmp_path):
    make_tool(bindir, "helm",
              COUNTING + 'print("Error: dial tcp 10.0.0.1:443: i/o timeout", file=sys.stderr); sys.exit(1)')
    settings = Settings(tool_retry=Backoff(attempts=3, initial=1, maximum=2))
    r, _, clock = runner_for(bindir, tmp_path, settings=settings)
    with pytest.raises(ToolError) as info:
        r.run(["helm", "list"])
    assert (tmp_path / "count").read_text() == "3"
    assert info.value.transient and "i/o timeout" in info.value.one_line()
    assert len(clock.sleeps) == 2


def test_a_permanent_failure_is_not_retried_and_names_argv_exit_code_and_stderr(bindir, tmp_path):
    make_tool(bindir, "helm", COUNTING + """
print("some progress")
print('Error: INSTALLATION FAILED: chart "kserve-crd" version "v9.9.9" not found', file=sys.stderr)
sys.exit(1)
""")
    r, _, clock = runner_for(bindir, tmp_path)
    with pytest.raises(ToolError) as info:
        r.run(["helm", "upgrade", "--install", "kserve-crd", "oci://ghcr.io/kserve/charts/kserve-crd"])
    exc = info.value
    assert (tmp_path / "count").read_text() == "1" and clock.sleeps == []
    assert not exc.transient and exc.returncode == 1
    assert exc.argv[:3] == ["helm", "upgrade", "--install"]
    line = exc.one_line()
    assert "exited with code 1" in line and 'version "v9.9.9" not found' in line
    assert str(tmp_path / "run.log") in line


def test_secrets_never_reach_the_sink_the_log_or_the_error(bindir, tmp_path):
    secret = "Zq8-very-secret-Pw"
    make_tool(bindir, "helm", f"""
print("admin password is {secret}")
print("AWS_SECRET_ACCESS_KEY=abcdEFGHijklMNOPqrstUVWXyz0123456789abcd token: tok-123456")
print("failed with {secret}", file=sys.stderr)
sys.exit(1)
""")
    redactor = Redactor([secret])
    r, lines, _ = runner_for(bindir, tmp_path, redactor=redactor)
    with pytest.raises(ToolError) as info:
        r.run(["helm", "upgrade", "--install", "mlflow", "chart", "--set", f"auth.password={secret}",
               "--password", secret])
    everything = "\n".join(map(str, lines)) + (tmp_path / "run.log").read_text() + info.value.one_line()
    everything += " ".join(info.value.argv)
    assert secret not in everything
    assert "abcdEFGHijklMNOPqrstUVWXyz0123456789abcd" not in everything and "tok-123456" not in everything
    assert "auth.password=<redacted>" in everything


def test_a_dry_run_records_mutating_commands_and_runs_none_of_them(bindir, tmp_path):
    marker = tmp_path / "ran"
    make_tool(bindir, "eksctl", f'open({str(marker)!r}, "w").write("x"); print("0.230.0")')
    r, lines, _ = runner_for(bindir, tmp_path, cls=DryRunRunner)
    result = r.run(["eksctl", "create", "cluster", "-f", "cluster.yaml"])
    assert result.dry_run and not marker.exists()
    assert r.recorded == [["eksctl", "create", "cluster", "-f", "cluster.yaml"]]
    assert ("eksctl", "plan", "would run: eksctl create cluster -f cluster.yaml") in lines
    r.run(["eksctl", "get", "cluster"], mutating=False)  # read-only calls do run
    assert marker.exists() and len(r.recorded) == 1


def test_a_missing_tool_is_one_line_with_the_install_hint_and_exit_code_2(tmp_path):
    r, _, _ = runner_for(tmp_path / "empty-bin", tmp_path)
    with pytest.raises(ToolMissingError) as info:
        r.run(["eksctl", "version"])
    assert info.value.exit_code == 2
    assert info.value.one_line() == (
        "eksctl was not found on PATH (install eksctl >= 0.215.0: https://eksctl.io/installation/)")


def test_a_too_old_tool_is_refused_with_the_version_it_needs(bindir, tmp_path):
    make_tool(bindir, "helm", 'print("v3.9.4+g1234")')
    r, _, _ = runner_for(bindir, tmp_path)
    with pytest.raises(ToolMissingError) as info:
        r.version("helm")
    assert "helm 3.9.4 is too old (need >= 3.14.0)" in info.value.one_line()


def test_tool_versions_are_parsed_and_cached(bindir, tmp_path):
    make_tool(bindir, "helm", COUNTING + 'print("v4.1.4+g05fa379")')
    make_tool(bindir, "kubectl", 'print(\'{"clientVersion": {"gitVersion": "v1.34.5"}}\')')
    make_tool(bindir, "eksctl", 'print("0.230.0")')
    r, _, _ = runner_for(bindir, tmp_path)
    assert r.version("helm") == (4, 1, 4) and r.version("helm") == (4, 1, 4)
    assert (tmp_path / "count").read_text() == "1"
    assert r.version("kubectl") == (1, 34, 5) and r.version("eksctl") == (0, 230, 0)


def test_helm_flags_follow_the_installed_major_version():
    assert helm_wait_flags(4, 900) == ["--timeout", "15m0s", "--wait=watcher", "--rollback-on-failure"]
    assert helm_wait_flags(3, 90) == ["--timeout", "1m30s", "--wait", "--atomic"]
    assert "--atomic" not in helm_wait_flags(4, 60) and "--rollback-on-failure" not in helm_wait_flags(3, 60)


CTRL_C_SCRIPT = """
import sys
from pathlib import Path
from kservectl.runner import Runner
from kservectl.settings import Settings, ToolTimeouts

runner = Runner(settings=Settings(tools=ToolTimeouts(kill_grace=1.0)), log_path=Path(sys.argv[1]))
try:
    runner.run(["eksctl", "create", "cluster"], timeout=30)
except KeyboardInterrupt:
    print("KeyboardInterrupt reached the caller", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_the_running_tool_and_its_children(bindir, tmp_path):
    """A real SIGINT to a kservectl process whose main thread runs a tool (as a verb does): the
    runner stops the tool's whole process group and lets the KeyboardInterrupt go on."""
    import signal
    import subprocess
    import sys

    pidfile = tmp_path / "child.pid"
    make_tool(bindir, "eksctl", f"""
child = subprocess.Popen(["sleep", "60"])
open({str(pidfile)!r}, "w").write(str(child.pid))
print("creating cluster...", flush=True)
time.sleep(60)
""")
    log = tmp_path / "run.log"
    env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(log)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert pidfile.exists(), proc.communicate(timeout=5)
        os.kill(proc.pid, signal.SIGINT)  # the tool runs in its own session: only kservectl gets it
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and out == "KeyboardInterrupt reached the caller\n", err
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    try:
        assert not _alive(child)
    finally:
        _kill(child)
    assert "# interrupted: stopping eksctl" in log.read_text()


def test_a_stopped_run_stops_the_tool_from_the_tasks_own_thread_and_starts_no_other(bindir, tmp_path):
    """How Ctrl-C reaches a tool that `up` runs in a worker thread: the run's stop event, seen by
    the runner's wait through its clock (no exception is raised into the thread from outside)."""
    import threading

    from kservectl.clock import StoppableClock

    pidfile = tmp_path / "child.pid"
    make_tool(bindir, "eksctl", f"""
child = subprocess.Popen(["sleep", "60"])
open({str(pidfile)!r}, "w").write(str(child.pid))
time.sleep(60)
""")
    r, _, _ = runner_for(bindir, tmp_path)
    stop = threading.Event()
    r.clock = StoppableClock(r.clock, stop)
    outcome: list[BaseException] = []

    def task() -> None:
        try:
            r.run(["eksctl", "create", "cluster"], timeout=30)
        except BaseException as exc:  # noqa: BLE001 - the test inspects what ended the run
            outcome.append(exc)

    worker = threading.Thread(target=task, daemon=True)
    started = time.monotonic()
    worker.start()
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(timeout=20)
    assert not worker.is_alive() and time.monotonic() - started < 15  # not the tool's 60 s, nor the 30 s timeout
    assert len(outcome) == 1 and isinstance(outcome[0], KeyboardInterrupt)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)
    log = (tmp_path / "run.log").read_text()
    assert "# interrupted: stopping eksctl" in log

    with pytest.raises(KeyboardInterrupt):
        r.run(["eksctl", "get", "cluster"], timeout=30)
    assert "$ eksctl get cluster" not in (tmp_path / "run.log").read_text()  # a stopped run starts no tool


def test_a_child_that_keeps_the_output_open_delays_the_result_only_by_the_drain_setting(bindir, tmp_path):
    pidfile = tmp_path / "child.pid"
    make_tool(bindir, "helm", f"""
child = subprocess.Popen(["sleep", "4"])  # inherits stdout and stderr, outlives helm
open({str(pidfile)!r}, "w").write(str(child.pid))
print("deployed", flush=True)
""")
    settings = Settings(tools=ToolTimeouts(kill_grace=1.0, output_drain=0.2))
    r, _, _ = runner_for(bindir, tmp_path, settings=settings)
    started = time.monotonic()
    try:
        result = r.run(["helm", "upgrade", "--install", "x", "chart"], timeout=30)
        elapsed = time.monotonic() - started
    finally:
        _kill(int(pidfile.read_text()))
    assert result.returncode == 0 and result.stdout == "deployed"
    assert elapsed < 2.5, f"waited {elapsed:.1f}s for the output of a finished tool"


def test_a_stopped_tool_gets_the_configured_grace_then_sigkill_and_the_configured_wait(monkeypatch):
    import signal
    import subprocess

    from kservectl import runner as runner_module

    class Stubborn:
        """A process that never ends by itself (as one stuck in the kernel)."""

        pid = 4242

        def __init__(self) -> None:
            self.waits: list[float] = []

        def wait(self, timeout: float) -> int:
            self.waits.append(timeout)
            raise subprocess.TimeoutExpired("helm", timeout)

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(runner_module.os, "killpg", lambda pid, sig: sent.append((pid, sig)))
    proc = Stubborn()
    Runner(settings=Settings(tools=ToolTimeouts(kill_grace=1.5, kill_wait=0.25)))._stop(proc)  # type: ignore[arg-type]
    assert sent == [(4242, signal.SIGTERM), (4242, signal.SIGKILL)]
    assert proc.waits == [1.5, 0.25]


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
