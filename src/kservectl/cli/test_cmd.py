"""``kservectl test [NAME] [--url URL --model MODEL] [--host HOST] [--load ...]``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kservectl.cli.common import (
    ClusterOpt,
    ConfigOpt,
    Output,
    OutputOpt,
    ProviderOpt,
    RegionOpt,
    emit,
    make_context,
)


def command(
    name: Annotated[str | None, typer.Argument(help="InferenceService to test (default: every served model).",
                                               show_default=False)] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Test this server directly (a local MLServer, or the NLB with --host); MLflow is never "
        "contacted.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="With --url: the model's name on that server (the <name> in /v2/models/<name>).",
        show_default=False)] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="Host header to send (routing through the Kourier gateway).",
        show_default=False)] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI, for building requests from the model's input example.",
        show_default=False)] = None,
    load: Annotated[bool, typer.Option("--load", help="Also run a load test against each model.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Load test: concurrent clients "
                                             "(with --rate: the most requests in flight).")] = 8,
    duration: Annotated[float, typer.Option("--duration", help="Load test: seconds.")] = 10.0,
    rate: Annotated[float | None, typer.Option("--rate", help="Load test: requests per second (open loop) "
                                               "instead of closed-loop clients.", show_default=False)] = None,
    requests: Annotated[int | None, typer.Option(
        "--requests", help="Load test: stop after this many requests.", show_default=False)] = None,
    endpoint: Annotated[str, typer.Option("--endpoint", help="Load test: v2 or invocations.")] = "v2",
    cold_start: Annotated[bool, typer.Option(
        "--cold-start", help="Load test: time the first request even when the service is not known to be "
        "scaled to zero (always done when it is).")] = False,
    max_error_rate: Annotated[float, typer.Option("--max-error-rate",
                                                  help="Load test: fail above this error rate.")] = 0.01,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Test served models over V2 (health, readiness, metadata, infer) and MLflow's /invocations.

    Requests are built from the model itself: its MLflow signature and input example, or its V2
    metadata when only a URL is given. A check passes only when the predictions returned match
    the rows sent. Exits 1 if any check fails or the model does not exist.
    """
    from kservectl.phases import test as test_phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="test",
                          quiet=output is not Output.table)
    planned = None
    if ctx.config.provider == "local" and url is None:
        from kservectl.local import platform

        planned = platform.test_targets(ctx, name or model)
    options = None
    if load:
        options = test_phase.LoadOptions(concurrency=concurrency, duration_s=duration, rate=rate,
                                         max_requests=requests, endpoint=endpoint, cold_start=cold_start,
                                         max_error_rate=max_error_rate)
    result = test_phase.run(ctx, name=name, url=url, model=model, host=host, tracking_uri=tracking_uri,
                            load=options, planned=planned)
    emit(result, output, table=lambda: _draw(result))
    if not result["ok"]:
        missing = [r for r in result["results"] if r["model_found"] is False]
        if missing:
            raise test_phase.TestFailed(missing[0]["verdict"].removeprefix("FAIL: "))
        raise typer.Exit(1)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _draw(result: dict[str, Any]) -> None:
    from kservectl.cli.console import table

    for r in result["results"]:
        title = f"{r['model']} at {r['url']}" + (f" (Host: {r['host']})" if r["host"] else "")
        rows = []
        for c in r["checks"]:
            rows_col = "-" if c["rows_sent"] is None else f"{_cell(c['predictions'])}/{c['rows_sent']}"
            verdict = "skip" if c["skipped"] else ("pass" if c["ok"] else "FAIL")
            rows.append((c["name"], f"{c['method']} {c['path']}", _cell(c["status"]),
                         _cell(c["latency_ms"]), rows_col, verdict, c["detail"]))
        table(title, ["check", "request", "HTTP", "ms", "predictions/rows", "result", "detail"], rows)
        if r["payload_source"]:
            typer.echo(f"requests built from: {r['payload_source']}")
        load = r.get("load")
        if load and "rps" in load:
            cold = load.get("cold_start")
            cold_text = (f"{cold['seconds']:.2f}s ({cold['attempts']} attempts)" if cold and cold["ok"]
                         else (f"failed: {cold['detail']}" if cold else load.get("cold_start_note") or "-"))
            codes = ", ".join(f"{k}: {v}" for k, v in load["status_codes"].items())
            table(f"load test ({load['endpoint']}, "
                  + (f"{load['rate']:g} req/s" if load["rate"] else f"{load['concurrency']} clients") + ")",
                  ["requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "error rate", "status codes",
                   "cold start"],
                  [(load["requests"], load["rps"], _cell(load["p50_ms"]), _cell(load["p95_ms"]),
                    _cell(load["p99_ms"]), f"{load['error_rate']:.2%}", codes, cold_text)])
            if not load.get("passed", True):
                typer.echo(f"FAIL: load test error rate {load['error_rate']:.2%} is above the allowed "
                           f"{load.get('max_error_rate', 0):.2%}" if load["requests"]
                           else "FAIL: no load test request completed")
        elif load and load.get("cold_start"):
            cold = load["cold_start"]
            typer.echo(f"cold start: {cold['seconds']:.2f}s ({cold['attempts']} attempts, ok={cold['ok']})")
        elif load and load.get("error"):
            typer.echo(f"load test: {load['error']}")
        typer.echo(r["verdict"])
    if len(result["results"]) > 1:
        passed = sum(1 for r in result["results"] if r["ok"])
        typer.echo(f"{passed}/{len(result['results'])} models passed")
