"""The checks of ``kservectl test``: does a served model answer over both protocols?

For one model on one server (a KServe InferenceService through the gateway with a ``Host``
header, or a local MLServer) it checks, in order:

1. ``GET /v2/health/live`` and ``GET /v2/health/ready`` (the server);
2. ``GET /v2/models/<m>/ready`` (the model exists and is loaded; a 404 ends the run here);
3. ``GET /v2/models/<m>`` (metadata: the inputs a request must carry);
4. ``POST /v2/models/<m>/infer`` (V2 / Open Inference Protocol; named columns go as one input per
   column with ``"parameters": {"content_type": "pd"}``, as MLServer's MLflow runtime expects);
5. ``POST /invocations`` (MLflow's scoring protocol, ``dataframe_split``).

Each check records its HTTP status, latency, and for the two inference checks the number of
predictions returned against the rows sent: it passes only when they match.

Requests are built from the model itself (``Payload``): its MLflow signature and input example
(``payload_from_model_info``), or, given only a URL, its V2 metadata (``payload_from_metadata``),
so any model can be tested, not only the example. Provider-agnostic: no Kubernetes, no Typer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from kservectl.errors import KservectlError

# MLflow column types -> V2 datatypes
_COL_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
              "string": "BYTES", "binary": "BYTES", "datetime": "BYTES"}
# numpy dtypes (MLflow tensor specs) -> V2 datatypes
_NP_TYPES = {"float64": "FP64", "float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32",
             "int16": "INT16", "int8": "INT8", "uint64": "UINT64", "uint32": "UINT32", "uint16": "UINT16",
             "uint8": "UINT8", "bool": "BOOL", "object": "BYTES", "str": "BYTES"}
METADATA_ROWS = 3


class ProbeError(KservectlError):
    """A request cannot be built for this model."""


@dataclass(frozen=True)
class Column:
    name: str
    datatype: str  # V2 datatype: FP64, INT64, BOOL, BYTES, ...
    width: int | None = None  # tensor inputs: values per row (None: one value per row)


@dataclass(frozen=True)
class Payload:
    """Rows to send, in both protocols. ``named``: a data frame with one V2 input per column;
    otherwise one tensor input (``columns[0]``) with one row per instance."""

    columns: tuple[Column, ...]
    rows: tuple[Any, ...]
    named: bool
    source: str

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def v2_body(self) -> dict[str, Any]:
        n = self.n_rows
        if self.named:
            return {
                "parameters": {"content_type": "pd"},
                "inputs": [{"name": c.name, "shape": [n, 1], "datatype": c.datatype,
                            "data": [row[i] for row in self.rows]} for i, c in enumerate(self.columns)],
            }
        column = self.columns[0]
        if column.width is None:
            return {"inputs": [{"name": column.name, "shape": [n], "datatype": column.datatype,
                                "data": list(self.rows)}]}
        flat = [value for row in self.rows for value in row]
        return {"inputs": [{"name": column.name, "shape": [n, column.width], "datatype": column.datatype,
                            "data": flat}]}

    def invocations_body(self) -> dict[str, Any]:
        if self.named:
            return {"dataframe_split": {"columns": [c.name for c in self.columns],
                                        "data": [list(row) for row in self.rows]}}
        return {"inputs": [list(row) if isinstance(row, list | tuple) else row for row in self.rows]}


def _sample(datatype: str, row: int) -> Any:
    if datatype.startswith("FP"):
        return 1.0 + 0.5 * row
    if datatype.startswith(("INT", "UINT")):
        return row + 1
    if datatype == "BOOL":
        return row % 2 == 0
    return f"x{row}"


def payload_from_metadata(meta: dict[str, Any], rows: int = METADATA_ROWS) -> Payload:
    """Build rows from V2 model metadata (any model: inputs' names, datatypes and shapes)."""
    inputs = meta.get("inputs") or []
    name = meta.get("name", "?")
    if not inputs:
        raise ProbeError(f"model {name!r} publishes no inputs in its V2 metadata, so no request can be built",
                         hint="log the model with a signature (mlflow.models.infer_signature)")
    content_type = (meta.get("parameters") or {}).get("content_type")
    source = f"V2 metadata of {name}"
    if len(inputs) > 1 or content_type == "pd":
        columns = tuple(Column(i["name"], i.get("datatype") or "FP64") for i in inputs)
        data = tuple([_sample(c.datatype, r) for c in columns] for r in range(rows))
        return Payload(columns, data, True, source)
    only = inputs[0]
    shape = [int(s) for s in only.get("shape") or [-1]]
    datatype = only.get("datatype") or "FP64"
    width = 1
    for dim in shape[1:]:
        width *= max(dim, 1)
    if len(shape) <= 1:
        return Payload((Column(only["name"], datatype),), tuple(_sample(datatype, r) for r in range(rows)),
                       False, source)
    data = tuple([_sample(datatype, r + k) for k in range(width)] for r in range(rows))
    return Payload((Column(only["name"], datatype, width),), data, False, source)


def payload_from_model_info(example: Any, example_type: str | None, signature_inputs: list[dict] | None,
                            source: str) -> Payload | None:
    """Build rows from an MLflow input example (data frame in split orient, or an ndarray) and the
    signature's types. ``None`` when neither gives something usable (fall back to metadata)."""
    types = {}
    for spec in signature_inputs or []:
        if spec.get("name") and spec.get("type") in _COL_TYPES:
            types[spec["name"]] = _COL_TYPES[spec["type"]]
    if isinstance(example, dict) and "dataframe_split" in example:
        example = example["dataframe_split"]
    if (isinstance(example, dict) and isinstance(example.get("columns"), list)
            and isinstance(example.get("data"), list)):
        names = [str(c) for c in example["columns"]]
        rows = [list(row) for row in example["data"] if isinstance(row, list) and len(row) == len(names)]
        if not rows:
            return None
        columns = tuple(Column(n, types.get(n) or _infer_type(rows[0][i])) for i, n in enumerate(names))
        return Payload(columns, tuple(rows), True, source)
    if example_type == "ndarray" or (isinstance(example, dict) and "inputs" in example):
        values = example.get("inputs") if isinstance(example, dict) else example
        if isinstance(values, list) and values:
            tensor = (signature_inputs or [{}])[0]
            dtype = (tensor.get("tensor-spec") or {}).get("dtype", "")
            first = values[0]
            sample = first[0] if isinstance(first, list) and first else first
            datatype = _NP_TYPES.get(dtype) or _infer_type(sample)
            if isinstance(first, list):
                return Payload((Column("input-0", datatype, len(first)),), tuple(values), False, source)
            return Payload((Column("input-0", datatype),), tuple(values), False, source)
    if signature_inputs and all(s.get("name") and s.get("type") in _COL_TYPES for s in signature_inputs):
        columns = tuple(Column(s["name"], _COL_TYPES[s["type"]]) for s in signature_inputs)
        rows = tuple([_sample(c.datatype, r) for c in columns] for r in range(METADATA_ROWS))
        return Payload(columns, rows, True, f"{source} (signature only)")
    return None


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FP64"
    return "BYTES"


# -- checks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    url: str  # base URL: http://<nlb-hostname>, http://127.0.0.1:8080
    model: str  # the name in /v2/models/<name> (an InferenceService's name on KServe)
    host: str | None = None  # Host header (routing through Kourier)

    def endpoint(self, path: str) -> str:
        return f"{self.url.rstrip('/')}{path}"


@dataclass
class Check:
    name: str
    method: str
    path: str
    status: int | None = None
    latency_ms: float | None = None
    rows_sent: int | None = None
    predictions: int | None = None
    ok: bool = False
    detail: str = ""
    skipped: bool = False


@dataclass
class Report:
    target: Target
    checks: list[Check] = field(default_factory=list)
    payload_source: str | None = None
    model_found: bool | None = None
    served_models: list[str] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and not c.skipped]

    def verdict(self) -> str:
        where = self.target.url + (f" (Host: {self.target.host})" if self.target.host else "")
        if self.model_found is False:
            served = ", ".join(self.served_models) if self.served_models else "unknown"
            return (f"FAIL: model {self.target.model!r} does not exist at {where} "
                    f"(the server serves: {served})")
        if self.ok:
            n = len(self.checks)
            return f"PASS: {n}/{n} checks passed for model {self.target.model!r} at {where}"
        names = ", ".join(c.name for c in self.checks if not c.ok)
        return (f"FAIL: {len([c for c in self.checks if not c.ok])} of {len(self.checks)} checks failed "
                f"for model {self.target.model!r} at {where}: {names}")

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.target.model, "url": self.target.url, "host": self.target.host, "ok": self.ok,
                "model_found": self.model_found, "payload_source": self.payload_source,
                "served_models": self.served_models, "verdict": self.verdict(),
                "checks": [asdict(c) for c in self.checks]}


