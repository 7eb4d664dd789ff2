"""Detached, supervised processes for the local provider.

A process is started in its own session (never holding the caller's stdout or stderr: output
goes to a log file), recorded with its pid, argv and the kernel's start time of that pid
(``/proc/<pid>/stat``), and later recognised by pid *and* that start time (a reused pid has
another start time, so it is not ours). Only a record without a start time falls back to
comparing the command line. Stopping signals the process group, by pid, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from kservectl.clock import Clock
from kservectl.errors import ConfigError, KservectlError


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    argv: list[str]
    port: int
    log: str
    started: float
    # the kernel's start time of the process (clock ticks since boot): with the pid, an identity
    # that a reused pid cannot fake
    starttime: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Proc:
        return cls(**{k: data.get(k) for k in ("name", "pid", "argv", "port", "log", "started", "starttime")})


class ProcessFailed(KservectlError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def choose_port(configured: int, field: str) -> int:
    """A configured port must be free (a clear error otherwise); 0 picks a free one."""
    if configured == 0:
        return free_port()
    if port_in_use(configured):
        raise ConfigError(field, configured, "that port is already in use on 127.0.0.1; "
                                             "free it or set 0 to pick a free port")
    return configured


def start(name: str, argv: Sequence[str], *, log: Path, port: int, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n# kservectl starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(env) if env is not None else None, cwd=cwd, close_fds=True,
        )
    return Proc(name, popen.pid, list(argv), port, str(log), time.time(), _stat(popen.pid)[1])


def _stat(pid: int) -> tuple[bytes | None, int | None]:
    """(state, start time) from /proc/<pid>/stat, or (None, None) when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[0], int(fields[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None, None


def alive(proc: Proc) -> bool:
    """Running, not a zombie, and still the process we started (same pid and start time)."""
    state, starttime = _stat(proc.pid)
    if state is None:
        return False
    if state in (b"Z", b"X"):
        _reap(proc.pid)
        return False
    if proc.starttime is not None:
        return starttime == proc.starttime
    try:  # no recorded start time: fall back to the command line
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            cmdline = [part.decode(errors="replace") for part in fh.read().split(b"\0") if part]
    except FileNotFoundError:
        return False
    return _same_command(cmdline, proc.argv)


def _same_command(cmdline: list[str], argv: list[str]) -> bool:
    if not cmdline:  # the kernel shows an empty command line for a moment around exec
        return True
    # an interpreter may rewrite argv[0] (python script shebangs): compare the arguments and the
    # program's base name
    tail = argv[1:]
    return cmdline[-len(tail):] == tail if tail else Path(cmdline[0]).name == Path(argv[0]).name


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(proc: Proc, clock: Clock, grace: float = 10.0) -> bool:
    """Stop the process group we started. Returns False when it was not running."""
    if not alive(proc):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(proc):
                return True
            clock.sleep(0.1)
    return not alive(proc)


def log_tail(proc: Proc | str, lines: int = 15) -> list[str]:
    path = Path(proc.log if isinstance(proc, Proc) else proc)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def wait_http(url: str, proc: Proc, *, timeout: float, clock: Clock, what: str, ok=None) -> None:
    """Poll ``url`` until it answers 200 (or ``ok(response)``), the process dies, or the deadline."""
    import httpx

    deadline = clock.monotonic() + timeout
    last = "no answer yet"
    while clock.monotonic() < deadline:
        if not alive(proc):
            tail = " | ".join(log_tail(proc, 8))
            raise ProcessFailed(f"{what} exited while starting (log {proc.log}): {tail}")
        try:
            response = httpx.get(url, timeout=2.0)
            if (ok(response) if ok else response.status_code == 200):
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        clock.sleep(0.25)
    tail = " | ".join(log_tail(proc, 5))
    raise ProcessFailed(f"{what} was not ready at {url} after {timeout:g}s ({last}); log {proc.log}: {tail}")
