from __future__ import annotations

import os
import platform

import typer

from kservectl import __version__
from kservectl.cli.common import ClusterOpt, ConfigOpt, Output, OutputOpt, RegionOpt, emit


def version(
    cluster: ClusterOpt = None,
    region: RegionOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the kservectl version (and the cluster and region a command would use)."""
    from kservectl import config as config_mod

    # Loaded and validated like every command's (a bad value exits 2), without building a context:
    # `kservectl version` must stay fast.
    loaded = config_mod.load(config_path=config, env=os.environ,
                             flags={"cluster.name": cluster, "cluster.region": region},
                             flag_names={"cluster.name": "--cluster", "cluster.region": "--region"})
    data = {"kservectl": __version__, "python": platform.python_version()}
    c = loaded.config.cluster

    def draw() -> None:
        typer.echo(f"kservectl {__version__} (python {data['python']})")
        typer.echo(f"cluster {c.name} in {c.region}")

    emit(data, output, table=draw)
