"""kservectl: stand up and operate an ML serving platform on EKS with KServe and MLflow.

The package is layered: ``kservectl.cli`` (Typer) calls ``kservectl.phases``, which use
``kservectl.aws``, ``kservectl.kube``, ``kservectl.runner`` and ``kservectl.render``.
Nothing below the CLI imports Typer, prompts, prints or exits.
"""

__version__ = "0.1.0"
