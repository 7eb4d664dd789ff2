"""An async HTTP load generator for ``kservectl test --load`` (and the local provider).

Two modes, both bounded by time (``duration_s``) and optionally by count (``max_requests``):

* closed loop (default): ``concurrency`` workers each send the next request as soon as the
  previous one is answered, over keep-alive connections (aiohttp, one connection per worker);
* open loop (``rate``): requests start at a fixed rate, at most ``concurrency`` in flight; when
  the server falls behind, starts are delayed and the report says how many were late.

The report gives requests per second, p50/p95/p99 latency, the error rate and every status code
(and transport error) seen. ``measure_cold_start`` times the first request to a service scaled
to zero: it is held (or answered 502/503/504 and retried) until a replica is up, and the time to
the first successful answer is the cold start.

Provider-agnostic: no Kubernetes, no Typer. aiohttp is imported inside the functions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class LoadSpec:
    url: str
    body: bytes | None = None
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 8
    duration_s: float = 10.0
    rate: float | None = None  # requests per second (open loop); None: closed loop
    max_requests: int | None = None
    timeout_s: float = 30.0  # per request

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.duration_s <= 0 and not self.max_requests:
            raise ValueError("give a positive duration or a request count")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0")


@dataclass
class ColdStart:
    seconds: float  # from the first attempt to the first successful answer
    attempts: int
    status: int | None  # the final status
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "attempts": self.attempts, "status": self.status,
                "ok": self.ok, "detail": self.detail}


@dataclass
class LoadReport:
    requests: int
    ok: int
    duration_s: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    status_codes: dict[str, int] = field(default_factory=dict)
    concurrency: int = 1
    rate: float | None = None
    late_starts: int = 0  # open loop: requests started more than one interval late
    cold_start: ColdStart | None = None
    cold_start_note: str = ""

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the latencies in milliseconds (q in 0..100)."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    def as_dict(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "requests": self.requests, "ok": self.ok, "errors": self.errors,
            "error_rate": round(self.error_rate, 4), "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 2), "p50_ms": ms(self.percentile(50)), "p95_ms": ms(self.percentile(95)),
            "p99_ms": ms(self.percentile(99)),
            "mean_ms": ms(sum(self.latencies_ms) / len(self.latencies_ms)) if self.latencies_ms else None,
            "max_ms": ms(max(self.latencies_ms)) if self.latencies_ms else None,
            "status_codes": dict(sorted(self.status_codes.items())), "concurrency": self.concurrency,
            "rate": self.rate, "late_starts": self.late_starts,
            "cold_start": self.cold_start.as_dict() if self.cold_start else None,
            "cold_start_note": self.cold_start_note,
        }


def _session(concurrency: int, timeout_s: float, headers: Mapping[str, str]):
    import aiohttp

    # (no enable_cleanup_closed: a work-around for SSL transports that aiohttp deprecates where
    # Python fixed them, 3.12.8 / 3.13.1, and warns about there)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, headers=dict(headers),
                                 timeout=aiohttp.ClientTimeout(total=timeout_s))


async def _send(session: Any, method: str, url: str, body: bytes | None) -> tuple[str, bool]:
    """One request: (status key, success). Transport errors are keys too (``error:<Kind>``)."""
    import aiohttp

    try:
        async with session.request(method, url, data=body) as response:
            await response.read()
            return str(response.status), 200 <= response.status < 300
    except TimeoutError:
        return "error:timeout", False
    except aiohttp.ClientError as exc:
        return f"error:{type(exc).__name__}", False


async def run_load(spec: LoadSpec) -> LoadReport:
    """Run one load test and return its figures."""
    headers = {"Content-Type": "application/json", **dict(spec.headers)}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    ok = 0
    issued = 0
    late = 0
    perf = time.perf_counter
    start = perf()
    deadline = start + spec.duration_s if spec.duration_s > 0 else math.inf

    def take() -> bool:
        nonlocal issued
        if spec.max_requests is not None and issued >= spec.max_requests:
            return False
        if perf() >= deadline:
            return False
        issued += 1
        return True

    async with _session(spec.concurrency, spec.timeout_s, headers) as session:

        async def one() -> None:
            nonlocal ok
            t0 = perf()
            key, success = await _send(session, spec.method, spec.url, spec.body)
            latencies.append((perf() - t0) * 1000)
            statuses[key] += 1
            ok += success

        if spec.rate is None:
            async def worker() -> None:
                while take():
                    await one()

            await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        else:
            interval = 1.0 / spec.rate
            slots = asyncio.Semaphore(spec.concurrency)
            tasks: set[asyncio.Task[None]] = set()

            async def limited() -> None:
                try:
                    await one()
                finally:
                    slots.release()

            due = start
            while True:
                delay = due - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not take():
                    break
                await slots.acquire()
                if perf() - due > interval:
                    late += 1
                task = asyncio.create_task(limited())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                due += interval
            if tasks:
                await asyncio.gather(*tasks)
    elapsed = perf() - start
    return LoadReport(requests=len(latencies), ok=ok, duration_s=elapsed, latencies_ms=latencies,
                      status_codes=dict(statuses), concurrency=spec.concurrency, rate=spec.rate,
                      late_starts=late)


async def measure_cold_start(url: str, body: bytes | None, headers: Mapping[str, str] | None = None, *,
                             method: str = "POST", timeout_s: float = 600.0,
                             retry_interval_s: float = 1.0) -> ColdStart:
    """Time from the first attempt to the first successful answer. 502/503/504 and transport
    errors are retried every ``retry_interval_s`` until ``timeout_s``; other statuses end it."""
    all_headers = {"Content-Type": "application/json", **dict(headers or {})}
    perf = time.perf_counter
    start = perf()
    deadline = start + timeout_s
    attempts = 0
    last: str = ""
    async with _session(1, timeout_s, all_headers) as session:
        while True:
            attempts += 1
            key, success = await _send(session, method, url, body)
            status = int(key) if key.isdigit() else None
            if success:
                return ColdStart(perf() - start, attempts, status, True)
            last = key
            retryable = status is None or status in RETRY_STATUSES
            if not retryable:
                return ColdStart(perf() - start, attempts, status, False, f"answered {key}")
            if perf() + retry_interval_s >= deadline:
                return ColdStart(perf() - start, attempts, status, False,
                                 f"no successful answer within {timeout_s:g}s (last: {last})")
            await asyncio.sleep(retry_interval_s)


def run(spec: LoadSpec) -> LoadReport:
    """Blocking wrapper for callers without an event loop."""
    return asyncio.run(run_load(spec))


def cold_start(url: str, body: bytes | None, headers: Mapping[str, str] | None = None,
               **kwargs: Any) -> ColdStart:
    """Blocking wrapper of ``measure_cold_start``."""
    return asyncio.run(measure_cold_start(url, body, headers, **kwargs))
