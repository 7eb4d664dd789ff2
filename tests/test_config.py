"""Config: precedence (flags > env > file > defaults), provenance, validation messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kservectl import config
from kservectl.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_valid_and_match_the_design_card():
    loaded = config.load(env={}, cwd=Path("/nonexistent"))
    c = loaded.config
    assert (c.nodes.desired, c.nodes.instance_type) == (3, "m5.xlarge")
    assert c.provider == "eks"
    assert loaded.path is None
    assert loaded.provenance.of("cluster.name") == "default"


def test_flags_beat_environment_which_beats_the_file_which_beats_defaults(tmp_path):
    cfg = write(tmp_path / "kservectl.yaml", "cluster:\n  name: from-file\n  region: eu-west-1\nnodes:\n  max: 9\n")
    env = {"KSERVECTL_CLUSTER": "from-env", "KSERVECTL_NODES_MAX": "8"}
    loaded = config.load(config_path=cfg, env=env, flags={"cluster.name": "from-flag"},
                         flag_names={"cluster.name": "--cluster"})
    c, prov = loaded.config, loaded.provenance
    assert c.cluster.name == "from-flag" and prov.of("cluster.name") == "--cluster"
    assert c.nodes.max == 8 and prov.of("nodes.max") == "env KSERVECTL_NODES_MAX"
    assert c.cluster.region == "eu-west-1" and prov.of("cluster.region") == f"file {cfg}"
    assert c.nodes.min == 3 and prov.of("nodes.min") == "default"


def test_the_config_file_is_found_in_the_current_folder(tmp_path):
    write(tmp_path / "kservectl.yaml", "cluster:\n  name: here\n")
    loaded = config.load(env={}, cwd=tmp_path)
    assert loaded.config.cluster.name == "here"
    assert loaded.path == tmp_path / "kservectl.yaml"


def test_kservectl_config_env_names_the_file(tmp_path):
    cfg = write(tmp_path / "other.yaml", "provider: local\n")
    loaded = config.load(env={"KSERVECTL_CONFIG": str(cfg)}, cwd=Path("/nonexistent"))
    assert loaded.config.provider == "local"


def test_the_long_environment_name_wins_over_its_alias():
    loaded = config.load(env={"KSERVECTL_CLUSTER": "alias", "KSERVECTL_CLUSTER_NAME": "long"},
                         cwd=Path("/nonexistent"))
    assert loaded.config.cluster.name == "long"


def test_list_values_come_from_comma_separated_environment_variables():
    loaded = config.load(env={"KSERVECTL_EXPOSURE_SOURCE_RANGES": "10.0.0.0/8, 192.0.2.0/24"},
                         cwd=Path("/nonexistent"))
    assert loaded.config.exposure.source_ranges == ["10.0.0.0/8", "192.0.2.0/24"]


# Each bad input, the field it must name, and a fragment of what is allowed.
BAD_FILES = [
    ("cluster:\n  name: Bad_Name\n", "cluster.name='Bad_Name'", "a letter first"),
    ("cluster:\n  name: 9lives\n", "cluster.name='9lives'", "a letter first"),
    ("cluster:\n  region: zz-north-1\n", "cluster.region='zz-north-1'", "not a known AWS region"),
    ("cluster:\n  region: uswest2\n", "cluster.region='uswest2'", "must look like us-west-2"),
    ("cluster:\n  kubernetes_version: 1.30\n", "cluster.kubernetes_version=1.3", "quoted string"),
    ("cluster:\n  kubernetes_version: \"1.3x\"\n", "cluster.kubernetes_version='1.3x'", '"1.34"'),
    ("cluster:\n  availability_zones: [us-west-2a]\n", "cluster.availability_zones", "at least two"),
    ("cluster:\n  availability_zones: [eu-west-1a, eu-west-1b]\n", "cluster.availability_zones='eu-west-1a'",
     "in region us-west-2"),
    ("cluster:\n  control_plane_logging: [everything]\n", "cluster.control_plane_logging='everything'",
     "must be among"),
    ("nodes:\n  min: 4\n  desired: 3\n", "nodes.desired=3", "min <= desired <= max"),
    ("nodes:\n  desired: 7\n", "nodes.desired=7", "min <= desired <= max"),
    ("nodes:\n  desired: three\n", "nodes.desired='three'", "whole number"),
    ("nodes:\n  max: 0\n", "nodes.max=0", "1 or more"),
    ("nodes:\n  instance_type: huge\n", "nodes.instance_type='huge'", "EC2 instance type"),
    ("storage:\n  bucket: My_Bucket\n", "storage.bucket='My_Bucket'", "valid S3 bucket name"),
    ("storage:\n  bucket: ab\n", "storage.bucket='ab'", "valid S3 bucket name"),
    ("storage:\n  bucket: 192.168.1.1\n", "storage.bucket='192.168.1.1'", "IP address"),
    ("storage:\n  bucket: xn--bucket\n", "storage.bucket='xn--bucket'", "reserved prefix"),
    ("storage:\n  bucket: data-s3alias\n", "storage.bucket='data-s3alias'", "reserved suffix"),
    ("storage:\n  bucket: a..b\n", "storage.bucket='a..b'", "valid S3 bucket name"),
    ("exposure:\n  source_ranges: [10.0.0.1/8]\n", "exposure.source_ranges='10.0.0.1/8'", "host bits zero"),
    ("exposure:\n  source_ranges: [everywhere]\n", "exposure.source_ranges='everywhere'", "CIDR"),
    ("exposure:\n  scheme: public\n", "exposure.scheme='public'", "internet-facing, internal"),
    ("exposure:\n  certificate_arn: arn:nope\n", "exposure.certificate_arn='arn:nope'", "ACM certificate ARN"),
    ("exposure:\n  domain: not a domain\n", "exposure.domain='not a domain'", "DNS domain"),
    ("kserve:\n  mode: serverless\n", "kserve.mode='serverless'", "knative, standard"),
    ("kserve:\n  mode: standard\nmodel:\n  min_replicas: 0\n", "model.min_replicas=0", "knative"),
    ("model:\n  uri: gs://bucket/model\n", "model.uri='gs://bucket/model'", "models:/<name>/<version>"),
    ("model:\n  uri: models:/wine\n", "model.uri='models:/wine'", "models:/<name>@<alias>"),
    ("model:\n  uri: s3://bucket-only\n", "model.uri='s3://bucket-only'", "folder that holds MLmodel"),
    ("model:\n  name: Wine_Model\n", "model.name='Wine_Model'", "DNS label"),
    ("model:\n  min_replicas: 5\n  max_replicas: 2\n", "model.min_replicas=5", "<= model.max_replicas"),
    ("model:\n  scale_metric: qps\n", "model.scale_metric='qps'", "concurrency, rps, cpu, memory"),
    ("model:\n  memory: 2 GB\n", "model.memory='2 GB'", "Kubernetes quantity"),
    ("versions:\n  kserve: latest\n", "versions.kserve='latest'", "version string"),
    ("versions:\n  kserve: 0.2\n", "versions.kserve=0.2", "quoted string"),
    ("versions:\n  mlserver_image: seldonio/mlserver\n", "versions.mlserver_image='seldonio/mlserver'",
     "pinned tag"),
    ("local:\n  model_port: 70000\n", "local.model_port=70000", "TCP port"),
    ("provider: gcp\n", "provider='gcp'", "eks, local"),
    ("mlflow:\n  public: yes please\n", "mlflow.public='yes please'", "true or false"),
    ("mlflow:\n  public: true\nexposure:\n  source_ranges: []\n", "exposure.source_ranges=[]", "source CIDR"),
    ("nodes:\n  desird: 3\n", "nodes.desird=3", "did you mean nodes.desired?"),
    ("clusters:\n  name: x\n", "clusters", "unknown config key"),
    ("cluster: eks\n", "cluster='eks'", "must be a mapping"),
    ("- a\n- b\n", "--config=", "must be a YAML mapping"),
    ("cluster:\n  name: [unclosed\n", "--config=", "not valid YAML at line"),
]


@pytest.mark.parametrize(("text", "field", "allowed"), BAD_FILES, ids=[b[1] for b in BAD_FILES])
def test_a_bad_config_value_names_the_field_the_value_and_what_is_allowed(tmp_path, text, field, allowed):
    cfg = write(tmp_path / "kservectl.yaml", text)
    with pytest.raises(ConfigError) as info:
        config.load(config_path=cfg, env={})
    message = info.value.one_line()
    assert field in message
    assert allowed in message
    assert "\n" not in message


BAD_ENV = [
    ({"KSERVECTL_NODES_DESIRED": "lots"}, "nodes.desired='lots' (from env KSERVECTL_NODES_DESIRED)"),
    ({"KSERVECTL_CLUSTER_AUTOSCALER": "maybe"}, "cluster.autoscaler='maybe'"),
    ({"KSERVECTL_REGION": "us-moon-1"}, "cluster.region='us-moon-1' (from env KSERVECTL_REGION)"),
]


@pytest.mark.parametrize(("env", "expected"), BAD_ENV)
def test_a_bad_environment_value_names_the_variable(env, expected):
    with pytest.raises(ConfigError) as info:
        config.load(env=env, cwd=Path("/nonexistent"))
    assert expected in info.value.one_line()


def test_a_missing_config_file_is_a_usage_error_that_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(config_path=tmp_path / "nope.yaml", env={})
    assert "kservectl config init" in info.value.one_line()
    assert info.value.exit_code == 2


def test_config_init_writes_a_commented_file_that_loads_to_the_defaults(cli, tmp_path):
    result = cli("config", "init", "--path", str(tmp_path / "k.yaml"), "--cluster", "team-a")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "k.yaml").read_text()
    assert "# EKS cluster name" in text and "[KSERVECTL_NODES_DESIRED]" in text
    loaded = config.load(config_path=tmp_path / "k.yaml", env={})
    assert loaded.config.cluster.name == "team-a"
    defaults = config.load(env={}, cwd=Path("/nonexistent")).config.flat()
    assert {k: v for k, v in loaded.config.flat().items() if k != "cluster.name"} == {
        k: v for k, v in defaults.items() if k != "cluster.name"}
    for key in config.FIELDS:  # every key is in the file
        assert f"{key.rsplit('.', 1)[-1]}:" in text


def test_config_init_refuses_to_overwrite_without_force(cli, tmp_path):
    target = tmp_path / "k.yaml"
    target.write_text("provider: local\n")
    result = cli("config", "init", "--path", str(target))
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_text() == "provider: local\n"
    assert cli("config", "init", "--path", str(target), "--force").exit_code == 0


def test_config_show_reports_each_value_and_its_source_as_json(cli, tmp_path, monkeypatch):
    write(tmp_path / "kservectl.yaml", "nodes:\n  max: 12\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KSERVECTL_REGION", "eu-central-1")
    result = cli("config", "show", "-o", "json", "--cluster", "c1")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cluster.name"] == {"value": "c1", "source": "--cluster"}
    assert data["cluster.region"] == {"value": "eu-central-1", "source": "env KSERVECTL_REGION"}
    assert data["nodes.max"]["source"].startswith("file ")
    assert data["nodes.min"] == {"value": 3, "source": "default"}


def test_config_show_never_prints_a_database_password(cli, tmp_path, monkeypatch):
    secret = "s3cr3t-Pa55word"
    monkeypatch.setenv("KSERVECTL_MLFLOW_DATABASE_URI", f"postgresql://mlflow:{secret}@db:5432/mlflow")
    for fmt in ("json", "yaml", "table"):
        result = cli("config", "show", "-o", fmt)
        assert result.exit_code == 0
        assert secret not in result.stdout + result.stderr
        assert "<redacted>" in result.stdout


def test_a_bad_flag_exits_2_with_one_line_and_creates_nothing(cli, isolated_env):
    result = cli("plan", "--cluster", "no_underscores", "--out", "out")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "cluster.name='no_underscores' (from --cluster)" in result.stderr
    assert not Path("out").exists()
    assert list(isolated_env.iterdir()) == []


# Messages checked whole: the field, the value, what is allowed and the fix, on one line.
FULL_MESSAGES = [
    ("nodes:\n  min: -1\n", "nodes.min=-1 (from file {path}) is invalid: must be 0 or more"),
    ("cluster:\n  availability_zones: [uswest2a, us-west-2b]\n",
     "cluster.availability_zones='uswest2a' (from file {path}) is invalid: "
     "must be availability zone names such as us-west-2a"),
    ("cluster:\n  availability_zones: [us-west-2a, us-west-2b, us-west-2a]\n",
     "cluster.availability_zones=['us-west-2a', 'us-west-2b', 'us-west-2a'] (from file {path}) is invalid: "
     "lists us-west-2a twice; name each zone once"),
    ("exposure:\n  source_ranges: 10.0.0.0/8\n",
     "exposure.source_ranges='10.0.0.0/8' (from file {path}) is invalid: must be a list of quoted strings"),
    ("cluster:\n  control_plane_logging: [api, 7]\n",
     "cluster.control_plane_logging=['api', 7] (from file {path}) is invalid: must be a list of quoted strings"),
    ("storage:\n  kms_key_id: not-a-key\n",
     "storage.kms_key_id='not-a-key' (from file {path}) is invalid: "
     "must be a KMS key id, key ARN, alias/<name> or alias ARN (empty uses SSE-S3)"),
    ("cluster:\n  region: cn-north-1\n",
     "cluster.region='cn-north-1' (from file {path}) is invalid: is in the aws-cn partition, and kservectl "
     "ships the load balancer controller's IAM policy for the aws partition only; use a commercial region "
     "such as us-east-1, us-west-2, eu-west-1"),
    ("cluster:\n  region: us-gov-west-1\n",
     "cluster.region='us-gov-west-1' (from file {path}) is invalid: is in the aws-us-gov partition, and "
     "kservectl ships the load balancer controller's IAM policy for the aws partition only; use a commercial "
     "region such as us-east-1, us-west-2, eu-west-1"),
    ("exposure:\n  dns: domain\n",
     "exposure.domain='example.com' is invalid: exposure.dns=domain needs a domain you own: set "
     "exposure.domain (or use exposure.dns=host-header or sslip)"),
    ("exposure:\n  dns: domain\n  domain: example.com\n",
     "exposure.domain='example.com' (from file {path}) is invalid: exposure.dns=domain needs a domain you own: "
     "set exposure.domain (or use exposure.dns=host-header or sslip)"),
    ("versions:\n  ebs_csi_driver: \"1.64\"\n",
     "versions.ebs_csi_driver='1.64' (from file {path}) is invalid: must be a quoted EKS add-on version "
     "such as \"v1.2.3\" or \"v1.2.3-eksbuild.1\""),
]


@pytest.mark.parametrize(("text", "expected"), FULL_MESSAGES, ids=[m[1].split(" is invalid")[0].split(" (")[0]
                                                                   + f"-{i}" for i, m in enumerate(FULL_MESSAGES)])
def test_each_validation_message_is_one_exact_line_with_exit_code_2(tmp_path, text, expected):
    cfg = write(tmp_path / "kservectl.yaml", text)
    with pytest.raises(ConfigError) as info:
        config.load(config_path=cfg, env={})
    assert info.value.one_line() == expected.format(path=cfg)
    assert info.value.exit_code == 2


def test_a_region_outside_the_aws_partition_exits_2_naming_region_and_creates_nothing(cli, isolated_env):
    result = cli("plan", "--cluster", "ml", "--region", "cn-northwest-1", "--out", "out")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("Error: cluster.region='cn-northwest-1' (from --region) is invalid: "
                                    "is in the aws-cn partition")
    assert "use a commercial region such as us-east-1" in result.stderr
    assert not Path("out").exists()


def test_a_domain_of_ones_own_or_another_dns_mode_is_accepted():
    own = config.load(env={}, cwd=Path("/nonexistent"),
                      flags={"exposure.dns": "domain", "exposure.domain": "models.mycorp.com"}).config
    assert (own.exposure.dns, own.exposure.domain) == ("domain", "models.mycorp.com")
    default = config.load(env={}, cwd=Path("/nonexistent")).config
    assert (default.exposure.dns, default.exposure.domain) == ("host-header", "example.com")


def test_an_ebs_csi_add_on_version_may_be_a_driver_version_or_an_exact_eks_build():
    for version in ("v1.64.0", "v1.63.1-eksbuild.2"):
        loaded = config.load(env={}, cwd=Path("/nonexistent"), flags={"versions.ebs_csi_driver": version})
        assert loaded.config.versions.ebs_csi_driver == version


# -- `kservectl version` takes --cluster/-c and --region/-r like every command ---------------------
def test_version_takes_cluster_and_region_and_shows_the_effective_ones(cli, monkeypatch):
    from kservectl import __version__

    monkeypatch.setenv("KSERVECTL_REGION", "eu-west-1")
    result = cli("version", "-c", "ml-prod")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1] == "cluster ml-prod in eu-west-1"
    result = cli("version", "--cluster", "ml", "--region", "us-east-2", "-o", "json")
    assert json.loads(result.stdout)["kservectl"] == __version__


def test_version_refuses_a_bad_region_like_every_command(cli):
    result = cli("version", "-r", "us-moon-1")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: cluster.region='us-moon-1' (from --region) is invalid")


def test_version_answers_even_when_the_config_file_in_the_folder_is_broken(cli):
    from kservectl import __version__

    Path("kservectl.yaml").write_text("cluster:\n  nodes: many\n")  # the cwd is a fresh folder
    result = cli("version")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"kservectl {__version__}")
    assert result.stdout.splitlines()[1].startswith("no cluster: the configuration is not valid (")
