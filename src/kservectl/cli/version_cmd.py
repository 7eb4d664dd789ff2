from __future__ import annotations

import platform

import typer

from kservectl import __version__
from kservectl.cli.common import Output, OutputOpt, emit


def version(output: OutputOpt = Output.table) -> None:
    """Print the kservectl version."""
    data = {"kservectl": __version__, "python": platform.python_version()}
    emit(data, output, table=lambda: typer.echo(f"kservectl {__version__} (python {data['python']})"))
