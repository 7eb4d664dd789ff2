"""The renderer: strict about undefined values, ships its templates, golden ClusterConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kservectl import config
from kservectl.context import Context
from kservectl.phases import cluster as cluster_phase
from kservectl.render import Renderer, RenderError, templates_dir
from support.golden import assert_golden


def ctx_for(text: str = "", tmp: Path | None = None) -> Context:
    if text:
        assert tmp is not None
        path = tmp / "kservectl.yaml"
        path.write_text(text)
        return Context(config=config.load(config_path=path, env={}).config)
    return Context(config=config.load(env={}, cwd=Path("/nonexistent")).config)


def test_an_undefined_template_variable_is_an_error_never_a_blank(tmp_path):
    (tmp_path / "t.yaml.j2").write_text("name: {{ name }}\nregion: {{ region }}\n")
    renderer = Renderer(tmp_path)
    assert renderer.render("t.yaml.j2", {"name": "a", "region": "b"}) == "name: a\nregion: b\n"
    with pytest.raises(RenderError) as info:
        renderer.render("t.yaml.j2", {"name": "a"})
    assert "t.yaml.j2" in info.value.one_line() and "'region' is undefined" in info.value.one_line()


def test_a_missing_template_is_named(tmp_path):
    with pytest.raises(RenderError, match="template nope.j2 not found"):
        Renderer(tmp_path).render("nope.j2", {})


def test_templates_are_found_in_a_source_checkout():
    assert (templates_dir() / "eksctl" / "cluster.yaml.j2").is_file()


def test_the_default_cluster_config_matches_its_golden_file_and_the_eksctl_schema(schema_validator):
    text = cluster_phase.render_cluster_config(ctx_for())
    assert_golden("cluster/default.yaml", text)
    schema_validator.assert_all_valid(text)


def test_a_cluster_config_with_zones_and_no_autoscaler_is_valid_and_golden(tmp_path, schema_validator):
    ctx = ctx_for("cluster:\n  name: ml-prod\n  region: eu-west-1\n  kubernetes_version: \"1.33\"\n"
                  "  availability_zones: [eu-west-1a, eu-west-1b, eu-west-1c]\n  autoscaler: false\n"
                  "  control_plane_logging: []\nnodes:\n  desired: 2\n  min: 1\n  max: 4\n", tmp_path)
    text = cluster_phase.render_cluster_config(ctx)
    assert_golden("cluster/zones-no-autoscaler.yaml", text)
    schema_validator.assert_all_valid(text)
    doc = yaml.safe_load(text)
    assert doc["metadata"]["version"] == "1.33"
    assert doc["availabilityZones"] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    ng = doc["managedNodeGroups"][0]
    assert (ng["desiredCapacity"], ng["minSize"], ng["maxSize"]) == (2, 1, 4)
    assert "k8s.io/cluster-autoscaler/enabled" not in ng["tags"]
    assert "serviceAccounts" not in doc["iam"]


def test_the_cluster_config_carries_oidc_private_nodes_and_the_ownership_tag_everywhere():
    doc = yaml.safe_load(cluster_phase.render_cluster_config(ctx_for()))
    assert doc["iam"]["withOIDC"] is True
    ng = doc["managedNodeGroups"][0]
    assert ng["privateNetworking"] is True and ng["volumeType"] == "gp3"
    assert ng["tags"]["k8s.io/cluster-autoscaler/kservectl"] == "owned"
    assert doc["metadata"]["tags"]["kservectl.io/cluster"] == "kservectl"
    assert all(a["tags"]["kservectl.io/cluster"] == "kservectl" for a in doc["addons"])
    assert {a["name"] for a in doc["addons"]} == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"}
