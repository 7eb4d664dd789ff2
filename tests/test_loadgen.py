"""The load generator's figures against local servers whose behaviour is known: fixed latency,
scripted errors, a refused port, and a server that is slow (or unavailable) at first, as a
service scaled to zero is."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from kservectl import loadgen


class LocalServer:
    """An aiohttp server on 127.0.0.1 in a background thread; ``handler(request, n)`` gets the
    request and its 1-based arrival number. Records the Host header of each request."""

    def __init__(self, handler: Callable[..., Awaitable]) -> None:
        self.handler = handler
        self.count = 0
        self.hosts: list[str] = []
        self.started_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalServer:
        ready = threading.Event()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]

        async def serve() -> None:
            from aiohttp import web

            async def handle(request: web.Request) -> web.StreamResponse:
                self.count += 1
                self.hosts.append(request.headers.get("Host", ""))
                await request.read()
                return await self.handler(request, self.count)

            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.SockSite(runner, sock)
            await site.start()
            self._stop = asyncio.Event()
            self.started_at = time.perf_counter()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="local-http", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the local server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        assert self._thread is not None
        self._thread.join(10)


def answer(status: int = 200, delay: float = 0.0, body: str = '{"predictions": [1]}'):
    async def handler(request, n):
        from aiohttp import web

        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text=body, content_type="application/json")

    return handler


@pytest.fixture
def slow_50ms() -> Iterator[LocalServer]:
    with LocalServer(answer(delay=0.05)) as server:
        yield server


def test_closed_loop_figures_match_a_server_with_known_latency(slow_50ms):
    spec = loadgen.LoadSpec(f"{slow_50ms.url}/v2/models/m/infer", b"{}", concurrency=4, duration_s=1.5)

    report = loadgen.run(spec)

    # 4 clients, each waiting 50 ms per request: at most 80 requests per second (a busy machine
    # only lowers it, so the upper bounds are the physics and the lower ones are loose)
    assert 25 <= report.rps <= 84, report.as_dict()
    assert report.requests == slow_50ms.count
    assert report.status_codes == {"200": report.requests}
    assert report.error_rate == 0.0
    assert 49 <= report.percentile(50) <= 250
    assert report.percentile(50) <= report.percentile(95) <= report.percentile(99) <= max(report.latencies_ms)
    assert 1.45 <= report.duration_s <= 3.5


def test_a_request_count_bounds_the_run_exactly(slow_50ms):
    spec = loadgen.LoadSpec(slow_50ms.url, b"{}", concurrency=3, duration_s=30, max_requests=10)

    report = loadgen.run(spec)

    assert report.requests == 10 == slow_50ms.count
    assert report.duration_s < 15  # well before the 30 s duration: the count ended it


def test_open_loop_sends_at_the_requested_rate():
    with LocalServer(answer(delay=0.01)) as server:
        report = loadgen.run(loadgen.LoadSpec(server.url, b"{}", concurrency=4, duration_s=1.0, rate=40))

    assert 36 <= report.requests <= 41
    # a garbage-collector pause may delay a start or two by more than the 25 ms interval; a
    # generator that cannot keep the rate is late on most starts (the next test)
    assert report.late_starts <= 3
    assert report.as_dict()["rate"] == 40


def test_open_loop_reports_late_starts_when_the_server_falls_behind():
    with LocalServer(answer(delay=0.2)) as server:
        report = loadgen.run(loadgen.LoadSpec(server.url, b"{}", concurrency=1, duration_s=1.0, rate=50))

    assert report.requests <= 7  # one at a time, 200 ms each
    assert report.late_starts >= 3


def test_errors_and_their_status_codes_are_counted():
    async def every_fourth_fails(request, n):
        from aiohttp import web

        return web.Response(status=500 if n % 4 == 0 else 200, text="{}")

    with LocalServer(every_fourth_fails) as server:
        report = loadgen.run(loadgen.LoadSpec(server.url, b"{}", concurrency=1, duration_s=30,
                                              max_requests=40))

    assert report.status_codes == {"200": 30, "500": 10}
    assert report.errors == 10
    assert report.error_rate == pytest.approx(0.25)
    assert report.as_dict()["error_rate"] == 0.25


def test_a_refused_connection_is_an_error_not_a_crash():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    report = loadgen.run(loadgen.LoadSpec(f"http://127.0.0.1:{port}/", b"{}", concurrency=2, duration_s=5,
                                          max_requests=6))

    assert report.requests == 6
    assert report.ok == 0
    assert report.error_rate == 1.0
    assert list(report.status_codes) == ["error:ClientConnectorError"]


def test_the_host_header_is_sent_with_every_request(slow_50ms):
    loadgen.run(loadgen.LoadSpec(slow_50ms.url, b"{}", headers={"Host": "wine-predictor.models.example.com"},
                                 concurrency=2, duration_s=5, max_requests=4))

    assert slow_50ms.hosts == ["wine-predictor.models.example.com"] * 4


def test_percentiles_are_nearest_rank():
    latencies = [float(i) for i in range(10, 0, -1)]
    report = loadgen.LoadReport(requests=10, ok=10, duration_s=1.0, latencies_ms=latencies)

    assert report.percentile(50) == 5.0
    assert report.percentile(95) == 10.0
    assert report.percentile(10) == 1.0
    assert loadgen.LoadReport(requests=0, ok=0, duration_s=0.0).percentile(50) is None


def test_a_load_spec_refuses_nonsense():
    with pytest.raises(ValueError, match="concurrency"):
        loadgen.LoadSpec("http://x", concurrency=0)
    with pytest.raises(ValueError, match="rate"):
        loadgen.LoadSpec("http://x", rate=0)


# -- cold start ---------------------------------------------------------------------------------
def test_cold_start_is_the_time_until_a_server_unavailable_at_first_answers():
    """Like a service at zero behind a proxy that answers 503 until a replica is up."""
    async def unavailable_for_600ms(request, n):
        from aiohttp import web

        up = time.perf_counter() - server.started_at >= 0.6
        return web.Response(status=200 if up else 503, text="{}")

    with LocalServer(unavailable_for_600ms) as server:
        server.started_at = time.perf_counter()
        cold = loadgen.cold_start(f"{server.url}/v2/models/m/ready", None, method="GET", timeout_s=10,
                                  retry_interval_s=0.1)

    assert cold.ok
    assert cold.status == 200
    assert 0.55 <= cold.seconds <= 4.0
    assert cold.attempts >= 5


def test_cold_start_is_the_time_a_held_first_request_takes():
    """Like Knative's activator: the first request is held until a replica answers."""
    async def slow_first(request, n):
        from aiohttp import web

        if n == 1:
            await asyncio.sleep(0.8)
        return web.Response(status=200, text="{}")

    with LocalServer(slow_first) as server:
        cold = loadgen.cold_start(server.url, b"{}", timeout_s=10, retry_interval_s=0.1)
        warm = loadgen.run(loadgen.LoadSpec(server.url, b"{}", concurrency=1, duration_s=5, max_requests=5))

    assert cold.ok and cold.attempts == 1
    assert 0.75 <= cold.seconds <= 4.0
    assert warm.percentile(99) < 700  # the steady state is not the 800 ms cold start


