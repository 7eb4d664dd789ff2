"""
An in-process Kubernetes API for kservectl tests: kmock 0.8 plus the fixes it needs.

No real API server can run here, so tests talk HTTP to kmock's ``KubernetesEmulator``
(a stateful in-memory API server). Plain kmock 0.8 gets too much wrong for the official
``kubernetes`` client and ``kubectl`` (see ``/work/shared/reference/k8s-api-emulator.md``);
:class:`KubeEmulator` is a test-only subclass, pinned to kmock 0.8, that fixes:

* paths: ``/api/v1/namespaces[/name[/status]]`` (kmock answers 500/404), trailing slashes;
* writes: ``201`` on create, ``PUT`` (replace), JSON / merge / strategic-merge patches
  (strategic merge approximated; refused with 415 on custom resources, as a real server does),
  server-side apply as create-if-missing then merge (``fieldManager`` required), ``dryRun``,
  ``generateName``, name validation (422), optimistic concurrency (a stale
  ``metadata.resourceVersion`` gives 409), delete preconditions, deletecollection,
  finalizers, status-subresource semantics (``/status`` writes change only ``.status``;
  other writes leave ``.status`` alone);
* metadata: monotonic ``resourceVersion`` bumped on every write, ``uid``,
  ``creationTimestamp``, ``generation`` (on custom resources and objects with a ``spec``;
  bumped when anything but metadata/status changes); a write that changes nothing bumps
  nothing and emits no event;
* namespaces: ``default``, ``kube-system``, ``kube-public``, ``kube-node-lease`` exist from the
  start; creating into a missing namespace is a 404 (``require_namespaces=False`` turns it
  off); a deleted namespace is ``Terminating`` (403 on creates) for
  ``namespace_termination_s``, then its objects and itself are deleted;
* reads: lists carry ``kind: <Kind>List`` and ``metadata.resourceVersion``; label selectors
  (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``) and field
  selectors (``metadata.name``, ``metadata.namespace`` or any dotted path; ``=``, ``==``, ``!=``);
* watch: events for every kind (cluster-scoped ones too), ``resourceVersion`` honoured
  (replays only later events; ``410 Gone`` once compacted, see
  :meth:`KubeEmulator.compact_history`), ``timeoutSeconds`` honoured, selector transitions
  sent as ADDED/DELETED, ``Content-Type: application/json`` so client-go accepts the stream;
* discovery: core ``groupVersion`` is ``v1`` (kmock says ``/v1``), stable preferred versions,
  the custom resources kservectl uses (:data:`KSERVECTL_CUSTOM_RESOURCES`), and custom
  resources registered on the fly when a ``CustomResourceDefinition`` is created (which is
  then reported ``Established``); OpenAPI v3 stubs so that kubectl validates server-side and
  ``kubectl apply`` (client- and server-side), ``get``, ``wait``, ``rollout status``,
  ``patch``, ``label`` and ``delete`` work;
* errors: ``kind: Status`` bodies with the real reasons (``NotFound``, ``AlreadyExists``,
  ``Conflict``, ``Invalid``, ``BadRequest``, ``Forbidden``, ``UnsupportedMediaType``...);
* pod logs: ``GET /api/v1/namespaces/<ns>/pods/<pod>/log`` serves the text the test stored with
  :meth:`KubeEmulatorServer.set_pod_log` (``container``, ``tailLines``, ``sinceSeconds``,
  ``timestamps``, ``previous``, ``follow``; 400 for a waiting container or a missing container
  name, as the real server); :attr:`KubeEmulator.pod_log_requests` records each request's query.

Still not emulated (design tests around them): protobuf/CBOR bodies (typed
``kubectl create namespace|secret|sa ...`` and helm's release storage fail with 415);
schema validation and defaulting (unknown fields are stored, nothing is defaulted);
exact strategic-merge merge keys and server-side-apply field ownership (fields dropped from
a re-applied manifest are not removed); admission webhooks; garbage collection through
ownerReferences; pagination (``limit``/``continue`` are ignored: one page holds everything);
server-side table columns (kubectl prints NAME and AGE only); subresources other than
``status`` and pods' ``log`` (``kubectl scale`` gets 404); versions of one resource sharing storage.

:class:`KubeEmulatorServer` runs the emulator on 127.0.0.1 in a background thread for plain
(sync) tests, writes a kubeconfig, and offers helpers that write over HTTP (so watchers see
the events) plus controller simulation hooks. The ``kube`` fixture yields a started server with
``KUBECONFIG`` pointing at it::

    def test_deploy_waits_for_the_rollout(kube: KubeEmulatorServer) -> None:
        kube.simulate_deployment_rollout(delay_s=0.2)
        kservectl.deploy(...)            # uses $KUBECONFIG like it would against EKS
        assert kube.get("apps/v1", "Deployment", "mlflow", "mlflow")["status"]["availableReplicas"] == 1
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import dataclasses
import datetime
import gzip
import http.client
import importlib.resources
import json
import logging
import re
import secrets
import shutil
import string
import tempfile
import threading
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeGuard

import aiohttp.test_utils
import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import pytest
import yaml
from kmock import K8sCriteria, KMockError, Response  # type: ignore[attr-defined]  # public, not in __all__
from kmock._internal.rendering import StreamingError  # private: for the copy of RawHandler.__call__
from typing_extensions import override

KMOCK_VERSION: Final = "0.8"
_kmock_installed: str = getattr(kmock, "__version__", "unknown")
if _kmock_installed != KMOCK_VERSION:  # pragma: no cover - guards upgrades
    raise ImportError(
        f"tests/support/kube_emulator.py overrides private parts of kmock {KMOCK_VERSION} (request "
        f"parsing, _handle, the _serve_* fallbacks) but kmock {_kmock_installed} is installed. Pin "
        f"kmock=={KMOCK_VERSION}, or re-check every override here against the new kmock source first."
    )

__all__ = [
    "KSERVECTL_CUSTOM_RESOURCES",
    "KubeApiError",
    "KubeEmulator",
    "KubeEmulatorError",
    "KubeEmulatorServer",
    "ResourceSpec",
    "WatchEvent",
    "kube",
]

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ControllerCallback = Callable[[JsonObject], None]


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    """A resource to serve in addition to kmock's bundled built-ins (what a CRD would declare)."""

    api_version: str  # "group/version"
    plural: str
    kind: str
    namespaced: bool
    shortnames: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ("status",)

    @property
    def group(self) -> str:
        return _split_api_version(self.api_version)[0]

    @property
    def version(self) -> str:
        return _split_api_version(self.api_version)[1]


_KNATIVE = ("all", "knative", "serving")
_CERT_MANAGER = ("cert-manager",)
#: The custom resources kservectl creates or reads; served from the start (no CRD needed).
KSERVECTL_CUSTOM_RESOURCES: Final[tuple[ResourceSpec, ...]] = (
    ResourceSpec("serving.kserve.io/v1beta1", "inferenceservices", "InferenceService", True, ("isvc",)),
    ResourceSpec("serving.kserve.io/v1alpha1", "servingruntimes", "ServingRuntime", True),
    ResourceSpec("serving.kserve.io/v1alpha1", "clusterservingruntimes", "ClusterServingRuntime", False),
    ResourceSpec("serving.knative.dev/v1", "services", "Service", True, ("ksvc", "kservice"), _KNATIVE),
    ResourceSpec("serving.knative.dev/v1", "revisions", "Revision", True, ("rev",), _KNATIVE),
    ResourceSpec("serving.knative.dev/v1", "routes", "Route", True, ("rt",), _KNATIVE),
    ResourceSpec("serving.knative.dev/v1", "configurations", "Configuration", True, ("cfg",), _KNATIVE),
    ResourceSpec("operator.knative.dev/v1beta1", "knativeservings", "KnativeServing", True, ("kserving",)),
    ResourceSpec("cert-manager.io/v1", "certificates", "Certificate", True, ("cert", "certs"), _CERT_MANAGER),
    ResourceSpec("cert-manager.io/v1", "issuers", "Issuer", True, (), _CERT_MANAGER),
    ResourceSpec("cert-manager.io/v1", "clusterissuers", "ClusterIssuer", False, (), _CERT_MANAGER),
)

DEFAULT_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease")
ALL_VERBS: Final = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

