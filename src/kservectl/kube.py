"""The narrow Kubernetes module: get, list, apply (ensure), patch, delete and waits.

Everything the phases do to a cluster goes through ``Kube`` so that it can be tested against
the Kubernetes emulator over real HTTP. Waits list the object, then watch from the listed
``resourceVersion`` in bounded chunks (re-listing after each chunk, and on 410 Gone), each
under a deadline; on timeout they raise ``WaitTimeout`` naming what is still pending, with
recent events. The official client is imported lazily and every request carries a timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kservectl.clock import Clock, SystemClock
from kservectl.errors import KubeError, WaitTimeout
from kservectl.settings import DEFAULT_SETTINGS, Settings

Obj = dict[str, Any]
Check = Callable[[Obj], tuple[bool, str]]
ListCheck = Callable[[list[Obj]], tuple[bool, str]]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


_KINDS = [
    Kind("v1", "Namespace", "namespaces", False),
    Kind("v1", "Node", "nodes", False),
    Kind("v1", "PersistentVolume", "persistentvolumes", False),
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Service", "services"),
    Kind("v1", "Endpoints", "endpoints"),
    Kind("v1", "Pod", "pods"),
    Kind("v1", "Event", "events"),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "DaemonSet", "daemonsets"),
    Kind("batch/v1", "Job", "jobs"),
    Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    Kind("networking.k8s.io/v1", "Ingress", "ingresses"),
    Kind("storage.k8s.io/v1", "StorageClass", "storageclasses", False),
    Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    Kind("serving.kserve.io/v1beta1", "InferenceService", "inferenceservices"),
    Kind("serving.kserve.io/v1alpha1", "ServingRuntime", "servingruntimes"),
    Kind("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "clusterservingruntimes", False),
    Kind("serving.knative.dev/v1", "Service", "services"),
    Kind("serving.knative.dev/v1", "Revision", "revisions"),
    Kind("serving.knative.dev/v1", "Route", "routes"),
    Kind("cert-manager.io/v1", "Certificate", "certificates"),
    Kind("cert-manager.io/v1", "Issuer", "issuers"),
]
KINDS: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in _KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise KubeError(f"kservectl does not know the resource {api_version}/{kind}") from None


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: Obj) -> Ref:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def load_api_client(kubeconfig: Path | None, context: str | None = None, settings: Settings = DEFAULT_SETTINGS):
    """An ``ApiClient`` for the given kubeconfig (the per-cluster one kservectl writes)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=context,
            client_configuration=configuration, persist_config=False,
        )
    except Exception as exc:  # ConfigException, FileNotFoundError, yaml errors
        where = str(kubeconfig) if kubeconfig else "the default kubeconfig"
        raise KubeError(f"cannot load {where}: {exc}",
                        hint="run `kservectl cluster create`: it creates the cluster, or finds it and "
                             "writes its kubeconfig") from exc
    # urllib3 retries only what never reached the server (connection errors); answers such as
    # 429 or 503 come back to ``Kube._request``, which retries them on its own terms and clock
    from urllib3.util.retry import Retry

    configuration.retries = Retry(total=3, connect=3, read=0, status=0, other=0, redirect=0,
                                  respect_retry_after_header=False, raise_on_status=False)
    return client.ApiClient(configuration)


