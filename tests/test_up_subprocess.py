"""The installed ``kservectl`` executable against moto's server, the Kubernetes emulator and the
fake tools: ``plan``, ``up --dry-run`` and ``up`` as a separate process, as a user runs them.

The world is the sandbox of tests/support/sandbox.py (the test acts as AWS's control planes and
as the cluster's controllers), with two differences made by the process boundary:

* AWS is moto's threaded server (``moto_server``, reached through ``AWS_ENDPOINT_URL``); the
  sandbox's boto3 clients reach it the same way.
* In-process, the sandbox makes what a tool would have made right after the tool returns (it
  wraps ``Runner._execute``). Here small wrapper scripts first on PATH run the fake tool and,
  when it succeeded, hand its argv to the test (an HTTP relay) and wait until the sandbox made
  its side effects (``Sandbox.after_tool``) before the tool "returns" to kservectl.

What the process cannot share with the test stays out: the stand-in model server behind the NLB
(an in-process WSGI app), so the ``test`` phase is skipped. ``serve`` runs: the example model is
trained in the child and registered in the sandbox's sqlite MLflow, its artifacts in the moto
bucket. MLflow's ``/health`` through the API's service proxy is answered by a routing rule on
the emulator.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.sandbox import BUCKET, HEALTH_PATH, NAME, REGION, Sandbox, is_mutating_argv, mlflow_template

KSERVECTL = Path(sys.executable).with_name("kservectl")
SKIP = ["--skip", "test"]  # the data plane behind the NLB lives in the test process only

pytestmark = [
    pytest.mark.skipif(not os.access(KSERVECTL, os.X_OK), reason=f"{KSERVECTL} is not installed"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.store.tracking.sqlalchemy_store"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

WRAPPER = '''#!/usr/bin/env python3
"""Test wrapper: run the fake {tool}, then (on success) wait until the test made its side effects."""
import json, subprocess, sys, urllib.request
code = subprocess.call([{real!r}, *sys.argv[1:]])
if code == 0:
    request = urllib.request.Request({relay!r}, data=json.dumps([{tool!r}, *sys.argv[1:]]).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        if answer.status != 200:
            sys.stderr.write("the test could not make what {tool} makes\\n")
            code = 1
sys.exit(code)
'''


class Relay:
    """The test's side of the wrappers: ``Sandbox.after_tool(argv)`` for each successful call."""

    def __init__(self, box: Sandbox) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                argv = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    box.after_tool(argv)
                    self.send_response(200)
                except Exception as exc:  # noqa: BLE001 - handed to the test, which fails on it
                    box.errors.append(exc)
                    self.send_response(500)
                self.end_headers()
                relay.calls.append(argv)

            def log_message(self, *args: Any) -> None:
                return None

        self.calls: list[list[str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/after-tool"
        self.thread = threading.Thread(target=self.server.serve_forever, name="tool-relay", daemon=True)
        self.thread.start()

    def wrap(self, bin_dir: Path, tools: dict[str, Path]) -> None:
        bin_dir.mkdir(parents=True, exist_ok=True)
        for tool, real in tools.items():
            path = bin_dir / tool
            path.write_text(WRAPPER.format(tool=tool, real=str(real), relay=self.url), encoding="utf-8")
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(moto_server, fake_tools, kube, monkeypatch, tmp_path, tmp_path_factory) -> Iterator[Sandbox]:
    box = Sandbox(kube, fake_tools, monkeypatch, tmp_path / "sandbox", mlflow_template(tmp_path_factory.getbasetemp()))
    relay = Relay(box)
    relay.wrap(tmp_path / "wrappers", {"eksctl": fake_tools.bin_dir / "eksctl", "helm": fake_tools.bin_dir / "helm",
                                       "kubectl": tmp_path / "sandbox" / "bin" / "kubectl"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'wrappers'}{os.pathsep}{os.environ['PATH']}")
    # MLflow answering /health through the API server's service proxy (in-process, the sandbox
    # answers it at the client)
    kube.on_loop(lambda emulator: emulator[f"get {HEALTH_PATH}"] << 200 << b"OK")
    try:
        yield box
    finally:
        relay.close()
    box.check()


def kservectl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KSERVECTL), *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ), stdin=subprocess.DEVNULL)


def test_plan_and_up_dry_run_run_as_the_installed_executable_against_moto_server(world):
    plan = kservectl("plan", "-o", "json")
    assert plan.returncode == 0, plan.stderr
    steps = [s for p in json.loads(plan.stdout)["phases"] for s in p["steps"]]
    assert steps and json.loads(plan.stdout)["cost"]["total"]["monthly"] > 0

    dry = kservectl("up", "--dry-run", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    data = json.loads(dry.stdout)
    actions = {r["resource"]: r["action"] for r in data["changes"]}
    assert actions[f"EKS cluster {NAME} ({REGION})"] == "create" and actions[f"S3 bucket {BUCKET}"] == "create"
    assert set(actions.values()) == {"create"}
    assert not [r for r in world.tools.records() if is_mutating_argv(r["tool"], r["argv"])]
    assert world.inventory()["buckets"] == 0 and world.inventory()["eks clusters"] == 0  # nothing was made


def test_up_builds_the_platform_as_a_subprocess_and_a_second_up_changes_nothing(world):
    first = kservectl("up", *SKIP, "-o", "json")
    assert first.returncode == 0, first.stderr[-3000:]
    data = json.loads(first.stdout)
    assert {t["task"]: t["state"] for t in data["tasks"]} == {
        "cluster": "done", "alb/policy": "done", "alb": "done", "kserve": "done", "storage/bucket": "done",
        "storage/policies": "done", "storage": "done", "mlflow": "done", "serve": "done", "test": "excluded"}
    inventory = world.inventory()
    assert {k: inventory[k] for k in ("eks clusters", "buckets", "kservectl policies", "kservectl roles",
                                      "load balancers", "helm releases", "inference services",
                                      "registered models")} == {
        "eks clusters": 1, "buckets": 1, "kservectl policies": 3, "kservectl roles": 2, "load balancers": 1,
        "helm releases": 6, "inference services": 1, "registered models": 1}
    assert data["cost"]["basis"] == "what exists" and data["cost"]["total"]["monthly"] > 0

    tools_before, writes_before = len(world.tools.records()), world.kube_writes
    policies_before = world.iam.list_policies(Scope="Local")["Policies"]
    again = kservectl("up", *SKIP, "-o", "json")
    assert again.returncode == 0, again.stderr[-3000:]
    made = [f"{r['tool']} {' '.join(r['argv'])}" for r in world.tools.records()[tools_before:]
            if is_mutating_argv(r["tool"], r["argv"])]
    assert made == [] and world.kube_writes == writes_before
    assert world.iam.list_policies(Scope="Local")["Policies"] == policies_before  # no new version either
    assert world.inventory() == inventory
