"""Configuration: ``kservectl.yaml`` + ``KSERVECTL_*`` environment + command-line flags.

Precedence is flags > environment > file > defaults, and ``Provenance`` records where every
effective value came from (``kservectl config show``). The whole config is validated before
anything runs (``validate``): a bad value raises ``ConfigError`` naming the field, the value
and what is allowed.

Keys are dotted paths (``nodes.desired``); the environment variable of a key is
``KSERVECTL_`` + the key upper-cased with dots as underscores (``KSERVECTL_NODES_DESIRED``);
``KSERVECTL_CLUSTER`` and ``KSERVECTL_REGION`` are short aliases.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl import validation
from kservectl.errors import ConfigError
from kservectl.matrix import PINS

CONFIG_FILENAME = "kservectl.yaml"
ENV_PREFIX = "KSERVECTL_"
ENV_ALIASES = {"KSERVECTL_CLUSTER": "cluster.name", "KSERVECTL_REGION": "cluster.region"}


def _f(default: Any, help: str, kind: str = "str", *, secret: bool = False, check: Any = None) -> Any:
    """A config field: its default, help text (also the comment in ``config init``), its kind
    (str, int, bool, list) and its validator ``check(key, value)``."""
    meta = {"help": help, "kind": kind, "secret": secret, "check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ClusterSection:
    name: str = _f("kservectl", "EKS cluster name (also the ownership tag value)", check=validation.cluster_name)
    region: str = _f("us-west-2", "AWS region", check=validation.region)
    kubernetes_version: str = _f(
        PINS["kubernetes"].version, "EKS Kubernetes version, a quoted string such as \"1.34\"",
        check=validation.kubernetes_version,
    )
    availability_zones: list = _f(
        [], "availability zones for the nodes; empty lets eksctl choose (3, or 2 in us-east-1)", "list",
        check=validation.availability_zones,
    )
    control_plane_logging: list = _f(
        ["api", "audit", "authenticator"], "CloudWatch control-plane log types (empty turns logging off)",
        "list", check=validation.log_types,
    )
    autoscaler: bool = _f(True, "install the Cluster Autoscaler (nodes between nodes.min and nodes.max)", "bool")


@dataclass(frozen=True)
class NodesSection:
    instance_type: str = _f("m5.xlarge", "EC2 instance type of the managed node group",
                            check=validation.instance_type)
    desired: int = _f(3, "desired node count", "int", check=validation.non_negative)
    min: int = _f(3, "minimum node count", "int", check=validation.non_negative)
    max: int = _f(6, "maximum node count", "int", check=validation.positive)
    volume_size: int = _f(80, "root volume size in GiB (gp3)", "int", check=validation.positive)


@dataclass(frozen=True)
class StorageSection:
    bucket: str = _f("", "S3 bucket for MLflow artifacts; empty derives one from cluster, account and region",
                     check=validation.bucket_name_or_empty)
    kms_key_id: str = _f("", "KMS key for SSE-KMS; empty uses SSE-S3", check=validation.kms_key_or_empty)
    noncurrent_version_days: int = _f(30, "expire noncurrent object versions after N days (0: keep)", "int",
                                      check=validation.non_negative)


@dataclass(frozen=True)
class NamespacesSection:
    kserve: str = _f("kserve", "namespace of the KServe controller", check=validation.dns_label)
    models: str = _f("models", "namespace of the InferenceServices", check=validation.dns_label)
    mlflow: str = _f("mlflow", "namespace of the MLflow tracking server", check=validation.dns_label)


@dataclass(frozen=True)
class ExposureSection:
    scheme: str = _f("internet-facing", "gateway NLB scheme: internet-facing or internal",
                     check=validation.choice("internet-facing", "internal"))
    source_ranges: list = _f(["0.0.0.0/0"], "CIDRs allowed to reach the gateway NLB", "list",
                             check=validation.cidrs)
    certificate_arn: str = _f("", "ACM certificate ARN: the NLB terminates TLS on 443 (empty: HTTP on 80)",
                              check=validation.acm_arn_or_empty)
    domain: str = _f("example.com", "domain of the model URLs (send it as the Host header without DNS)",
                     check=validation.domain)
    dns: str = _f("host-header", "how clients reach models: host-header, sslip or domain",
                  check=validation.choice("host-header", "sslip", "domain"))


@dataclass(frozen=True)
class KServeSection:
    mode: str = _f("knative", "KServe deployment mode: knative (scale to zero, canary) or standard",
                   check=validation.choice("knative", "standard"))


@dataclass(frozen=True)
class MlflowSection:
    public: bool = _f(False, "expose the tracking server through a load balancer (needs basic auth)", "bool")
    pvc_size: str = _f("10Gi", "size of the gp3 volume holding the sqlite backend store",
                       check=validation.quantity)
    database_uri: str = _f("", "external backend store URI (e.g. RDS Postgres); empty uses sqlite on the PVC",
                           secret=True)


@dataclass(frozen=True)
class ModelSection:
    name: str = _f("wine", "InferenceService name (the <name> in /v2/models/<name>/infer)",
                   check=validation.dns_label)
    uri: str = _f("", "model to serve: models:/<name>/<version>, models:/<name>@<alias> or s3://...; "
                  "empty serves the example wine classifier", check=validation.model_uri_or_empty)
    min_replicas: int = _f(1, "minimum replicas (0 scales to zero; knative mode only)", "int",
                           check=validation.non_negative)
    max_replicas: int = _f(3, "maximum replicas", "int", check=validation.positive)
    scale_metric: str = _f("concurrency", "autoscaling metric: concurrency, rps, cpu or memory",
                           check=validation.choice("concurrency", "rps", "cpu", "memory"))
    scale_target: int = _f(10, "autoscaling target per replica", "int", check=validation.positive)
    cpu: str = _f("1", "CPU request and limit of the predictor", check=validation.quantity)
    memory: str = _f("2Gi", "memory request and limit of the predictor", check=validation.quantity)


@dataclass(frozen=True)
class VersionsSection:
    kserve: str = _f(PINS["kserve"].version, PINS["kserve"].source, check=validation.semver)
    knative_serving: str = _f(PINS["knative_serving"].version, PINS["knative_serving"].source,
                              check=validation.semver)
    net_kourier: str = _f(PINS["net_kourier"].version, PINS["net_kourier"].source, check=validation.semver)
    cert_manager: str = _f(PINS["cert_manager"].version, PINS["cert_manager"].source, check=validation.semver)
    aws_load_balancer_controller: str = _f(
        PINS["aws_load_balancer_controller"].version, PINS["aws_load_balancer_controller"].source,
        check=validation.semver,
    )
    ebs_csi_driver: str = _f(PINS["ebs_csi_driver"].version, PINS["ebs_csi_driver"].source,
                             check=validation.eks_addon_version)
    mlserver_image: str = _f(PINS["mlserver_image"].version, PINS["mlserver_image"].source,
                             check=validation.image)
    mlflow_image: str = _f(PINS["mlflow_image"].version, PINS["mlflow_image"].source, check=validation.image)
    metrics_server_chart: str = _f(PINS["metrics_server_chart"].version, PINS["metrics_server_chart"].source,
                                   check=validation.semver)


@dataclass(frozen=True)
class LocalSection:
    mlflow_port: int = _f(0, "local provider: MLflow port (0 picks a free one)", "int", check=validation.port)
    model_port: int = _f(0, "local provider: MLServer HTTP port (0 picks a free one)", "int",
                         check=validation.port)


@dataclass(frozen=True)
class AwsSection:
    profile: str = _f("", "AWS profile (empty: the default credential chain)")


@dataclass(frozen=True)
class Config:
    provider: str = _f("eks", "where the platform runs: eks or local", check=validation.choice("eks", "local"))
    cluster: ClusterSection = field(default_factory=ClusterSection)
    nodes: NodesSection = field(default_factory=NodesSection)
    storage: StorageSection = field(default_factory=StorageSection)
    namespaces: NamespacesSection = field(default_factory=NamespacesSection)
    exposure: ExposureSection = field(default_factory=ExposureSection)
    kserve: KServeSection = field(default_factory=KServeSection)
    mlflow: MlflowSection = field(default_factory=MlflowSection)
    model: ModelSection = field(default_factory=ModelSection)
    versions: VersionsSection = field(default_factory=VersionsSection)
    local: LocalSection = field(default_factory=LocalSection)
    aws: AwsSection = field(default_factory=AwsSection)

    def get(self, key: str) -> Any:
        node: Any = self
        for part in key.split("."):
            node = getattr(node, part)
        return node

    def flat(self) -> dict[str, Any]:
        return {key: self.get(key) for key in FIELDS}


@dataclass(frozen=True)
class FieldInfo:
    key: str
    kind: str
    default: Any
    help: str
    secret: bool
    check: Any

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper().replace(".", "_")


def _collect(cls: type, prefix: str = "") -> dict[str, FieldInfo]:
    out: dict[str, FieldInfo] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if f.metadata:
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            out[key] = FieldInfo(key, f.metadata["kind"], default, f.metadata["help"],
                                 f.metadata["secret"], f.metadata["check"])
        else:
            out.update(_collect(f.default_factory, key + "."))  # type: ignore[arg-type]
    return out


FIELDS: dict[str, FieldInfo] = _collect(Config)
SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config) if not f.metadata)


@dataclass
class Provenance:
    """Where each effective value came from: ``default``, ``file <path>``, ``env NAME`` or ``flag --x``."""

    sources: dict[str, str] = field(default_factory=dict)

    def of(self, key: str) -> str:
        return self.sources.get(key, "default")


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    provenance: Provenance
    path: Path | None


def find_config_file(explicit: Path | None, cwd: Path | None = None) -> Path | None:
    """``--config`` (or ``KSERVECTL_CONFIG``) first, then ``./kservectl.yaml``."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("--config", str(explicit), "no such file; run `kservectl config init` to create one")
        return explicit
    candidate = (cwd or Path.cwd()) / CONFIG_FILENAME
    return candidate if candidate.is_file() else None


