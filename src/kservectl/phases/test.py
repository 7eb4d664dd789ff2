"""Phase ``test``: check served models over both protocols, and load-test them.

Targets: every InferenceService (or one, by name) reached through the gateway NLB with the
Host header of its URL; or any server given by URL (``--url`` + ``--model``: a local MLServer,
an NLB with ``--host``), in which case MLflow is never contacted and requests are built from
the model's V2 metadata. For cluster targets the request comes from the model itself in MLflow
(signature + input example of the InferenceService's ``kservectl.io/model-uri``) when a tracking
URI is at hand, else from its V2 metadata.

The checks are ``kservectl.probe``'s; the load test is ``kservectl.loadgen``'s. A service scaled to
zero gets a cold-start measurement (its first request, held by Knative's activator until a
replica is up) before anything else wakes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kservectl import loadgen, models, probe
from kservectl.context import Context
from kservectl.errors import KservectlError, UsageError
from kservectl.phases import serve
from kservectl.phases.base import LiveValues, PhasePlan, Step

PHASE = "test"


class TestFailed(KservectlError):
    """At least one check failed, or a model does not exist (exit 1)."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class LoadOptions:
    concurrency: int = 8
    duration_s: float = 10.0
    rate: float | None = None
    max_requests: int | None = None
    endpoint: str = "v2"  # v2 | invocations
    cold_start: bool = False  # measure the first request even when not known to be at zero
    max_error_rate: float = 0.01

    def __post_init__(self) -> None:
        if self.endpoint not in ("v2", "invocations"):
            raise UsageError(f"--endpoint {self.endpoint!r} must be v2 or invocations")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency} must be at least 1")
        if self.duration_s <= 0 and not self.max_requests:
            raise UsageError(f"--duration {self.duration_s:g} must be positive")
        if self.rate is not None and self.rate <= 0:
            raise UsageError(f"--rate {self.rate:g} must be positive")


@dataclass
class Planned:
    target: probe.Target
    payload: probe.Payload | None
    isvc: dict[str, Any] | None = None


def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    name = ctx.config.model.name
    host = f"{name}-predictor.{ctx.config.namespaces.models}.{ctx.config.exposure.domain}"
    gateway = f"{serve.gateway_scheme(ctx)}://{live.gateway_hostname}"
    return PhasePlan(
        phase=PHASE,
        summary=f"check model {name} over V2 and /invocations through the gateway (Host: {host})",
        steps=[Step(PHASE, f"check V2 live/ready, model ready, metadata, infer and /invocations of {name}, "
                    "with rows from its MLflow input example; pass only if predictions match the rows sent",
                    "http",
                    calls=(f"GET {gateway}/v2/health/ready", f"POST {gateway}/v2/models/{name}/infer",
                           f"POST {gateway}/invocations"))],
    )


def targets(ctx: Context, *, name: str | None = None, url: str | None = None, model: str | None = None,
            host: str | None = None, tracking_uri: str | None = None) -> list[Planned]:
    """What to test. ``url`` given: that server only, and MLflow is never contacted."""
    if url:
        model_name = model or name
        if not model_name:
            raise UsageError("--url needs --model: the model's name on that server "
                             "(the <name> in /v2/models/<name>)")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url {url!r} must start with http:// or https://")
        return [Planned(probe.Target(url, model_name, host), None)]
    if model and not name:
        name = model
    isvcs = [serve.require(ctx, name)] if name else serve.list_objects(ctx)
    if not isvcs:
        raise TestFailed(f"no InferenceServices in namespace {ctx.config.namespaces.models} to test",
                         hint="deploy one with `kservectl serve deploy`")
    gateway = serve.gateway_hostname(ctx)
    base = f"{serve.gateway_scheme(ctx)}://{gateway}" if gateway else None
    out = []
    for isvc in isvcs:
        d = serve.describe(isvc)
        if base:
            target = probe.Target(base, d["name"], host or d["host"])
        elif d["url"]:
            ctx.reporter.warn(f"the gateway has no load balancer address; calling {d['url']} directly")
            target = probe.Target(d["url"], d["name"], host)
        else:
            raise TestFailed(f"InferenceService {d['namespace']}/{d['name']} has no URL yet ({d['detail']})",
                             hint="wait for `kservectl serve status` to show it Ready, or pass --url")
        out.append(Planned(target, payload_from_mlflow(ctx, d, tracking_uri), isvc))
    return out


def payload_from_mlflow(ctx: Context, described: dict[str, Any],
                        tracking_uri: str | None) -> probe.Payload | None:
    """Rows from the model's MLflow signature and input example; None (use V2 metadata) when MLflow
    is not at hand or the model records neither."""
    uri = described.get("model_uri")
    if not uri:
        return None
    try:
        tracking = serve.mlflow_tracking_uri(ctx, tracking_uri)
    except UsageError:
        ctx.reporter.info(f"{described['name']}: no MLflow tracking URI; "
                          "building the request from V2 metadata")
        return None
    try:
        models.check_reachable(tracking, ctx.settings.http.mlflow_reachable)
        ref = models.parse(uri)
        if ref.kind == "storage":
            artifact_uri = uri
        else:
            artifact_uri = models.resolve(ref, models.client(tracking)).artifact_uri
        info = models.fetch_model_info(artifact_uri, tracking)
    except KservectlError as exc:
        ctx.reporter.warn(f"{described['name']}: cannot read {uri} from MLflow ({exc.message}); "
                          "building the request from V2 metadata")
        return None
    return probe.payload_from_model_info(info.input_example, info.input_example_type, info.signature_inputs,
                                         f"MLflow input example of {uri}")


