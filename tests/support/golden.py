"""Golden files for rendered output (STYLE 10). A mismatch fails; the files are regenerated
only when KSERVECTL_UPDATE_GOLDEN=1 is set explicitly, never silently."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("KSERVECTL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"no golden file {path}; run with KSERVECTL_UPDATE_GOLDEN=1 to create it, then review it")
    expected = path.read_text(encoding="utf-8")
    if expected != text:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            f"golden/{name}", "rendered"))
        raise AssertionError(f"rendered output differs from golden/{name} "
                             f"(KSERVECTL_UPDATE_GOLDEN=1 regenerates):\n{diff}")