_TRANSIENT_READ = frozenset({500, 502, 503, 504})


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the API server sends whole seconds)."""
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


class Kube:
    def __init__(
        self,
        api_client: Any,
        *,
        settings: Settings = DEFAULT_SETTINGS,
        clock: Clock | None = None,
        on_wait: Callable[[str, str], None] | None = None,
        watch: bool = True,
    ) -> None:
        self.api = api_client
        self.settings = settings
        self.clock = clock or SystemClock()
        self.on_wait = on_wait or (lambda what, detail: None)
        self.watch_enabled = watch

    # -- transport ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One API call, sent again while the server says it is overloaded or briefly failing.

        As client-go does: 429 (priority and fairness) is retried for every verb, after the
        server's ``Retry-After``, since the server did nothing; 5xx only for reads, since a write
        may have happened. Bounded by ``settings.kube_retry`` on the injected clock; the last
        answer is returned to the caller as it came.
        """
        policy = self.settings.kube_retry
        delay = policy.initial
        for attempt in range(1, policy.attempts + 1):
            self.clock.checkpoint()  # a stopped run (Ctrl-C in up) sends nothing more
            status, payload, retry_after = self._send(method, path, **kwargs)
            retryable = status == 429 or (method == "GET" and status in _TRANSIENT_READ)
            if not retryable or attempt == policy.attempts:
                return status, payload
            if kwargs.get("stream"):
                payload.read()  # the short error body: the connection goes back to the pool
            self.clock.sleep(min(retry_after if retry_after is not None else delay, policy.maximum))
            delay = min(delay * 2, policy.maximum)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns

    def _send(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
              body: Any = None, content_type: str | None = None, timeout: float | None = None,
              stream: bool = False) -> tuple[int, Any, float | None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        params = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*params, _request_timeout=timeout or self.settings.kube_request_timeout)
        except ApiException as exc:
            raise KubeError(f"{method} {path} failed: {exc.reason}", status=exc.status) from exc
        except HTTPError as exc:
            raise KubeError(f"cannot reach the Kubernetes API ({method} {path}): {exc}",
                            hint="check the cluster endpoint and your network") from exc
        retry_after = _retry_after(response.headers.get("Retry-After")) if response.status == 429 else None
        if stream:
            return response.status, response, retry_after
        data = response.read()
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = {"message": data[:200].decode("utf-8", "replace")}
        return response.status, payload, retry_after

    def _checked(self, method: str, path: str, ok: Iterable[int] = (200, 201, 202), **kwargs: Any) -> Any:
        status, payload = self._request(method, path, **kwargs)
        if status not in ok:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise KubeError(f"{method} {path} returned {status}: {message}", status=status)
        return payload

    # -- reads -------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        path = kind_of(api_version, kind).path(namespace, name)
        status, payload = self._request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise KubeError(f"GET {path} returned {status}: {_message(payload)}", status=status)
        return payload

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None) -> tuple[list[Obj], str | None]:
        query = [("labelSelector", label_selector)] if label_selector else []
        payload = self._checked("GET", kind_of(api_version, kind).path(namespace), query=query)
        items = payload.get("items") or []
        for item in items:  # list items omit apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        if label_selector:  # also filter here: selectors are cheap to re-check and some servers ignore them
            items = [i for i in items if _labels_match(i, label_selector)]
        if namespace and kind_of(api_version, kind).namespaced:
            items = [i for i in items if i.get("metadata", {}).get("namespace") in (None, namespace)]
        return items, (payload.get("metadata") or {}).get("resourceVersion")

    # -- writes ------------------------------------------------------------------------------
    def create(self, obj: Obj) -> Obj:
        ref = Ref.of(obj)
        path = kind_of(ref.api_version, ref.kind).path(ref.namespace)
        payload = self._checked("POST", path, body=obj)
        return payload or obj

    def patch(self, ref: Ref, patch: Obj, *, subresource: str | None = None) -> Obj:
        path = kind_of(ref.api_version, ref.kind).path(ref.namespace, ref.name)
        if subresource:
            path += f"/{subresource}"
        return self._checked("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def apply(self, obj: Obj) -> str:
        """Ensure ``obj`` exists with the given fields: create it, patch only when something
        differs, or leave it alone. Returns ``created``, ``changed`` or ``unchanged``."""
        ref = Ref.of(obj)
        current = self.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        if current is None:
            self.create(obj)
            return "created"
        desired = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
        if _contains(current, desired):
            return "unchanged"
        self.patch(ref, desired)
        return "changed"

    def delete(self, ref: Ref) -> bool:
        """Delete; ``False`` when it was already gone."""
        path = kind_of(ref.api_version, ref.kind).path(ref.namespace, ref.name)
        status, payload = self._request("DELETE", path, body={"propagationPolicy": "Foreground"})
        if status == 404:
            return False
        if status not in (200, 202):
            raise KubeError(f"DELETE {path} returned {status}: {_message(payload)}", status=status)
        return True

    # -- waits -------------------------------------------------------------------------------
    def wait_for(self, ref: Ref, check: Check, *, what: str, timeout: float) -> Obj:
        """Wait until ``check(obj)`` holds for the object. ``check`` returns (done, detail)."""

        def list_check(items: list[Obj]) -> tuple[bool, str]:
            for item in items:
                if item.get("metadata", {}).get("name") == ref.name:
                    return check(item)
            return False, f"{ref} does not exist yet"

        items = self._wait(ref.api_version, ref.kind, ref.namespace, list_check, what=what, timeout=timeout,
                           events_for=ref, name=ref.name)
        return next(i for i in items if i["metadata"]["name"] == ref.name)

    def wait_for_all(self, api_version: str, kind: str, namespace: str | None, check: ListCheck, *,
                     what: str, timeout: float, label_selector: str | None = None) -> list[Obj]:
        """Wait until ``check(items)`` holds for the listed objects (e.g. every node Ready)."""
        return self._wait(api_version, kind, namespace, check, what=what, timeout=timeout,
                          label_selector=label_selector)

    def wait_deleted(self, ref: Ref, *, what: str, timeout: float) -> None:
        def gone(items: list[Obj]) -> tuple[bool, str]:
            present = any(i.get("metadata", {}).get("name") == ref.name for i in items)
            return (not present, f"{ref} still exists" if present else "deleted")

        self._wait(ref.api_version, ref.kind, ref.namespace, gone, what=what, timeout=timeout, name=ref.name)

    def _wait(self, api_version: str, kind: str, namespace: str | None, check: ListCheck, *, what: str,
              timeout: float, label_selector: str | None = None, events_for: Ref | None = None,
              name: str | None = None) -> list[Obj]:
        deadline = self.clock.monotonic() + timeout
        detail = "not checked yet"
        while True:
            items, version = self.list(api_version, kind, namespace, label_selector=label_selector)
            if name is not None:
                items = [i for i in items if i.get("metadata", {}).get("name") == name]
            done, detail = check(items)
            if done:
                return items
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                pending = [detail]
                if events_for is not None:
                    pending += self.recent_events(events_for)
                raise WaitTimeout(what, timeout, pending)
            self.on_wait(what, detail)
            chunk = min(self.settings.waits.watch_chunk, remaining)
            if self.watch_enabled:
                self._watch_until_change(api_version, kind, namespace, version, chunk)
            else:
                self.clock.sleep(min(self.settings.waits.poll_interval, remaining))

    def _watch_until_change(self, api_version: str, kind: str, namespace: str | None,
                            version: str | None, timeout: float) -> None:
        """Block until the first watch event after ``version`` (or the chunk ends, or 410 Gone)."""
        from kubernetes.watch.watch import iter_resp_lines

        query: list[tuple[str, Any]] = [("watch", "true"), ("timeoutSeconds", max(1, int(timeout)))]
        if version:
            query.append(("resourceVersion", version))
            query.append(("allowWatchBookmarks", "false"))
        path = kind_of(api_version, kind).path(namespace)
        try:
            status, response = self._request("GET", path, query=query, timeout=timeout + 1, stream=True)
        except KubeError:
            self.clock.sleep(min(self.settings.waits.poll_interval, timeout))
            return
        if status != 200:
            response.read()  # 410 Gone or an error: re-list
            return
        try:
            for line in iter_resp_lines(response.response):
                self.clock.checkpoint()
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    return  # e.g. 410 Gone: the caller re-lists
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    if version and event.get("object", {}).get("metadata", {}).get("resourceVersion") == version:
                        continue
                    return
        except Exception:  # a read timeout ends the chunk: the caller re-lists
            return
        finally:
            response.response.release_conn()

    def recent_events(self, ref: Ref, limit: int = 5) -> list[str]:
        if not ref.namespace:
            return []
        try:
            items, _ = self.list("v1", "Event", ref.namespace)
        except KubeError:
            return []
        mine = [e for e in items if (e.get("involvedObject") or {}).get("name") == ref.name]
        mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [f"event {e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip()
                for e in mine[-limit:]]

    def diff(self, obj: Obj) -> str:
        """What ``apply(obj)`` would do, without doing it: ``create``, ``change`` or ``unchanged``
        (for ``--dry-run``)."""
        ref = Ref.of(obj)
        current = self.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        if current is None:
            return "create"
        desired = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
        return "unchanged" if _contains(current, desired) else "change"

    def proxy_get(self, namespace: str, service: str, port: int | str, path: str = "/", *,
                  timeout: float | None = None) -> tuple[int, str]:
        """GET ``path`` from a Service through the API server's service proxy
        (``/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/<path>``): reaches a ClusterIP
        Service from outside the cluster without a port-forward. Returns (HTTP status, body)."""
        api_path = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"
        status, response = self._request("GET", api_path, timeout=timeout, stream=True)
        try:
            data = response.read() or b""
        finally:
            response.response.release_conn()
        return status, data.decode("utf-8", "replace")

    def pod_logs(self, namespace: str, pod: str, *, container: str | None = None,
                 since_seconds: int | None = None, tail_lines: int | None = None, previous: bool = False,
                 timestamps: bool = False, follow: bool = False, timeout: float | None = None) -> Iterator[str]:
        """The lines of one container's log: GET ``/api/v1/namespaces/<ns>/pods/<pod>/log`` with
        ``container``, ``sinceSeconds``, ``tailLines``, ``previous``, ``timestamps``, ``follow``.
        The request is made now (an answer other than 200 raises ``KubeError`` with the API's
        message, e.g. a container still waiting to start); the lines are read as they arrive.
        With ``follow`` the stream has no read timeout (it ends when the container stops, or when
        the caller stops iterating); connecting still times out."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        query: list[tuple[str, Any]] = []
        for key, value in (("container", container), ("sinceSeconds", since_seconds), ("tailLines", tail_lines)):
            if value is not None:
                query.append((key, str(value)))
        for key, flag in (("previous", previous), ("timestamps", timestamps), ("follow", follow)):
            if flag:
                query.append((key, "true"))
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        params = self.api.param_serialize(method="GET", resource_path=path, query_params=query,
                                          header_params={"Accept": "*/*"}, auth_settings=["BearerToken"])
        connect = timeout or self.settings.kube_request_timeout
        try:
            response = self.api.call_api(*params, _request_timeout=(connect, None) if follow else connect)
        except ApiException as exc:
            raise KubeError(f"GET {path} failed: {exc.reason}", status=exc.status) from exc
        except HTTPError as exc:
            raise KubeError(f"cannot reach the Kubernetes API (GET {path}): {exc}",
                            hint="check the cluster endpoint and your network") from exc
        if response.status != 200:
            try:
                data = response.read() or b""
            finally:
                response.response.release_conn()
            try:
                message = _message(json.loads(data))
            except ValueError:
                message = data[:300].decode("utf-8", "replace").strip()
            raise KubeError(f"logs of pod {namespace}/{pod}{f' container {container}' if container else ''}: "
                            f"{message}", status=response.status)
        return _stream_lines(response.response)


def _stream_lines(raw: Any) -> Iterator[str]:
    """Split a streamed HTTP body into text lines as the chunks arrive (the last line may lack
    its newline); releases the connection when done or abandoned."""
    buffer = b""
    try:
        for chunk in raw.stream(amt=None, decode_content=True):
            buffer += chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8")
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if buffer:
            yield buffer.decode("utf-8", "replace")
    finally:
        raw.release_conn()


# -- checks ----------------------------------------------------------------------------------
def condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def condition_true(type_: str) -> Check:
    def check(obj: Obj) -> tuple[bool, str]:
        cond = condition(obj, type_)
        if cond is None:
            return False, f"{Ref.of(obj)}: no {type_} condition yet"
        if cond.get("status") == "True":
            return True, f"{type_}"
        reason = cond.get("reason") or ""
        message = cond.get("message") or ""
        return False, f"{Ref.of(obj)}: {type_}={cond.get('status')} {reason} {message}".strip()

    return check


def deployment_available(obj: Obj) -> tuple[bool, str]:
    status = obj.get("status") or {}
    want = (obj.get("spec") or {}).get("replicas", 1)
    ready = status.get("availableReplicas", 0) or 0
    cond = condition(obj, "Available")
    if cond is not None and cond.get("status") == "True" and ready >= min(want, 1):
        return True, "Available"
    return False, f"{Ref.of(obj)}: {ready}/{want} replicas available"


def service_hostname(obj: Obj) -> tuple[bool, str]:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for entry in ingress:
        if entry.get("hostname") or entry.get("ip"):
            return True, entry.get("hostname") or entry.get("ip")
    return False, f"{Ref.of(obj)}: no load balancer address yet"


def endpoints_ready(obj: Obj) -> tuple[bool, str]:
    for subset in obj.get("subsets") or []:
        if subset.get("addresses"):
            return True, "ready endpoints"
    return False, f"{Ref.of(obj)}: no ready endpoints yet"


def pvc_bound(obj: Obj) -> tuple[bool, str]:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return True, "Bound"
    return False, f"{Ref.of(obj)}: {phase or 'no phase yet'}"


def nodes_ready(expected: int) -> ListCheck:
    def check(items: list[Obj]) -> tuple[bool, str]:
        ready = [n for n in items if (condition(n, "Ready") or {}).get("status") == "True"]
        not_ready = sorted(n["metadata"]["name"] for n in items if n not in ready)
        if len(ready) >= expected:
            return True, f"{len(ready)} nodes Ready"
        tail = f" (not Ready: {', '.join(not_ready)})" if not_ready else ""
        return False, f"{len(ready)}/{expected} nodes Ready{tail}"

    return check


def _contains(current: Any, desired: Any) -> bool:
    """Does ``current`` already hold every field of ``desired``?"""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(k in current and _contains(current[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(current, list) and len(current) == len(desired)
                and all(_contains(c, d) for c, d in zip(current, desired, strict=True)))
    return current == desired


def _labels_match(obj: Obj, selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message") or payload)
    return str(payload)
