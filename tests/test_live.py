"""Against real AWS: skipped unless KSERVECTL_LIVE=1 and AWS credentials resolve.

Read-only checks run with just that. The whole journey creates an EKS cluster (about 40 minutes
and a few dollars) and runs only with KSERVECTL_LIVE_JOURNEY=1 as well; it always ends with
``cleanup`` and ``cleanup --orphans`` for its own, uniquely named cluster.

    KSERVECTL_LIVE=1 AWS_PROFILE=sandbox KSERVECTL_LIVE_REGION=eu-west-1 \\
        .venv/bin/python -m pytest tests/test_live.py -m live -v
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.live, pytest.mark.timeout(3 * 3600)]

KSERVECTL = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "kservectl"


def kservectl(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KSERVECTL if KSERVECTL.exists() else shutil.which("kservectl")), *args],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def region(live_env: dict[str, str]) -> str:
    return live_env.get("KSERVECTL_LIVE_REGION") or live_env.get("AWS_REGION") or \
        live_env.get("AWS_DEFAULT_REGION") or "us-west-2"


@pytest.fixture
def unused_cluster() -> str:
    return f"kservectl-live-{secrets.token_hex(4)}"


def test_doctor_sees_the_real_aws_identity(live_env, region):
    result = kservectl(live_env, "doctor", "-r", region, "-o", "json", timeout=120)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["aws identity"]["status"] == "ok", checks["aws identity"]


def test_the_orphan_search_for_a_cluster_that_never_existed_finds_nothing_and_changes_nothing(
        live_env, region, unused_cluster):
    result = kservectl(live_env, "cleanup", "--orphans", "-c", unused_cluster, "-r", region, "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["orphans"] == [], data


@pytest.fixture
def journey_cluster(live_env, region, unused_cluster) -> Iterator[str]:
    if live_env.get("KSERVECTL_LIVE_JOURNEY") != "1":
        pytest.skip("the whole journey creates an EKS cluster: set KSERVECTL_LIVE_JOURNEY=1 as well")
    import boto3

    account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    yield unused_cluster
    # whatever happened above, leave nothing billed behind (pinned to the account the test ran in)
    pinned = ("-c", unused_cluster, "-r", region, "--yes", "--account", account)
    down = kservectl(live_env, "cleanup", *pinned, "--delete-data", timeout=3600)
    swept = kservectl(live_env, "cleanup", "--orphans", *pinned, "--delete-data", timeout=3600)
    assert down.returncode == 0 and swept.returncode == 0, (down.stderr[-2000:], swept.stderr[-2000:])


def test_the_whole_journey_serves_the_model_over_both_protocols_and_cleans_up(live_env, region, journey_cluster):
    up = kservectl(live_env, "up", "-c", journey_cluster, "-r", region, "-o", "json", timeout=2 * 3600)
    assert up.returncode == 0, up.stderr[-4000:]
    urls = kservectl(live_env, "url", "-c", journey_cluster, "-r", region, "-o", "json", timeout=120)
    assert urls.returncode == 0, urls.stderr
    assert "/invocations" in urls.stdout and "/v2/models/" in urls.stdout
    tested = kservectl(live_env, "test", "-c", journey_cluster, "-r", region, "-o", "json", timeout=1800)
    assert tested.returncode == 0, tested.stdout[-4000:]

    down = kservectl(live_env, "cleanup", "-c", journey_cluster, "-r", region, "--delete-data", "--yes",
                     "-o", "json", timeout=3600)  # (the fixture sweeps again, account-pinned)
    assert down.returncode == 0, down.stderr[-4000:]
    left = kservectl(live_env, "cleanup", "--orphans", "-c", journey_cluster, "-r", region, "-o", "json")
    assert json.loads(left.stdout)["orphans"] == [], left.stdout

