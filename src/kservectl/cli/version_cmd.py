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
    from kservectl.errors import UsageError

    # Loaded and validated like every command's, without building a context (`version` must stay
    # fast). What was asked for on the command line must be valid (exit 2); a broken kservectl.yaml
    # or environment alone does not stop `version` from answering.
    data = {"kservectl": __version__, "python": platform.python_version()}
    try:
        loaded = config_mod.load(config_path=config, env=os.environ,
                                 flags={"cluster.name": cluster, "cluster.region": region},
                                 flag_names={"cluster.name": "--cluster", "cluster.region": "--region"})
        where = f"cluster {loaded.config.cluster.name} in {loaded.config.cluster.region}"
    except UsageError as exc:
        if cluster is not None or region is not None or config is not None:
            raise
        where = f"no cluster: the configuration is not valid ({exc.one_line()})"

    def draw() -> None:
        typer.echo(f"kservectl {__version__} (python {data['python']})")
        typer.echo(where)

    emit(data, output, table=draw)
