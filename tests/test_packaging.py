"""The wheel carries the templates and data files, so an installed kservectl renders."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_an_installed_wheel_finds_its_templates_and_renders(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "--disable-pip-version-check", str(REPO), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("kservectl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "kservectl/templates/eksctl/cluster.yaml.j2" in names
    assert "kservectl/data/aws-load-balancer-controller/iam_policy.json" in names
    source_templates = {f"kservectl/templates/{p.relative_to(REPO / 'templates')}"
                        for p in (REPO / "templates").rglob("*") if p.is_file()}
    assert source_templates <= set(names)
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import kservectl, kservectl.render as r\n"
        "assert kservectl.__file__.startswith(sys.argv[1]), kservectl.__file__\n"
        "from kservectl import config\nfrom kservectl.context import Context\n"
        "from kservectl.phases import cluster\n"
        "print(r.templates_dir())\n"
        "print(cluster.render_cluster_config(Context(config=config.load(env={}).config)).splitlines()[2])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.splitlines()
    assert out[0] == str(tmp_path / "site" / "kservectl" / "templates")
    assert out[1] == "apiVersion: eksctl.io/v1alpha5"
