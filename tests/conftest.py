"""Shared fixtures. The harness pieces live in tests/support/ and are loaded as plugins:

- support.kube_emulator: ``kube`` — a Kubernetes API emulator over real HTTP + kubeconfig
- support.fake_tools: ``fake_tools`` (recording eksctl/helm on PATH), ``real_tools`` (kubectl, helm)
- support.schemas: validation of rendered documents against the real upstream schemas
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["support.kube_emulator", "support.fake_tools", "support.schemas"]

REPO = Path(__file__).resolve().parents[1]
#: The environment pytest started with, before any test isolated itself from it: only the
#: ``live`` tests (real AWS, opt-in) read it.
STARTING_ENV = dict(os.environ)


def live_opt_in() -> str | None:
    """Why the ``live`` tests are skipped, or None when they may run: KSERVECTL_LIVE=1 and an
    AWS identity the default credential chain resolves."""
    if STARTING_ENV.get("KSERVECTL_LIVE") != "1":
        return "live tests against real AWS run only with KSERVECTL_LIVE=1 and AWS credentials"
    import boto3

    session = boto3.Session(profile_name=STARTING_ENV.get("AWS_PROFILE"))
    if session.get_credentials() is None:
        return "KSERVECTL_LIVE=1 but no AWS credentials resolve (profile, environment or instance role)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    live = [item for item in items if item.get_closest_marker("live")]
    if not live:
        return
    reason = live_opt_in()
    if reason is not None:
        for item in live:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """For ``live`` tests: the real AWS_* and KSERVECTL_LIVE_* settings back (isolated_env removed
    them), with a fresh KSERVECTL_HOME. Returns the environment for a kservectl subprocess."""
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in STARTING_ENV.items():
        if name.startswith(("AWS_", "KSERVECTL_LIVE")):
            monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's config, credentials or state: a fresh KSERVECTL_HOME, no
    KSERVECTL_*/AWS_* variables, a cwd without kservectl.yaml."""
    for name in list(os.environ):
        if name.startswith(("KSERVECTL_", "AWS_")) and name != "KSERVECTL_UPDATE_GOLDEN" or name == "KUBECONFIG":
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("kservectl-home")
    monkeypatch.setenv("KSERVECTL_HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    workdir = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(workdir)
    return home


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for moto (never real ones)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")


@pytest.fixture
def mock_aws(aws_credentials: None) -> Iterator[None]:
    """moto in-process: every boto3 call in this test goes to moto's memory."""
    from moto import mock_aws as _mock_aws

    with _mock_aws():
        yield


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_server(_moto_server: str, aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's threaded server, for tests that run the kservectl executable: boto3 in the child
    honours AWS_ENDPOINT_URL. State is reset after each test."""
    import urllib.request

    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_server)
    yield _moto_server
    req = urllib.request.Request(f"{_moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Any attempt to open a network connection fails the test (records it first)."""
    attempts: list[tuple] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        attempts.append((threading.current_thread().name, address))
        raise AssertionError(f"unexpected network connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.fixture
def cli():
    """Invoke the Typer app in-process; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from kservectl.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return result

    return invoke
