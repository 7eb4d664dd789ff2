from __future__ import annotations

import typer

from kservectl.cli.common import ClusterOpt, ConfigOpt, Output, OutputOpt, ProviderOpt, RegionOpt, emit, make_context


def doctor(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Check tools, AWS identity, kube context and packages; exit 1 if `up` cannot run."""
    from kservectl.phases import doctor as doctor_phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, provider=provider,
                          command="doctor", quiet=True)
    report = doctor_phase.run(ctx)

    def draw() -> None:
        from kservectl.cli.console import table

        marks = {"ok": "ok", "warn": "warn", "fail": "FAIL"}
        table(f"kservectl doctor ({ctx.config.provider} provider)", ["check", "status", "detail"],
              [(c.name, marks[c.status], c.detail) for c in report.checks])
        typer.echo("ready for `kservectl up`" if report.ok else "not ready: fix the FAIL rows above")

    emit(report.as_dict(), output, table=draw)
    if not report.ok:
        raise typer.Exit(1)
