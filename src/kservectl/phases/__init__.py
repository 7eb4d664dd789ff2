"""Phases: each module builds its plan as data (``plan(ctx, live) -> PhasePlan``) and applies it.

Phase modules import without Typer; the CLI calls them. ``ORDER`` is the order of ``up``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

ORDER: tuple[str, ...] = ("cluster", "alb", "kserve", "storage", "mlflow", "serve", "test")


def module(name: str) -> ModuleType | None:
    """The phase module, or None while that phase has not been built yet."""
    if name not in ORDER:
        raise KeyError(name)
    try:
        return importlib.import_module(f"kservectl.phases.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"kservectl.phases.{name}":
            return None
        raise


def planned() -> list[str]:
    """Phases that can render their plan today, in ``up`` order."""
    return [name for name in ORDER if (mod := module(name)) is not None and hasattr(mod, "plan")]
