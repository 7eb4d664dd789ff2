"""Cost estimates from one dated, region-aware price table: ``kservectl/data/prices.yaml``.

``price(resource_type, region, **size)`` looks one price up. A region the table lists for that
item gets its own figure; any other region gets the us-east-1 figure unchanged, marked
``estimate=True`` (no regional multiplier is invented). An instance type or resource type the
table does not know comes back ``unknown=True`` with no number: a cost is never made up.

``platform_estimate(config)`` prices what ``up`` runs for a config: the EKS control plane, the
nodes, their root volumes, the NAT gateway, the gateway NLB (and MLflow's when public), the public
IPv4 addresses those hold, and MLflow's volume. Traffic-dependent charges (NLCU, NAT data
processing, log ingestion, S3 requests, data transfer) are listed as not included.

Every price carries the source and date the table records for it.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass, field
from typing import Any

PRICES_FILE = ("data", "prices.yaml")
# Resource types priced per instance type (``instance_type=...``) rather than as a table item.
INSTANCE = "ec2-instance"


@dataclass(frozen=True)
class Price:
    """One resource's price in one region. ``hourly``/``monthly`` are None when ``unknown``."""

    hourly: float | None
    monthly: float | None
    estimate: bool
    source: str
    date: str
    resource: str = ""
    region: str = ""
    unknown: bool = False
    note: str = ""

    @property
    def daily(self) -> float | None:
        return None if self.hourly is None else self.hourly * 24

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "region": self.region, "hourly": _round(self.hourly, 6),
                "daily": _round(self.daily, 4), "monthly": _round(self.monthly, 2),
                "estimate": self.estimate, "unknown": self.unknown, "source": self.source,
                "date": self.date, "note": self.note}


@dataclass(frozen=True)
class Table:
    as_of: str
    currency: str
    hours_per_month: float
    baseline_region: str
    items: dict[str, dict[str, Any]]
    instances: dict[str, dict[str, Any]]


@functools.cache
def table() -> Table:
    """The price table, read once from the data file shipped in the package."""
    import yaml  # imported here: `kservectl --help` must not pay for it

    resource = importlib.resources.files("kservectl").joinpath(*PRICES_FILE)
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    return Table(as_of=str(data["as_of"]), currency=data["currency"],
                 hours_per_month=float(data["hours_per_month"]), baseline_region=data["baseline_region"],
                 items=data["items"], instances=data.get("instances") or {})


def hours_per_month() -> float:
    return table().hours_per_month


def price(resource_type: str, region: str, **size: Any) -> Price:
    """The price of ``resource_type`` in ``region``.

    Sizes: ``gb=`` for items priced per GB-month (default 1 GB), ``instance_type=`` for
    ``ec2-instance``. Unknown types come back ``unknown=True`` with no number."""
    tbl = table()
    if resource_type == INSTANCE:
        instance_type = size.get("instance_type")
        if not instance_type:
            raise ValueError("price('ec2-instance', ...) needs instance_type=")
        entry = tbl.instances.get(instance_type)
        label = f"{INSTANCE} {instance_type}"
        if entry is None:
            return Price(None, None, False, "no price in the table", tbl.as_of, label, region, unknown=True,
                         note=f"instance type {instance_type} is not in kservectl's price table")
        return _lookup(entry, "hour", region, label, gb=None)
    entry = tbl.items.get(resource_type)
    if entry is None:
        return Price(None, None, False, "no price in the table", tbl.as_of, resource_type, region, unknown=True,
                     note=f"{resource_type} is not in kservectl's price table")
    gb = float(size.get("gb", 1.0)) if entry["unit"] == "gb-month" else None
    return _lookup(entry, entry["unit"], region, resource_type, gb=gb)


def _lookup(entry: dict[str, Any], unit: str, region: str, label: str, *, gb: float | None) -> Price:
    tbl = table()
    regions = entry["regions"]
    estimate = region not in regions
    figure = regions[tbl.baseline_region] if estimate else regions[region]
    note = (f"computed from the {tbl.baseline_region} price; the table has no figure for {region}"
            if estimate else "")
    rate = float(figure["price"])
    if unit == "hour":
        hourly, monthly = rate, rate * tbl.hours_per_month
    elif unit == "gb-month":
        monthly = rate * (gb if gb is not None else 1.0)
        hourly = monthly / tbl.hours_per_month
    else:  # pragma: no cover - the table's own test checks every unit
        raise ValueError(f"unknown unit {unit!r} in the price table")
    return Price(hourly, monthly, estimate, str(figure["source"]), str(figure["date"]), label, region,
                 note=note)


# --------------------------------------------------------------------------- the platform


