"""``kservectl status`` on EKS: the whole platform in one table, read-only.

One row per thing that must work: the cluster and its nodes (and EKS add-ons), the Cluster
Autoscaler when configured, the AWS Load Balancer Controller, cert-manager, Knative Serving,
net-kourier and the KServe charts with their versions, the gateway NLB, MLflow, the S3 bucket
and IRSA roles, and every InferenceService with its URL, replicas and traffic split. Each row
comes from the phase's own ``status`` function; a component whose read fails shows the error in
its row and the rest still shows. ``ready`` is true only when every row is.

A cluster that does not exist is said plainly (``ClusterMissing``, exit 1), not a table of errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kservectl.context import Context
from kservectl.errors import KservectlError
from kservectl.phases import cluster


class ClusterMissing(KservectlError):
    """There is no EKS cluster to show."""


def _row(component: str, ready: bool, version: str | None = None, detail: str = "", **extra: Any) -> dict[str, Any]:
    return {"component": component, "version": version or "", "ready": bool(ready), "detail": detail, **extra}


def _guard(rows: list[dict[str, Any]], details: dict[str, Any], key: str, component: str,
           read: Callable[[], list[dict[str, Any]]]) -> None:
    """Run one component's read; a failure becomes that component's row (not ready, the error)."""
    try:
        rows.extend(read())
    except KservectlError as exc:
        rows.append(_row(component, False, detail=f"error: {exc.one_line()}"))
        details[key] = {"error": exc.one_line()}
    except Exception as exc:  # read-only: one broken read must not hide the rest
        rows.append(_row(component, False, detail=f"error: {type(exc).__name__}: {exc}"))
        details[key] = {"error": f"{type(exc).__name__}: {exc}"}


def status(ctx: Context, *, http: Any = None) -> dict[str, Any]:
    """Every component's state (see the module docstring). Raises ``ClusterMissing`` when the
    EKS cluster does not exist."""
    found = cluster.describe_cluster(ctx)
    if found is None:
        stacks = cluster.eksctl_stacks(ctx)
        left = f"; stacks of it remain ({', '.join(s.describe() for s in stacks)})" if stacks else ""
        raise ClusterMissing(f"EKS cluster {ctx.cluster!r} does not exist in {ctx.region}{left}",
                             hint=f"create the platform with `kservectl up --cluster {ctx.cluster} "
                                  f"--region {ctx.region}`" + (" (it clears them first)" if stacks else ""))
    notes: list[str] = []
    if found.get("status") == "ACTIVE" and not cluster.kubeconfig_path(ctx).is_file():
        try:  # a local file only: the platform itself is not changed
            actions: list[str] = []
            cluster.ensure_kubeconfig(ctx, actions)
            notes += actions
        except KservectlError as exc:
            notes.append(f"cannot write the kubeconfig: {exc.one_line()}")
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}

    def cluster_rows() -> list[dict[str, Any]]:
        info = cluster.status(ctx)
        details["cluster"] = info
        state = info.get("state")
        drift = info.get("drift") or []
        out = [_row("EKS cluster", state == "ACTIVE", info.get("version"),
                    f"{state}; {info.get('endpoint') or 'no endpoint yet'}"
                    + (f"; {len(drift)} difference(s) from the config: "
                       + "; ".join(d["message"] for d in drift) if drift else ""))]
        nodes = info.get("nodes") or {}
        groups = info.get("nodegroups")
        sizes = ""
        if isinstance(groups, list) and groups:
            sizes = "; " + ", ".join(f"{g['name']} {'/'.join(g['instance_types'])} desired {g['desired']} "
                                     f"(min {g['min']}, max {g['max']}) {g['status']}" for g in groups)
        elif isinstance(groups, dict):
            sizes = f"; node groups: {groups.get('error')}"
        if "error" in nodes:
            out.append(_row("nodes", False, detail=f"error: {nodes['error']}{sizes}"))
        else:
            not_ready = nodes.get("not_ready") or []
            out.append(_row("nodes", nodes.get("total", 0) > 0 and not not_ready, None,
                            f"{nodes.get('ready', 0)}/{nodes.get('total', 0)} Ready"
                            + (f" (not Ready: {', '.join(not_ready)})" if not_ready else "") + sizes))
        addons = info.get("addons")
        if isinstance(addons, dict):
            out.append(_row("EKS add-ons", False, detail=f"error: {addons.get('error')}"))
        else:
            for addon in addons or []:
                issues = "; ".join(filter(None, addon.get("issues") or []))
                out.append(_row(f"add-on {addon['name']}", addon.get("status") == "ACTIVE", addon.get("version"),
                                f"{addon.get('status')}" + (f": {issues}" if issues else "")))
        scaler = info.get("autoscaler")
        if scaler is not None:
            if "error" in scaler:
                out.append(_row("cluster-autoscaler", False, detail=f"error: {scaler['error']}"))
            elif not scaler.get("installed"):
                out.append(_row("cluster-autoscaler", False, detail="not installed (`kservectl cluster create`)"))
            else:
                out.append(_row("cluster-autoscaler", scaler.get("available"), scaler.get("pinned_chart"),
                                scaler.get("detail", "")))
        return out

    def alb_rows() -> list[dict[str, Any]]:
        from kservectl.phases import alb

        info = alb.status(ctx)
        details["alb"] = info
        dep = info.get("deployment") or {}
        rel = info.get("release") or {}
        if "error" in dep:
            return [_row("aws-load-balancer-controller", False, detail=f"error: {dep['error']}")]
        if not dep.get("exists"):
            return [_row("aws-load-balancer-controller", False, detail="not installed (`kservectl alb install`)")]
        version = rel.get("app_version") or rel.get("chart_version")
        ok = bool(dep.get("available") and info.get("webhook_ready") and rel.get("status") == "deployed")
        detail = f"{dep.get('ready')} ready; webhook {'serving' if info.get('webhook_ready') else 'has no endpoints'}"
        if "error" in rel:
            detail += f"; helm: {rel['error']}"
        elif rel.get("status") and rel.get("status") != "deployed":
            detail += f"; helm release {rel['status']}"
        if not (info.get("policy") or {}).get("exists", True):
            ok, detail = False, detail + f"; IAM policy {info['policy']['name']} missing"
        return [_row("aws-load-balancer-controller", ok, version, detail)]

    def kserve_rows() -> list[dict[str, Any]]:
        from kservectl.phases import kserve

        info = kserve.status(ctx)
        details["kserve"] = info
        out = []
        for c in info.get("components") or []:
            version = c.get("installed") or ""
            if version and not c.get("up_to_date"):
                version = f"{version} (pinned {c.get('pinned')})"
            out.append(_row(c["component"], c.get("ready"), version, c.get("detail", "")))
        if info.get("mode") == "knative" or info.get("gateway"):
            gw = info.get("gateway")
            if gw is None:
                out.append(_row("gateway NLB", False, detail=f"Service {kserve.KOURIER_NS}/{kserve.GATEWAY} missing"))
            else:
                state = gw.get("nlb_state") or "no hostname yet"
                domains = ", ".join(gw.get("domains") or []) or "no domain configured (404 IngressNotConfigured)"
                out.append(_row("gateway NLB", state in ("active", "active_impaired") and bool(gw.get("domains")),
                                None, f"{gw.get('hostname') or 'no address yet'} ({gw.get('scheme')}, {state}); "
                                      f"domains: {domains}", url=gw.get("hostname")))
        if info.get("mode") is None:
            out.append(_row("kserve", False, detail="not installed (`kservectl kserve install`)"))
        return out

    def mlflow_rows() -> list[dict[str, Any]]:
        from kservectl.phases import mlflow

        info = mlflow.status(ctx, http=http)
        details["mlflow"] = info
        if not info.get("installed"):
            return [_row("mlflow", False, detail="not installed (`kservectl mlflow install`)")]
        dep = info.get("deployment") or {}
        health = info.get("health") or {}
        image = str(dep.get("image") or "")
        version = image.rsplit(":", 1)[-1] if ":" in image else image
        pvc = info.get("pvc") or {}
        ok = bool(dep.get("available") and health.get("ok"))
        if info.get("public_health") is not None:
            ok = ok and bool(info["public_health"].get("ok"))
        where = info.get("public_url") or f"private: {info.get('port_forward')}"
        detail = f"{where}; {dep.get('detail')}; health: {health.get('detail')}"
        if pvc:
            detail += f"; PVC {pvc.get('name')} {pvc.get('phase')}"
        return [_row("mlflow", ok, version, detail, url=info.get("public_url"))]

    def storage_rows() -> list[dict[str, Any]]:
        from kservectl.phases import storage

        info = storage.status(ctx)
        details["storage"] = info
        bucket = info.get("bucket") or {}
        roles = info.get("roles") or []
        missing = [r["name"] for r in roles if not r.get("exists")]
        detail = f"s3://{bucket.get('name')} " + ("exists" if bucket.get("exists") else "missing")
        if bucket.get("problem"):
            detail += f" ({bucket['problem']})"
        detail += f"; IRSA roles: {'missing ' + ', '.join(missing) if missing else f'{len(roles)} present'}"
        if (info.get("oidc") or {}).get("problem"):
            detail += f"; {info['oidc']['problem']}"
        return [_row("storage", info.get("ok"), None, detail)]

    def model_rows() -> list[dict[str, Any]]:
        from kservectl.phases import serve

        services = serve.list_services(ctx)
        details["models"] = services
        if not services:
            return [_row("models", True, detail="no InferenceService deployed (`kservectl serve deploy`)")]
        out = []
        for s in services:
            replicas = f"{s.get('replicas') or 0} running (min {s.get('min_replicas', '-')}, " \
                       f"max {s.get('max_replicas', '-')})"
            split = ", ".join(f"{t.get('revision')} {t.get('percent')}%" + (" (latest)" if t.get("latest") else "")
                              for t in s.get("traffic") or []) or "-"
            ready_text = "" if s.get("ready") else f"; {s.get('detail')}"
            out.append(_row(f"model {s['name']}", s.get("ready"), s.get("model_uri"),
                            f"{s.get('url') or 'no URL yet'}; replicas {replicas}; traffic {split}{ready_text}",
                            url=s.get("url"), replicas=s.get("replicas"), traffic=s.get("traffic")))
        return out

    _guard(rows, details, "cluster", "EKS cluster", cluster_rows)
    _guard(rows, details, "alb", "aws-load-balancer-controller", alb_rows)
    _guard(rows, details, "kserve", "kserve", kserve_rows)
    _guard(rows, details, "mlflow", "mlflow", mlflow_rows)
    _guard(rows, details, "storage", "storage", storage_rows)
    _guard(rows, details, "models", "models", model_rows)
    return {"provider": "eks", "cluster": ctx.cluster, "region": ctx.region,
            "ready": all(r["ready"] for r in rows), "components": rows, "notes": notes, "details": details}
