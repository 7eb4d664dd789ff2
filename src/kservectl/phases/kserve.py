"""Phase ``kserve``: cert-manager, Knative Serving + Kourier behind an NLB, KServe and its runtimes.

Install order (each step reads the live state first and changes only the difference, so a second
run makes no mutating call), every version from the compatibility matrix (``versions.*``):

1. cert-manager (Helm, chart ``cert-manager`` from charts.jetstack.io, ``crds.enabled=true``): KServe's
   webhooks get their serving certificates from it.
2. Knative mode only: Knative Serving's release manifests (``serving-crds.yaml`` then
   ``serving-core.yaml``), net-kourier's ``kourier.yaml``, ``config-network`` set to the Kourier
   ingress class, ``config-domain`` set to the model domain (or Knative's ``default-domain`` Job for
   sslip.io magic DNS). The Kourier gateway Service is rendered by kservectl and created *before*
   ``kourier.yaml`` with its AWS Load Balancer Controller annotations, because the controller's
   webhook claims every new LoadBalancer Service and provisions an NLB at once: created
   unannotated, the gateway would get an internal NLB. ``kourier.yaml`` then re-applies its own
   ports to the Service, so kservectl re-asserts its manifest right after (ports, annotations).
   Standard mode only: metrics-server (Helm) for the HPA.
3. KServe from ``oci://ghcr.io/kserve/charts``: ``kserve-crd``, ``kserve-resources`` (deployment mode,
   Kourier gateway settings, domain, URL scheme) and ``kserve-runtime-configs`` (the serving runtimes,
   MLServer pinned to ``versions.mlserver_image``).
4. A record ConfigMap (``kservectl-kserve`` in the KServe namespace) with the installed mode and
   versions. ``installed_mode(ctx)`` reads it (falling back to KServe's own
   ``inferenceservice-config``); its callers: ``install`` (refuses to switch modes in place),
   ``status`` (which components to check) and the serve phase (``serve.serving_mode``: canary and
   scale to zero are refused on a cluster installed in standard mode, whatever ``kserve.mode``
   says).

Waits (each a list-then-watch with a deadline from ``settings.waits``; a timeout names what is
still pending, with conditions and recent events): CRDs Established, every Deployment Available,
the cert-manager and KServe webhooks serving (their Services have ready endpoints), the gateway
Service's NLB hostname, the NLB ``active`` in ELBv2, Knative's ``default-domain`` Job (sslip.io),
and on uninstall the gateway Service deleted and its NLB gone.

The value keys each chart accepts are kept in ``data/charts/<chart>.yaml``; a list whose keys were
transcribed from an older chart than the pinned one says so (``keys_from``), and ``plan`` and
``install`` warn about it once.

Why release manifests and not the Knative Operator: the pinned artifacts are exactly Knative's own
release files (no operator version to pin and keep compatible), the gateway stays the documented
``kourier-system/kourier`` Service, and there is one controller less to run and to wait for; the
operator's one advantage here (Service annotations in its CR) is covered by rendering the Service.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kservectl import __version__, aws, paths
from kservectl.context import Context
from kservectl.errors import ConfigError, KservectlError, KubeError, UsageError, WaitTimeout
from kservectl.kube import Ref, condition, deployment_available, service_hostname
from kservectl.phases.base import LiveValues, PhasePlan, Step
from kservectl.render import Renderer
from kservectl.runner import helm_major, helm_wait_flags, local_helm_major

PHASE = "kserve"

CERT_MANAGER_NS = "cert-manager"
KNATIVE_NS = "knative-serving"
KOURIER_NS = "kourier-system"
GATEWAY = "kourier"
METRICS_NS = "kube-system"
RECORD = "kservectl-kserve"
KOURIER_INGRESS_CLASS = "kourier.ingress.networking.knative.dev"

JETSTACK_REPO = "https://charts.jetstack.io"
METRICS_SERVER_REPO = "https://kubernetes-sigs.github.io/metrics-server/"
KSERVE_CHARTS = "oci://ghcr.io/kserve/charts"
KNATIVE_RELEASES = "https://github.com/knative/serving/releases/download"
KOURIER_RELEASES = "https://github.com/knative-extensions/net-kourier/releases/download"

# AWS Load Balancer Controller annotations on the gateway Service (LBC docs/guide/service/annotations.md).
LBC = "service.beta.kubernetes.io/aws-load-balancer-"
ANN_TYPE = LBC + "type"
ANN_TARGET = LBC + "nlb-target-type"
ANN_SCHEME = LBC + "scheme"
ANN_TAGS = LBC + "additional-resource-tags"
ANN_SSL_CERT = LBC + "ssl-cert"
ANN_SSL_PORTS = LBC + "ssl-ports"
LBC_DEFAULT_SCHEME = "internal"  # LBC >= 2.2 makes NLBs internal unless told otherwise

CRD_API = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
CERT_MANAGER_CRDS = ("certificates.cert-manager.io", "certificaterequests.cert-manager.io",
                     "issuers.cert-manager.io", "clusterissuers.cert-manager.io")
KNATIVE_CRDS = ("services.serving.knative.dev", "configurations.serving.knative.dev",
                "revisions.serving.knative.dev", "routes.serving.knative.dev",
                "ingresses.networking.internal.knative.dev",
                "podautoscalers.autoscaling.internal.knative.dev")
KSERVE_CRDS = ("inferenceservices.serving.kserve.io", "servingruntimes.serving.kserve.io",
               "clusterservingruntimes.serving.kserve.io")

CERT_MANAGER_DEPLOYMENTS = ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")
KNATIVE_DEPLOYMENTS = ("activator", "autoscaler", "controller", "webhook", "net-kourier-controller")
KOURIER_DEPLOYMENTS = ("3scale-kourier-gateway",)
KSERVE_DEPLOYMENTS = ("kserve-controller-manager",)
CERT_MANAGER_WEBHOOK = "cert-manager-webhook"
KSERVE_WEBHOOK = "kserve-webhook-server-service"
MLSERVER_RUNTIME = ("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "kserve-mlserver")

# Rendered files (also what `kservectl plan` writes under <out>/kserve/).
CERT_MANAGER_VALUES = "cert-manager-values.yaml"
KSERVE_VALUES = "kserve-resources-values.yaml"
RUNTIMES_VALUES = "kserve-runtime-configs-values.yaml"
GATEWAY_FILE = "kourier-service.yaml"
NETWORK_FILE = "config-network.yaml"
DOMAIN_FILE = "config-domain.yaml"
RECORD_FILE = "install-record.yaml"


# -- what gets installed -------------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """A Helm release kservectl owns."""

    key: str  # matrix / chart-keys name
    name: str  # release name
    chart: str
    ref: str  # chart reference given to helm
    repo: str | None  # --repo URL (no `helm repo add` state needed)
    namespace: str
    version: str
    values_file: str | None

    @property
    def chart_version(self) -> str:
        """What `helm list` shows in its chart column."""
        return f"{self.chart}-{self.version}"


def releases(ctx: Context) -> dict[str, Release]:
    v = ctx.config.versions
    kserve_ns = ctx.config.namespaces.kserve
    runtimes = "kserve-runtime-configs"
    return {
        "cert-manager": Release("cert-manager", "cert-manager", "cert-manager", "cert-manager", JETSTACK_REPO,
                                CERT_MANAGER_NS, v.cert_manager, CERT_MANAGER_VALUES),
        # A release name of its own: uninstall removes only the metrics-server kservectl installed.
        "metrics-server": Release("metrics-server", "kservectl-metrics-server", "metrics-server",
                                  "metrics-server", METRICS_SERVER_REPO, METRICS_NS, v.metrics_server_chart,
                                  None),
        "kserve-crd": Release("kserve-crd", "kserve-crd", "kserve-crd", f"{KSERVE_CHARTS}/kserve-crd", None,
                              kserve_ns, v.kserve, None),
        "kserve-resources": Release("kserve-resources", "kserve", "kserve-resources",
                                    f"{KSERVE_CHARTS}/kserve-resources", None, kserve_ns, v.kserve,
                                    KSERVE_VALUES),
        runtimes: Release(runtimes, runtimes, runtimes, f"{KSERVE_CHARTS}/{runtimes}", None, kserve_ns,
                          v.kserve, RUNTIMES_VALUES),
    }


def knative_urls(ctx: Context) -> dict[str, str]:
    """The release manifests of the pinned Knative Serving and net-kourier."""
    serving = ctx.config.versions.knative_serving.lstrip("v")
    kourier = ctx.config.versions.net_kourier.lstrip("v")
    base = f"{KNATIVE_RELEASES}/knative-v{serving}"
    return {
        "crds": f"{base}/serving-crds.yaml",
        "core": f"{base}/serving-core.yaml",
        "default-domain": f"{base}/serving-default-domain.yaml",
        "kourier": f"{KOURIER_RELEASES}/knative-v{kourier}/kourier.yaml",
    }


def knative(ctx: Context) -> bool:
    return ctx.config.kserve.mode == "knative"


def tls(ctx: Context) -> bool:
    return bool(ctx.config.exposure.certificate_arn)


def mlserver_image(ctx: Context) -> tuple[str, str]:
    """``versions.mlserver_image`` split into the chart's image and tag values."""
    ref = ctx.config.versions.mlserver_image
    if "@" in ref:
        raise ConfigError("versions.mlserver_image", ref,
                          "the kserve-runtime-configs chart takes an image and a tag; "
                          "use repository:tag, not a digest")
    image, _, tag = ref.rpartition(":")
    return image, tag


