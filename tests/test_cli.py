"""The command tree: help, pending commands, version, plan, doctor, fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kservectl.cli.main import app


def registered(typer_app, prefix=()):
    """Every command path registered in the Typer app, groups included."""
    out = []
    for cmd in typer_app.registered_commands:
        out.append((*prefix, cmd.name))
    for group in typer_app.registered_groups:
        out.append((*prefix, group.name))
        out.extend(registered(group.typer_instance, (*prefix, group.name)))
    return out


ALL = registered(app)


def test_the_tree_has_every_command_of_the_design():
    names = {path for path in ALL}
    for top in ("up", "url", "plan", "doctor", "status", "version", "test", "cleanup", "logs"):
        assert (top,) in names
    for group in ("cluster", "alb", "kserve", "storage", "mlflow", "serve", "config"):
        assert (group,) in names


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_every_registered_command_appears_in_its_parents_help(cli, path):
    result = cli(*path[:-1], "--help")
    assert result.exit_code == 0
    assert f"  {path[-1]} " in result.stdout or result.stdout.rstrip().endswith(f"  {path[-1]}")


def test_no_command_says_it_is_not_available_yet(cli):
    for path in ALL:
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "not available yet" not in result.stdout, path


def test_version_prints_json_for_scripts(cli):
    from kservectl import __version__

    result = cli("version", "--output", "json")
    assert json.loads(result.stdout) == {"kservectl": __version__, "python": sys.version.split()[0]}


def test_plan_writes_schema_valid_files_and_makes_no_network_call(cli, tmp_path, no_network, schema_validator):
    out = tmp_path / "out"
    result = cli("plan", "--cluster", "ml-prod", "--region", "eu-west-1", "--out", str(out), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert no_network == []
    data = json.loads(result.stdout)
    files = [Path(f) for phase in data["phases"] for f in phase["files"]]
    assert files and all(f.is_file() for f in files)
    assert {f.suffix for f in files} <= {".yaml", ".json"}, "plan files are YAML manifests/values or JSON"
    for f in files:
        if f.name.endswith("-values.yaml"):  # helm values: checked against each chart's known keys
            from kservectl.phases.kserve import value_key_problems

            by_phase = {"alb-values.yaml": "aws-load-balancer-controller",
                        "autoscaler-values.yaml": "cluster-autoscaler"}
            chart = by_phase.get(f.name, f.name.removesuffix("-values.yaml"))
            assert value_key_problems(chart, yaml.safe_load(f.read_text())) == [], f.name
        elif f.suffix == ".yaml":
            schema_validator.assert_all_valid(f)
        elif f.name.endswith("policy.json"):
            schema_validator.assert_valid_iam_policy(json.loads(f.read_text()))
    cluster = yaml.safe_load((out / "cluster" / "cluster.yaml").read_text())
    assert cluster["metadata"] == {"name": "ml-prod", "region": "eu-west-1", "version": "1.34",
                                   "tags": {"kservectl.io/cluster": "ml-prod"}}
    create = next(s for p in data["phases"] for s in p["steps"] if s["kind"] == "tool")
    assert create["command"][:4] == ["eksctl", "create", "cluster", "-f"]
    assert create["command"][4] == str(out / "cluster" / "cluster.yaml")


def test_plan_without_out_writes_nothing_and_lists_numbered_steps(cli, isolated_env):
    result = cli("plan", "-c", "demo")
    assert result.exit_code == 0
    assert "   1. will " in result.stdout and "eksctl create cluster -f" in result.stdout
    assert "nothing was written" in result.stdout
    assert not any(isolated_env.rglob("*.yaml"))


def test_doctor_reports_missing_tools_as_json_and_exits_1(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no eksctl, helm or kubectl
    result = cli("doctor", "--output", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["eksctl"]["status"] == "fail" and "not found on PATH" in checks["eksctl"]["detail"]
    assert checks["aws identity"]["status"] == "fail"
    assert checks["python"]["status"] == "ok"


def test_doctor_passes_with_tools_and_an_aws_identity(cli, fake_tools, real_tools, mock_aws, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_tools.bin_dir}:{real_tools}:/usr/bin:/bin")
    result = cli("doctor", "--output", "json")
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["eksctl"] == {"name": "eksctl", "status": "ok", "detail": "0.230.0", "required": True}
    assert checks["kubectl"]["detail"].startswith("1.34.")
    assert checks["aws identity"]["status"] == "ok" and "123456789012" in checks["aws identity"]["detail"]
    assert data["ok"] is True and result.exit_code == 0


FORBIDDEN_AT_START = ("boto3", "botocore", "kubernetes", "mlflow", "rich", "yaml", "jinja2", "tenacity")


@pytest.mark.parametrize("argv", [["--help"], ["version"], ["serve", "--help"]])
def test_help_and_version_import_no_heavy_library(argv):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['kservectl', *{argv!r}]\n"
        "try:\n    runpy.run_module('kservectl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {FORBIDDEN_AT_START!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "LOADED []"