def load(
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Merge defaults < file < environment < flags, coerce types and validate everything."""
    env = os.environ if env is None else env
    if config_path is None and env.get("KSERVECTL_CONFIG"):
        config_path = Path(env["KSERVECTL_CONFIG"])
    path = find_config_file(config_path, cwd)
    values: dict[str, Any] = {key: info.default for key, info in FIELDS.items()}
    prov = Provenance()

    if path is not None:
        for key, raw in _read_file(path).items():
            values[key] = _coerce_file(FIELDS[key], raw, f"file {path}")
            prov.sources[key] = f"file {path}"

    for name, key in _env_keys(env).items():
        values[key] = _coerce_text(FIELDS[key], env[name], f"env {name}")
        prov.sources[key] = f"env {name}"

    for key, raw in (flags or {}).items():
        if raw is None:
            continue
        if key not in FIELDS:
            raise ConfigError(key, raw, "not a config key")  # a programming error surfaced plainly
        flag = (flag_names or {}).get(key, f"flag for {key}")
        values[key] = raw if not isinstance(raw, str) else _coerce_text(FIELDS[key], raw, flag)
        prov.sources[key] = flag

    config = _build(values)
    validate(config, prov)
    return LoadedConfig(config, prov, path)


def validate(config: Config, provenance: Provenance | None = None) -> None:
    """Check every field, then the rules that span fields. First error wins (one line)."""
    prov = provenance or Provenance()
    for key, info in FIELDS.items():
        if info.check is not None:
            value = config.get(key)
            try:
                info.check(key, value)
            except ConfigError as exc:
                raise ConfigError(exc.field, exc.value, exc.allowed, source=_source_hint(prov, key)) from None
    n = config.nodes
    if not n.min <= n.desired <= n.max:
        raise ConfigError(
            "nodes.desired", n.desired,
            f"nodes must satisfy min <= desired <= max, got min={n.min} desired={n.desired} max={n.max}",
            source=_source_hint(prov, "nodes.desired"),
        )
    m = config.model
    if m.min_replicas > m.max_replicas:
        raise ConfigError("model.min_replicas", m.min_replicas,
                          f"must be <= model.max_replicas ({m.max_replicas})")
    if config.kserve.mode == "standard" and m.min_replicas == 0:
        raise ConfigError("model.min_replicas", 0,
                          "scale to zero needs kserve.mode=knative; set min_replicas >= 1 or use knative mode")
    zones = config.cluster.availability_zones
    for zone in zones:
        if not zone.startswith(config.cluster.region):
            raise ConfigError("cluster.availability_zones", zone,
                              f"every zone must be in region {config.cluster.region} (e.g. {config.cluster.region}a)")
    e = config.exposure
    if e.dns == "domain" and e.domain == FIELDS["exposure.domain"].default:
        raise ConfigError("exposure.domain", e.domain,
                          "exposure.dns=domain needs a domain you own: set exposure.domain "
                          "(or use exposure.dns=host-header or sslip)", source=_source_hint(prov, "exposure.domain"))
    if config.mlflow.public and config.exposure.source_ranges == []:
        raise ConfigError("exposure.source_ranges", [], "a public MLflow needs at least one source CIDR")


def _source_hint(prov: Provenance, key: str) -> str | None:
    src = prov.of(key)
    return None if src == "default" else src


def _read_file(path: Path) -> dict[str, Any]:
    import yaml  # imported here: `kservectl --help` must not pay for it

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("--config", str(path), f"is not valid YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("--config", str(path), "must be a YAML mapping of sections (see `kservectl config init`)")
    flat: dict[str, Any] = {}
    for top, value in data.items():
        top = str(top)
        if top in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(top, value, f"must be a mapping of {top}.* keys")
            for sub, subvalue in value.items():
                flat[f"{top}.{sub}"] = subvalue
        else:
            flat[top] = value
    for key in flat:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            fix = f"did you mean {close[0]}?" if close else "see `kservectl config init` for the keys"
            raise ConfigError(key, flat[key], f"unknown config key in {path}; {fix}")
    return flat


def _env_keys(env: Mapping[str, str]) -> dict[str, str]:
    by_env = {info.env: key for key, info in FIELDS.items()}
    found: dict[str, str] = {}
    for name in env:
        if name in ENV_ALIASES:
            found[name] = ENV_ALIASES[name]
        elif name in by_env:
            found[name] = by_env[name]
    # a long name wins over its alias when both are set
    ordered = sorted(found.items(), key=lambda item: item[0] in ENV_ALIASES, reverse=True)
    return dict(ordered)


def _coerce_file(info: FieldInfo, raw: Any, source: str) -> Any:
    kind = info.kind
    if kind == "str":
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise ConfigError(info.key, raw, f"must be a quoted string in YAML, e.g. \"{raw}\"", source=source)
        return raw
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(info.key, raw, "must be a whole number", source=source)
        return raw
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(info.key, raw, "must be true or false", source=source)
        return raw
    if kind == "list":
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ConfigError(info.key, raw, "must be a list of quoted strings", source=source)
        return list(raw)
    raise AssertionError(kind)


def _coerce_text(info: FieldInfo, raw: str, source: str) -> Any:
    kind = info.kind
    if kind == "str":
        return raw
    if kind == "int":
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(info.key, raw, "must be a whole number", source=source) from None
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(info.key, raw, "must be true or false", source=source)
    if kind == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    raise AssertionError(kind)


def _build(values: Mapping[str, Any]) -> Config:
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in values.items():
        if "." in key:
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = value
        else:
            top[key] = value
    kwargs: dict[str, Any] = dict(top)
    for f in dataclasses.fields(Config):
        if not f.metadata:
            kwargs[f.name] = f.default_factory(**sections.get(f.name, {}))  # type: ignore[misc]
    return Config(**kwargs)


def redacted(info: FieldInfo, value: Any) -> Any:
    """The value as shown to people: secrets are never printed."""
    if info.secret and value:
        return "<redacted>"
    return value