def run_checks(target: Target, payload: Payload | None = None, *, timeout: float = 30.0,
               connect_timeout: float = 5.0) -> Report:
    """Run every check against ``target``. ``payload`` None: build it from the V2 metadata."""
    import httpx

    report = Report(target)
    headers = {"Host": target.host} if target.host else {}
    with httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout)) as http:
        report.checks.append(_simple(http, target, "server live", "/v2/health/live"))
        report.checks.append(_simple(http, target, "server ready", "/v2/health/ready"))
        model = target.model
        ready = _simple(http, target, "model ready", f"/v2/models/{model}/ready")
        report.checks.append(ready)
        if ready.status == 404:
            report.model_found = False
            report.served_models = _served_models(http, target)
            ready.detail = f"model {model!r} not found"
            for name, method, path in (("metadata", "GET", f"/v2/models/{model}"),
                                       ("infer (V2)", "POST", f"/v2/models/{model}/infer"),
                                       ("invocations", "POST", "/invocations")):
                report.checks.append(Check(name, method, path, ok=False, skipped=True,
                                           detail="skipped: the model does not exist"))
            return report
        if ready.status is not None:
            report.model_found = True
        meta_check, meta = _metadata(http, target)
        report.checks.append(meta_check)
        if payload is None and meta is not None:
            try:
                payload = payload_from_metadata(meta)
            except ProbeError as exc:
                meta_check.ok = False
                meta_check.detail = exc.message
        report.payload_source = payload.source if payload else None
        report.checks.append(_infer(http, target, payload))
        report.checks.append(_invocations(http, target, payload))
    return report


