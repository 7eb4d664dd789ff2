"""Field validators. Each takes ``(key, value)`` and raises ``ConfigError`` naming the field,
the value and what is allowed. They are also used for command-line arguments (model URIs,
service names) so the rules live in one place.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from kservectl.errors import ConfigError

# AWS commercial, GovCloud and China regions known to kservectl (EKS is offered in each). Only the
# commercial `aws` partition is supported: kservectl ships the load balancer controller's IAM
# policy for that partition alone (GovCloud and China have their own iam_policy_*.json).
KNOWN_REGIONS = frozenset(
    """
    us-east-1 us-east-2 us-west-1 us-west-2 af-south-1 ap-east-1 ap-east-2 ap-south-1 ap-south-2
    ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-6
    ap-southeast-7 ap-northeast-1 ap-northeast-2 ap-northeast-3 ca-central-1 ca-west-1 eu-central-1
    eu-central-2 eu-west-1 eu-west-2 eu-west-3 eu-south-1 eu-south-2 eu-north-1 il-central-1
    me-south-1 me-central-1 mx-central-1 sa-east-1 us-gov-east-1 us-gov-west-1 cn-north-1
    cn-northwest-1
    """.split()
)

_CLUSTER_NAME = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]*$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_K8S_VERSION = re.compile(r"^1\.\d{2}$")
_OTHER_PARTITIONS = {"cn-": "aws-cn", "us-gov-": "aws-us-gov"}
_EKS_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+(-eksbuild\.\d+)?$")
_SEMVER = re.compile(r"^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:\d+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?"
                    r"(@sha256:[a-f0-9]{64})?$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MODEL_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$")
_LOGGED_MODEL = re.compile(r"^models:/m-[0-9a-f]{32}$")
_RUNS = re.compile(r"^runs:/[0-9a-f]{32}/\S+$")
_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

Check = Callable[[str, Any], None]


def cluster_name(key: str, value: str) -> None:
    if not (1 <= len(value) <= 100) or not _CLUSTER_NAME.match(value):
        raise ConfigError(
            key, value,
            "use 1-100 characters: a letter first, then letters, digits and hyphens (EKS and eksctl rules)",
        )


def region(key: str, value: str) -> None:
    if not _REGION.match(value):
        raise ConfigError(key, value, "must look like us-west-2 (an AWS region code)")
    if value not in KNOWN_REGIONS:
        raise ConfigError(key, value, "is not a known AWS region; use one such as us-east-1, us-west-2, eu-west-1")
    for prefix, partition in _OTHER_PARTITIONS.items():
        if value.startswith(prefix):
            raise ConfigError(
                key, value,
                f"is in the {partition} partition, and kservectl ships the load balancer controller's IAM policy "
                "for the aws partition only; use a commercial region such as us-east-1, us-west-2, eu-west-1",
            )


def kubernetes_version(key: str, value: str) -> None:
    if not _K8S_VERSION.match(value):
        raise ConfigError(key, value, 'must be a quoted Kubernetes minor version such as "1.34"')


def semver(key: str, value: str) -> None:
    if not _SEMVER.match(value):
        raise ConfigError(key, value, 'must be a quoted version string such as "v1.2.3"')


def eks_addon_version(key: str, value: str) -> None:
    """An EKS add-on version for eksctl: ``v1.2.3`` (eksctl installs the newest ``v1.2.3-eksbuild.N``
    whose version contains it) or an exact ``v1.2.3-eksbuild.N``."""
    if not _EKS_ADDON_VERSION.match(value):
        raise ConfigError(key, value, 'must be a quoted EKS add-on version such as "v1.2.3" or "v1.2.3-eksbuild.1"')


def image(key: str, value: str) -> None:
    if not _IMAGE.match(value) or ":" not in value.rsplit("/", 1)[-1] and "@" not in value:
        raise ConfigError(key, value, "must be a container image with a pinned tag, e.g. docker.io/org/name:1.2.3")


def instance_type(key: str, value: str) -> None:
    if not _INSTANCE_TYPE.match(value):
        raise ConfigError(key, value, "must be an EC2 instance type such as m5.xlarge")


def non_negative(key: str, value: int) -> None:
    if value < 0:
        raise ConfigError(key, value, "must be 0 or more")


def positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(key, value, "must be 1 or more")


def port(key: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(key, value, "must be a TCP port 1-65535, or 0 to pick a free one")


def choice(*allowed: str) -> Check:
    def check(key: str, value: str) -> None:
        if value not in allowed:
            raise ConfigError(key, value, "must be one of " + ", ".join(allowed))

    return check


def dns_label(key: str, value: str) -> None:
    if not _DNS_LABEL.match(value):
        raise ConfigError(
            key, value,
            "must be a DNS label: lowercase letters, digits and hyphens, a letter first, at most 63 characters",
        )


def domain(key: str, value: str) -> None:
    if not _DOMAIN.match(value) or len(value) > 253:
        raise ConfigError(key, value, "must be a DNS domain such as example.com or models.mycorp.com")


def quantity(key: str, value: str) -> None:
    if not _QUANTITY.match(value):
        raise ConfigError(key, value, 'must be a Kubernetes quantity such as "500m", "1", "2Gi"')


def acm_arn_or_empty(key: str, value: str) -> None:
    if value and not _ACM_ARN.match(value):
        raise ConfigError(key, value,
                          "must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)")


def cidrs(key: str, value: list[str]) -> None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError:
            raise ConfigError(key, item, "must be a CIDR such as 203.0.113.0/24 (host bits zero)") from None


def availability_zones(key: str, value: list[str]) -> None:
    for zone in value:
        if not re.match(r"^[a-z]{2}(-gov)?-[a-z]+-\d{1,2}[a-z]$", zone):
            raise ConfigError(key, zone, "must be availability zone names such as us-west-2a")
    if len(value) == 1:
        raise ConfigError(key, value, "EKS needs at least two availability zones (or leave it empty)")
    twice = sorted({zone for zone in value if value.count(zone) > 1})
    if twice:
        raise ConfigError(key, value, f"lists {', '.join(twice)} twice; name each zone once")


def log_types(key: str, value: list[str]) -> None:
    for item in value:
        if item not in _LOG_TYPES:
            raise ConfigError(key, item, "must be among " + ", ".join(_LOG_TYPES))


def bucket_name(key: str, value: str) -> None:
    """S3 general purpose bucket naming rules."""
    rule = "3-63 lowercase letters, digits, hyphens (and dots), starting and ending with a letter or digit"
    if not _BUCKET.match(value) or ".." in value or ".-" in value or "-." in value:
        raise ConfigError(key, value, f"must be a valid S3 bucket name: {rule}")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        pass
    else:
        raise ConfigError(key, value, "must not be formatted as an IP address")
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if value.startswith(prefix):
            raise ConfigError(key, value, f"must not start with the reserved prefix {prefix}")
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if value.endswith(suffix):
            raise ConfigError(key, value, f"must not end with the reserved suffix {suffix}")


def bucket_name_or_empty(key: str, value: str) -> None:
    if value:
        bucket_name(key, value)


def model_uri(key: str, value: str) -> None:
    if _MODEL_REGISTRY.match(value) or _LOGGED_MODEL.match(value) or _RUNS.match(value):
        return
    if value.startswith("s3://"):
        rest = value[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        bucket_name(key, bucket)
        if not prefix:
            raise ConfigError(key, value, "an s3:// URI must name the folder that holds MLmodel: s3://bucket/path")
        return
    raise ConfigError(
        key, value,
        "must be models:/<name>/<version>, models:/<name>@<alias>, runs:/<run-id>/<path> or s3://<bucket>/<path>",
    )


def model_uri_or_empty(key: str, value: str) -> None:
    if value:
        model_uri(key, value)


KMS_KEY_ID = re.compile(r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$")
KMS_ALIAS = re.compile(r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?alias/[A-Za-z0-9/_-]{1,250}$")


def kms_key_or_empty(key: str, value: str) -> None:
    """A KMS key id, key ARN, ``alias/<name>`` or alias ARN (empty: SSE-S3)."""
    if value and not (KMS_KEY_ID.match(value) or KMS_KEY_ARN.match(value) or KMS_ALIAS.match(value)):
        raise ConfigError(key, value, "must be a KMS key id, key ARN, alias/<name> or alias ARN (empty uses SSE-S3)")