def gateway_annotations(ctx: Context) -> dict[str, str]:
    e = ctx.config.exposure
    annotations = {
        ANN_TYPE: "external",
        ANN_TARGET: "ip",
        ANN_SCHEME: e.scheme,
        ANN_TAGS: f"kservectl.io/cluster={ctx.cluster}",
    }
    if e.certificate_arn:
        annotations[ANN_SSL_CERT] = e.certificate_arn
        annotations[ANN_SSL_PORTS] = "443"
    return annotations


def gateway_ports(ctx: Context) -> list[dict[str, Any]]:
    """TLS: the NLB terminates TLS on 443 and forwards plain HTTP to Kourier's 8080; no port 80.
    Without a certificate: plain HTTP on 80."""
    if tls(ctx):
        return [{"name": "https", "port": 443, "target_port": 8080}]
    return [{"name": "http2", "port": 80, "target_port": 8080}]


def domain(ctx: Context) -> str | None:
    """The model domain written to config-domain; None in sslip mode (Knative's Job picks it)."""
    e = ctx.config.exposure
    return None if e.dns == "sslip" else e.domain


# -- rendering ---------------------------------------------------------------------------------
def _values(ctx: Context) -> dict[str, Any]:
    image, tag = mlserver_image(ctx)
    mode = ctx.config.kserve.mode
    return {
        "kservectl_version": __version__,
        "cluster": ctx.cluster,
        "mode": mode,
        "deployment_mode": "Knative" if mode == "knative" else "Standard",
        "domain": ctx.config.exposure.domain,
        "url_scheme": "https" if tls(ctx) else "http",
        "mlserver": {"image": image, "tag": tag},
    }


def record_data(ctx: Context) -> dict[str, str]:
    v = ctx.config.versions
    e = ctx.config.exposure
    data = {
        "mode": ctx.config.kserve.mode,
        "kserve": v.kserve,
        "cert-manager": v.cert_manager,
        "mlserver-image": v.mlserver_image,
        "installed-by": f"kservectl {__version__}",
    }
    if knative(ctx):
        data.update({"knative-serving": v.knative_serving, "net-kourier": v.net_kourier, "dns": e.dns,
                     "domain": domain(ctx) or "(sslip.io, set by Knative's default-domain Job)",
                     "scheme": e.scheme, "tls": "true" if tls(ctx) else "false"})
    else:
        data["metrics-server-chart"] = v.metrics_server_chart
    return data


def render_files(ctx: Context, renderer: Renderer | None = None) -> dict[str, str]:
    """Every file this phase renders, by file name, for the configured mode."""
    r = renderer or Renderer()
    base = _values(ctx)
    rel = releases(ctx)

    def chart(key: str) -> dict[str, str]:
        r = rel[key]
        return {"source": f"{r.ref} from {r.repo}" if r.repo else r.ref, "version": r.version}

    files = {
        CERT_MANAGER_VALUES: r.render("kserve/cert-manager-values.yaml.j2",
                                      {**base, "chart": chart("cert-manager")}),
        KSERVE_VALUES: r.render("kserve/kserve-resources-values.yaml.j2",
                                {**base, "chart": chart("kserve-resources")}),
        RUNTIMES_VALUES: r.render("kserve/kserve-runtime-configs-values.yaml.j2",
                                  {**base, "chart": chart("kserve-runtime-configs")}),
    }
    if knative(ctx):
        files[GATEWAY_FILE] = r.render("kserve/kourier-service.yaml.j2", {
            **base, "name": GATEWAY, "namespace": KOURIER_NS, "annotations": gateway_annotations(ctx),
            "ports": gateway_ports(ctx), "source_ranges": ctx.config.exposure.source_ranges,
        })
        files[NETWORK_FILE] = r.render("kserve/config-network.yaml.j2", {**base, "tls": tls(ctx)})
        if domain(ctx):
            files[DOMAIN_FILE] = r.render("kserve/config-domain.yaml.j2",
                                          {**base, "domain": domain(ctx), "dns": ctx.config.exposure.dns})
    files[RECORD_FILE] = r.render("kserve/install-record.yaml.j2", {
        **base, "name": RECORD, "namespace": ctx.config.namespaces.kserve, "data": record_data(ctx),
    })
    return files


def _load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def _load_all(text: str) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if doc]


