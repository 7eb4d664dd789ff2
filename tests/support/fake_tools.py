"""pytest plugin: the recording ``eksctl``/``helm`` fakes and the real ``kubectl``/``helm``.

Registered with ``pytest_plugins = ["support.fake_tools"]`` (``pythonpath = ["tests"]``).

``fake_tools``
    Puts tests/fakes/bin first on PATH and points ``FAKE_TOOLS_LOG`` / ``FAKE_TOOLS_SCRIPT``
    at fresh files, so any subprocess that inherits the environment runs the fakes. Returns a
    ``FakeTools``: ``.calls(tool=None)`` (recorded argvs), ``.script(rules)``, ``.releases()``,
    ``.clusters()``, ``.add_cluster(...)``, ``.add_repo(...)``, ``.env()`` and ``.run(...)``.

``real_tools``
    The Path of .tools/bin holding the real kubectl v1.34 and helm v4 (``make test-tools``);
    fails the test, naming that target, when they are missing.

``offline_helm_env(base)``
    Environment for running the *real* helm with no cluster: in-memory release storage
    (``HELM_DRIVER=memory``), caches and config under ``base``, a KUBECONFIG that names no
    cluster. ``helm install/upgrade --install --dry-run=client``, ``create``, ``template``,
    ``lint`` and ``show`` work offline with it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent
FAKES_DIR = TESTS_DIR / "fakes"
FAKES_BIN = FAKES_DIR / "bin"
REAL_TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
FAKE_TOOL_NAMES = ("eksctl", "helm")


def _fakes_module(name: str):
    """Import one of tests/fakes/*.py (shared code of the fakes), appending its folder to sys.path."""
    if str(FAKES_DIR) not in sys.path:
        sys.path.append(str(FAKES_DIR))
    return importlib.import_module(name)


@dataclass
class FakeTools:
    """Handle on the fakes of one test (see the module docstring)."""

    bin_dir: Path
    log_path: Path
    script_path: Path

    @property
    def state_path(self) -> Path:
        return Path(_fakes_module("fakecore").state_path(str(self.log_path)))

    # -- what was called ------------------------------------------------------------------------
    def records(self, tool: str | None = None) -> list[dict[str, Any]]:
        """Every recorded call as ``{"tool", "argv", "cwd", "time"}``, oldest first."""
        if not self.log_path.exists():
            return []
        records = [
            json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line
        ]
        return [r for r in records if tool is None or r["tool"] == tool]

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """The recorded argvs (without the program name), oldest first; ``tool`` filters."""
        return [r["argv"] for r in self.records(tool)]

    # -- scripting ------------------------------------------------------------------------------
    def script(self, rules: Iterable[Mapping[str, Any]]) -> None:
        """Write the rule list the fakes consult first (replaces any earlier script).

        Each rule: optional match keys ``tool`` ("eksctl"/"helm"/"*"), ``argv_prefix``,
        ``argv_contains``, ``argv_regex``; answer keys ``stdout``, ``stderr``, ``exit_code``,
        ``delay_s``; ``times`` (first N matches only, then fall through); ``passthrough``
        (only delay/print, then carry on to later rules or the default behaviour).
        """
        rules = [dict(rule) for rule in rules]
        _fakes_module("fakecore").validate_rules(rules)
        tmp = self.script_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rules, indent=1), encoding="utf-8")
        os.replace(tmp, self.script_path)

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return _fakes_module("fakecore").read_state(str(self.log_path))

    def releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Helm releases the fake holds: name, namespace, revision, status, chart, chart_version,
        app_version, chart_ref, values_args ([flag, value] pairs), config (merged values), history."""
        releases = self.state().get("helm", {}).get("releases", {}).values()
        return sorted(
            (r for r in releases if namespace is None or r["namespace"] == namespace),
            key=lambda r: (r["namespace"], r["name"]),
        )

    def clusters(self) -> list[dict[str, Any]]:
        """EKS clusters the fake eksctl holds (name, region, version, oidc, nodegroups, ...)."""
        return sorted(self.state().get("eksctl", {}).get("clusters", {}).values(), key=lambda c: c["name"])

    def add_cluster(
        self,
        name: str,
        region: str = "us-west-2",
        *,
        version: str = "1.34",
        oidc: bool = False,
        nodegroups: Iterable[str] = ("ng-1",),
    ) -> dict[str, Any]:
        """Seed a cluster as if ``eksctl create cluster`` had made it (nothing is recorded)."""
        eksctl = _fakes_module("fake_eksctl")
        groups = [{"name": ng, "desired": 2, "managed": True} for ng in nodegroups]
        record = eksctl.make_cluster(name, region, version, groups, oidc)
        with _fakes_module("fakecore").locked_state(str(self.log_path)) as state:
            state.setdefault("eksctl", {}).setdefault("clusters", {})[name] = record
        return record

    def add_repo(self, name: str, url: str) -> None:
        """Seed a helm repository as if ``helm repo add NAME URL`` had run (nothing is recorded)."""
        with _fakes_module("fakecore").locked_state(str(self.log_path)) as state:
            state.setdefault("helm", {}).setdefault("repos", {})[name] = url

    # -- running --------------------------------------------------------------------------------
    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) plus what the fakes need, for code that passes env= explicitly."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["FAKE_TOOLS_LOG"] = str(self.log_path)
        env["FAKE_TOOLS_SCRIPT"] = str(self.script_path)
        return env

    def run(self, tool: str, *args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run a fake directly (text mode, output captured, not checked)."""
        return subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=kwargs.pop("env", None) or self.env(),
            stdin=subprocess.DEVNULL,
            **kwargs,
        )


@pytest.fixture
def fake_tools(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    for name in FAKE_TOOL_NAMES:
        path = FAKES_BIN / name
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is not executable (chmod +x it; git keeps the mode)")
    root = tmp_path_factory.mktemp("fake-tools")
    tools = FakeTools(bin_dir=FAKES_BIN, log_path=root / "calls.jsonl", script_path=root / "script.json")
    monkeypatch.setenv("PATH", f"{FAKES_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_TOOLS_LOG", str(tools.log_path))
    monkeypatch.setenv("FAKE_TOOLS_SCRIPT", str(tools.script_path))
    return tools


@pytest.fixture(scope="session")
def real_tools() -> Path:
    """.tools/bin with the real kubectl and helm (fetched by ``make test-tools``)."""
    missing = [name for name in ("kubectl", "helm") if not os.access(REAL_TOOLS_BIN / name, os.X_OK)]
    if missing:
        pytest.fail(
            f"real {' and '.join(missing)} missing from {REAL_TOOLS_BIN}: run `make test-tools` "
            "(python scripts/fetch_test_tools.py --dest .tools/bin)",
            pytrace=False,
        )
    return REAL_TOOLS_BIN


def offline_helm_env(base: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the real helm without a cluster (see the module docstring)."""
    base.mkdir(parents=True, exist_ok=True)
    memory = base / "helm-memory-driver.json"
    if not memory.exists():
        memory.write_text("[]\n", encoding="utf-8")
    result = dict(os.environ if env is None else env)
    for key in [k for k in result if k.startswith("HELM_")]:
        del result[key]
    result.update(
        HOME=str(base),
        HELM_CACHE_HOME=str(base / "cache"),
        HELM_CONFIG_HOME=str(base / "config"),
        HELM_DATA_HOME=str(base / "data"),
        HELM_DRIVER="memory",
        HELM_MEMORY_DRIVER_DATA=str(memory),
        KUBECONFIG=str(base / "no-cluster-kubeconfig"),
    )
    return result
