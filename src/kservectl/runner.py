"""One runner for eksctl, helm and kubectl (STYLE 4).

Argument lists only (no shell), stdin closed, a timeout on every call, every output line sent
to a sink (the terminal's live view) and to the per-run log file, failures raised as
``ToolError`` with argv, exit code and the tail of stderr. Only known transient messages are
retried (tenacity, bounded, jittered, on the injected clock). Ctrl-C stops the child's whole
process group. Secrets are redacted before anything is shown or logged.

``DryRunRunner`` records every mutating command line instead of running it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kservectl.clock import Clock, SystemClock
from kservectl.errors import KservectlError, ToolError, ToolMissingError, ToolTimeout
from kservectl.redact import Redactor
from kservectl.settings import DEFAULT_SETTINGS, Settings

_COMMON_TRANSIENT = (
    r"connection refused",
    r"connection reset by peer",
    r"i/o timeout",
    r"TLS handshake timeout",
    r"the server is currently unable to handle the request",
    r"etcdserver: request timed out",
    r"\bThrottling\b",
    r"Rate exceeded",
    r"RequestLimitExceeded",
    r"ServiceUnavailable",
    r"503 Service Unavailable",
    r"502 Bad Gateway",
    r"too many requests",
)
_KUBE_TRANSIENT = (
    r"failed calling webhook",  # the KServe / cert-manager webhook race (no endpoints yet)
    r"no endpoints available for service",
    r"the object has been modified; please apply your changes",
    r"no matches for kind",  # a CRD that is not Established yet
    r"ensure CRDs are installed first",
)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version_argv: tuple[str, ...]
    version_pattern: str
    minimum: tuple[int, ...]
    install_hint: str
    transient: tuple[str, ...]
    default_timeout: str = "default"


TOOLS: dict[str, ToolSpec] = {
    "eksctl": ToolSpec(
        "eksctl", ("version",), r"(\d+\.\d+\.\d+)", (0, 215, 0),
        "install eksctl >= 0.215.0: https://eksctl.io/installation/",
        _COMMON_TRANSIENT,
    ),
    "helm": ToolSpec(
        "helm", ("version", "--short"), r"v(\d+\.\d+\.\d+)", (3, 14, 0),
        "install helm >= 3.14 (helm 4 supported): https://helm.sh/docs/intro/install/",
        _COMMON_TRANSIENT + _KUBE_TRANSIENT + (r"context deadline exceeded", r"timed out waiting for the condition"),
        "helm",
    ),
    "kubectl": ToolSpec(
        "kubectl", ("version", "--client", "-o", "json"), r"\"gitVersion\":\s*\"v(\d+\.\d+\.\d+)", (1, 30, 0),
        "install kubectl >= 1.30: https://kubernetes.io/docs/tasks/tools/",
        _COMMON_TRANSIENT + _KUBE_TRANSIENT,
        "kubectl",
    ),
}


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class RunResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    dry_run: bool = False


class Sink(Protocol):
    def __call__(self, tool: str, stream: str, line: str) -> None: ...


def _null_sink(tool: str, stream: str, line: str) -> None:
    return None


@dataclass
class Runner:
    """Runs external tools. ``sink`` receives every (redacted) output line."""

    settings: Settings = DEFAULT_SETTINGS
    log_path: Path | None = None
    sink: Sink = _null_sink
    redactor: Redactor = field(default_factory=Redactor)
    clock: Clock = field(default_factory=SystemClock)
    env: Mapping[str, str] | None = None
    on_attempt: Callable[[list[str], int, int, ToolError], None] | None = None
    _versions: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _log_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- tools -------------------------------------------------------------------------------
    def which(self, tool: str) -> str:
        path_env = (self.env or os.environ).get("PATH")
        found = shutil.which(tool, path=path_env)
        if not found:
            spec = TOOLS.get(tool)
            hint = spec.install_hint if spec else "install it and put it on PATH"
            raise ToolMissingError(f"{tool} was not found on PATH", hint=hint)
        return found

    def version(self, tool: str) -> tuple[int, ...]:
        """The tool's version, checked against its minimum (cached per runner)."""
        if tool in self._versions:
            return self._versions[tool]
        spec = TOOLS[tool]
        self.which(tool)
        result = self._execute([tool, *spec.version_argv], timeout=self.settings.tools.version, check=False)
        match = re.search(spec.version_pattern, result.stdout + result.stderr)
        if result.returncode != 0 or not match:
            raise ToolMissingError(
                f"could not read the {tool} version (`{tool} {' '.join(spec.version_argv)}` "
                f"exited {result.returncode})", hint=spec.install_hint,
            )
        version = parse_version(match.group(1))
        if version < spec.minimum:
            have = ".".join(map(str, version))
            need = ".".join(map(str, spec.minimum))
            raise ToolMissingError(f"{tool} {have} is too old (need >= {need})", hint=spec.install_hint)
        self._versions[tool] = version
        return version

    # -- running -----------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        mutating: bool = True,
        retry: bool = True,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> RunResult:
        """Run ``argv``; retry only on the tool's known transient messages.

        ``mutating`` marks calls that change something (a dry run records them instead).
        """
        del mutating  # the real runner runs everything; DryRunRunner reads it
        argv = [str(a) for a in argv]
        spec = TOOLS.get(Path(argv[0]).name)
        attempts = self.settings.tool_retry.attempts if (retry and spec) else 1
        if timeout is None:
            timeout = getattr(self.settings.tools, spec.default_timeout) if spec else self.settings.tools.default

        from tenacity import (
            RetryCallState,
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            wait_random_exponential,
        )

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, ToolError) and exc.transient and not isinstance(exc, ToolTimeout)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ToolError):
                self._log(f"# transient failure, attempt {state.attempt_number}/{attempts}: {exc.one_line()}")
                if self.on_attempt:
                    self.on_attempt(argv, state.attempt_number, attempts, exc)

        backoff = self.settings.tool_retry
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_random_exponential(multiplier=backoff.initial, max=backoff.maximum),
            retry=retry_if_exception(transient),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._execute, argv, timeout=timeout, env=env, check=check)

    def _execute(
        self, argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None, check: bool = True
    ) -> RunResult:
        tool = Path(argv[0]).name
        executable = self.which(argv[0]) if os.sep not in argv[0] else argv[0]
        shown = self.redactor.argv(argv)
        self.clock.checkpoint()  # a stopped run starts no tool
        self._log("$ " + " ".join(shown))
        full_env = dict(self.env or os.environ)
        if env:
            full_env.update(env)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                [executable, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                start_new_session=True,  # its own process group: Ctrl-C and timeouts stop children too
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise ToolMissingError(f"could not start {tool}: {exc.strerror}",
                                   hint=TOOLS[tool].install_hint if tool in TOOLS else None) from exc

        out_lines: list[str] = []
        err_tail: deque[str] = deque(maxlen=20)
        err_all: list[str] = []

        def pump(stream, name: str, store: list[str]) -> None:
            for raw in stream:
                line = self.redactor.text(raw.rstrip("\n"))
                store.append(line)
                if name == "stderr":
                    err_tail.append(line)
                self._log(f"[{tool} {name}] {line}")
                self.sink(tool, name, line)
            stream.close()

        readers = [
            threading.Thread(target=pump, args=(proc.stdout, "stdout", out_lines), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "stderr", err_all), daemon=True),
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            timed_out = not self._wait(proc, timeout)
            if timed_out:
                self._stop(proc)
        except KeyboardInterrupt:
            self._log("# interrupted: stopping " + tool)
            self._stop(proc)
            raise
        for reader in readers:  # a child that outlives the tool may hold its pipes open
            reader.join(timeout=self.settings.tools.output_drain)
        duration = time.monotonic() - started
        stdout = "\n".join(out_lines)
        stderr = "\n".join(err_all)
        log = str(self.log_path) if self.log_path else None
        if timed_out:
            self._log(f"# timed out after {timeout:g}s")
            raise ToolTimeout(shown, proc.returncode, list(err_tail) or out_lines[-5:], log_path=log,
                              reason=f"timed out after {timeout:g}s")
        self._log(f"# exit {proc.returncode} in {duration:.1f}s")
        if check and proc.returncode != 0:
            tail = list(err_tail) or out_lines[-5:]
            spec = TOOLS.get(tool)
            text = stderr + "\n" + stdout
            transient = bool(spec) and any(re.search(p, text, re.IGNORECASE) for p in spec.transient)
            raise ToolError(shown, proc.returncode, tail, transient=transient, log_path=log)
        return RunResult(argv, proc.returncode, stdout, stderr, duration)

    def _wait(self, proc: subprocess.Popen[str], timeout: float) -> bool:
        """Wait for the tool to exit (True) or ``timeout`` to pass (False), asking the clock in
        short steps whether the run was stopped: its checkpoint raises KeyboardInterrupt then."""
        deadline = time.monotonic() + timeout
        while True:
            self.clock.checkpoint()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return proc.poll() is not None
            try:
                proc.wait(timeout=min(self.settings.tools.stop_poll, remaining))
                return True
            except subprocess.TimeoutExpired:
                continue

    def _stop(self, proc: subprocess.Popen[str]) -> None:
        tools = self.settings.tools
        for sig, grace in ((signal.SIGTERM, tools.kill_grace), (signal.SIGKILL, tools.kill_wait)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def _log(self, line: str) -> None:
        if self.log_path is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._log_lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {line}\n")


@dataclass
class DryRunRunner(Runner):
    """Records each mutating command line (redacted) instead of running it; read-only calls run."""

    recorded: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, mutating: bool = True, **kwargs) -> RunResult:  # type: ignore[override]
        argv = [str(a) for a in argv]
        if not mutating:
            return super().run(argv, mutating=False, **kwargs)
        shown = self.redactor.argv(argv)
        self.recorded.append(shown)
        self._log("(dry run) would run: " + " ".join(shown))
        self.sink(Path(argv[0]).name, "plan", "would run: " + " ".join(shown))
        return RunResult(argv, 0, "", "", 0.0, dry_run=True)


def helm_major(runner: Runner) -> int:
    return runner.version("helm")[0]


def local_helm_major(settings: Settings = DEFAULT_SETTINGS) -> int:
    """The major version of the helm on this machine, for the command lines a plan shows
    (4 when helm is missing, too old or unreadable). A local probe, logged nowhere: plans make no
    AWS or Kubernetes call and need no tool."""
    try:
        return helm_major(Runner(settings=settings))
    except KservectlError:
        return 4


def helm_wait_flags(major: int, timeout_s: float, *, rollback: bool = True) -> list[str]:
    """Wait/rollback flags for the installed Helm: Helm 4 replaced ``--atomic`` with
    ``--rollback-on-failure`` and ``--wait`` takes a strategy."""
    minutes, seconds = divmod(int(timeout_s), 60)
    flags = ["--timeout", f"{minutes}m{seconds}s"]
    if major >= 4:
        flags.append("--wait=watcher")
        if rollback:
            flags.append("--rollback-on-failure")
    else:
        flags.append("--wait")
        if rollback:
            flags.append("--atomic")
    return flags
