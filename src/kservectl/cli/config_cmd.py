from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kservectl.cli.common import ClusterOpt, ConfigOpt, Output, OutputOpt, ProviderOpt, RegionOpt, emit, make_context

app = typer.Typer(help="Write and inspect kservectl.yaml.", no_args_is_help=True)


@app.command("init")
def init(
    path: Annotated[Path, typer.Option("--path", help="Where to write the file.", dir_okay=False)] = Path(
        "kservectl.yaml"),
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented kservectl.yaml with every key and its default."""
    from kservectl import configfile
    from kservectl.errors import UsageError

    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    text = configfile.render_commented(cluster=cluster, region=region)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}")


@app.command("show")
def show(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    provider: ProviderOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the effective config and where each value came from."""
    from kservectl.config import FIELDS, redacted

    ctx, loaded = make_context(cluster=cluster, region=region, config=config, provider=provider,
                               command="config show", quiet=True)
    flat = ctx.config.flat()
    data = {key: {"value": redacted(FIELDS[key], value), "source": loaded.provenance.of(key)}
            for key, value in flat.items()}

    def draw() -> None:
        from kservectl.cli.console import table

        title = f"effective config ({loaded.path})" if loaded.path else "effective config (no kservectl.yaml)"
        table(title, ["key", "value", "source"],
              [(k, _show(v["value"]), v["source"]) for k, v in data.items()])

    emit(data, output, table=draw)


def _show(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) if value else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else '""'
