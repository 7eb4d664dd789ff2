"""The renderer: every manifest and config comes from ``templates/`` through Jinja2 with
``StrictUndefined`` (an undefined variable is an error, never a blank).

Templates ship inside the wheel as ``kservectl/templates``; in a source checkout they are the
repository's ``templates/`` folder.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kservectl.errors import KservectlError

PLACEHOLDER_PREFIX = "<"  # placeholders look like <account-id>: visible, never a plausible value


class RenderError(KservectlError):
    pass


def templates_dir() -> Path:
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / "templates"
    if source.is_dir():
        return source
    raise RenderError("kservectl's templates are missing from this installation",
                      hint="reinstall kservectl (pip install --force-reinstall kservectl)")


def placeholder(name: str) -> str:
    """A clearly marked stand-in for a value only a live account knows (plan needs no credentials)."""
    return f"<{name}>"


def _to_yaml(value: Any, indent: int = 0) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=1000).rstrip("\n")
    if indent:
        pad = " " * indent
        text = "\n".join(pad + line if line else line for line in text.splitlines())
    return text


def _quote(value: Any) -> str:
    """A YAML-safe scalar: JSON string quoting is valid YAML and keeps "1.30" a string."""
    return json.dumps(str(value))


@functools.lru_cache(maxsize=4)
def _environment(root: str):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = _to_yaml
    env.filters["to_json"] = lambda v, indent=None: json.dumps(v, indent=indent, sort_keys=False)
    env.filters["quote"] = _quote
    return env


class Renderer:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or templates_dir()

    def render(self, template: str, values: Mapping[str, Any]) -> str:
        import jinja2

        env = _environment(str(self.root))
        try:
            return env.get_template(template).render(**values)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {template}: {exc.message}",
                              hint="a value the template needs was not provided") from exc
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {template} not found under {self.root}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {template} line {exc.lineno}: {exc.message}") from exc

    def render_documents(self, template: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Render a YAML template and parse it (all documents, empty ones dropped)."""
        import yaml

        text = self.render(template, values)
        try:
            return [doc for doc in yaml.safe_load_all(text) if doc]
        except yaml.YAMLError as exc:
            raise RenderError(f"template {template} rendered invalid YAML: {exc}") from exc

    def templates(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*.j2"))
