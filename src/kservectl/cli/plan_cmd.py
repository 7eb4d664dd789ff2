from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kservectl.cli.common import ClusterOpt, ConfigOpt, Output, OutputOpt, RegionOpt, emit, make_context


def plan(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the rendered files into this folder.",
                                             file_okay=False)] = None,
    diff: Annotated[bool, typer.Option(
        "--diff", help="Also read what exists already (needs AWS credentials and, for what runs in the "
        "cluster, its kubeconfig) and say per resource: create, change or keep.")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Render everything the platform needs, print the ordered steps `up` would run and what it
    would cost per hour, day and month.

    Needs no credentials and makes no AWS or Kubernetes call; values only a live account knows
    are shown as <placeholders>. --diff reads (never changes) the live state.
    """
    from kservectl import costs, paths
    from kservectl.phases import plan as plan_phase

    ctx, _ = make_context(cluster=cluster, region=region, config=config, command="plan")
    root = out if out is not None else paths.cluster_dir(ctx.cluster) / "rendered"
    plans = plan_phase.build(ctx, root)
    written = plan_phase.write(plans, out) if out is not None else []
    estimate = costs.platform_estimate(ctx.config).as_dict()
    changes = None
    if diff:
        from kservectl.phases import up

        changes = up.diff(ctx)
    data = {
        "cluster": ctx.cluster,
        "region": ctx.region,
        "out": str(out) if out else None,
        "phases": [
            {
                "phase": p.phase,
                "summary": p.summary,
                "files": [str(root / p.phase / name) for name in p.files],
                "steps": [
                    {"action": s.action, "kind": s.kind, "command": list(s.command), "calls": list(s.calls),
                     "describe": s.describe()}
                    for s in p.steps
                ],
            }
            for p in plans
        ],
        "cost": estimate,
        "diff": changes,
    }

    def draw() -> None:
        from kservectl.cli import up_view

        typer.echo(f"Plan for cluster {ctx.cluster} in {ctx.region}:")
        n = 0
        for p in plans:
            typer.echo(f"\n{p.phase}: {p.summary}")
            for s in p.steps:
                n += 1
                typer.echo(f"  {n:>2}. {s.describe()}")
        if written:
            typer.echo(f"\nWrote {len(written)} files to {out}:")
            for path in written:
                typer.echo(f"  {path}")
        else:
            typer.echo("\n(plan) nothing was written; pass --out DIR to keep the rendered files")
        typer.echo("")
        up_view.draw_costs(estimate)
        if changes is not None:
            typer.echo("")
            up_view.draw_diff(changes)

    emit(data, output, table=draw)
