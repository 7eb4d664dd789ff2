"""The layers hold (STYLE 12): below the CLI nothing imports Typer or the CLI, prints, prompts,
draws with rich or exits the process."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kservectl"
BELOW_CLI = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts
                   and p.name != "__main__.py")


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in ("typer", "click", "rich") or name.startswith("kservectl.cli"):
                    found.append(f"line {node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else (
                f"{fn.value.id}.{fn.attr}" if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name)
                else "")
            if name in ("print", "input", "exit", "quit", "sys.exit", "os._exit", "breakpoint"):
                found.append(f"line {node.lineno}: calls {name}()")
    return found


@pytest.mark.parametrize("path", BELOW_CLI, ids=[str(p.relative_to(PACKAGE)) for p in BELOW_CLI])
def test_modules_below_the_cli_never_import_typer_print_prompt_or_exit(path):
    assert offences(path) == []


def test_the_layer_check_itself_catches_an_offence(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import typer\nfrom kservectl.cli.common import emit\nimport sys\nprint('x')\nsys.exit(1)\n")
    assert offences(bad) == ["line 1: imports typer", "line 2: imports kservectl.cli.common",
                             "line 4: calls print()", "line 5: calls sys.exit()"]