def test_cold_start_gives_up_at_its_deadline_and_says_why():
    with LocalServer(answer(status=503)) as server:
        cold = loadgen.cold_start(server.url, b"{}", timeout_s=0.5, retry_interval_s=0.1)

    assert not cold.ok
    assert cold.status == 503
    assert "no successful answer within 0.5s (last: 503)" in cold.detail


def test_cold_start_stops_at_an_answer_that_retrying_cannot_fix():
    with LocalServer(answer(status=404, body='{"error": "Model m not found"}')) as server:
        cold = loadgen.cold_start(server.url, b"{}", timeout_s=5, retry_interval_s=0.1)

    assert not cold.ok
    assert cold.attempts == 1
    assert cold.detail == "answered 404"


# -- cold start through `kservectl test --load` on a cluster -------------------------------------
def v2_model_slow_at_first(first_delay: float):
    """A V2 server for model 'wine' (one column) whose first request is held, as Knative's
    activator holds the first request to a service at zero until a replica is up."""
    async def handler(request, n):
        from aiohttp import web

        if n == 1:
            await asyncio.sleep(first_delay)
        path = request.path
        if path.endswith("/infer"):
            return web.json_response({"outputs": [{"name": "o", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]}]})
        if path == "/invocations":
            return web.json_response({"predictions": [0, 1, 2]})
        if path == "/v2/models/wine":
            return web.json_response({"name": "wine", "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 1]}],
                                      "outputs": [], "parameters": {"content_type": "pd"}})
        return web.json_response({"ready": True})

    return handler


def on_cluster(kube, gateway: str, *, min_replicas: int, running_pods: int):
    from kservectl import config as config_mod
    from kservectl.context import Context
    from kservectl.events import RecordingReporter

    for ns in ("models", "kourier-system"):
        kube.ensure_namespace(ns)
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace": "kourier-system"},
                 "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                 "status": {"loadBalancer": {"ingress": [{"hostname": gateway}]}}})
    kube.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                 "metadata": {"name": "wine", "namespace": "models"},
                 "spec": {"predictor": {"minReplicas": min_replicas,
                                        "model": {"modelFormat": {"name": "mlflow"}, "storageUri": "s3://b/m"}}},
                 "status": {"url": "http://wine-predictor.models.example.com",
                            "conditions": [{"type": "Ready", "status": "True"}]}})
    for i in range(running_pods):
        labels = {"serving.kserve.io/inferenceservice": "wine"}
        kube.create({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"wine-predictor-{i}", "namespace": "models", "labels": labels},
                     "spec": {"containers": [{"name": "kserve-container", "image": "mlserver"}]},
                     "status": {"phase": "Running"}})
    return Context(config=config_mod.load(env={}).config, reporter=RecordingReporter(), kubeconfig=kube.kubeconfig)


def test_a_service_at_zero_gets_its_cold_start_measured_before_anything_wakes_it(kube):
    from kservectl.phases import test as test_phase

    with LocalServer(v2_model_slow_at_first(0.8)) as server:
        ctx = on_cluster(kube, server.url.removeprefix("http://"), min_replicas=0, running_pods=0)
        result = test_phase.run(ctx, load=test_phase.LoadOptions(concurrency=2, duration_s=0.5))

    load = result["results"][0]["load"]
    assert result["ok"], result
    assert load["cold_start"]["ok"] and load["cold_start"]["attempts"] == 1
    assert 0.75 <= load["cold_start"]["seconds"] <= 4.0
    assert load["p99_ms"] < 700  # the steady state does not include the 800 ms cold start
    assert server.hosts[0] == "wine-predictor.models.example.com"
    assert "wine: measuring the cold start (first request from zero replicas)" in " ".join(
        ctx.reporter.messages("step"))


def test_a_service_with_running_replicas_has_no_cold_start_to_measure(kube):
    from kservectl.phases import test as test_phase

    with LocalServer(v2_model_slow_at_first(0.0)) as server:
        ctx = on_cluster(kube, server.url.removeprefix("http://"), min_replicas=0, running_pods=1)
        result = test_phase.run(ctx, load=test_phase.LoadOptions(concurrency=1, duration_s=0.3))

    load = result["results"][0]["load"]
    assert load["cold_start"] is None
    assert load["cold_start_note"] == "not measured: the service has running replicas"
