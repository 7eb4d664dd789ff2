"""What the platform's Helm releases and ``kubectl apply -f <release URL>`` manifests create in the
emulated cluster, and what uninstalling / deleting them removes: the fakes only record argv, so
the tests write the objects themselves. One simulation, shared by the ``up`` sandbox
(tests/support/sandbox.py) and the kserve phase's test cluster (tests/test_phase_kserve.py).

``Charts(kube)`` writes to a ``kube`` emulator server (tests/support/kube_emulator.py):

* ``install(release, namespace, values)``: the objects of ``helm upgrade --install`` (the values
  are the release's ``--values`` file): cluster-autoscaler and the AWS Load Balancer Controller
  (a Deployment; the controller's webhook Service with ready Endpoints), cert-manager (CRDs,
  Deployments, webhook), ``kservectl-metrics-server``, ``kserve-crd`` (KServe's CRDs), ``kserve``
  (the controller, its webhook, ``inferenceservice-config`` in the values' deployment mode) and
  ``kserve-runtime-configs`` (the MLServer ClusterServingRuntime at the values' image). Another
  release creates nothing. ``install_argv(args)`` does the same from helm's arguments.
* ``uninstall(release, namespace)``: what ``helm uninstall`` removes of the kserve phase's
  releases: their Deployments, ``inferenceservice-config``, KServe's CRDs (``kserve-crd``) and
  the runtime. The rest stays: cert-manager's CRDs, the webhooks' Services and Endpoints, the
  ALB controller's and cluster-autoscaler's objects.
* ``apply_manifest(url)``: Knative's ``serving-crds.yaml`` (CRDs), ``serving-core.yaml`` (the
  namespace, Deployments, ``config-network`` and ``config-domain`` with upstream's example block,
  kept if present), Kourier's ``kourier.yaml`` (Deployments and the ``kourier`` LoadBalancer
  Service, whose live ports it merges by port number as ``kubectl apply`` does) and
  ``serving-default-domain.yaml`` (the ``default-domain`` Job, which nobody here runs).
  ``delete_manifest(url)`` removes what ``kubectl delete -f`` of the first three would.

Only objects: no controller runs here and nothing waits (the caller's controllers make
Deployments Available, run Jobs and give LoadBalancer Services an NLB).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from kservectl.phases import kserve

CRD_API = "apiextensions.k8s.io/v1"
RUNTIME_API = "serving.kserve.io/v1alpha1"
WEBHOOK_IP = "10.0.0.9"
WEBHOOK_PORTS = {kserve.CERT_MANAGER_WEBHOOK: 10250}  # the webhook's container port; 9443 otherwise
KNATIVE_DEPLOYMENTS = ("activator", "autoscaler", "controller", "webhook")
KNATIVE_CONFIGMAPS = ("config-network", "config-domain")
KOURIER_PORTS = [{"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                 {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]


class Charts:
    """The objects of the platform's charts and manifests, written to the emulator ``kube``."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube

    # -- objects ---------------------------------------------------------------------------------------
    def apply(self, obj: dict[str, Any]) -> None:
        """Create ``obj``, or merge-patch it over the live one (as ``kubectl apply`` would)."""
        meta = obj["metadata"]
        if self.kube.find(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is None:
            self.kube.create(obj)
        else:
            self.kube.patch(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"),
                            {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")})

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        self.kube.delete(api_version, kind, name, namespace, missing_ok=True)

    def crd(self, name: str, labels: dict[str, str] | None = None) -> None:
        """A namespaced CRD ``<plural>.<group>`` serving ``v1``."""
        plural, group = name.split(".", 1)
        self.apply({"apiVersion": CRD_API, "kind": "CustomResourceDefinition",
                    "metadata": {"name": name, "labels": labels or {}},
                    "spec": {"group": group, "scope": "Namespaced",
                             "names": {"plural": plural, "kind": plural.capitalize()[:-1]},
                             "versions": [{"name": "v1", "served": True, "storage": True}]}})

    def deployment(self, name: str, namespace: str, labels: dict[str, str] | None = None) -> None:
        """A one-replica Deployment, without status (a controller makes it Available)."""
        self.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": {"app": name}},
                                          "spec": {"containers": [{"name": "c", "image": "x"}]}}}})

    def webhook(self, name: str, namespace: str, *, ready: bool = True) -> None:
        """A webhook's Service and its Endpoints: ready addresses, or (``ready=False``) not yet."""
        self.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                    "spec": {"ports": [{"port": 443}]}})
        key = "addresses" if ready else "notReadyAddresses"
        self.apply({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
                    "subsets": [{key: [{"ip": WEBHOOK_IP}], "ports": [{"port": WEBHOOK_PORTS.get(name, 9443)}]}]})

    def webhook_ready(self, name: str, namespace: str) -> None:
        """The webhook's pod passes its readiness probe: its Endpoints get a ready address."""
        ready = {"addresses": [{"ip": WEBHOOK_IP}], "ports": [{"port": WEBHOOK_PORTS.get(name, 9443)}]}
        self.kube.patch("v1", "Endpoints", name, namespace, {"subsets": [ready]})

    # -- helm ------------------------------------------------------------------------------------------
    def install_argv(self, args: list[str]) -> str:
        """``helm upgrade --install RELEASE CHART --namespace NS [--values FILE] ...`` (``args``
        without the program): the namespace (``--create-namespace``) and the release's objects.
        Returns the release's name."""
        release, namespace = args[2], args[args.index("--namespace") + 1]
        values = {}
        if "--values" in args:
            values = yaml.safe_load(Path(args[args.index("--values") + 1]).read_text()) or {}
        self.kube.ensure_namespace(namespace)
        self.install(release, namespace, values)
        return release

    def install(self, release: str, namespace: str, values: dict[str, Any]) -> None:
        from kservectl.phases import alb, autoscaler

        if release == autoscaler.RELEASE:
            self.deployment(autoscaler.DEPLOYMENT, namespace)
        elif release == alb.RELEASE:
            self.deployment(alb.DEPLOYMENT, namespace)
            self.webhook(alb.WEBHOOK_SERVICE, namespace)
        elif release == "cert-manager":
            for crd in kserve.CERT_MANAGER_CRDS:
                self.crd(crd)
            for dep in kserve.CERT_MANAGER_DEPLOYMENTS:
                self.deployment(dep, namespace)
            self.webhook(kserve.CERT_MANAGER_WEBHOOK, namespace)
        elif release == "kservectl-metrics-server":
            self.deployment(release, namespace, {"app.kubernetes.io/name": "metrics-server"})
        elif release == "kserve-crd":
            for crd in kserve.KSERVE_CRDS:
                self.crd(crd)
        elif release == "kserve":
            self.deployment("kserve-controller-manager", namespace)
            self.webhook(kserve.KSERVE_WEBHOOK, namespace)
            mode = values["kserve"]["controller"]["deploymentMode"]
            self.apply({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "inferenceservice-config", "namespace": namespace},
                        "data": {"deploy": json.dumps({"defaultDeploymentMode": mode})}})
        elif release == "kserve-runtime-configs":
            mlserver = values["kserve"]["servingruntime"]["mlserver"]
            self.apply({"apiVersion": RUNTIME_API, "kind": "ClusterServingRuntime",
                        "metadata": {"name": "kserve-mlserver"},
                        "spec": {"containers": [{"name": "kserve-container",
                                                 "image": f"{mlserver['image']}:{mlserver['tag']}"}]}})

    def uninstall(self, release: str, namespace: str) -> None:
        if release == "cert-manager":
            for dep in kserve.CERT_MANAGER_DEPLOYMENTS:
                self.delete("apps/v1", "Deployment", dep, namespace)
        elif release == "kserve":
            self.delete("apps/v1", "Deployment", "kserve-controller-manager", namespace)
            self.delete("v1", "ConfigMap", "inferenceservice-config", namespace)
        elif release == "kserve-crd":
            for crd in kserve.KSERVE_CRDS:
                self.delete(CRD_API, "CustomResourceDefinition", crd)
        elif release == "kserve-runtime-configs":
            self.delete(RUNTIME_API, "ClusterServingRuntime", "kserve-mlserver")
        elif release == "kservectl-metrics-server":
            self.delete("apps/v1", "Deployment", release, namespace)

    # -- kubectl apply/delete -f <release URL> ---------------------------------------------------------
    def apply_manifest(self, url: str) -> None:
        file = url.rsplit("/", 1)[1]
        version = re.search(r"knative-v([\d.]+)/", url).group(1)
        labels = {"app.kubernetes.io/version": version, "app.kubernetes.io/name": "knative-serving"}
        if file == "serving-crds.yaml":
            for crd in kserve.KNATIVE_CRDS:
                self.crd(crd, {**labels, "knative.dev/crd-install": "true"})
        elif file == "serving-core.yaml":
            self.apply({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": kserve.KNATIVE_NS, "labels": labels}})
            for dep in KNATIVE_DEPLOYMENTS:
                self.deployment(dep, kserve.KNATIVE_NS, labels)
            for cm in KNATIVE_CONFIGMAPS:
                if self.kube.find("v1", "ConfigMap", cm, kserve.KNATIVE_NS) is None:
                    self.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": cm, "namespace": kserve.KNATIVE_NS},
                                      "data": {"_example": "# the upstream example block"}})
        elif file == "kourier.yaml":
            self.kube.ensure_namespace(kserve.KOURIER_NS)
            self.deployment("3scale-kourier-gateway", kserve.KOURIER_NS, labels)
            self.deployment("net-kourier-controller", kserve.KNATIVE_NS, labels)
            current = self.kube.find("v1", "Service", kserve.GATEWAY, kserve.KOURIER_NS)
            if current is None:
                self.kube.create({"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": kserve.GATEWAY, "namespace": kserve.KOURIER_NS,
                                               "labels": labels},
                                  "spec": {"type": "LoadBalancer", "ports": KOURIER_PORTS,
                                           "selector": {"app": "3scale-kourier-gateway"}}})
            else:  # kubectl apply merges the manifest's ports into the live ones by port number
                by_port = {p["port"]: p for p in current["spec"]["ports"]}
                by_port.update({p["port"]: p for p in KOURIER_PORTS})
                self.kube.patch("v1", "Service", kserve.GATEWAY, kserve.KOURIER_NS,
                                {"metadata": {"labels": labels}, "spec": {"ports": list(by_port.values())}})
        elif file == "serving-default-domain.yaml":
            self.kube.create({"apiVersion": "batch/v1", "kind": "Job",
                              "metadata": {"name": "default-domain", "namespace": kserve.KNATIVE_NS},
                              "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                             "containers": [{"name": "d", "image": "x"}]}}}})

    def delete_manifest(self, url: str) -> None:
        file = url.rsplit("/", 1)[1]
        if file == "kourier.yaml":
            self.delete("v1", "Service", "kourier-internal", kserve.KOURIER_NS)
            self.delete("v1", "Namespace", kserve.KOURIER_NS)
        elif file == "serving-core.yaml":
            self.delete("v1", "Namespace", kserve.KNATIVE_NS)
        elif file == "serving-crds.yaml":
            for crd in kserve.KNATIVE_CRDS:
                self.delete(CRD_API, "CustomResourceDefinition", crd)