@dataclass(frozen=True)
class LineItem:
    resource: str
    quantity: float
    unit: Price  # the price of one
    detail: str = ""

    @property
    def unknown(self) -> bool:
        return self.unit.unknown

    @property
    def hourly(self) -> float | None:
        return None if self.unit.hourly is None else self.unit.hourly * self.quantity

    @property
    def daily(self) -> float | None:
        return None if self.hourly is None else self.hourly * 24

    @property
    def monthly(self) -> float | None:
        return None if self.unit.monthly is None else self.unit.monthly * self.quantity

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "quantity": self.quantity, "detail": self.detail,
                "unit_hourly": _round(self.unit.hourly, 6), "hourly": _round(self.hourly, 4),
                "daily": _round(self.daily, 2), "monthly": _round(self.monthly, 2),
                "estimate": self.unit.estimate, "unknown": self.unknown, "source": self.unit.source,
                "date": self.unit.date, "note": self.unit.note}


@dataclass(frozen=True)
class Estimate:
    region: str
    items: list[LineItem]
    not_included: list[str] = field(default_factory=list)

    @property
    def hourly(self) -> float:
        return sum(item.hourly for item in self.items if item.hourly is not None)

    @property
    def daily(self) -> float:
        return self.hourly * 24

    @property
    def monthly(self) -> float:
        return sum(item.monthly for item in self.items if item.monthly is not None)

    @property
    def estimate(self) -> bool:
        """True when any price came from another region's figure."""
        return any(item.unit.estimate for item in self.items)

    @property
    def unknown(self) -> list[str]:
        """Line items without a price: the totals leave them out."""
        return [item.resource for item in self.items if item.unknown]

    def as_dict(self) -> dict[str, Any]:
        tbl = table()
        return {"region": self.region, "currency": tbl.currency, "prices_as_of": tbl.as_of,
                "hours_per_month": tbl.hours_per_month,
                "items": [item.as_dict() for item in self.items],
                "total": {"hourly": round(self.hourly, 4), "daily": round(self.daily, 2),
                          "monthly": round(self.monthly, 2)},
                "estimate": self.estimate, "unknown": self.unknown, "not_included": list(self.not_included)}


NOT_INCLUDED = [
    "NLB capacity units (NLCU) and NAT gateway data processing: they grow with traffic",
    "CloudWatch Logs ingestion and storage of the control-plane logs",
    "S3 storage and requests of the artifact bucket",
    "data transfer out of AWS",
]


def platform_estimate(config: Any) -> Estimate:
    """What ``up`` would run for ``config`` (a ``kservectl.config.Config``), priced per hour, day
    and month. Line items follow the rendered plan: one EKS cluster, ``nodes.desired`` nodes with
    ``nodes.volume_size`` GiB gp3 root volumes, one NAT gateway (eksctl ``nat.gateway: Single``),
    the Kourier gateway NLB (plus MLflow's when ``mlflow.public``), their public IPv4 addresses,
    and MLflow's gp3 volume when it has one."""
    region = config.cluster.region
    nodes = config.nodes
    items = [
        LineItem("EKS control plane", 1, price("eks-cluster", region), f"cluster {config.cluster.name}"),
        LineItem(f"nodes ({nodes.instance_type})", nodes.desired,
                 price(INSTANCE, region, instance_type=nodes.instance_type), "managed node group, on-demand"),
        LineItem("node root volumes (gp3)", nodes.desired, price("ebs-gp3", region, gb=nodes.volume_size),
                 f"{nodes.volume_size} GiB each"),
        LineItem("NAT gateway", 1, price("nat-gateway", region), "eksctl's single NAT gateway"),
        LineItem("gateway NLB (Kourier)", 1, price("nlb", region), f"{config.exposure.scheme}"),
    ]
    load_balancers = 1
    public_lbs = 1 if config.exposure.scheme == "internet-facing" else 0
    if config.mlflow.public:
        items.append(LineItem("MLflow NLB", 1, price("nlb", region), "mlflow.public: internet-facing"))
        load_balancers += 1
        public_lbs += 1
    zones = len(config.cluster.availability_zones) or (2 if region == "us-east-1" else 3)
    addresses = 1 + public_lbs * zones
    items.append(LineItem("public IPv4 addresses", addresses, price("public-ipv4", region),
                          f"1 for the NAT gateway + {zones} per internet-facing NLB"
                          if public_lbs else "1 for the NAT gateway"))
    if not config.mlflow.database_uri or config.mlflow.public:  # sqlite / the auth store live on the PVC
        size = gib(config.mlflow.pvc_size)
        items.append(LineItem("MLflow volume (gp3)", 1, price("ebs-gp3", region, gb=size),
                              f"PVC {config.mlflow.pvc_size}"))
    return Estimate(region, items, list(NOT_INCLUDED))


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def gib(quantity: str) -> float:
    """A Kubernetes storage quantity ("10Gi", "500M") in GiB (EBS bills GiB-months)."""
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise ValueError(f"not a storage quantity: {quantity!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)] / 2**30


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
