"""``kservectl url``: the gateway, MLflow and every served model's endpoints."""

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
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI: request bodies from each model's input example (else from its V2 "
        "metadata through the gateway).", show_default=False)] = None,
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the gateway NLB hostname, the MLflow URL, and per model its URL, the Host header to
    send through the NLB and ready-to-paste curl commands for V2 infer and /invocations."""
    from kservectl.phases import serve
    from kservectl.phases import test as test_phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider, command="url",
                          quiet=True)
    if ctx.config.provider == "local":
        from kservectl.local import platform

        result = platform.urls(ctx)
    else:
        result = serve.urls(ctx, payloads=test_phase.request_payloads(ctx, tracking_uri))
    emit(result, output, table=lambda: _draw(result))


def _draw(result: dict[str, Any]) -> None:
    g = result["gateway"]
    if result.get("provider") == "local":
        typer.echo(f"local provider, cluster {result['cluster']!r}: no gateway, one port per model")
    else:
        typer.echo(f"gateway (Kourier NLB): {g['hostname'] or 'no load balancer address yet'}")
    m = result["mlflow"]
    if m["url"]:
        typer.echo(f"MLflow: {m['url']}")
    elif result.get("provider") == "local":
        typer.echo("MLflow: not running (`kservectl up --provider local`)")
    else:
        typer.echo(f"MLflow: private; run `{m['port_forward']}`, then open {m['port_forward_url']}")
    if not result["services"]:
        typer.echo("no models served yet (`kservectl serve deploy`)")
    for s in result["services"]:
        typer.echo(f"\n{s['name']}: {s['url'] or 'no URL yet'} ({'ready' if s['ready'] else 'not ready'})")
        if s["host_header"]:
            typer.echo(f"  Host header: {s['host_header']}")
        if s.get("curl_v2"):
            typer.echo(f"  V2 infer:\n    {s['curl_v2']}")
            typer.echo(f"  /invocations:\n    {s['curl_invocations']}")
