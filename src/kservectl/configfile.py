"""``kservectl config init``: a commented kservectl.yaml listing every key with its default."""

from __future__ import annotations

import json
from typing import Any

from kservectl import __version__
from kservectl.config import FIELDS, SECTIONS
from kservectl.render import Renderer


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def render_commented(cluster: str | None = None, region: str | None = None) -> str:
    overrides = {"cluster.name": cluster, "cluster.region": region}
    top: list[dict[str, str]] = []
    sections: dict[str, list[dict[str, str]]] = {name: [] for name in SECTIONS}
    for key, info in FIELDS.items():
        value = overrides.get(key) or info.default
        entry = {"name": key.rsplit(".", 1)[-1], "value": _yaml_scalar(value), "help": info.help,
                 "env": info.env}
        if "." in key:
            sections[key.split(".", 1)[0]].append(entry)
        else:
            top.append(entry)
    return Renderer().render("config/kservectl.yaml.j2",
                             {"version": __version__, "top": top, "sections": sections})
