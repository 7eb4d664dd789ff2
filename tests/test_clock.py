"""The clock seam, and the StoppableClock that carries Ctrl-C to the tasks `up` runs in threads."""

from __future__ import annotations

import threading
import time

import pytest

from kservectl.clock import FakeClock, StoppableClock, SystemClock


def test_a_stoppable_fake_clock_keeps_fake_time_until_stopped_then_every_sleep_and_checkpoint_raise():
    inner = FakeClock()
    stop = threading.Event()
    clock = StoppableClock(inner, stop)
    clock.sleep(30)
    clock.checkpoint()
    assert inner.sleeps == [30] and clock.monotonic() == inner.monotonic() == 1030.0
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        clock.checkpoint()
    with pytest.raises(KeyboardInterrupt):
        clock.sleep(5)
    assert inner.sleeps == [30]  # the stopped sleep took no time


def test_a_real_time_sleep_under_way_ends_as_soon_as_the_run_is_stopped():
    stop = threading.Event()
    clock = StoppableClock(SystemClock(), stop)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        clock.sleep(60)
    assert time.monotonic() - started < 10  # the 60 s sleep was cut short


def test_plain_clocks_are_never_stopped():
    SystemClock().checkpoint()
    FakeClock().checkpoint()
    assert StoppableClock(FakeClock(), threading.Event()).real_time is False
    assert StoppableClock(SystemClock(), threading.Event()).real_time is True