NAMESPACES: Final = kmock.resource(group="", version="v1", plural="namespaces")
PODS: Final = kmock.resource(group="", version="v1", plural="pods")
_POD_LOG_PATH: Final = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log")
CRDS: Final = kmock.resource(group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions")

# Name rules of the real API server (and of KServe's/Knative's webhooks for their kinds).
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_NAME_RULES: Final[Mapping[tuple[str, str], tuple[re.Pattern[str], int, str]]] = {
    ("", "namespaces"): (_DNS1123_LABEL, 63, "a lowercase RFC 1123 label"),
    ("", "services"): (_DNS1035_LABEL, 63, "a DNS-1035 label"),
    ("serving.kserve.io", "inferenceservices"): (_DNS1035_LABEL, 63, "a DNS-1035 label"),
    ("serving.knative.dev", "services"): (_DNS1035_LABEL, 63, "a DNS-1035 label"),
}
_DEFAULT_NAME_RULE: Final = (_DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain")

# Patch media types.
JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"

# Server-owned metadata that clients cannot set or change.
_SERVER_METADATA: Final = (
    "uid", "resourceVersion", "creationTimestamp", "generation",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink",
)


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _join_api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key: Kubernetes' version priority (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > other)."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (-1, 0, 0, version)
    stability = {"alpha": 0, "beta": 1}.get(match.group(2) or "", 2)
    return (stability, int(match.group(1)), int(match.group(3) or 0), version)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Errors in the Kubernetes `Status` form
# --------------------------------------------------------------------------------------------

def _status_error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details)


def _no_such_resource() -> kmock.KubernetesError:
    return _status_error(404, "NotFound", "the server could not find the requested resource")


def _bad_request(message: str) -> kmock.KubernetesError:
    return _status_error(400, "BadRequest", message)


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------

ObjectPredicate = Callable[[Mapping[str, Any]], bool]

_LABEL_TERM = re.compile(
    r"""\s*(?:
        !\s*(?P<absent>[^\s!=,()]+)
      | (?P<key>[^\s!=,()]+)\s*
        (?:(?P<op>==|=|!=)\s*(?P<value>[^\s!=,()]*)
          |\s(?P<setop>in|notin)\s*\((?P<values>[^()]*)\)
        )?
    )\s*""",
    re.VERBOSE,
)
_FIELD_TERM = re.compile(r"\s*(?P<path>[A-Za-z0-9_.\-/]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*?)\s*")


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` parentheses."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term for term in terms if term.strip()]


def parse_label_selector(selector: str) -> ObjectPredicate:
    """Compile a ``labelSelector`` query value into a predicate on objects (400 if invalid)."""
    # Each requirement is (key, operator, values): k=v is "in {v}", k!=v is "notin {v}".
    requirements: list[tuple[str, Literal["in", "notin", "exists", "absent"], frozenset[str]]] = []
    for term in _split_selector(selector):
        match = _LABEL_TERM.fullmatch(term)
        if match is None:
            raise _bad_request(f"unable to parse requirement: {term.strip()!r} in labelSelector {selector!r}")
        if match["absent"]:
            requirements.append((match["absent"], "absent", frozenset()))
        elif match["op"]:
            requirements.append((match["key"], "notin" if match["op"] == "!=" else "in",
                                 frozenset([match["value"]])))
        elif match["setop"]:
            values = frozenset(value.strip() for value in match["values"].split(",") if value.strip())
            requirements.append((match["key"], "in" if match["setop"] == "in" else "notin", values))
        else:
            requirements.append((match["key"], "exists", frozenset()))

    def predicate(obj: Mapping[str, Any]) -> bool:
        labels: Mapping[str, str] = obj.get("metadata", {}).get("labels") or {}
        return all(_label_requirement_holds(labels, *requirement) for requirement in requirements)

    return predicate


def _label_requirement_holds(labels: Mapping[str, str], key: str, operator: str,
                             values: frozenset[str]) -> bool:
    match operator:
        case "in":
            return labels.get(key) in values
        case "notin":  # true when the label is absent, too
            return labels.get(key) not in values
        case "exists":
            return key in labels
        case _:
            return key not in labels


def parse_field_selector(selector: str) -> ObjectPredicate:
    """
    Compile a ``fieldSelector`` into a predicate (400 if invalid).

    Any dotted path is accepted (a real server accepts only a few per kind), values compare
    as strings, a missing field compares as ``""``.
    """
    checks: list[tuple[list[str], bool, str]] = []
    for term in _split_selector(selector):
        match = _FIELD_TERM.fullmatch(term)
        if match is None:
            raise _bad_request(f"invalid field selector term {term.strip()!r} in {selector!r}")
        checks.append((match["path"].split("."), match["op"] != "!=", match["value"]))

    def dig(obj: Any, path: list[str]) -> str:
        for part in path:
            obj = obj.get(part) if isinstance(obj, Mapping) else None
        if obj is None:
            return ""
        return obj if isinstance(obj, str) else json.dumps(obj)

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((dig(obj, path) == value) == equal for path, equal, value in checks)

    return predicate


def _selector_predicate(params: Mapping[str, str]) -> ObjectPredicate:
    label = parse_label_selector(params.get("labelSelector", ""))
    field = parse_field_selector(params.get("fieldSelector", ""))
    return lambda obj: label(obj) and field(obj)


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return copy.deepcopy(value)


def _is_named_list(value: Any) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(value, list) and all(isinstance(item, dict) and "name" in item for item in value)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """
    An approximation of Kubernetes' strategic merge patch (also used for server-side apply).

    Dicts merge, ``null`` deletes, ``$patch: replace|delete`` work; lists whose items all have
    a ``name`` (containers, env, ports, volumes, volumeMounts...) merge by name; other lists
    are replaced; other ``$`` directives (``$setElementOrder``, ``$retainKeys``, ...) are
    dropped. Real merge keys come from the OpenAPI schema and are not always ``name``.
    """
    if not isinstance(patch, dict):
        return _strip_directives(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and value and _is_named_list(value) and _is_named_list(current):
            merged: dict[str, Any] = {item["name"]: item for item in current}
            for item in value:
                if item.get("$patch") == "delete":
                    merged.pop(item["name"], None)
                else:
                    merged[item["name"]] = strategic_merge_patch(merged.get(item["name"]), item)
            result[key] = list(merged.values())
        else:
            result[key] = strategic_merge_patch(current, value)
    return result


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One committed change, as streamed to watchers and passed to listeners."""

    type: EventType
    resource: kmock.resource
    namespace: str | None
    name: str
    object: JsonObject  # the new state (the last state for DELETED); never mutate
    old_object: JsonObject | None  # the previous state for MODIFIED/DELETED
    resource_version: int


@dataclasses.dataclass(frozen=True)
class _Target:
    """The resource, scope and object addressed by a request URL (validated)."""

    resource: kmock.resource
    info: kmock.ResourceInfo
    namespace: str | None  # None: cluster-scoped, or all namespaces for list/watch
    name: str | None
    subresource: str | None

    @property
    def group(self) -> str:
        return self.resource.group or ""

    @property
    def api_version(self) -> str:
        return _join_api_version(self.group, self.resource.version or "")

    @property
    def kind(self) -> str:
        return self.info.kind or (self.resource.plural or "").capitalize()

    @property
    def namespaced(self) -> bool:
        return bool(self.info.namespaced)

    @property
    def has_status(self) -> bool:
        return "status" in self.info.subresources

    @property
    def qualified_plural(self) -> str:
        """``pods``, ``deployments.apps`` (as in the real server's error messages)."""
        return f"{self.resource.plural}.{self.group}" if self.group else f"{self.resource.plural}"

    def key(self, name: str | None = None) -> tuple[kmock.resource, str | None, str]:
        object_name = name if name is not None else self.name
        assert object_name is not None, "the request addresses a collection, not an object"
        return (self.resource, self.namespace if self.namespaced else None, object_name)

    def not_found(self, name: str) -> kmock.KubernetesError:
        return _status_error(404, "NotFound", f'{self.qualified_plural} "{name}" not found',
                             name=name, group=self.group, kind=self.resource.plural)


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """
    kmock's ``KubernetesEmulator`` (0.8) with the fixes listed in this module's docstring.

    Objects live in the inherited ``objects`` array (``emu.objects[res, ns, name]``, with
    history); kmock's DSL still works and takes priority over the emulation, e.g.
    ``emu[kmock.action.CREATE, kmock.resource("apps/v1/deployments")][:1] << 500``.
    Writes happen in the fallback handlers, so a reaction that answers a write (e.g. an
    injected error) means the write did not happen.
    """

    #: Creating a namespaced object in a namespace that does not exist is a 404 (as in a cluster).
    require_namespaces: bool = True
    #: How many past events a watch can resume from; older resourceVersions get 410 Gone.
    history_limit: int = 10_000
    #: What ``/version`` reports (EKS' default Kubernetes version).
    kubernetes_version: str = "1.34.0"
    #: How long a deleted namespace stays ``Terminating`` before its objects and itself are
    #: deleted (the namespace controller's job; it takes seconds in a cluster).
    namespace_termination_s: float = 0.1

    _revision: int = attrs.field(default=0, init=False)
    _history: collections.deque[WatchEvent] = attrs.field(factory=collections.deque, init=False)
    _compacted_revision: int = attrs.field(default=0, init=False)
    _watchers: set[asyncio.Queue[WatchEvent | None]] = attrs.field(factory=set, init=False)
    _listeners: list[Callable[[WatchEvent], None]] = attrs.field(factory=list, init=False)
    _kinds: dict[tuple[str, str, str], kmock.resource] = attrs.field(factory=dict, init=False)
    _custom_resources: set[kmock.resource] = attrs.field(factory=set, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _pod_logs: dict[tuple[str, str, str, bool], _PodLog] = attrs.field(factory=dict, init=False)
    _pod_logs_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _request_count: int = attrs.field(default=0, init=False)
    _in_flight: set[int] = attrs.field(factory=set, init=False)
    #: The query of every ``/log`` request, with ``namespace`` and ``pod`` added, oldest first.
    pod_log_requests: list[dict[str, str]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()  # kmock's routes; the _serve_* ones resolve to the overrides below
        # = self.resources.load_bundled(), minus its deprecated importlib.resources.read_binary().
        bundled = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
        self.resources.load_data(gzip.decompress(bundled))
        for resource, _ in self._served():
            self._index_kind(resource)
        for spec in KSERVECTL_CUSTOM_RESOURCES:
            self.declare_resource(spec)

        # Routes kmock lacks; same (lowest) priority as kmock's own, so user reactions win.
        self.fallback[kmock.method.DELETE] << self._serve_delete_collection
        self.fallback["get /openapi/v3"] << self._serve_openapi_v3
        self.fallback["get", re.compile(r"/openapi/v3/.+")] << self._serve_openapi_v3_group_version
        self["get", _POD_LOG_PATH] << self._serve_pod_log

        namespaces = self._target_for(NAMESPACES)
        for name in DEFAULT_NAMESPACES:
            self._create_locked(namespaces, {"metadata": {"name": name}}, namespace=None, dry_run=False)

    # ---- public API ---------------------------------------------------------------------

    def declare_resource(self, spec: ResourceSpec) -> kmock.resource:
        """Serve a custom resource (as if its CRD were installed). Idempotent."""
        resource = kmock.resource(group=spec.group, version=spec.version, plural=spec.plural)
        self.resources[resource] = kmock.ResourceInfo(
            kind=spec.kind,
            singular=spec.kind.lower(),
            namespaced=spec.namespaced,
            verbs=set(ALL_VERBS),
            shortnames=set(spec.shortnames),
            categories=set(spec.categories),
            subresources=set(spec.subresources),
        )
        self._custom_resources.add(resource)
        self._index_kind(resource)
        return resource

    def find_resource(self, api_version: str, kind: str) -> tuple[kmock.resource, kmock.ResourceInfo] | None:
        """The served resource for ``apiVersion`` + ``kind`` (thread-safe), or None."""
        resource = self._kinds.get((*_split_api_version(api_version), kind))
        return None if resource is None else (resource, self.resources[resource])

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        """
        Call ``listener(event)`` after every committed change, on the emulator's event loop.

        It must not block (no HTTP calls to this emulator from it: that would deadlock);
        hand work over to another thread instead, as :class:`KubeEmulatorServer` does.
        """
        self._listeners.append(listener)

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the latest write."""
        return self._revision

    @property
    def open_watches(self) -> int:
        """How many watch streams are open now."""
        return len(self._watchers)

    def set_pod_log(self, namespace: str, pod: str, container: str, lines: list[str] | list[tuple[str, str]], *,
                    previous: bool = False, open: bool = False) -> None:
        """
        Store a container's log (replacing any): ``lines`` are texts (time-stamped now) or
        ``(RFC 3339 time, text)`` pairs. ``previous`` is the log of the last terminated attempt.
        ``open`` keeps a ``follow`` stream waiting for :meth:`append_pod_log` until
        :meth:`close_pod_log` (or the pod is deleted); otherwise it ends after the stored lines.
        """
        stamped = [(_parse_time(item[0]), item[1]) if isinstance(item, tuple)
                   else (datetime.datetime.now(datetime.UTC), item) for item in lines]
        with self._pod_logs_lock:
            self._pod_logs[(namespace, pod, container, previous)] = _PodLog(stamped, open)

    def append_pod_log(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        """Add lines (time-stamped now) to a stored log, as the container would write them."""
        with self._pod_logs_lock:
            log = self._pod_logs.setdefault((namespace, pod, container, False), _PodLog([], True))
            log.lines.extend((datetime.datetime.now(datetime.UTC), line) for line in lines)

    def close_pod_log(self, namespace: str, pod: str, container: str) -> None:
        """The container stopped: ``follow`` streams of this log end."""
        with self._pod_logs_lock:
            log = self._pod_logs.setdefault((namespace, pod, container, False), _PodLog([], False))
            log.open = False

    def forget_served_requests(self) -> None:
        """
        Drop the record of the requests already answered (call on the server's loop).

        kmock routes a request only if its root still lists it, and checks every reaction against
        every request ever recorded (to honour slices), so a long run gets slower with each
        request. Only the answered ones go: one still being routed must stay listed, or it would
        find no reaction. Sliced reactions (``[:n]``) count the requests recorded, so do not call
        this while the test relies on one.
        """
        self._requests[:] = [request for request in self._requests if request.id in self._in_flight]

    def compact_history(self) -> None:
        """Forget past events (like etcd compaction): watches from older versions get 410 Gone."""
        self._history.clear()
        self._compacted_revision = self._revision

    def close_watches(self) -> None:
        """End all open watch streams now and any new ones immediately (on shutdown)."""
        self._closed = True
        for queue in self._watchers:
            queue.put_nowait(None)  # the end-of-stream marker

    # ---- request parsing (kmock 0.8's parser fails on /api/v1/namespaces) ------------------

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # A copy of kmock.RawHandler.__call__ (0.8) with only the request parsing replaced.
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            if self.limit is not None and len(self._requests) >= self.limit:
                raise KMockError("Too many requests have been served so far.")
            request = await self._parse_request(raw_request, id=self._request_count)
            self._request_count += 1
            self._requests.append(request)
            self._in_flight.add(request.id)
            try:
                return await self._handle(request)
            except StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__  # noqa: B904 - as kmock does: the cause is the error to render
                raise  # pragma: no cover
            finally:
                self._in_flight.discard(request.id)
        except Exception as e:
            if not self._errors:
                raise
            self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    @staticmethod
    async def _parse_request(raw: aiohttp.web.BaseRequest, *, id: int) -> kmock.Request:
        body = await raw.read()
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                if "yaml" in raw.content_type:
                    try:
                        data = yaml.safe_load(body)
                    except yaml.YAMLError:
                        data = None
        params = dict(raw.query)
        method = kmock.method(raw.method)
        url = raw.url.with_path(raw.path.rstrip("/") or "/", keep_query=True)  # the client asks for /apis/
        group, version, namespace, plural, name, subresource = _parse_path(url.path)
        resource = None if group is None else kmock.resource(group=group, version=version, plural=plural)
        action: kmock.action | None = None
        if plural is not None:
            if method == kmock.method.GET:
                watch = params.get("watch", "").lower() in ("true", "1")
                action = kmock.action.WATCH if watch else kmock.action.FETCH if name else kmock.action.LIST
            elif method == kmock.method.POST and name is None:
                action = kmock.action.CREATE
            elif method in (kmock.method.PATCH, kmock.method.PUT) and name is not None:
                action = kmock.action.UPDATE
            elif method == kmock.method.DELETE and name is not None:
                action = kmock.action.DELETE
        return kmock.Request(
            id=id, raw_request=raw, url=url, method=raw.method, params=params,
            headers=dict(raw.headers), cookies=dict(raw.cookies),
            body=body, text=body.decode("utf-8", errors="replace"), data=data,
            action=action, resource=resource, namespace=namespace, name=name, subresource=subresource,
        )

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle: its pre-dispatch writes are replaced by the handlers below.
        return await kmock.RawHandler._handle(self, request)

    @override
    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesError):
            status: JsonObject = {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": exc.message, "reason": exc.reason, "code": exc.status,
            }
            if exc.details:
                status["details"] = exc.details
            return aiohttp.web.json_response(status, status=exc.status)
        return await super()._render_error(exc)  # an emulator bug: 500 with the traceback

    # ---- discovery ---------------------------------------------------------------------------

    def _served(self) -> list[tuple[kmock.resource, kmock.ResourceInfo]]:
        return [(kmock.resource(key), self.resources[key]) for key in list(self.resources)]

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = collections.defaultdict(set)
        for res, _ in self._served():
            if res.group and res.version:
                groups[res.group].add(res.version)
        return {group: sorted(versions, key=_version_priority, reverse=True)
                for group, versions in sorted(groups.items())}

    @staticmethod
    def _api_group(group: str, versions: list[str]) -> JsonObject:
        entries = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    @override
    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        major, minor, _ = self.kubernetes_version.split(".", 2)
        return {
            "major": major, "minor": minor, "gitVersion": f"v{self.kubernetes_version}",
            "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64",
        }

    @override
    async def _serve_api(self, request: kmock.Request) -> kmock.Payload:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}

    @override
    async def _serve_apis(self, request: kmock.Request) -> kmock.Payload:
        groups = [self._api_group(group, versions) for group, versions in self._group_versions().items()]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    @override
    async def _serve_group(self, request: kmock.Request) -> kmock.Payload:
        group = request.resource.group if request.resource is not None else None
        versions = self._group_versions().get(group or "")
        if not versions or group is None:
            raise _no_such_resource()
        return {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(group, versions)}

    @override
    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        wanted = request.resource
        if wanted is None:
            raise _no_such_resource()
        entries: list[JsonObject] = []
        for res, info in sorted(self._served(), key=lambda pair: pair[0].plural or ""):
            if res.group != wanted.group or res.version != wanted.version or not res.plural:
                continue
            kind = info.kind or res.plural.capitalize()
            entries.append({
                "name": res.plural, "singularName": info.singular or kind.lower(),
                "namespaced": bool(info.namespaced), "kind": kind,
                "verbs": sorted(info.verbs or ALL_VERBS),
                **({"shortNames": sorted(info.shortnames)} if info.shortnames else {}),
                **({"categories": sorted(info.categories)} if info.categories else {}),
            })
            for sub in sorted(info.subresources):
                entries.append({"name": f"{res.plural}/{sub}", "singularName": "",
                                "namespaced": bool(info.namespaced), "kind": kind,
                                "verbs": ["get", "patch", "update"]})
        if not entries:
            raise _no_such_resource()
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": _join_api_version(wanted.group or "", wanted.version or ""),
                "resources": entries}

    # kubectl reads OpenAPI v3 to learn whether the server validates fields itself (the
    # ``fieldValidation`` parameter of each kind's PATCH operation). Saying yes makes it skip
    # client-side schema validation, which would need the full schemas; and with no strategic
    # merge content type declared, ``kubectl apply`` builds its patches from its compiled-in
    # types (built-in kinds) or as JSON merge patches (custom resources), as it does in a cluster.
    # The emulator accepts ``fieldValidation`` but validates nothing: unknown fields are stored.
    async def _serve_openapi_v3(self, request: kmock.Request) -> kmock.Payload:
        paths = {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1"}}
        for group, versions in self._group_versions().items():
            for version in versions:
                url = f"/openapi/v3/apis/{group}/{version}"
                paths[f"apis/{group}/{version}"] = {"serverRelativeURL": url}
        return {"paths": paths}

    async def _serve_openapi_v3_group_version(self, request: kmock.Request) -> kmock.Payload:
        group, version, _, _, _, _ = _parse_path(request.url.path.removeprefix("/openapi/v3"))
        paths: JsonObject = {}
        for res, info in self._served():
            if res.group != group or res.version != version or not res.plural or not info.kind:
                continue
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            scope = "/namespaces/{namespace}" if info.namespaced else ""
            paths[f"{prefix}{scope}/{res.plural}/{{name}}"] = {"patch": {
                "operationId": f"patch{info.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": info.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }}
        if not paths:
            raise _no_such_resource()
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": f"v{self.kubernetes_version}"},
                "paths": paths, "components": {"schemas": {}}}

    # ---- pod logs --------------------------------------------------------------------------

    async def _serve_pod_log(self, request: kmock.Request) -> kmock.Payload:
        match = _POD_LOG_PATH.fullmatch(request.url.path)
        if match is None:  # pragma: no cover - the route only matches this path
            raise _no_such_resource()
        namespace, pod_name = match.groups()
        params = dict(request.params)
        self.pod_log_requests.append({"namespace": namespace, "pod": pod_name, **params})
        pod = self._live((PODS, namespace, pod_name))
        if pod is None:
            raise _status_error(404, "NotFound", f'pods "{pod_name}" not found', name=pod_name, kind="pods")
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init_names = [c.get("name") for c in spec.get("initContainers") or []]
        container = params.get("container")
        if not container:
            if len(names) != 1:
                raise _bad_request(f"a container name must be specified for pod {pod_name}, "
                                   f"choose one of: [{' '.join(names)}] or one of the init containers: "
                                   f"[{' '.join(init_names)}]")
            container = names[0]
        if container not in names + init_names:
            raise _bad_request(f"container {container} is not valid for pod {pod_name}")
        previous = params.get("previous", "").lower() == "true"
        pod_status = pod.get("status") or {}
        statuses = {s.get("name"): s for s in (pod_status.get("initContainerStatuses") or [])
                    + (pod_status.get("containerStatuses") or [])}
        state = statuses.get(container) or {}
        if previous and not (state.get("lastState") or {}).get("terminated"):
            raise _bad_request(f'previous terminated container "{container}" in pod "{pod_name}" not found')
        waiting = (state.get("state") or {}).get("waiting")
        if waiting is not None and not previous:
            raise _bad_request(f'container "{container}" in pod "{pod_name}" is waiting to start: '
                               f'{waiting.get("reason") or "ContainerCreating"}')
        key = (namespace, pod_name, container, previous)
        tail = int(params["tailLines"]) if params.get("tailLines") else None
        since = int(params["sinceSeconds"]) if params.get("sinceSeconds") else None
        stamps = params.get("timestamps", "").lower() == "true"
        follow = params.get("follow", "").lower() == "true" and not previous

        def render(entries: list[tuple[datetime.datetime, str]]) -> bytes:
            return b"".join(((f"{when.isoformat().replace('+00:00', 'Z')} " if stamps else "") + text + "\n")
                            .encode() for when, text in entries)

        with self._pod_logs_lock:  # what is sent first and where following starts: one snapshot
            log = self._pod_logs.get(key)
            entries = list(log.lines) if log else []
            sent = len(entries)
        if since is not None:
            cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=since)
            entries = [e for e in entries if e[0] >= cutoff]
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []

        async def stream() -> Any:
            nonlocal sent
            yield render(entries)  # may be b"": the response starts anyway
            for _ in range(1500):  # a follow stream ends after 30 s at most
                if not follow:
                    return
                with self._pod_logs_lock:
                    current = self._pod_logs.get(key)
                    new = list(current.lines[sent:]) if current else []
                    still_open = bool(current and current.open)
                sent += len(new)
                if new:
                    yield render(new)
                elif not still_open or self._live((PODS, namespace, pod_name)) is None:
                    return
                await asyncio.sleep(0.02)

        return Response(status=200, headers={"Content-Type": "text/plain"}, payload=stream())

    # ---- resources & targets ---------------------------------------------------------------

    def _index_kind(self, resource: kmock.resource) -> None:
        info = self.resources[resource]
        if info.kind and resource.version is not None:
            self._kinds[(resource.group or "", resource.version, info.kind)] = resource

    def _target_for(self, resource: kmock.resource, namespace: str | None = None,
                    name: str | None = None, subresource: str | None = None) -> _Target:
        return _Target(resource, self.resources[resource], namespace, name, subresource)

    def _target(self, request: kmock.Request, *, object_required: bool) -> _Target:
        """Validate the URL of a resource request (404 for anything a real server lacks)."""
        res = request.resource
        if res is None or not res.plural or res not in self.resources:
            raise _no_such_resource()
        info = self.resources[res]
        if request.namespace is not None and not info.namespaced:
            raise _no_such_resource()
        if object_required and info.namespaced and request.namespace is None:
            raise _no_such_resource()
        if request.subresource is not None and (
                request.subresource != "status" or "status" not in info.subresources):
            raise _no_such_resource()
        return _Target(res, info, request.namespace, request.name, request.subresource)

    def _live(self, key: tuple[kmock.resource, str | None, str]) -> JsonObject | None:
        if key not in self._objects:
            return None
        stored = self._objects[key]
        return None if stored.deleted else copy.deepcopy(stored.raw)

    def _live_items(self, target: _Target, predicate: ObjectPredicate) -> list[JsonObject]:
        items = [
            stored.raw
            for (res, namespace, name), stored in self._objects.items()
            if res == target.resource and not stored.deleted
            if target.namespace is None or namespace == target.namespace
            if target.name is None or name == target.name
        ]
        items = [copy.deepcopy(obj) for obj in items if predicate(obj)]
        items.sort(key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        return items

    # ---- commits & events -------------------------------------------------------------------

    def _commit(self, event_type: EventType, target: _Target, obj: JsonObject,
                old: JsonObject | None = None) -> JsonObject:
        """Store a new state (or the deletion) with a new resourceVersion and emit the event."""
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        key = target.key(obj["metadata"]["name"])
        if event_type == "DELETED":
            self._objects[key].delete()
        elif key in self._objects:
            self._objects[key].history.append(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        event = WatchEvent(event_type, target.resource, key[1], key[2], obj, old, self._revision)
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self._compacted_revision = self._history.popleft().resource_version
        for queue in self._watchers:
            queue.put_nowait(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener must not break the write that triggered it
                logger.exception("A KubeEmulator listener failed on %s %s", event_type, key)
        return copy.deepcopy(obj)

    # ---- writes (callers hold self._lock) ----------------------------------------------------

    def _check_type_meta(self, target: _Target, obj: JsonObject, *, required: bool = False) -> None:
        for field, expected in (("apiVersion", target.api_version), ("kind", target.kind)):
            value = obj.get(field)
            if value is None and required:
                raise _bad_request(f"{field} must be set")
            if value is not None and value != expected:
                raise _bad_request(
                    f"the {field} of the object ({value}) does not match the request ({expected})")

    def _validate_name(self, target: _Target, name: str) -> None:
        pattern, max_length, description = _NAME_RULES.get(
            (target.group, target.resource.plural or ""), _DEFAULT_NAME_RULE)
        if len(name) > max_length or not pattern.fullmatch(name):
            raise _status_error(
                422, "Invalid",
                f'{target.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                f"must be {description} of at most {max_length} characters",
                name=name, group=target.group, kind=target.kind)

    def _create_locked(self, target: _Target, body: Any, *, namespace: str | None,
                       dry_run: bool, url_name: str | None = None) -> JsonObject:
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        self._check_type_meta(target, body)
        obj = {"apiVersion": target.api_version, "kind": target.kind, **copy.deepcopy(body)}
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad_request("metadata must be an object")
        if url_name is not None and meta.get("name", url_name) != url_name:
            raise _bad_request(f"the name of the object ({meta['name']}) does not match "
                               f"the name on the URL ({url_name})")
        name = meta.get("name") or url_name
        if not name and meta.get("generateName"):
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            name = f"{meta['generateName']}{suffix}"
        if not name:
            raise _status_error(422, "Invalid", f"{target.kind} is invalid: metadata.name: Required value: "
                                "name or generateName is required", group=target.group, kind=target.kind)
        self._validate_name(target, name)
        meta["name"] = name
        if target.namespaced:
            if namespace is None:
                raise _no_such_resource()
            if meta.get("namespace", namespace) != namespace:
                raise _bad_request("the namespace of the provided object does not match "
                                   "the namespace sent on the request")
            meta["namespace"] = namespace
            namespace_obj = self._live((NAMESPACES, None, namespace))
            if self.require_namespaces and namespace_obj is None:
                raise _status_error(404, "NotFound", f'namespaces "{namespace}" not found',
                                    name=namespace, kind="namespaces")
            if namespace_obj is not None and namespace_obj["metadata"].get("deletionTimestamp"):
                raise _status_error(
                    403, "Forbidden",
                    f'{target.qualified_plural} "{name}" is forbidden: unable to create new content '
                    f"in namespace {namespace} because it is being terminated",
                    name=name, group=target.group, kind=target.resource.plural)
        else:
            meta.pop("namespace", None)
        if self._live(target.key(name)) is not None:
            raise _status_error(409, "AlreadyExists", f'{target.qualified_plural} "{name}" already exists',
                                name=name, group=target.group, kind=target.resource.plural)
        for field in _SERVER_METADATA:
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        if "spec" in obj or target.resource in self._custom_resources:  # not for ConfigMaps & co
            meta["generation"] = 1
        if target.has_status:
            obj.pop("status", None)  # the status subresource is the only way to write status
        if target.resource == NAMESPACES:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        if target.resource == CRDS:
            obj["status"] = self._register_crd(obj, dry_run=dry_run)
        if dry_run:
            return obj
        return self._commit("ADDED", target, obj)

    def _update_locked(self, target: _Target, current: JsonObject, desired: Any, *,
                       expected_version: str | None, dry_run: bool) -> JsonObject:
        if not isinstance(desired, dict):
            raise _status_error(422, "Invalid", "the patched object is not a JSON object")
        cur_meta = current["metadata"]
        if expected_version is not None and expected_version != cur_meta["resourceVersion"]:
            raise _status_error(
                409, "Conflict",
                f'Operation cannot be fulfilled on {target.qualified_plural} "{cur_meta["name"]}": the '
                "object has been modified; please apply your changes to the latest version and try again",
                name=cur_meta["name"], group=target.group, kind=target.resource.plural)
        if target.subresource == "status":  # /status changes .status and nothing else
            new = copy.deepcopy(current)
            new.pop("status", None)
            if desired.get("status") is not None:
                new["status"] = copy.deepcopy(desired["status"])
        else:
            new = copy.deepcopy(desired)
            if target.has_status:  # ...and only /status does
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        for field in ("name", "namespace", "generateName", *_SERVER_METADATA):
            if field in cur_meta:
                meta[field] = cur_meta[field]
            else:
                meta.pop(field, None)

        def spec_of(obj: JsonObject) -> JsonObject:
            return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

        if "generation" in cur_meta and spec_of(new) != spec_of(current):
            meta["generation"] = int(cur_meta["generation"]) + 1
        if target.resource == CRDS and target.subresource is None:
            fresh_status = self._register_crd(new, dry_run=dry_run)  # serves changed versions
            new["status"] = current.get("status") or fresh_status
        if new == current:
            return current  # a no-op write: no new resourceVersion, no event
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit("DELETED", target, new, current)  # the last finalizer is gone
        return self._commit("MODIFIED", target, new, current)

    def _delete_locked(self, target: _Target, current: JsonObject, *,
                       dry_run: bool) -> tuple[int, JsonObject]:
        """Delete (or mark for deletion while finalizers remain). Returns (HTTP code, last state)."""
        meta = current["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return 202, current
            marked = copy.deepcopy(current)
            marked["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
            return 202, marked if dry_run else self._commit("MODIFIED", target, marked, current)
        if dry_run:
            return 200, current
        if target.resource == NAMESPACES:
            if meta.get("deletionTimestamp"):
                return 202, current  # already terminating
            terminating = copy.deepcopy(current)
            terminating["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
            terminating["status"] = {"phase": "Terminating"}
            name = meta["name"]
            asyncio.get_running_loop().call_later(
                self.namespace_termination_s, lambda: asyncio.ensure_future(self._terminate_namespace(name)))
            return 202, self._commit("MODIFIED", target, terminating, current)
        return 200, self._commit("DELETED", target, copy.deepcopy(current), current)

    async def _terminate_namespace(self, name: str) -> None:
        """The namespace controller: delete what a Terminating namespace holds, then the namespace."""
        async with self._lock:
            for (res, namespace, object_name), stored in list(self._objects.items()):
                if namespace == name and not stored.deleted:
                    last = copy.deepcopy(stored.raw)
                    contained = self._target_for(res, namespace, object_name)
                    self._commit("DELETED", contained, copy.deepcopy(last), last)
            current = self._live((NAMESPACES, None, name))
            if current is not None and current["metadata"].get("deletionTimestamp"):
                self._commit("DELETED", self._target_for(NAMESPACES), copy.deepcopy(current), current)

    def _register_crd(self, crd: JsonObject, *, dry_run: bool) -> JsonObject:
        """Serve the resources a CRD defines and report it Established (the CRD controller's job)."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        served = [v for v in spec.get("versions") or [] if v.get("served", True) and v.get("name")]
        if not (group and plural and kind and served):
            raise _status_error(422, "Invalid", "CustomResourceDefinition is invalid: spec.group, "
                                "spec.names.plural, spec.names.kind and spec.versions are required")
        if not dry_run:
            for version in served:
                subresources = version.get("subresources") or {}
                self.declare_resource(ResourceSpec(
                    f"{group}/{version['name']}", plural, kind, spec.get("scope") != "Cluster",
                    tuple(names.get("shortNames") or ()), tuple(names.get("categories") or ()),
                    tuple(sub for sub in ("status", "scale") if sub in subresources)))
        now = _now()
        conditions = [{"type": condition, "status": "True", "reason": reason, "message": message,
                       "lastTransitionTime": now}
                      for condition, reason, message in (
                          ("NamesAccepted", "NoConflicts", "no conflicts found"),
                          ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]
        stored_versions = [v["name"] for v in served if v.get("storage")] or [served[0]["name"]]
        return {"conditions": conditions, "acceptedNames": names, "storedVersions": stored_versions}

    # ---- the handlers (kmock's fallbacks dispatch to these) ---------------------------------

    @staticmethod
    def _dry_run(request: kmock.Request) -> bool:
        return bool(request.params.get("dryRun"))

    @staticmethod
    def _media_type(request: kmock.Request) -> str:
        return request.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def _body(self, request: kmock.Request) -> Any:
        media_type = self._media_type(request)
        if "protobuf" in media_type or "cbor" in media_type:
            raise _status_error(415, "UnsupportedMediaType",
                                f"the emulator only understands JSON and YAML bodies, not {media_type}")
        if request.data is None:
            raise _bad_request("the request body is missing or is not valid JSON")
        return request.data

    @override
    async def _serve_create(self, request: kmock.Request) -> kmock.Payload:
        target = self._target(request, object_required=False)
        if target.subresource is not None:
            raise _status_error(405, "MethodNotAllowed", "POST is not supported on this subresource")
        body = self._body(request)
        async with self._lock:
            created = self._create_locked(target, body, namespace=target.namespace,
                                          dry_run=self._dry_run(request))
        return Response(status=201, payload=created)

    @override
    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        target = self._target(request, object_required=True)
        async with self._lock:
            obj = self._live(target.key())
        if obj is None:
            raise target.not_found(target.key()[2])
        return Response(status=200, payload=obj)

    @override
    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        target = self._target(request, object_required=False)
        predicate = _selector_predicate(request.params)
        async with self._lock:
            items = self._live_items(target, predicate)
            revision = self._revision
        return Response(status=200, payload={
            "apiVersion": target.api_version, "kind": f"{target.kind}List",
            "metadata": {"resourceVersion": str(revision)}, "items": items,
        })

    @override
    async def _serve_update(self, request: kmock.Request) -> kmock.Payload:
        target = self._target(request, object_required=True)
        key = target.key()
        dry_run = self._dry_run(request)
        body = self._body(request)
        media_type = self._media_type(request)
        if request.method == kmock.method.PATCH and media_type == STRATEGIC_MERGE_PATCH \
                and target.resource in self._custom_resources:
            raise _status_error(415, "UnsupportedMediaType",
                                "the body of the request was in an unknown format - accepted media types "
                                f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}")
        if request.method == kmock.method.PATCH and media_type == APPLY_PATCH:
            if not request.params.get("fieldManager"):
                raise _bad_request(f"fieldManager must be set for apply ({APPLY_PATCH}) requests")
            if isinstance(body, dict):
                self._check_type_meta(target, body, required=True)
        async with self._lock:
            current = self._live(key)
            if current is None:
                if media_type == APPLY_PATCH and target.subresource is None:  # apply creates
                    created = self._create_locked(target, body, namespace=target.namespace,
                                                  dry_run=dry_run, url_name=key[2])
                    return Response(status=201, payload=created)
                raise target.not_found(key[2])
            expected_version: str | None = None
            if isinstance(body, dict):
                expected_version = (body.get("metadata") or {}).get("resourceVersion")
            if request.method == kmock.method.PUT:
                if not isinstance(body, dict):
                    raise _bad_request("the request body must be a JSON object")
                self._check_type_meta(target, body)
                url_meta = current["metadata"]
                body_meta = body.get("metadata") or {}
                for field in ("name", "namespace"):
                    if body_meta.get(field, url_meta.get(field)) != url_meta.get(field):
                        raise _bad_request(f"the {field} of the object ({body_meta.get(field)}) does not "
                                           f"match the {field} on the URL ({url_meta.get(field)})")
                desired: Any = body
            elif media_type == JSON_PATCH:
                if not isinstance(body, list):
                    raise _bad_request("a JSON patch must be a JSON array of operations")
                try:
                    desired = jsonpatch.apply_patch(current, body)
                except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                    raise _status_error(422, "Invalid", f"the JSON patch cannot be applied: {e}") from e
                expected_version = None
            elif media_type == MERGE_PATCH:
                desired = merge_patch(current, body)
            elif media_type in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
                desired = strategic_merge_patch(current, body)
            else:
                raise _status_error(415, "UnsupportedMediaType",
                                    f"unsupported patch type {media_type or '(none)'}")
            result = self._update_locked(target, current, desired,
                                         expected_version=expected_version, dry_run=dry_run)
        return Response(status=200, payload=result)

    @override
    async def _serve_delete(self, request: kmock.Request) -> kmock.Payload:
        target = self._target(request, object_required=True)
        if target.subresource is not None:
            raise _status_error(405, "MethodNotAllowed", "DELETE is not supported on a subresource")
        options = request.data if isinstance(request.data, dict) else {}
        preconditions = options.get("preconditions") or {}
        async with self._lock:
            current = self._live(target.key())
            if current is None:
                raise target.not_found(target.key()[2])
            meta = current["metadata"]
            for field in ("uid", "resourceVersion"):
                if preconditions.get(field) is not None and preconditions[field] != meta.get(field):
                    raise _status_error(
                        409, "Conflict",
                        f'Operation cannot be fulfilled on {target.qualified_plural} "{meta["name"]}": '
                        f"Precondition failed: {field} in precondition: {preconditions[field]}, "
                        f"{field} in object meta: {meta.get(field)}",
                        name=meta["name"], group=target.group, kind=target.resource.plural)
            code, last = self._delete_locked(target, current, dry_run=self._dry_run(request))
        if code == 200 and target.resource not in self._custom_resources:
            # Built-in kinds answer an immediate deletion with a Status; custom resources with the object.
            payload: JsonObject = {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], "group": target.group,
                            "kind": target.resource.plural, "uid": meta["uid"]},
            }
            return Response(status=200, payload=payload)
        return Response(status=code, payload=last)

    async def _serve_delete_collection(self, request: kmock.Request) -> kmock.Payload:
        target = self._target(request, object_required=False)
        if target.name is not None or target.subresource is not None:
            raise _status_error(405, "MethodNotAllowed", "the server does not allow this method")
        predicate = _selector_predicate(request.params)
        dry_run = self._dry_run(request)
        async with self._lock:
            deleted = [
                self._delete_locked(self._target_for(target.resource, obj["metadata"].get("namespace")),
                                    obj, dry_run=dry_run)[1]
                for obj in self._live_items(target, predicate)
            ]
            revision = self._revision
        return Response(status=200, payload={
            "apiVersion": target.api_version, "kind": f"{target.kind}List",
            "metadata": {"resourceVersion": str(revision)}, "items": deleted,
        })

    @override
    async def _serve_watch(self, request: kmock.Request) -> kmock.Payload:  # type: ignore[override]
        target = self._target(request, object_required=False)
        predicate = _selector_predicate(request.params)
        raw_version = request.params.get("resourceVersion", "")
        raw_timeout = request.params.get("timeoutSeconds", "")
        try:
            since = int(raw_version) if raw_version not in ("", "0") else None
            timeout = float(raw_timeout) if raw_timeout else None
        except ValueError:
            raise _bad_request(f"invalid resourceVersion {raw_version!r} "
                               f"or timeoutSeconds {raw_timeout!r}") from None
        stream = self._watch_stream(target, predicate, since, timeout)
        return Response(status=200, headers={"Content-Type": "application/json"}, payload=stream)

    async def _watch_stream(self, target: _Target, predicate: ObjectPredicate,
                            since: int | None, timeout: float | None) -> Any:
        yield b""  # kmock sends the headers with the first chunk: do it now
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        async with self._lock:
            expired = since is not None and since < self._compacted_revision
            if expired:
                backlog: list[JsonObject] = [{"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 410,
                    "reason": "Expired",
                    "message": f"too old resource version: {since} ({self._compacted_revision})"}}]
            elif since is None:  # no resourceVersion: the current state first, as ADDED
                backlog = [{"type": "ADDED", "object": obj} for obj in self._live_items(target, predicate)]
            else:
                backlog = [frame for event in self._history if event.resource_version > since
                           for frame in [self._watch_frame(target, predicate, event)] if frame]
            if not expired and not self._closed:
                self._watchers.add(queue)
        if queue not in self._watchers:  # expired or shutting down: the backlog is all there is
            for frame in backlog:
                yield frame
            return
        try:
            for frame in backlog:
                yield frame
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return
                if event is None:  # close_watches()
                    return
                if (live_frame := self._watch_frame(target, predicate, event)) is not None:
                    yield live_frame
        finally:
            self._watchers.discard(queue)

    @staticmethod
    def _watch_frame(target: _Target, predicate: ObjectPredicate, event: WatchEvent) -> JsonObject | None:
        """The event as this watch sees it (selector transitions become ADDED/DELETED), or None."""
        if event.resource != target.resource:
            return None
        if target.namespace is not None and event.namespace != target.namespace:
            return None
        if target.name is not None and event.name != target.name:
            return None
        matches_now = predicate(event.object)
        matched_before = event.old_object is not None and predicate(event.old_object)
        if event.type == "MODIFIED" and matches_now != matched_before:
            return {"type": "ADDED" if matches_now else "DELETED", "object": event.object}
        if matches_now:
            return {"type": event.type, "object": event.object}
        return None


def _parse_path(path: str) -> tuple[str | None, str | None, str | None, str | None, str | None, str | None]:
    """
    Split an API path into (group, version, namespace, plural, name, subresource).

    The group is ``""`` for the core API (``/api/v1``) and None for non-API paths
    (``/``, ``/api``, ``/apis``, ``/version``, ``/openapi/...``).

    ``/api/v1/namespaces`` and ``/api/v1/namespaces/<name>[/status|/finalize]`` address
    Namespace objects; ``/api/v1/namespaces/<ns>/<plural>...`` address namespaced objects.
    """
    parts = [part for part in path.split("/") if part]
    version: str | None
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 2 and parts[0] == "apis":
        group, version, rest = parts[1], (parts[2] if len(parts) >= 3 else None), parts[3:]
    else:
        return None, None, None, None, None, None
    namespace: str | None = None
    padded = [*rest, None, None, None]
    namespace_subresource = len(rest) == 3 and rest[2] in ("status", "finalize")
    if rest[:1] == ["namespaces"] and (len(rest) <= 2 or namespace_subresource):
        return group, version, None, "namespaces", padded[1], padded[2]
    if rest[:1] == ["namespaces"]:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return group, version, namespace, plural, name, subresource


@dataclasses.dataclass
class _PodLog:
    """A container's stored log: (time, text) lines; ``open`` while the container still writes."""

    lines: list[tuple[datetime.datetime, str]]
    open: bool = False


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# The synchronous harness
# --------------------------------------------------------------------------------------------

class KubeEmulatorError(RuntimeError):
    """The harness or the emulator failed (not an API answer: see :class:`KubeApiError`)."""


class KubeApiError(Exception):
    """A non-2xx answer to one of the harness' own requests, with the ``Status`` body."""

    def __init__(self, code: int, status: Mapping[str, Any] | None, *, method: str, path: str) -> None:
        self.code = code
        self.status: JsonObject = dict(status or {})
        self.method = method
        self.path = path
        super().__init__(f"{method} {path} -> {code} {self.reason}: {self.message}")

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))


@dataclasses.dataclass
class _Hook:
    kind: str
    callback: ControllerCallback
    api_version: str | None
    namespace: str | None
    name: str | None
    delay_s: float
    once: bool
    fired: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return (obj.get("kind") == self.kind
                and self.api_version in (None, obj.get("apiVersion"))
                and self.namespace in (None, meta.get("namespace"))
                and self.name in (None, meta.get("name")))


class KubeEmulatorServer:
    """
    A :class:`KubeEmulator` on ``http://127.0.0.1:<free port>`` for synchronous tests.

    The emulator's asyncio loop runs in a daemon thread; start/stop take milliseconds. The
    helpers speak HTTP to it from the calling thread, so every write is seen by watchers.
    Controller hooks run in worker threads; their exceptions are re-raised by :meth:`stop`
    (as are crashes of the emulator itself), so a broken simulation fails the test::

        with KubeEmulatorServer() as kube:
            kube.simulate_load_balancers()
            client = kubernetes.config.new_client_from_config(str(kube.kubeconfig))
            ...

    ``emulator_options`` go to :class:`KubeEmulator` (``require_namespaces``, ``history_limit``,
    ``kubernetes_version``, ``namespace_termination_s``). ``namespace`` is the kubeconfig
    context's namespace and where :meth:`create` puts objects that name none.
    """

    def __init__(self, *, context: str = "kservectl-test", namespace: str = "default",
                 kubeconfig_dir: Path | None = None, request_timeout_s: float = 10.0,
                 **emulator_options: Any) -> None:
        self.context = context
        self.namespace = namespace
        self.request_timeout_s = request_timeout_s
        self._kubeconfig_dir = kubeconfig_dir
        self._owns_kubeconfig_dir = kubeconfig_dir is None
        self._emulator_options = emulator_options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._emulator: KubeEmulator | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._kubeconfig: Path | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._hooks: list[_Hook] = []
        self._hooks_lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[JsonObject]] = set()
        self._errors: list[BaseException] = []
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving; returns self. Raises :class:`KubeEmulatorError` if it cannot."""
        if self._thread is not None:
            raise KubeEmulatorError("the emulator server is already started")
        self._stopping = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                               thread_name_prefix="kube-controller")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="kube-emulator", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=10)
        except BaseException as e:
            self._thread.join(timeout=5)
            self._thread = None
            self._executor.shutdown(wait=False)
            raise KubeEmulatorError(f"the Kubernetes emulator did not start: {e!r}") from e
        self._kubeconfig = self._write_kubeconfig()
        return self

    def stop(self) -> None:
        """
        Stop serving (idempotent). Pending delayed reactions are dropped, running ones finish.

        Raises :class:`KubeEmulatorError` if a controller hook or the emulator itself failed.
        """
        if self._thread is None:
            return
        self._stopping = True
        with self._hooks_lock:
            self._hooks.clear()
            for future in list(self._pending):
                future.cancel()
        assert self._executor is not None
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(timeout=10)
        stuck = self._thread.is_alive()
        self._thread = None
        if self._owns_kubeconfig_dir and self._kubeconfig_dir is not None:
            shutil.rmtree(self._kubeconfig_dir, ignore_errors=True)
            self._kubeconfig_dir = None
        errors, self._errors = self._errors, []
        if stuck:
            raise KubeEmulatorError("the Kubernetes emulator did not stop within 10 s")
        if errors:
            details = "\n".join("".join(traceback.format_exception(error)) for error in errors)
            raise KubeEmulatorError(
                f"{len(errors)} failure(s) in controller hooks or the emulator:\n{details}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)
            else:
                self._errors.append(e)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        # Not kmock.Server: on top of this it swaps aiohttp's DNS resolver process-wide and
        # must be exited in LIFO order, so two servers stopped first-in-first-out fail.
        self._stop_requested = asyncio.Event()
        emulator = KubeEmulator(**self._emulator_options)
        emulator.add_listener(self._on_event)
        async with emulator, aiohttp.test_utils.RawTestServer(emulator, host=self._host, port=None) as server:
            self._emulator = emulator
            self._port = server.port
            ready.set_result(None)
            await self._stop_requested.wait()
            emulator.close_watches()
            # Requests that crashed the emulator (not API errors such as 404) fail the test.
            self._errors.extend(e for e in emulator.errors if not isinstance(e, kmock.KubernetesError))

    def _write_kubeconfig(self) -> Path:
        if self._kubeconfig_dir is None:
            self._kubeconfig_dir = Path(tempfile.mkdtemp(prefix="kube-emulator-"))
        self._kubeconfig_dir.mkdir(parents=True, exist_ok=True)
        path = self._kubeconfig_dir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "kube-emulator", "user": {"token": "kube-emulator-token"}}],
            "contexts": [{"name": self.context, "context": {
                "cluster": "kube-emulator", "user": "kube-emulator", "namespace": self.namespace}}],
            "current-context": self.context,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def forget_served_requests(self) -> None:
        """Thread-safe :meth:`KubeEmulator.forget_served_requests` (runs on the server's loop soon)."""
        emulator, loop = self.emulator, self._loop
        if loop is not None:
            loop.call_soon_threadsafe(emulator.forget_served_requests)

    # ---- properties --------------------------------------------------------------------------

    @property
    def emulator(self) -> KubeEmulator:
        """The emulator: ``.objects`` for assertions, kmock's DSL for extra reactions."""
        if self._emulator is None or self._thread is None:
            raise KubeEmulatorError("the emulator server is not started")
        return self._emulator

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise KubeEmulatorError("the emulator server is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig file whose current context (:attr:`context`) points at this server."""
        if self._kubeconfig is None:
            raise KubeEmulatorError("the emulator server is not started")
        return self._kubeconfig

    def install_kubeconfig(self, target: Path, *namespaces: str) -> Path:
        """Copy :attr:`kubeconfig` to ``target`` (e.g. where a CLI under test looks for its
        cluster's), making its folder, and create ``namespaces``. Returns ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.kubeconfig, target)
        for namespace in namespaces:
            self.ensure_namespace(namespace)
        return target

    # ---- HTTP helpers --------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", params: Mapping[str, str] | None = None) -> Any:
        """Send one request; returns the decoded JSON answer or raises :class:`KubeApiError`."""
        target = path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "Authorization": "Bearer kube-emulator-token"}
        if payload is not None:
            headers["Content-Type"] = content_type
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.request_timeout_s)
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = {"message": raw.decode("utf-8", errors="replace")}
        if response.status >= 400:
            raise KubeApiError(response.status, decoded if isinstance(decoded, dict) else None,
                               method=method, path=target)
        return decoded

    def _path(self, api_version: str, kind: str, namespace: str | None, name: str | None = None,
              subresource: str | None = None) -> str:
        found = self.emulator.find_resource(api_version, kind)
        if found is None:
            raise KubeEmulatorError(
                f"{kind} is not served under {api_version}: declare it with "
                f"emulator.declare_resource(ResourceSpec(...)) or create its CustomResourceDefinition")
        resource, info = found
        prefix = f"/apis/{api_version}" if resource.group else f"/api/{api_version}"
        if info.namespaced and namespace is not None:
            prefix += f"/namespaces/{namespace}"
        elif info.namespaced and name is not None:
            raise ValueError(f"{kind} is namespaced: pass its namespace")
        parts = [prefix, resource.plural or "", name, subresource]
        return "/".join(part for part in parts if part)

    def create(self, obj: Mapping[str, Any]) -> JsonObject:
        """
        Create an object (namespace defaults to ``default``) and return it as stored.

        A ``status`` in ``obj`` is written through the status subresource afterwards, as a
        controller would (the server ignores it on create).
        """
        meta = obj.get("metadata") or {}
        api_version, kind = obj["apiVersion"], obj["kind"]
        namespace = meta.get("namespace") or self.namespace
        created: JsonObject = self.request("POST", self._path(api_version, kind, namespace), dict(obj))
        found = self.emulator.find_resource(api_version, kind)
        if obj.get("status") and found is not None and "status" in found[1].subresources:
            created = self.patch_status(api_version, kind, created["metadata"]["name"],
                                        created["metadata"].get("namespace"), obj["status"])
        return created

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        """The object; raises :class:`KubeApiError` (code 404) if it does not exist."""
        result: JsonObject = self.request("GET", self._path(api_version, kind, namespace, name))
        return result

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JsonObject | None:
        """The object, or None if it does not exist."""
        try:
            return self.get(api_version, kind, name, namespace)
        except KubeApiError as e:
            if e.code == 404:
                return None
            raise

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None, *,
                     label_selector: str | None = None,
                     field_selector: str | None = None) -> list[JsonObject]:
        """The items of a list (all namespaces when ``namespace`` is None)."""
        params = {key: value for key, value in (("labelSelector", label_selector),
                                                 ("fieldSelector", field_selector)) if value}
        answer = self.request("GET", self._path(api_version, kind, namespace), params=params)
        items: list[JsonObject] = answer["items"]
        return items

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None,
              patch: Any, *, patch_type: str = MERGE_PATCH) -> JsonObject:
        """Patch an object (JSON merge patch unless ``patch_type`` says otherwise)."""
        result: JsonObject = self.request("PATCH", self._path(api_version, kind, namespace, name),
                                          patch, content_type=patch_type)
        return result

    def patch_status(self, api_version: str, kind: str, name: str, namespace: str | None,
                     status: Mapping[str, Any]) -> JsonObject:
        """Merge ``status`` into the object's ``.status`` via the status subresource."""
        result: JsonObject = self.request("PATCH", self._path(api_version, kind, namespace, name, "status"),
                                          {"status": dict(status)}, content_type=MERGE_PATCH)
        return result

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               missing_ok: bool = False) -> None:
        """Delete an object (marked only while it has finalizers)."""
        try:
            self.request("DELETE", self._path(api_version, kind, namespace, name))
        except KubeApiError as e:
            if not (missing_ok and e.code == 404):
                raise

    def set_pod_log(self, namespace: str, pod: str, container: str, lines: list[str] | list[tuple[str, str]], *,
                    previous: bool = False, open: bool = False) -> None:
        """What ``GET .../pods/<pod>/log`` answers for that container (see :meth:`KubeEmulator.set_pod_log`)."""
        self.emulator.set_pod_log(namespace, pod, container, lines, previous=previous, open=open)

    def append_pod_log(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        self.emulator.append_pod_log(namespace, pod, container, *lines)

    def close_pod_log(self, namespace: str, pod: str, container: str) -> None:
        self.emulator.close_pod_log(namespace, pod, container)

    def ensure_namespace(self, name: str) -> JsonObject:
        """Create the namespace unless it exists; returns it."""
        existing = self.find("v1", "Namespace", name)
        if existing is not None:
            return existing
        return self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def fail_next(self, verb: Literal["create", "get", "list", "watch", "update", "delete"],
                  api_version: str, kind: str, *, code: int = 500, reason: str = "InternalError",
                  message: str = "an error injected by the test", times: int = 1,
                  name: str | None = None, namespace: str | None = None,
                  retry_after: int | None = None) -> None:
        """
        Answer the next ``times`` matching requests with a ``Status`` error, changing nothing.

        ``verb`` ``update`` covers PATCH and PUT; ``get`` is a single-object read.
        ``retry_after`` adds the ``Retry-After`` header (seconds), as a server sends with 429.
        """
        found = self.emulator.find_resource(api_version, kind)
        if found is None:
            raise KubeEmulatorError(f"{kind} is not served under {api_version}")
        action = {"create": kmock.action.CREATE, "get": kmock.action.FETCH, "list": kmock.action.LIST,
                  "watch": kmock.action.WATCH, "update": kmock.action.UPDATE,
                  "delete": kmock.action.DELETE}[verb]
        criteria = K8sCriteria(action=action, resource=found[0],
                               name=name if name is not None else ...,
                               namespace=namespace if namespace is not None else ...)
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "code": code, "reason": reason, "message": message}
        # Routing rules change on the server's loop: kmock reads its list of rules while routing.
        def react(emulator: KubeEmulator) -> None:
            # kmock's slices index every matching request recorded so far: start after those
            seen = len(list(emulator[criteria]))
            reaction = emulator[criteria][seen:seen + times] << code
            if retry_after is not None:
                reaction = reaction << kmock.headers({"Retry-After": str(retry_after)})
            reaction << body

        self.on_loop(react)

    def on_loop(self, change: Callable[[KubeEmulator], object]) -> None:
        """Run ``change(emulator)`` on the server's loop and wait for it (for kmock DSL changes,
        which must not race with a request being routed)."""
        emulator, loop = self.emulator, self._loop
        assert loop is not None
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                change(emulator)
                done.set_result(None)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                done.set_exception(e)

        loop.call_soon_threadsafe(run)
        done.result(timeout=10)

    # ---- controller simulation -----------------------------------------------------------------

    def on_created(self, kind: str, callback: ControllerCallback, *, api_version: str | None = None,
                   namespace: str | None = None, name: str | None = None, delay_s: float = 0.0) -> None:
        """
        Call ``callback(obj)`` in a worker thread ``delay_s`` after each matching creation.

        ``kind`` alone matches every group (``Service`` is both core and Knative): pass
        ``api_version`` to narrow it. The callback may use this server's helpers (HTTP), e.g.
        ``patch_status``; an exception in it is re-raised by :meth:`stop`.
        """
        self._add_hook(_Hook(kind, callback, api_version, namespace, name, delay_s, once=False))

    def react_after(self, api_version: str, kind: str, name: str, namespace: str | None,
                    delay_s: float, status: Mapping[str, Any]) -> concurrent.futures.Future[JsonObject]:
        """
        Once the object exists (now or when created), wait ``delay_s`` and merge ``status`` into it.

        Returns a future of the patched object; it fails with :class:`KubeApiError` if the
        object is gone by then, and is cancelled if the server stops first.
        """
        future: concurrent.futures.Future[JsonObject] = concurrent.futures.Future()

        def react(_: JsonObject) -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self.patch_status(api_version, kind, name, namespace, status))
            except BaseException as e:
                future.set_exception(e)
            finally:
                with self._hooks_lock:
                    self._pending.discard(future)

        hook = _Hook(kind, react, api_version, namespace, name, delay_s, once=True)
        with self._hooks_lock:
            self._pending.add(future)
        self._add_hook(hook)
        existing = self.find(api_version, kind, name, namespace)
        if existing is not None:
            loop = self._loop
            assert loop is not None
            loop.call_soon_threadsafe(self._schedule, hook, existing)
        return future

    def simulate_deployment_rollout(self, *, delay_s: float = 0.2) -> None:
        """Act as the Deployment controller: new Deployments become Available after ``delay_s``."""
        def roll_out(deployment: JsonObject) -> None:
            replicas = (deployment.get("spec") or {}).get("replicas", 1)
            now = _now()
            self._patch_status_if_present(deployment, {
                "observedGeneration": deployment["metadata"].get("generation", 1),
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                     "message": "Deployment has minimum availability.",
                     "lastUpdateTime": now, "lastTransitionTime": now},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                     "message": "ReplicaSet has successfully progressed.",
                     "lastUpdateTime": now, "lastTransitionTime": now},
                ],
            })
        self.on_created("Deployment", roll_out, api_version="apps/v1", delay_s=delay_s)

    def simulate_load_balancers(self, *, delay_s: float = 0.2,
                                hostname: str = "{name}-{namespace}.elb.us-east-1.amazonaws.com") -> None:
        """
        Act as the AWS load balancer controller: ``type: LoadBalancer`` Services get
        ``status.loadBalancer.ingress[0].hostname`` (``hostname`` is a ``str.format`` template
        with ``name`` and ``namespace``) after ``delay_s``.
        """
        def provision(service: JsonObject) -> None:
            if (service.get("spec") or {}).get("type") != "LoadBalancer":
                return
            meta = service["metadata"]
            host = hostname.format(name=meta["name"], namespace=meta.get("namespace", ""))
            self._patch_status_if_present(service, {"loadBalancer": {"ingress": [{"hostname": host}]}})
        self.on_created("Service", provision, api_version="v1", delay_s=delay_s)

    def simulate_inference_services(self, *, delay_s: float = 0.2, domain: str = "example.com") -> None:
        """
        Act as KServe (Knative mode, Kourier): InferenceServices become Ready after ``delay_s``
        with ``status.url`` ``http://<name>-predictor.<namespace>.<domain>``.
        """
        def serve(isvc: JsonObject) -> None:
            meta = isvc["metadata"]
            host = f"{meta['name']}-predictor.{meta['namespace']}"
            now = _now()
            self._patch_status_if_present(isvc, {
                "observedGeneration": meta.get("generation", 1),
                "url": f"http://{host}.{domain}",
                "address": {"url": f"http://{host}.svc.cluster.local"},
                "conditions": [{"type": condition, "status": "True", "lastTransitionTime": now}
                               for condition in ("IngressReady", "PredictorReady", "Ready")],
            })
        self.on_created("InferenceService", serve, api_version="serving.kserve.io/v1beta1", delay_s=delay_s)

    def _patch_status_if_present(self, obj: JsonObject, status: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        try:
            self.patch_status(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), status)
        except KubeApiError as e:
            if e.code != 404:  # deleted meanwhile: a real controller would shrug too
                raise

    def _add_hook(self, hook: _Hook) -> None:
        if self._thread is None:
            raise KubeEmulatorError("start the emulator server before adding controller hooks")
        with self._hooks_lock:
            self._hooks.append(hook)

    def _on_event(self, event: WatchEvent) -> None:
        """The emulator's listener (on its loop): schedule the hooks of a creation."""
        if event.type != "ADDED" or self._stopping:
            return
        with self._hooks_lock:
            hooks = [hook for hook in self._hooks if hook.matches(event.object)]
        for hook in hooks:
            self._schedule(hook, event.object)

    def _schedule(self, hook: _Hook, obj: JsonObject) -> None:
        """On the loop: run the hook's callback in a worker thread after its delay (once if once)."""
        with self._hooks_lock:
            if hook.once:
                if hook.fired:
                    return
                hook.fired = True
                if hook in self._hooks:
                    self._hooks.remove(hook)
        assert self._loop is not None
        self._loop.call_later(hook.delay_s, self._submit, hook.callback, copy.deepcopy(obj))

    def _submit(self, callback: ControllerCallback, obj: JsonObject) -> None:
        if self._stopping or self._executor is None:
            return
        try:
            self._executor.submit(self._invoke, callback, obj)
        except RuntimeError:  # the executor is shutting down
            pass

    def _invoke(self, callback: ControllerCallback, obj: JsonObject) -> None:
        try:
            callback(obj)
        except BaseException as e:
            meta = obj.get("metadata") or {}
            e.add_note(f"in the controller hook {callback!r} for {obj.get('kind')} "
                       f"{meta.get('namespace')}/{meta.get('name')}")
            self._errors.append(e)


# --------------------------------------------------------------------------------------------
# pytest fixture
# --------------------------------------------------------------------------------------------

@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeEmulatorServer]:
    """
    A started :class:`KubeEmulatorServer`; for the test, ``$KUBECONFIG`` and the ``kubernetes``
    client's default kubeconfig location point at it, and the client's default
    ``Configuration`` is restored afterwards (``load_kube_config()`` replaces it).
    """
    import kubernetes.client
    import kubernetes.config
    import kubernetes.config.kube_config

    with KubeEmulatorServer(kubeconfig_dir=tmp_path / "kube") as server:
        kubeconfig = str(server.kubeconfig)
        monkeypatch.setenv("KUBECONFIG", kubeconfig)
        # Read once at import time from $KUBECONFIG, so the env var alone is not enough.
        monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
        monkeypatch.setattr(kubernetes.config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
        configuration = kubernetes.client.Configuration
        monkeypatch.setattr(configuration, "_default", configuration._default)  # restored after the test
        yield server