def chart_values(ctx: Context, files: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The values each Helm release gets, by release key (parsed from the rendered files)."""
    files = files or render_files(ctx)
    out: dict[str, dict[str, Any]] = {}
    for key, rel in releases(ctx).items():
        out[key] = (_load(files[rel.values_file]) or {}) if rel.values_file else {}
    return out


# -- the value keys each pinned chart accepts ----------------------------------------------------
@functools.cache
def chart_keys(chart: str) -> dict[str, Any]:
    """``src/kservectl/data/charts/<chart>.yaml``: chart, version, source and ``keys`` (path -> type)."""
    path = importlib.resources.files("kservectl") / "data" / "charts" / f"{chart}.yaml"
    try:
        return _load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KservectlError(f"kservectl has no list of value keys for chart {chart}",
                             hint="add src/kservectl/data/charts/<chart>.yaml (see its README.md)") from None


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _leaves(values: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, values


def value_key_problems(chart: str, values: dict[str, Any]) -> list[str]:
    """Keys of ``values`` the pinned chart does not accept, and values of the wrong type."""
    keys: dict[str, str] = chart_keys(chart)["keys"]
    free_form = [k for k, t in keys.items() if t == "object"]
    problems = []
    for path, value in _leaves(values):
        declared = keys.get(path)
        if declared is not None:
            if value is not None and not _TYPES[declared](value):
                problems.append(f"{path}: the chart expects a {declared}, got {value!r}")
            continue
        if any(path.startswith(f + ".") for f in free_form):
            continue
        problems.append(f"{path}: not a value of chart {chart} {chart_keys(chart)['version']}")
    return problems


def stale_key_lists(ctx: Context) -> list[str]:
    """The charts whose key list was transcribed from an older version than the pinned one
    (``keys_from`` differs from ``version``), as "<chart> <pin> (keys from <older>)"."""
    stale = []
    for rel in releases(ctx).values():
        if not rel.values_file:
            continue
        keys = chart_keys(rel.chart)
        source = str(keys.get("keys_from") or keys["version"])
        if source.lstrip("v") != str(keys["version"]).lstrip("v"):
            stale.append(f"{rel.chart} {keys['version']} (keys from {source})")
    return stale


def warn_stale_key_lists(ctx: Context) -> str | None:
    """One warning naming every chart whose value keys were checked against an older chart's list."""
    stale = stale_key_lists(ctx)
    if not stale:
        return None
    message = ("the values files are checked against value keys transcribed from older charts than the "
               f"pinned ones: {', '.join(stale)}; the pinned charts' values.yaml could not be read "
               "where this list was made. Re-check with `helm show values` (src/kservectl/data/charts/"
               "README.md)")
    ctx.reporter.warn(message)
    return message


def unknown_value_keys(chart: str, values: dict[str, Any]) -> list[str]:
    """Only the unknown keys (see ``value_key_problems``)."""
    return [p.split(":", 1)[0] for p in value_key_problems(chart, values) if "not a value of chart" in p]


def _check_values(ctx: Context, values: dict[str, dict[str, Any]]) -> None:
    for key, rel in releases(ctx).items():
        if not values.get(key):
            continue
        problems = value_key_problems(rel.chart, values[key])
        if problems:
            raise KservectlError(
                f"the rendered {rel.values_file} does not fit chart {rel.chart} {rel.version}: "
                + "; ".join(problems),
                hint="a kservectl bug or a chart pin without its key list; nothing was installed",
            )


# -- commands ------------------------------------------------------------------------------------
def kubeconfig(ctx: Context) -> Path:
    return ctx.kubeconfig or paths.kubeconfig_path(ctx.cluster)


def rendered_dir(ctx: Context) -> Path:
    return paths.cluster_dir(ctx.cluster) / "rendered" / PHASE


def helm_install_argv(ctx: Context, rel: Release, values_path: Path | None, major: int) -> list[str]:
    argv = ["helm", "upgrade", "--install", rel.name, rel.ref]
    if rel.repo:
        argv += ["--repo", rel.repo]
    argv += ["--version", rel.version, "--namespace", rel.namespace, "--create-namespace"]
    if values_path is not None:
        argv += ["--values", str(values_path)]
    argv += helm_wait_flags(major, ctx.settings.tools.helm)
    argv += ["--kubeconfig", str(kubeconfig(ctx))]
    return argv


def helm_uninstall_argv(ctx: Context, rel: Release, major: int) -> list[str]:
    return ["helm", "uninstall", rel.name, "--namespace", rel.namespace,
            *helm_wait_flags(major, ctx.settings.tools.helm, rollback=False),
            "--kubeconfig", str(kubeconfig(ctx))]


def kubectl_argv(ctx: Context, *args: str) -> list[str]:
    return ["kubectl", "--kubeconfig", str(kubeconfig(ctx)), *args]


def kubectl_apply_url(ctx: Context, url: str) -> list[str]:
    return kubectl_argv(ctx, "apply", "-f", url)


def kubectl_delete_url(ctx: Context, url: str) -> list[str]:
    return kubectl_argv(ctx, "delete", "-f", url, "--ignore-not-found",
                        f"--timeout={int(ctx.settings.waits.load_balancer_deleted)}s")


# -- plan ----------------------------------------------------------------------------------------
def plan(ctx: Context, live: LiveValues, root: Path) -> PhasePlan:
    files = render_files(ctx)
    _check_values(ctx, chart_values(ctx, files))
    warn_stale_key_lists(ctx)
    here = root / PHASE
    major = local_helm_major(ctx.settings)
    rel = releases(ctx)
    urls = knative_urls(ctx)
    kserve_ns = ctx.config.namespaces.kserve

    def helm(key: str, action: str) -> Step:
        r = rel[key]
        values_path = here / r.values_file if r.values_file else None
        return Step(PHASE, action, "tool", command=tuple(helm_install_argv(ctx, r, values_path, major)),
                    files=(f"{PHASE}/{r.values_file}",) if r.values_file else ())

    steps = [
        Step(PHASE, "check what is installed (Helm releases, Knative and Kourier versions, the gateway NLB's "
             "scheme: a change replaces the NLB and needs --yes)", "kube",
             calls=("helm list", "get Service kourier-system/kourier",
                    f"get ConfigMap {kserve_ns}/{RECORD}")),
        helm("cert-manager", f"install cert-manager {rel['cert-manager'].version} with its CRDs"),
        Step(PHASE, "wait for cert-manager", "kube",
             calls=("watch CRDs Established", "watch Deployments Available in cert-manager",
                    "watch Endpoints cert-manager/cert-manager-webhook ready")),
    ]
    if knative(ctx):
        steps += [
            Step(PHASE, f"install Knative Serving {ctx.config.versions.knative_serving} CRDs", "tool",
                 command=tuple(kubectl_apply_url(ctx, urls["crds"]))),
            Step(PHASE, "wait for the Knative CRDs", "kube", calls=("watch CRDs Established",)),
            Step(PHASE, "install Knative Serving core", "tool",
                 command=tuple(kubectl_apply_url(ctx, urls["core"]))),
            Step(PHASE, f"create the Kourier gateway Service with its NLB annotations "
                 f"({ctx.config.exposure.scheme}, {'TLS on 443' if tls(ctx) else 'HTTP on 80'}) before "
                 "kourier.yaml, so the AWS Load Balancer Controller builds the right NLB from the start",
                 "kube",
                 calls=("apply Namespace kourier-system", "apply Service kourier-system/kourier"),
                 files=(f"{PHASE}/{GATEWAY_FILE}",)),
            Step(PHASE, f"install net-kourier {ctx.config.versions.net_kourier}", "tool",
                 command=tuple(kubectl_apply_url(ctx, urls["kourier"]))),
            Step(PHASE, "re-assert the gateway Service (kourier.yaml re-applies its own ports)", "kube",
                 calls=("patch Service kourier-system/kourier",), files=(f"{PHASE}/{GATEWAY_FILE}",)),
            Step(PHASE, "route Knative through Kourier and set the model domain", "kube",
                 calls=("patch ConfigMap knative-serving/config-network",)
                 + (("patch ConfigMap knative-serving/config-domain",) if domain(ctx) else ()),
                 files=(f"{PHASE}/{NETWORK_FILE}",) + ((f"{PHASE}/{DOMAIN_FILE}",) if domain(ctx) else ())),
            Step(PHASE, "wait for Knative and Kourier", "kube",
                 calls=("watch Deployments Available in knative-serving", "watch Deployments Available in "
                        "kourier-system")),
        ]
    else:
        ms = rel["metrics-server"]
        steps += [
            Step(PHASE, f"install metrics-server (chart {ms.version}) for the HPA, unless one is running",
                 "tool", command=tuple(helm_install_argv(ctx, ms, None, major))),
            Step(PHASE, "wait for metrics-server", "kube",
                 calls=("watch Deployment Available in kube-system",)),
        ]
    steps += [
        helm("kserve-crd", f"install the KServe {ctx.config.versions.kserve} CRDs"),
        Step(PHASE, "wait for the KServe CRDs", "kube", calls=("watch CRDs Established",)),
        helm("kserve-resources", f"install the KServe controller ({ctx.config.kserve.mode} mode)"),
        Step(PHASE, "wait for the KServe controller and its webhook", "kube",
             calls=(f"watch Deployments Available in {kserve_ns}",
                    f"watch Endpoints {kserve_ns}/{KSERVE_WEBHOOK} ready")),
        helm("kserve-runtime-configs",
             f"install the serving runtimes (MLServer {ctx.config.versions.mlserver_image})"),
        Step(PHASE, "record the installed mode and versions", "kube",
             calls=(f"apply ConfigMap {kserve_ns}/{RECORD}",), files=(f"{PHASE}/{RECORD_FILE}",)),
    ]
    if knative(ctx):
        steps += [
            Step(PHASE, "wait for the gateway NLB hostname", "kube",
                 calls=("watch Service kourier-system/kourier",)),
            Step(PHASE, "wait until the NLB is active", "aws",
                 calls=("elasticloadbalancing:DescribeLoadBalancers",)),
        ]
        if ctx.config.exposure.dns == "sslip":
            steps += [
                Step(PHASE, "set an sslip.io domain from the NLB's address (Knative's default-domain Job)",
                     "tool", command=tuple(kubectl_apply_url(ctx, urls["default-domain"]))),
                Step(PHASE, "wait for the default-domain Job", "kube",
                     calls=("watch Job knative-serving/default-domain",)),
            ]
    mode = ctx.config.kserve.mode
    summary = (f"cert-manager {ctx.config.versions.cert_manager}, "
               + (f"Knative Serving {ctx.config.versions.knative_serving} + Kourier behind an "
                  f"{ctx.config.exposure.scheme} NLB ({'TLS' if tls(ctx) else 'HTTP'}), " if mode == "knative"
                  else "metrics-server, ")
               + f"KServe {ctx.config.versions.kserve} in {mode} mode")
    return PhasePlan(phase=PHASE, summary=summary, files=files, steps=steps)


# -- reading the cluster ---------------------------------------------------------------------------
def _label_version(obj: dict[str, Any] | None) -> str | None:
    if not obj:
        return None
    return ((obj.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/version")


def _same_version(installed: str | None, pinned: str) -> bool:
    return installed is not None and installed.lstrip("v") == pinned.lstrip("v")


def installed_knative(ctx: Context) -> dict[str, str | None]:
    """Versions of what the Knative release manifests installed (their app.kubernetes.io/version labels)."""
    kube = ctx.kube
    return {
        "crds": _label_version(kube.get(*CRD_API, KNATIVE_CRDS[0])),
        "core": _label_version(kube.get("apps/v1", "Deployment", "controller", KNATIVE_NS)),
        "kourier": _label_version(kube.get("apps/v1", "Deployment", "3scale-kourier-gateway", KOURIER_NS)),
    }


def helm_releases(ctx: Context, namespace: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """Helm releases by (namespace, name) (``helm list``; read-only, also in a dry run)."""
    scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
    argv = ["helm", "list", *scope, "--output", "json", "--kubeconfig", str(kubeconfig(ctx))]
    result = ctx.runner.run(argv, mutating=False)
    entries = json.loads(result.stdout or "[]") or []
    return {(e["namespace"], e["name"]): e for e in entries}


def _helm_values(ctx: Context, rel: Release) -> dict[str, Any]:
    argv = ["helm", "get", "values", rel.name, "--namespace", rel.namespace, "--output", "json",
            "--kubeconfig", str(kubeconfig(ctx))]
    result = ctx.runner.run(argv, mutating=False)
    return json.loads(result.stdout or "null") or {}


def installed_mode(ctx: Context) -> str | None:
    """``knative`` or ``standard`` as installed on the cluster, or None when KServe is not installed.

    Reads kservectl's record; falls back to KServe's own ``inferenceservice-config`` (its ``deploy``
    key) for an installation kservectl did not make."""
    ns = ctx.config.namespaces.kserve
    record = ctx.kube.get("v1", "ConfigMap", RECORD, ns)
    if record is not None:
        mode = (record.get("data") or {}).get("mode")
        if mode in ("knative", "standard"):
            return mode
    config = ctx.kube.get("v1", "ConfigMap", "inferenceservice-config", ns)
    if config is None:
        return None
    try:
        deploy = json.loads((config.get("data") or {}).get("deploy") or "{}")
    except ValueError:
        return None
    mode = str(deploy.get("defaultDeploymentMode", ""))
    if mode in ("Knative", "Serverless"):
        return "knative"
    if mode in ("Standard", "RawDeployment"):
        return "standard"
    return None


# -- the gateway Service ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GatewayCheck:
    """What ensuring the gateway Service will do to its NLB."""

    action: str  # create | update | replace-scheme | recreate
    current_scheme: str | None
    hostname: str | None
    message: str = ""

    @property
    def replaces_nlb(self) -> bool:
        return self.action in ("replace-scheme", "recreate")


def _hostname(svc: dict[str, Any] | None) -> str | None:
    if not svc:
        return None
    ok, detail = service_hostname(svc)
    return detail if ok else None


def check_gateway(ctx: Context) -> GatewayCheck:
    """Read the gateway Service: a scheme change replaces the NLB and its DNS name, and a Service
    without the LBC annotations must be recreated (changing its type in place would leak the old
    load balancer)."""
    svc = ctx.kube.get("v1", "Service", GATEWAY, KOURIER_NS)
    if svc is None:
        return GatewayCheck("create", None, None)
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    host = _hostname(svc)
    shown = host or "no address yet"
    want = ctx.config.exposure.scheme
    if annotations.get(ANN_TYPE) != "external":
        return GatewayCheck(
            "recreate", annotations.get(ANN_SCHEME), host,
            f"Service {KOURIER_NS}/{GATEWAY} exists without the AWS Load Balancer Controller annotations "
            f"(load balancer: {shown}); kservectl must delete and recreate it, which replaces that load "
            "balancer and its DNS name",
        )
    current = annotations.get(ANN_SCHEME, LBC_DEFAULT_SCHEME)
    if current != want:
        return GatewayCheck(
            "replace-scheme", current, host,
            f"changing exposure.scheme from {current} to {want} makes the AWS Load Balancer Controller "
            f"replace the gateway NLB: its DNS name ({shown}) stops working and clients and DNS records "
            "must move to the new one",
        )
    return GatewayCheck("update", current, host)


def _gateway_docs(ctx: Context, files: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = _load_all(files[GATEWAY_FILE])
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    service = next(d for d in docs if d["kind"] == "Service")
    return namespace, service


def _holds(current: Any, desired: Any) -> bool:
    """Does ``current`` already hold every field of ``desired`` (lists item by item, same length)?"""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(k in current and _holds(current[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(current, list) and len(current) == len(desired)
                and all(_holds(c, d) for c, d in zip(current, desired, strict=True)))
    return current == desired


def _gateway_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """A merge patch taking the live Service to ``desired`` (None: nothing to change). Removes the
    LBC annotations and source ranges kservectl no longer wants (e.g. TLS turned off)."""
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "status")}
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    wanted = desired["metadata"].get("annotations") or {}
    stale = {k: None for k in annotations if k.startswith(LBC) and k not in wanted}
    drop_ranges = "loadBalancerSourceRanges" not in desired["spec"] and (current.get("spec") or {}).get(
        "loadBalancerSourceRanges")
    if _holds(current, body) and not stale and not drop_ranges:
        return None
    patch = json.loads(json.dumps(body))
    patch["metadata"] = {k: v for k, v in patch["metadata"].items() if k not in ("name", "namespace")}
    if stale:
        patch["metadata"].setdefault("annotations", {}).update(stale)
    if drop_ranges:
        patch["spec"]["loadBalancerSourceRanges"] = None
    return patch


def _ensure_gateway(ctx: Context, files: dict[str, str], check: GatewayCheck, out: Outcome) -> None:
    namespace, service = _gateway_docs(ctx, files)
    ref = Ref.of(service)
    _ensure_object(ctx, namespace, out)
    current = ctx.kube.get("v1", "Service", GATEWAY, KOURIER_NS)
    unmanaged = current is not None and ((current.get("metadata") or {}).get("annotations") or {}).get(
        ANN_TYPE) != "external"
    label = f"Service {KOURIER_NS}/{GATEWAY}"
    if unmanaged and check.action == "recreate":
        if ctx.dry_run:
            out.add(label, "would delete and recreate (replaces its load balancer)")
            return
        ctx.reporter.step(PHASE, f"deleting {label} to recreate it with its NLB annotations")
        ctx.kube.delete(ref)
        ctx.kube.wait_deleted(ref, what=f"Service {ref.namespace}/{ref.name} to be deleted",
                              timeout=ctx.settings.waits.load_balancer_deleted)
        current = None
    if current is None:
        if ctx.dry_run:
            out.add(f"Service {KOURIER_NS}/{GATEWAY}", "would create")
            return
        ctx.kube.create(service)
        out.add(f"Service {KOURIER_NS}/{GATEWAY}", "created")
        return
    patch = _gateway_patch(current, service)
    if patch is None:
        out.add(f"Service {KOURIER_NS}/{GATEWAY}", "unchanged")
        return
    if ctx.dry_run:
        out.add(f"Service {KOURIER_NS}/{GATEWAY}", "would change")
        return
    ctx.kube.patch(ref, patch)
    out.add(f"Service {KOURIER_NS}/{GATEWAY}", "changed")


# -- ensuring, with a dry run that only reports ------------------------------------------------------
class Outcome:
    """What install/uninstall did (or, in a dry run, would do), step by step."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.steps: list[dict[str, str]] = []

    def add(self, what: str, result: str) -> None:
        self.steps.append({"step": what, "result": result})
        if not result.startswith("unchanged"):
            self.ctx.reporter.step(PHASE, f"{what}: {result}")

    def changed(self) -> bool:
        return any(not s["result"].startswith("unchanged") for s in self.steps)


def _ensure_object(ctx: Context, obj: dict[str, Any], out: Outcome) -> str:
    ref = Ref.of(obj)
    label = f"{ref.kind} {ref.namespace + '/' if ref.namespace else ''}{ref.name}"
    if ctx.dry_run:
        current = ctx.kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        desired = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
        result = ("would create" if current is None
                  else "unchanged" if _holds(current, desired) else "would change")
    else:
        result = ctx.kube.apply(obj)
    out.add(label, result)
    return result


def _ensure_configmap_data(ctx: Context, name: str, namespace: str, desired: dict[str, str],
                           out: Outcome, remove: Callable[[str], bool] = lambda key: False) -> None:
    """Merge ``desired`` into a ConfigMap another installer created; drop the keys ``remove`` selects."""
    label = f"ConfigMap {namespace}/{name}"
    current = ctx.kube.get("v1", "ConfigMap", name, namespace)
    if current is None:
        if ctx.dry_run:
            out.add(label, "would patch once serving-core.yaml has created it")
            return
        raise KubeError(f"{label} does not exist",
                        hint="Knative Serving core is not installed; re-run the install")
    data = current.get("data") or {}
    patch: dict[str, str | None] = {k: v for k, v in desired.items() if data.get(k) != v}
    patch.update({k: None for k in data if k not in desired and remove(k)})
    if not patch:
        out.add(label, "unchanged")
        return
    if ctx.dry_run:
        out.add(label, "would change")
        return
    ctx.kube.patch(Ref("v1", "ConfigMap", name, namespace), {"data": patch})
    out.add(label, "changed")


def _ensure_release(ctx: Context, rel: Release, values: dict[str, Any], files_dir: Path, major: int,
                    out: Outcome, present: dict[tuple[str, str], dict[str, Any]]) -> None:
    current = present.get((rel.namespace, rel.name))
    if (current is not None and current.get("status") == "deployed"
            and current.get("chart") == rel.chart_version and _helm_values(ctx, rel) == values):
        out.add(f"helm release {rel.namespace}/{rel.name}", "unchanged")
        return
    values_path = files_dir / rel.values_file if rel.values_file else None
    verb = "install" if current is None else "upgrade"
    ctx.reporter.step(PHASE, f"{'(dry run) would ' if ctx.dry_run else ''}{verb} {rel.chart} {rel.version} "
                      f"as {rel.namespace}/{rel.name}")
    ctx.runner.run(helm_install_argv(ctx, rel, values_path, major))
    out.add(f"helm release {rel.namespace}/{rel.name}",
            f"would {verb}" if ctx.dry_run else ("installed" if current is None else "upgraded"))


def _ensure_manifest(ctx: Context, what: str, url: str, installed: str | None, pinned: str,
                     out: Outcome) -> bool:
    """kubectl apply a release manifest unless its pinned version is already installed."""
    if _same_version(installed, pinned):
        out.add(what, "unchanged")
        return False
    ctx.runner.run(kubectl_apply_url(ctx, url))
    done = "installed" if installed is None else f"upgraded from {installed}"
    out.add(what, f"would be {done}" if ctx.dry_run else done)
    return True


def _write_files(ctx: Context, files: dict[str, str]) -> Path:
    """Keep the rendered files next to the cluster's state: the helm commands read the values from them."""
    target = rendered_dir(ctx)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    return target


# -- waits -------------------------------------------------------------------------------------------
def _condition_text(obj: dict[str, Any], types: Iterable[str]) -> str:
    """The conditions that explain why a Deployment is not Available yet."""
    parts = []
    for type_ in types:
        cond = condition(obj, type_)
        if cond is None:
            continue
        failing = cond.get("status") == "True" if type_ == "ReplicaFailure" else cond.get("status") != "True"
        stalled = type_ == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded"
        if failing or stalled:
            text = f"{type_}={cond.get('status')}"
            if cond.get("reason"):
                text += f" {cond['reason']}"
            if cond.get("message"):
                text += f": {cond['message']}"
            parts.append(text)
    return f" ({'; '.join(parts)})" if parts else ""


def deployment_status(obj: dict[str, Any]) -> tuple[bool, str]:
    ok, detail = deployment_available(obj)
    if ok:
        return ok, detail
    return False, detail + _condition_text(obj, ("Available", "Progressing", "ReplicaFailure"))


def wait_crds(ctx: Context, names: Iterable[str], what: str) -> None:
    names = tuple(names)

    def check(items: list[dict[str, Any]]) -> tuple[bool, str]:
        by_name = {i["metadata"]["name"]: i for i in items}
        pending = []
        for name in names:
            crd = by_name.get(name)
            if crd is None:
                pending.append(f"CustomResourceDefinition {name} does not exist yet")
                continue
            cond = condition(crd, "Established")
            if cond is None or cond.get("status") != "True":
                state = "no Established condition yet" if cond is None else " ".join(filter(None, (
                    f"Established={cond.get('status')}", cond.get("reason"), cond.get("message"))))
                pending.append(f"CustomResourceDefinition {name}: {state}")
        return not pending, "; ".join(pending) or "Established"

    ctx.kube.wait_for_all(*CRD_API, None, check, what=what, timeout=ctx.settings.waits.crd_established)


def wait_deployments(ctx: Context, namespace: str, expected: Iterable[str], *, only: bool = False) -> None:
    """Every Deployment in ``namespace`` Available and each ``expected`` one present (``only``: just
    the expected ones)."""
    expected = tuple(expected)
    what = f"the Deployments in {namespace} to be Available"

    def relevant(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [i for i in items if not only or i["metadata"]["name"] in expected]

    def pending_of(items: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
        names = {i["metadata"]["name"] for i in items}
        out: list[tuple[str | None, str]] = [(None, f"Deployment {namespace}/{n} does not exist yet")
                                             for n in expected if n not in names]
        for item in relevant(items):
            ok, detail = deployment_status(item)
            if not ok:
                out.append((item["metadata"]["name"], detail))
        return out

    def check(items: list[dict[str, Any]]) -> tuple[bool, str]:
        pending = pending_of(items)
        return not pending, "; ".join(d for _, d in pending) or "Available"

    try:
        ctx.kube.wait_for_all("apps/v1", "Deployment", namespace, check, what=what,
                              timeout=ctx.settings.waits.deployment_available)
    except WaitTimeout as exc:
        items, _ = ctx.kube.list("apps/v1", "Deployment", namespace)
        details: list[str] = []
        for name, detail in pending_of(items):
            details.append(detail)
            if name:
                details += ctx.kube.recent_events(Ref("apps/v1", "Deployment", name, namespace), limit=3)
        raise WaitTimeout(exc.what, exc.timeout_s, details or exc.pending) from None


def endpoints_status(obj: dict[str, Any]) -> tuple[bool, str]:
    ready = sum(len(s.get("addresses") or []) for s in obj.get("subsets") or [])
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in obj.get("subsets") or [])
    if ready:
        return True, f"{ready} ready endpoints"
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    if not_ready:
        return False, f"Service {where}: {not_ready} endpoints not ready yet (webhook pods starting)"
    return False, f"Service {where}: no endpoints yet (no webhook pod running)"


def wait_webhook(ctx: Context, namespace: str, service: str, label: str) -> None:
    """A webhook serves once its Service has ready endpoints; before that, creating the objects it
    admits fails with "no endpoints available for service"."""
    try:
        ctx.kube.wait_for(Ref("v1", "Endpoints", service, namespace), endpoints_status,
                          what=f"the {label} webhook to serve (ready endpoints of Service "
                          f"{namespace}/{service})", timeout=ctx.settings.waits.endpoints_ready)
    except WaitTimeout as exc:
        pods = ctx.kube.list("v1", "Pod", namespace)[0]
        hints = [f"pod {p['metadata']['name']}: {(p.get('status') or {}).get('phase') or 'Pending'}"
                 for p in pods][:5]
        raise WaitTimeout(exc.what, exc.timeout_s, exc.pending + hints) from None


def wait_hostname(ctx: Context, *, not_before: str | None = None) -> str:
    """The gateway NLB's DNS name, once the AWS Load Balancer Controller has set it (``not_before``:
    an old hostname that must be replaced first, after a scheme change)."""

    def check(obj: dict[str, Any]) -> tuple[bool, str]:
        ok, detail = service_hostname(obj)
        if ok and detail == not_before:
            return False, f"Service {KOURIER_NS}/{GATEWAY}: still the old NLB {detail}"
        return ok, detail

    ref = Ref("v1", "Service", GATEWAY, KOURIER_NS)
    try:
        svc = ctx.kube.wait_for(ref, check, what=f"the NLB hostname of Service {KOURIER_NS}/{GATEWAY}",
                                timeout=ctx.settings.waits.load_balancer)
    except WaitTimeout as exc:
        exc.hint = ("the AWS Load Balancer Controller sets it: check `kservectl alb status` and "
                    "`kubectl -n kube-system logs deploy/aws-load-balancer-controller`")
        raise
    return service_hostname(svc)[1]


def find_load_balancer(ctx: Context, dns_name: str) -> dict[str, Any] | None:
    """The ELBv2 load balancer whose DNS name is ``dns_name`` (None when there is none)."""
    client = ctx.aws.client("elbv2")

    def describe() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in client.get_paginator("describe_load_balancers").paginate():
            found += page.get("LoadBalancers") or []
        return found

    for lb in aws.call("elasticloadbalancing:DescribeLoadBalancers", describe):
        if (lb.get("DNSName") or "").lower() == dns_name.lower():
            return lb
    return None


def _poll(ctx: Context, what: str, timeout: float, probe: Callable[[], tuple[bool, str, Any]]) -> Any:
    deadline = ctx.clock.monotonic() + timeout
    while True:
        done, detail, value = probe()
        if done:
            return value
        remaining = deadline - ctx.clock.monotonic()
        if remaining <= 0:
            raise WaitTimeout(what, timeout, [detail])
        ctx.reporter.waiting(what, detail)
        ctx.clock.sleep(min(ctx.settings.waits.poll_interval, remaining))


def wait_nlb_active(ctx: Context, dns_name: str) -> dict[str, Any]:
    def probe() -> tuple[bool, str, Any]:
        lb = find_load_balancer(ctx, dns_name)
        if lb is None:
            return False, f"no ELBv2 load balancer has the DNS name {dns_name} yet", None
        state = lb.get("State") or {}
        code = state.get("Code")
        name = lb.get("LoadBalancerName")
        if code == "failed":
            raise KservectlError(f"the gateway NLB {name} failed: {state.get('Reason') or code}",
                                 hint=f"see the events of Service {KOURIER_NS}/{GATEWAY} (kubectl describe)")
        if code == "active_impaired":
            ctx.reporter.warn(f"the gateway NLB {name} is active but impaired: "
                              f"{state.get('Reason') or 'an availability zone is impaired'}")
            return True, "active_impaired", lb
        if code == "active":
            return True, "active", lb
        reason = f": {state['Reason']}" if state.get("Reason") else ""
        return False, f"NLB {name} is {code}{reason}", lb

    return _poll(ctx, f"the gateway NLB {dns_name} to be active", ctx.settings.waits.nlb_active, probe)


def wait_nlb_gone(ctx: Context, dns_name: str) -> None:
    def probe() -> tuple[bool, str, Any]:
        lb = find_load_balancer(ctx, dns_name)
        if lb is None:
            return True, "deleted", None
        state = (lb.get("State") or {}).get("Code")
        return False, f"NLB {lb.get('LoadBalancerName')} still exists ({state})", None

    _poll(ctx, f"the gateway NLB {dns_name} to be deleted", ctx.settings.waits.load_balancer_deleted, probe)


def _job_status(obj: dict[str, Any]) -> tuple[bool, str]:
    failed = condition(obj, "Failed")
    if failed is not None and failed.get("status") == "True":
        raise KservectlError(f"Job {obj['metadata'].get('namespace')}/{obj['metadata']['name']} failed: "
                             f"{failed.get('reason') or ''} {failed.get('message') or ''}".strip(),
                             hint="kubectl -n knative-serving logs job/default-domain")
    complete = condition(obj, "Complete")
    if complete is not None and complete.get("status") == "True":
        return True, "Complete"
    status = obj.get("status") or {}
    return False, (f"Job {obj['metadata'].get('namespace')}/{obj['metadata']['name']}: "
                   f"{status.get('active', 0)} active, {status.get('failed', 0)} failed pods")


def wait_default_domain(ctx: Context) -> None:
    """Knative's ``default-domain`` Job Complete (it writes the sslip.io domain); a Failed Job ends
    the wait at once with its reason."""
    ctx.kube.wait_for(Ref("batch/v1", "Job", "default-domain", KNATIVE_NS), _job_status,
                      what="Knative's default-domain Job to set an sslip.io domain",
                      timeout=ctx.settings.waits.job_complete)


def _sslip_domain(ctx: Context) -> str | None:
    cm = ctx.kube.get("v1", "ConfigMap", "config-domain", KNATIVE_NS)
    for key in (cm or {}).get("data") or {}:
        if key.endswith(".sslip.io"):
            return key
    return None


# -- install -----------------------------------------------------------------------------------------
def install(ctx: Context, *, yes: bool = False) -> dict[str, Any]:
    """Install (or converge) cert-manager, Knative + Kourier (or metrics-server) and KServe.

    ``yes`` accepts a change that replaces the gateway NLB. With ``ctx.dry_run`` nothing changes:
    the result lists what would, and ``ctx.runner`` records the helm and kubectl command lines."""
    cfg = ctx.config
    mode = cfg.kserve.mode
    files = render_files(ctx)
    values = chart_values(ctx, files)
    _check_values(ctx, values)
    files_dir = _write_files(ctx, files)
    out = Outcome(ctx)
    result: dict[str, Any] = {"cluster": ctx.cluster, "mode": mode, "dry_run": ctx.dry_run,
                              "rendered": str(files_dir), "warnings": [], "steps": out.steps}

    current_mode = installed_mode(ctx)
    if current_mode is not None and current_mode != mode:
        raise UsageError(
            f"KServe is installed in {current_mode} mode on cluster {ctx.cluster}; switching to {mode} mode "
            "needs `kservectl kserve uninstall` first (every InferenceService is then redeployed)",
            hint=f"or keep kserve.mode={current_mode}",
        )
    gateway = check_gateway(ctx) if mode == "knative" else None
    if gateway is not None and gateway.replaces_nlb:
        if not yes and not ctx.dry_run:
            raise UsageError(gateway.message, hint="re-run with --yes to accept, or keep exposure.scheme="
                             f"{gateway.current_scheme or LBC_DEFAULT_SCHEME}; nothing was changed")
        ctx.reporter.warn(gateway.message)
        result["warnings"].append(gateway.message + ("" if yes else " (needs --yes)"))

    stale = warn_stale_key_lists(ctx)  # once the install is going ahead
    if stale:
        result["warnings"].append(stale)
    major = helm_major(ctx.runner)
    if mode == "knative" and not ctx.dry_run:
        ctx.runner.version("kubectl")  # before anything changes: Knative and Kourier go on with kubectl
    rel = releases(ctx)
    waits = not ctx.dry_run
    present = helm_releases(ctx)

    # cert-manager
    _ensure_release(ctx, rel["cert-manager"], values["cert-manager"], files_dir, major, out, present)
    if waits:
        wait_crds(ctx, CERT_MANAGER_CRDS, "the cert-manager CRDs to be Established")
        wait_deployments(ctx, CERT_MANAGER_NS, CERT_MANAGER_DEPLOYMENTS)
        wait_webhook(ctx, CERT_MANAGER_NS, CERT_MANAGER_WEBHOOK, "cert-manager")

    if mode == "knative":
        assert gateway is not None
        _install_knative(ctx, files, gateway, out)
    else:
        _install_metrics_server(ctx, rel["metrics-server"], files_dir, major, out, present)

    # KServe
    _ensure_release(ctx, rel["kserve-crd"], values["kserve-crd"], files_dir, major, out, present)
    if waits:
        wait_crds(ctx, KSERVE_CRDS, "the KServe CRDs to be Established")
    _ensure_release(ctx, rel["kserve-resources"], values["kserve-resources"], files_dir, major, out, present)
    if waits:
        wait_deployments(ctx, cfg.namespaces.kserve, KSERVE_DEPLOYMENTS)
        wait_webhook(ctx, cfg.namespaces.kserve, KSERVE_WEBHOOK, "KServe")
    runtimes = "kserve-runtime-configs"
    _ensure_release(ctx, rel[runtimes], values[runtimes], files_dir, major, out, present)
    _ensure_object(ctx, _load(files[RECORD_FILE]), out)

    if mode == "knative":
        result["gateway"] = _finish_gateway(ctx, gateway, out)
    else:
        result["gateway"] = None
    if ctx.dry_run:
        result["commands"] = [shlex.join(argv) for argv in getattr(ctx.runner, "recorded", [])]
    result["changed"] = out.changed()
    return result


def _install_knative(ctx: Context, files: dict[str, str], gateway: GatewayCheck, out: Outcome) -> None:
    v = ctx.config.versions
    urls = knative_urls(ctx)
    installed = installed_knative(ctx)
    waits = not ctx.dry_run
    if _ensure_manifest(ctx, f"Knative Serving {v.knative_serving} CRDs", urls["crds"], installed["crds"],
                        v.knative_serving, out) and waits:
        wait_crds(ctx, KNATIVE_CRDS, "the Knative Serving CRDs to be Established")
    _ensure_manifest(ctx, f"Knative Serving {v.knative_serving} core", urls["core"], installed["core"],
                     v.knative_serving, out)
    # The annotated gateway Service first, so the load balancer controller builds the right NLB...
    _ensure_gateway(ctx, files, gateway, out)
    if _ensure_manifest(ctx, f"net-kourier {v.net_kourier}", urls["kourier"], installed["kourier"],
                        v.net_kourier, out):
        # ...then again: kourier.yaml re-applies its own ports (443 -> 8443) to the Service.
        _ensure_gateway(ctx, files, GatewayCheck("update", gateway.current_scheme, gateway.hostname), out)
    _ensure_configmap_data(ctx, "config-network", KNATIVE_NS, _load(files[NETWORK_FILE])["data"], out)
    if DOMAIN_FILE in files:
        _ensure_configmap_data(ctx, "config-domain", KNATIVE_NS, _load(files[DOMAIN_FILE])["data"], out,
                               remove=lambda key: not key.startswith("_"))
    else:  # sslip: Knative's Job sets the domain, and only while no other domain is set
        _ensure_configmap_data(ctx, "config-domain", KNATIVE_NS, {}, out,
                               remove=lambda key: not key.startswith("_") and not key.endswith(".sslip.io"))
    if waits:
        wait_deployments(ctx, KNATIVE_NS, KNATIVE_DEPLOYMENTS)
        wait_deployments(ctx, KOURIER_NS, KOURIER_DEPLOYMENTS)


def _install_metrics_server(ctx: Context, rel: Release, files_dir: Path, major: int, out: Outcome,
                            present: dict[tuple[str, str], dict[str, Any]]) -> None:
    ours = (rel.namespace, rel.name) in present
    if not ours:
        running, _ = ctx.kube.list("apps/v1", "Deployment", METRICS_NS,
                                   label_selector="app.kubernetes.io/name=metrics-server")
        if running:
            out.add("metrics-server", f"unchanged (already running: Deployment {METRICS_NS}/"
                    f"{running[0]['metadata']['name']})")
            return
    _ensure_release(ctx, rel, {}, files_dir, major, out, present)
    if not ctx.dry_run:
        wait_deployments(ctx, METRICS_NS, (rel.name,), only=True)


def _finish_gateway(ctx: Context, gateway: GatewayCheck | None, out: Outcome) -> dict[str, Any]:
    e = ctx.config.exposure
    info: dict[str, Any] = {"service": f"{KOURIER_NS}/{GATEWAY}", "scheme": e.scheme, "tls": tls(ctx),
                            "port": 443 if tls(ctx) else 80, "dns": e.dns, "domain": domain(ctx)}
    if ctx.dry_run:
        info["hostname"] = gateway.hostname if gateway and not gateway.replaces_nlb else None
        if e.dns == "sslip" and _sslip_domain(ctx) is None:
            ctx.runner.run(kubectl_apply_url(ctx, knative_urls(ctx)["default-domain"]))
            out.add("Knative default-domain Job (sslip.io)", "would apply once the NLB has an address")
        return info
    old = gateway.hostname if gateway is not None and gateway.replaces_nlb else None
    hostname = wait_hostname(ctx, not_before=old)
    lb = wait_nlb_active(ctx, hostname)
    info.update({"hostname": hostname, "nlb": lb.get("LoadBalancerName"), "nlb_state": lb["State"]["Code"]})
    if lb.get("Scheme") and lb["Scheme"] != e.scheme:
        ctx.reporter.warn(f"the gateway NLB is {lb['Scheme']}, not {e.scheme} as configured")
    if e.dns == "sslip":
        if _sslip_domain(ctx) is None:
            ctx.runner.run(kubectl_apply_url(ctx, knative_urls(ctx)["default-domain"]))
            out.add("Knative default-domain Job (sslip.io)", "applied")
            wait_default_domain(ctx)
        info["domain"] = _sslip_domain(ctx)
    scheme = "https" if tls(ctx) else "http"
    host = f"<model>-predictor.{ctx.config.namespaces.models}.{info['domain'] or '<domain>'}"
    info["example"] = f"curl -H 'Host: {host}' {scheme}://{hostname}/v2/models/<model>/ready"
    return info


# -- status --------------------------------------------------------------------------------------------
def _deployments_ready(ctx: Context, namespace: str, expected: Iterable[str], *,
                       only: bool = False) -> tuple[bool, str]:
    """Every Deployment in ``namespace`` Available and each ``expected`` one present (``only``: just
    the expected ones, for a shared namespace such as kube-system)."""
    expected = tuple(expected)
    items, _ = ctx.kube.list("apps/v1", "Deployment", namespace)
    if only:
        items = [i for i in items if i["metadata"]["name"] in expected]
    names = {i["metadata"]["name"] for i in items}
    pending = [f"{n} missing" for n in expected if n not in names]
    for item in items:
        ok, detail = deployment_status(item)
        if not ok:
            pending.append(detail)
    return (not pending, "; ".join(pending) if pending else f"{len(items)} Deployments Available")


def _endpoints_ready(ctx: Context, namespace: str, service: str) -> tuple[bool, str]:
    obj = ctx.kube.get("v1", "Endpoints", service, namespace)
    if obj is None:
        return False, f"Service {namespace}/{service} has no endpoints object"
    return endpoints_status(obj)


def status(ctx: Context) -> dict[str, Any]:
    """Installed versions against the pins, readiness of each component, and the gateway."""
    v = ctx.config.versions
    rel = releases(ctx)
    present = helm_releases(ctx)
    mode = installed_mode(ctx)
    kserve_ns = ctx.config.namespaces.kserve
    components: list[dict[str, Any]] = []

    def helm_component(key: str, ready: tuple[bool, str] | None) -> None:
        r = rel[key]
        entry = present.get((r.namespace, r.name))
        installed = entry["chart"].removeprefix(f"{r.chart}-") if entry else None
        detail = ready[1] if ready else ""
        if entry and entry.get("status") != "deployed":
            detail = f"helm release {entry.get('status')}; {detail}".rstrip("; ")
        deployed = bool(entry) and entry.get("status") == "deployed"
        components.append({"component": key, "pinned": r.version, "installed": installed,
                           "ready": deployed and (ready[0] if ready else True),
                           "up_to_date": installed is not None and _same_version(installed, r.version),
                           "detail": detail if entry else "not installed"})

    def combine(*checks: tuple[bool, str]) -> tuple[bool, str]:
        return all(c[0] for c in checks), "; ".join(c[1] for c in checks)

    helm_component("cert-manager", combine(_deployments_ready(ctx, CERT_MANAGER_NS, CERT_MANAGER_DEPLOYMENTS),
                                           _endpoints_ready(ctx, CERT_MANAGER_NS, CERT_MANAGER_WEBHOOK)))
    gateway: dict[str, Any] | None = None
    if mode != "standard":
        kn = installed_knative(ctx)
        if mode == "knative" or any(kn.values()):
            core_ready = _deployments_ready(ctx, KNATIVE_NS, KNATIVE_DEPLOYMENTS)
            components.append({"component": "knative-serving", "pinned": v.knative_serving,
                               "installed": kn["core"],
                               "ready": kn["core"] is not None and core_ready[0],
                               "up_to_date": _same_version(kn["core"], v.knative_serving),
                               "detail": core_ready[1] if kn["core"] else "not installed"})
            kourier_ready = _deployments_ready(ctx, KOURIER_NS, KOURIER_DEPLOYMENTS)
            components.append({"component": "net-kourier", "pinned": v.net_kourier,
                               "installed": kn["kourier"],
                               "ready": kn["kourier"] is not None and kourier_ready[0],
                               "up_to_date": _same_version(kn["kourier"], v.net_kourier),
                               "detail": kourier_ready[1] if kn["kourier"] else "not installed"})
            gateway = _gateway_status(ctx)
    if mode == "standard":
        r = rel["metrics-server"]
        if (r.namespace, r.name) in present:
            helm_component("metrics-server", _deployments_ready(ctx, METRICS_NS, (r.name,), only=True))
    helm_component("kserve-crd", None)
    helm_component("kserve-resources", combine(_deployments_ready(ctx, kserve_ns, KSERVE_DEPLOYMENTS),
                                               _endpoints_ready(ctx, kserve_ns, KSERVE_WEBHOOK)))
    helm_component("kserve-runtime-configs", None)
    runtime = _mlserver_runtime_status(ctx)
    if runtime is not None:
        components.append(runtime)
    drift = [f"{c['component']}: installed {c['installed']}, pinned {c['pinned']}" for c in components
             if c["installed"] is not None and not c["up_to_date"]]
    return {
        "cluster": ctx.cluster,
        "mode": mode,
        "ready": all(c["ready"] for c in components),
        "components": components,
        "drift": drift,
        "gateway": gateway,
    }


def _mlserver_runtime_status(ctx: Context) -> dict[str, Any] | None:
    """The MLServer image the ``kserve-mlserver`` ClusterServingRuntime runs against the
    ``versions.mlserver_image`` pin; None when there is no such runtime (the
    ``kserve-runtime-configs`` row says whether its chart is installed)."""
    pinned = ctx.config.versions.mlserver_image
    runtime = ctx.kube.get(*MLSERVER_RUNTIME)
    if runtime is None:
        return None
    containers = ((runtime.get("spec") or {}).get("containers") or [])
    image = next((c.get("image") for c in containers if c.get("name") == "kserve-container"), None)
    image = image or (containers[0].get("image") if containers else None)
    same = image == pinned
    detail = (f"ClusterServingRuntime {MLSERVER_RUNTIME[2]} runs {image}" if same else
              f"drift: ClusterServingRuntime {MLSERVER_RUNTIME[2]} runs {image or 'no image'}, pinned {pinned}; "
              "models are checked against the pin: re-run `kservectl kserve install`")
    return {"component": "mlserver-runtime", "pinned": pinned, "installed": image, "ready": image is not None,
            "up_to_date": same, "detail": detail}


def _gateway_status(ctx: Context) -> dict[str, Any] | None:
    svc = ctx.kube.get("v1", "Service", GATEWAY, KOURIER_NS)
    if svc is None:
        return None
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    hostname = _hostname(svc)
    info: dict[str, Any] = {"service": f"{KOURIER_NS}/{GATEWAY}", "hostname": hostname,
                            "scheme": annotations.get(ANN_SCHEME, LBC_DEFAULT_SCHEME),
                            "tls": ANN_SSL_CERT in annotations,
                            "ports": [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]}
    if hostname:
        try:
            lb = find_load_balancer(ctx, hostname)
            info["nlb_state"] = (lb.get("State") or {}).get("Code") if lb else "not found"
        except KservectlError as exc:
            info["nlb_state"] = f"unknown ({exc.one_line()})"
    cm = ctx.kube.get("v1", "ConfigMap", "config-domain", KNATIVE_NS)
    info["domains"] = [k for k in ((cm or {}).get("data") or {}) if not k.startswith("_")]
    return info


# -- uninstall -------------------------------------------------------------------------------------------
def uninstall(ctx: Context) -> dict[str, Any]:
    """Remove everything ``install`` created, in reverse order: the gateway Service first (waiting
    until its NLB is gone, so nothing billed is left), then KServe, Knative + Kourier or
    metrics-server, cert-manager, and the kservectl namespaces. Keeps going past a failure and
    reports every one (``failures``) with what to clean up by hand."""
    out = Outcome(ctx)
    failures: list[dict[str, str]] = []
    result: dict[str, Any] = {"cluster": ctx.cluster, "dry_run": ctx.dry_run, "steps": out.steps,
                              "failures": failures}

    def attempt(what: str, fn: Callable[[], None], manual: str) -> None:
        try:
            fn()
        except KservectlError as exc:
            failures.append({"step": what, "error": exc.one_line(), "manual_cleanup": manual})
            out.add(what, "FAILED")

    # check the tools and read the releases before deleting anything
    major = helm_major(ctx.runner)
    present = helm_releases(ctx)
    if not ctx.dry_run:
        ctx.runner.version("kubectl")
    rel = releases(ctx)
    attempt("gateway Service and its NLB", lambda: _remove_gateway(ctx, out),
            f"delete the NLB tagged service.k8s.aws/stack={KOURIER_NS}/{GATEWAY} and "
            f"elbv2.k8s.aws/cluster={ctx.cluster} (EC2 console > Load Balancers)")
    for key in ("kserve-runtime-configs", "kserve-resources", "kserve-crd"):
        attempt(f"helm release {rel[key].name}",
                lambda r=rel[key]: _remove_release(ctx, r, major, out, present),
                f"helm uninstall {rel[key].name} -n {rel[key].namespace}")
    urls = knative_urls(ctx)
    for what, url, exists in (
        ("net-kourier", urls["kourier"], ("v1", "Namespace", KOURIER_NS)),
        ("Knative Serving core", urls["core"], ("v1", "Namespace", KNATIVE_NS)),
        ("Knative Serving CRDs", urls["crds"], (*CRD_API, KNATIVE_CRDS[0])),
    ):
        attempt(what, lambda w=what, u=url, e=exists: _remove_manifest(ctx, w, u, ctx.kube.get(*e), out),
                f"kubectl delete -f {url}")
    attempt("metrics-server", lambda: _remove_release(ctx, rel["metrics-server"], major, out, present),
            f"helm uninstall {rel['metrics-server'].name} -n {METRICS_NS}")
    attempt("cert-manager", lambda: _remove_release(ctx, rel["cert-manager"], major, out, present),
            f"helm uninstall cert-manager -n {CERT_MANAGER_NS}")
    for namespace in (ctx.config.namespaces.kserve, CERT_MANAGER_NS):
        attempt(f"Namespace {namespace}", lambda ns=namespace: _remove_namespace(ctx, ns, out),
                f"kubectl delete namespace {namespace}")
    if ctx.dry_run:
        result["commands"] = [shlex.join(argv) for argv in getattr(ctx.runner, "recorded", [])]
    result["changed"] = out.changed()
    return result


def _remove_gateway(ctx: Context, out: Outcome) -> None:
    ref = Ref("v1", "Service", GATEWAY, KOURIER_NS)
    svc = ctx.kube.get("v1", "Service", GATEWAY, KOURIER_NS)
    if svc is None:
        out.add(f"Service {KOURIER_NS}/{GATEWAY}", "unchanged (not present)")
        return
    hostname = _hostname(svc)
    if ctx.dry_run:
        nlb = f"its NLB {hostname}" if hostname else "its NLB"
        out.add(f"Service {KOURIER_NS}/{GATEWAY}", f"would delete, then wait until {nlb} is gone")
        return
    ctx.kube.delete(ref)
    try:
        ctx.kube.wait_deleted(ref, what=f"Service {KOURIER_NS}/{GATEWAY} to be deleted",
                              timeout=ctx.settings.waits.load_balancer_deleted)
    except WaitTimeout as exc:
        current = ctx.kube.get("v1", "Service", GATEWAY, KOURIER_NS) or {}
        finalizers = (current.get("metadata") or {}).get("finalizers") or []
        if finalizers:
            exc.pending.append(f"finalizers {', '.join(finalizers)}: the AWS Load Balancer Controller "
                               "removes them once the NLB is deleted; is it running "
                               "(`kservectl alb status`)?")
        raise WaitTimeout(exc.what, exc.timeout_s, exc.pending) from None
    out.add(f"Service {KOURIER_NS}/{GATEWAY}", "deleted")
    if hostname:
        wait_nlb_gone(ctx, hostname)
        out.add(f"NLB {hostname}", "deleted")


def _remove_release(ctx: Context, rel: Release, major: int, out: Outcome,
                    present: dict[tuple[str, str], dict[str, Any]]) -> None:
    label = f"helm release {rel.namespace}/{rel.name}"
    if (rel.namespace, rel.name) not in present:
        out.add(label, "unchanged (not installed)")
        return
    ctx.runner.run(helm_uninstall_argv(ctx, rel, major))
    out.add(label, "would uninstall" if ctx.dry_run else "uninstalled")


def _remove_manifest(ctx: Context, what: str, url: str, exists: dict[str, Any] | None, out: Outcome) -> None:
    if exists is None:
        out.add(what, "unchanged (not installed)")
        return
    ctx.runner.run(kubectl_delete_url(ctx, url))
    out.add(what, "would delete" if ctx.dry_run else "deleted")


def _remove_namespace(ctx: Context, namespace: str, out: Outcome) -> None:
    label = f"Namespace {namespace}"
    current = ctx.kube.get("v1", "Namespace", namespace)
    if current is None:
        out.add(label, "unchanged (not present)")
        return
    if (current.get("metadata") or {}).get("deletionTimestamp"):
        out.add(label, "unchanged (already terminating)")
        return
    if ctx.dry_run:
        out.add(label, "would delete")
        return
    ctx.kube.delete(Ref("v1", "Namespace", namespace))
    out.add(label, "deleted")
