"""``kservectl plan``: every built phase rendered, and the ordered steps ``up`` would run.

Plan makes no AWS or Kubernetes call and needs no credentials: live values are placeholders.
"""

from __future__ import annotations

from pathlib import Path

from kservectl import phases
from kservectl.context import Context
from kservectl.phases.base import LiveValues, PhasePlan


def build(ctx: Context, root: Path, live: LiveValues | None = None,
          only: list[str] | None = None) -> list[PhasePlan]:
    live = live or LiveValues()
    plans: list[PhasePlan] = []
    for name in phases.planned():
        if only and name not in only:
            continue
        mod = phases.module(name)
        assert mod is not None
        plans.append(mod.plan(ctx, live, root))
    return plans


def write(plans: list[PhasePlan], out: Path) -> list[Path]:
    """Write each phase's files to ``out/<phase>/``; returns the paths written."""
    written: list[Path] = []
    for plan in plans:
        for name, text in plan.files.items():
            path = out / plan.phase / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