def run(ctx: Context, *, name: str | None = None, url: str | None = None, model: str | None = None,
        host: str | None = None, tracking_uri: str | None = None,
        load: LoadOptions | None = None, planned: list[Planned] | None = None) -> dict[str, Any]:
    """Test each target; with ``load``, load-test each model that exists. Never raises for a
    failed check: the result says ``ok`` (the CLI turns it into the exit code). ``planned``
    replaces the targets found in the cluster (the local provider passes its own)."""
    if planned is None:
        planned = targets(ctx, name=name, url=url, model=model, host=host, tracking_uri=tracking_uri)
    http = ctx.settings.http
    results = []
    for item in planned:
        t = item.target
        cold: loadgen.ColdStart | None = None
        cold_note = ""
        if load is not None:
            zero = item.isvc is not None and serve.at_zero(ctx, item.isvc)
            if zero or load.cold_start:
                ctx.reporter.step(PHASE, f"{t.model}: measuring the cold start (first request"
                                  f"{' from zero replicas' if zero else ''})")
                cold = loadgen.cold_start(t.endpoint(f"/v2/models/{t.model}/ready"), None, _headers(t),
                                          method="GET", timeout_s=http.cold_start,
                                          retry_interval_s=http.cold_start_retry)
            elif item.isvc is not None:
                cold_note = "not measured: the service has running replicas"
            else:
                cold_note = "not measured: pass --cold-start to time the first request"
        ctx.reporter.step(PHASE, f"checking {t.model} at {t.url}" + (f" (Host: {t.host})" if t.host else ""))
        report = probe.run_checks(t, item.payload, timeout=http.request, connect_timeout=http.connect)
        entry = report.as_dict()
        entry["load"] = None
        if load is not None and report.model_found:
            payload = item.payload or metadata_payload(t, http.request)
            if payload is None:
                entry["load"] = {"error": "no request could be built for the load test"}
            else:
                figures = _load(ctx, t, payload, load)
                figures.cold_start = cold
                figures.cold_start_note = cold_note
                entry["load"] = figures.as_dict()
                entry["load"]["endpoint"] = load.endpoint
                entry["load"]["passed"] = figures.requests > 0 and figures.error_rate <= load.max_error_rate
                entry["load"]["max_error_rate"] = load.max_error_rate
        elif load is not None and cold is not None:
            entry["load"] = {"cold_start": cold.as_dict()}
        results.append(entry)
    ok = all(r["ok"] and (r["load"] is None or r["load"].get("passed", True)) for r in results)
    return {"ok": ok, "results": results}


def _headers(t: probe.Target) -> dict[str, str]:
    return {"Host": t.host} if t.host else {}


def metadata_payload(t: probe.Target, timeout: float) -> probe.Payload | None:
    import httpx

    try:
        response = httpx.get(t.endpoint(f"/v2/models/{t.model}"), headers=_headers(t), timeout=timeout)
        return probe.payload_from_metadata(response.json()) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, probe.ProbeError):
        return None


def request_payloads(ctx: Context, tracking_uri: str | None = None,
                     rows: int = 1) -> dict[str, probe.Payload]:
    """A request body per served model (for ``kservectl url``'s curl commands): from MLflow when a
    tracking URI is at hand, else from the model's V2 metadata through the gateway. Models that
    give neither are left out (their curl commands read ``@request.json``)."""
    try:
        planned = targets(ctx, tracking_uri=tracking_uri)
    except KservectlError:
        return {}  # no services, or none with a URL yet
    out = {}
    for item in planned:
        payload = item.payload or metadata_payload(item.target, ctx.settings.http.request)
        if payload is not None:
            out[item.target.model] = replace(payload, rows=payload.rows[:rows])
    return out


def _load(ctx: Context, t: probe.Target, payload: probe.Payload, load: LoadOptions) -> loadgen.LoadReport:
    if load.endpoint == "v2":
        url, body = t.endpoint(f"/v2/models/{t.model}/infer"), payload.v2_body()
    else:
        url, body = t.endpoint("/invocations"), payload.invocations_body()
    how = f"{load.rate:g} req/s" if load.rate else f"{load.concurrency} concurrent clients"
    ctx.reporter.step(PHASE, f"load test of {t.model} ({load.endpoint}): {how} for {load.duration_s:g}s")
    spec = loadgen.LoadSpec(url=url, body=json.dumps(body).encode(), headers=_headers(t),
                            concurrency=load.concurrency, duration_s=load.duration_s, rate=load.rate,
                            max_requests=load.max_requests, timeout_s=ctx.settings.http.request)
    return loadgen.run(spec)