def _timed(http: Any, method: str, url: str, **kwargs: Any) -> tuple[Any, float, str | None]:
    import httpx

    start = time.perf_counter()
    try:
        response = http.request(method, url, **kwargs)
        response.read()
    except httpx.HTTPError as exc:
        return None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"
    return response, (time.perf_counter() - start) * 1000, None


def _simple(http: Any, target: Target, name: str, path: str) -> Check:
    check = Check(name, "GET", path)
    response, latency, error = _timed(http, "GET", target.endpoint(path))
    check.latency_ms = round(latency, 1)
    if response is None:
        check.detail = f"cannot connect: {error}"
        return check
    check.status = response.status_code
    check.ok = response.status_code == 200
    check.detail = "" if check.ok else _error_text(response)
    return check


def _metadata(http: Any, target: Target) -> tuple[Check, dict | None]:
    path = f"/v2/models/{target.model}"
    check = Check("metadata", "GET", path)
    response, latency, error = _timed(http, "GET", target.endpoint(path))
    check.latency_ms = round(latency, 1)
    if response is None:
        check.detail = f"cannot connect: {error}"
        return check, None
    check.status = response.status_code
    if response.status_code != 200:
        check.detail = _error_text(response)
        return check, None
    try:
        meta = response.json()
    except ValueError:
        check.detail = "the answer is not JSON"
        return check, None
    inputs = meta.get("inputs") or []
    check.ok = True
    check.detail = f"{len(inputs)} inputs, {len(meta.get('outputs') or [])} outputs"
    return check, meta


def _infer(http: Any, target: Target, payload: Payload | None) -> Check:
    path = f"/v2/models/{target.model}/infer"
    return _predict(http, target, Check("infer (V2)", "POST", path), payload,
                    body=lambda p: p.v2_body(), count=count_v2_predictions)


def _invocations(http: Any, target: Target, payload: Payload | None) -> Check:
    return _predict(http, target, Check("invocations", "POST", "/invocations"), payload,
                    body=lambda p: p.invocations_body(), count=count_invocation_predictions)


def _predict(http: Any, target: Target, check: Check, payload: Payload | None, *,
             body: Callable[[Payload], Any], count: Callable[[Any], int]) -> Check:
    """POST the rows to ``check.path``: ok when the answer has one prediction per row."""
    if payload is None:
        check.detail = "no request could be built (no input example, signature or metadata inputs)"
        return check
    check.rows_sent = payload.n_rows
    response, latency, error = _timed(http, "POST", target.endpoint(check.path), json=body(payload))
    check.latency_ms = round(latency, 1)
    if response is None:
        check.detail = f"cannot connect: {error}"
        return check
    check.status = response.status_code
    if response.status_code != 200:
        check.detail = _error_text(response)
        return check
    try:
        check.predictions = count(response.json())
    except ValueError:
        check.detail = "the answer is not JSON"
        return check
    check.ok = check.predictions == check.rows_sent
    if not check.ok:
        check.detail = f"{check.predictions} predictions for {check.rows_sent} rows"
    return check


def count_v2_predictions(body: Any) -> int:
    """Rows answered by a V2 inference response: the first output's first dimension."""
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not outputs:
        return 0
    first = outputs[0]
    shape = first.get("shape") or []
    if shape:
        return int(shape[0])
    return len(first.get("data") or [])


def count_invocation_predictions(body: Any) -> int:
    """Rows answered by ``/invocations``: ``{"predictions": [...]}`` (or a dict of columns, or a list)."""
    predictions = body.get("predictions") if isinstance(body, dict) else body
    if isinstance(predictions, dict):
        first = next(iter(predictions.values()), [])
        return len(first) if isinstance(first, list) else 1
    if isinstance(predictions, list):
        return len(predictions)
    return 0


def _served_models(http: Any, target: Target) -> list[str] | None:
    """Models the server knows (MLServer's repository index), best effort."""
    response, _, _ = _timed(http, "POST", target.endpoint("/v2/repository/index"), json={})
    if response is None or response.status_code != 200:
        return None
    try:
        return sorted(str(m.get("name")) for m in response.json() if isinstance(m, dict) and m.get("name"))
    except (ValueError, AttributeError, TypeError):
        return None


def _error_text(response: Any) -> str:
    try:
        body = response.json()
        text = body.get("error") or body.get("detail") or body.get("message") or str(body)
    except (ValueError, AttributeError):
        text = response.text
    text = " ".join(str(text).split())
    return f"HTTP {response.status_code}: {text[:200]}"
