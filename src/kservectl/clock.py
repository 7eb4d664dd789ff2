"""The clock seam: waits and retries take their time from here, so tests take none.

It also carries Ctrl-C to the tasks `up` runs in worker threads: they run on a
:class:`StoppableClock`, and every sleep, Kubernetes request, AWS call and tool run is a
``checkpoint`` that raises KeyboardInterrupt in the task's own thread once the run is stopped.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    real_time: bool  # do sleeps take real time (a stopped run can cut one short)?

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def time(self) -> float: ...

    def checkpoint(self) -> None: ...


class SystemClock:
    real_time = True

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def time(self) -> float:
        return time.time()

    def checkpoint(self) -> None:
        """Nothing stops a plain clock (Ctrl-C reaches the main thread as KeyboardInterrupt)."""


class FakeClock:
    """A clock whose ``sleep`` advances time instantly. Records every sleep."""

    real_time = False

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return 1_700_000_000.0 + self._now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def checkpoint(self) -> None:
        """Nothing stops a fake clock on its own."""


class StoppableClock:
    """``inner``'s time, for one task of a run that ``stop`` ends: once it is set, ``checkpoint``
    and ``sleep`` raise KeyboardInterrupt, and a real-time sleep already under way ends at once.

    Why not raise the exception in the worker thread from outside: an exception raised
    asynchronously lands at an arbitrary instruction, and one landing in a garbage-collector or
    weakref callback is swallowed, so the task would go on (and a tool it runs would not be
    stopped). A checkpoint is where the task itself asks."""

    def __init__(self, inner: Clock, stop: threading.Event) -> None:
        self.inner = inner
        self.stop = stop

    @property
    def real_time(self) -> bool:
        return self.inner.real_time

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def time(self) -> float:
        return self.inner.time()

    def checkpoint(self) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.inner.checkpoint()

    def sleep(self, seconds: float) -> None:
        self.checkpoint()
        if self.real_time:
            self.stop.wait(max(seconds, 0.0))
        else:
            self.inner.sleep(seconds)
        self.checkpoint()
