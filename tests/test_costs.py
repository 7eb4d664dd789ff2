"""The price table and the estimates built on it: numbers come from the dated table, other
regions are marked as estimates, unknown instance types are never priced by guess, and the
platform estimate of the default config adds up from its line items."""

from __future__ import annotations

import importlib.resources

import pytest
import yaml

from kservectl import config, costs

HOURS = 730


def load(**flags):
    return config.load(env={}, flags=flags).config


def raw_table() -> dict:
    text = importlib.resources.files("kservectl").joinpath("data", "prices.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def test_every_price_in_the_table_has_a_number_a_unit_a_source_and_a_date():
    data = raw_table()
    assert data["baseline_region"] == "us-east-1" and data["hours_per_month"] == HOURS
    assert data["as_of"]
    entries = list(data["items"].items()) + list(data["instances"].items())
    assert len(entries) >= 15
    for name, entry in entries:
        assert "us-east-1" in entry["regions"], name  # every item can be computed for any region
        if name in data["items"]:
            assert entry["unit"] in ("hour", "gb-month"), name
        for region, figure in entry["regions"].items():
            assert isinstance(figure["price"], (int, float)) and figure["price"] > 0, (name, region)
            assert figure["source"].strip() and str(figure["date"]).strip(), (name, region)


def test_the_reference_prices_come_back_for_us_east_1_with_their_source():
    cluster = costs.price("eks-cluster", "us-east-1")
    assert (cluster.hourly, cluster.estimate, cluster.unknown) == (0.10, False, False)
    assert cluster.monthly == pytest.approx(0.10 * HOURS)
    assert "containers blog" in cluster.source and cluster.date
    node = costs.price("ec2-instance", "us-east-1", instance_type="m5.xlarge")
    assert node.hourly == 0.192 and node.daily == pytest.approx(0.192 * 24)
    assert costs.price("nlb", "us-east-1").hourly == 0.0225
    assert costs.price("nlb-nlcu", "us-east-1").hourly == 0.006
    assert costs.price("nat-gateway", "us-east-1").hourly == 0.045
    assert costs.price("public-ipv4", "us-east-1").hourly == 0.005


def test_per_gb_items_scale_with_the_size_and_spread_the_month_over_its_hours():
    gp3 = costs.price("ebs-gp3", "us-east-1", gb=80)
    assert gp3.monthly == pytest.approx(0.08 * 80)
    assert gp3.hourly == pytest.approx(0.08 * 80 / HOURS)
    assert costs.price("ebs-gp3", "us-east-1").monthly == pytest.approx(0.08)  # one GB by default
    assert costs.price("s3-standard", "us-east-1", gb=100).monthly == pytest.approx(2.3)
    assert costs.price("cloudwatch-logs-storage", "us-east-1", gb=10).monthly == pytest.approx(0.3)


def test_a_region_the_table_does_not_cover_is_computed_from_us_east_1_and_marked_an_estimate():
    east = costs.price("nat-gateway", "us-east-1")
    west = costs.price("nat-gateway", "eu-central-1")
    assert west.estimate is True and east.estimate is False
    assert west.hourly == east.hourly and west.source == east.source
    assert "computed from the us-east-1 price" in west.note and "eu-central-1" in west.note


def test_a_region_with_its_own_figure_uses_it_and_is_not_an_estimate():
    tokyo = costs.price("cloudwatch-logs-storage", "ap-northeast-1", gb=1)
    assert tokyo.monthly == pytest.approx(0.033) and tokyo.estimate is False
    assert "awsi.click" in tokyo.source
    # the same region is still an estimate for an item that has no figure there
    assert costs.price("nlb", "ap-northeast-1").estimate is True


def test_an_unknown_instance_type_is_marked_unknown_and_never_given_a_number():
    found = costs.price("ec2-instance", "us-east-1", instance_type="p5.48xlarge")
    assert found.unknown is True
    assert found.hourly is None and found.monthly is None and found.daily is None
    assert "p5.48xlarge" in found.note
    unknown_kind = costs.price("ebs-standard", "us-east-1", gb=10)  # magnetic: not in the table
    assert unknown_kind.unknown is True and unknown_kind.monthly is None


def test_an_instance_price_needs_the_instance_type():
    with pytest.raises(ValueError, match="instance_type"):
        costs.price("ec2-instance", "us-east-1")


def test_the_platform_estimate_of_the_default_config_lists_what_up_runs_and_sums_it():
    cfg = load(**{"cluster.region": "us-east-1"})
    estimate = costs.platform_estimate(cfg)
    items = {item.resource: item for item in estimate.items}
    assert list(items) == ["EKS control plane", "nodes (m5.xlarge)", "node root volumes (gp3)", "NAT gateway",
                           "gateway NLB (Kourier)", "public IPv4 addresses", "MLflow volume (gp3)"]
    assert items["EKS control plane"].quantity == 1 and items["EKS control plane"].hourly == pytest.approx(0.10)
    assert items["nodes (m5.xlarge)"].quantity == 3
    assert items["nodes (m5.xlarge)"].monthly == pytest.approx(3 * 0.192 * HOURS)
    assert items["node root volumes (gp3)"].monthly == pytest.approx(3 * 80 * 0.08)
    assert items["NAT gateway"].monthly == pytest.approx(0.045 * HOURS)
    assert items["gateway NLB (Kourier)"].monthly == pytest.approx(0.0225 * HOURS)
    # us-east-1: eksctl uses 2 zones, so the NLB holds 2 public addresses, plus the NAT gateway's
    assert items["public IPv4 addresses"].quantity == 3
    assert items["MLflow volume (gp3)"].monthly == pytest.approx(10 * 0.08)
    assert estimate.monthly == pytest.approx(sum(item.monthly for item in estimate.items))
    assert estimate.hourly == pytest.approx(sum(item.hourly for item in estimate.items))
    assert estimate.daily == pytest.approx(estimate.hourly * 24)
    # the reference's baseline is about $560/month before public IPs and PVCs
    assert 500 < estimate.monthly < 650
    assert estimate.estimate is False and estimate.unknown == []
    assert any("NLCU" in line for line in estimate.not_included)


def test_the_platform_estimate_follows_the_config():
    cfg = load(**{"cluster.region": "us-west-2", "nodes.desired": 5, "nodes.max": 6, "nodes.volume_size": 100,
                  "mlflow.public": True, "mlflow.pvc_size": "20Gi"})
    estimate = costs.platform_estimate(cfg)
    items = {item.resource: item for item in estimate.items}
    assert items["nodes (m5.xlarge)"].quantity == 5
    assert items["node root volumes (gp3)"].monthly == pytest.approx(5 * 100 * 0.08)
    assert items["MLflow NLB"].quantity == 1
    assert items["public IPv4 addresses"].quantity == 1 + 2 * 3  # NAT + 3 zones x 2 internet-facing NLBs
    assert items["MLflow volume (gp3)"].monthly == pytest.approx(20 * 0.08)
    assert estimate.estimate is True  # us-west-2 has no figures of its own in the table
    assert all(item.unit.estimate for item in estimate.items)


def test_an_internal_gateway_and_an_external_database_drop_their_line_items():
    cfg = load(**{"exposure.scheme": "internal", "mlflow.database_uri": "postgresql://db.example:5432/mlflow"})
    items = {item.resource: item for item in costs.platform_estimate(cfg).items}
    assert "MLflow volume (gp3)" not in items
    assert items["public IPv4 addresses"].quantity == 1  # only the NAT gateway's


def test_an_unknown_node_type_is_left_out_of_the_totals_and_named():
    cfg = load(**{"nodes.instance_type": "m5.large"})
    estimate = costs.platform_estimate(cfg)
    assert estimate.unknown == ["nodes (m5.large)"]
    nodes = next(item for item in estimate.items if item.unknown)
    assert nodes.monthly is None and nodes.hourly is None
    assert estimate.monthly == pytest.approx(sum(i.monthly for i in estimate.items if i.monthly is not None))
    as_dict = estimate.as_dict()
    assert as_dict["unknown"] == ["nodes (m5.large)"]
    assert next(i for i in as_dict["items"] if i["unknown"])["monthly"] is None


def test_the_estimate_as_data_carries_the_table_date_and_rounded_totals():
    data = costs.platform_estimate(load()).as_dict()
    assert data["prices_as_of"] == raw_table()["as_of"] and data["currency"] == "USD"
    assert set(data["total"]) == {"hourly", "daily", "monthly"}
    assert data["total"]["monthly"] == pytest.approx(sum(i["monthly"] for i in data["items"]), abs=0.05)
    for item in data["items"]:
        assert {"resource", "quantity", "hourly", "daily", "monthly", "source", "date", "estimate"} <= set(item)


@pytest.mark.parametrize(("quantity", "expected"), [("10Gi", 10), ("512Mi", 0.5), ("1Ti", 1024),
                                                    ("2147483648", 2)])
def test_storage_quantities_are_read_in_gib(quantity, expected):
    assert costs.gib(quantity) == pytest.approx(expected)


def test_a_malformed_quantity_is_refused():
    with pytest.raises(ValueError, match="not a storage quantity"):
        costs.gib("ten gigs")
