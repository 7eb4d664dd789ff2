"""Validate rendered documents against the project's pinned copies of the upstream schemas.

Also a pytest plugin (``pytest_plugins = ["support.schemas"]``): it offers the session-scoped
fixture ``schema_validator`` (this module) and prints what the schema loads cost at the end of
the run.

What checks what (``validate`` picks by ``apiVersion`` and ``kind``):

* ``eksctl.io/v1alpha5`` ``ClusterConfig``: eksctl's own JSON schema (draft-07), as is. It
  already sets ``additionalProperties: false``, so unknown fields fail.
* ``serving.kserve.io/v1beta1`` ``InferenceService``, ``serving.kserve.io/v1alpha1``
  ``ServingRuntime`` / ``ClusterServingRuntime`` and ``serving.knative.dev/v1`` ``Service``:
  the CRD's ``openAPIV3Schema``, *strictified* (see ``strictify``), checked with Draft 7. The
  CRD's group, served version and kind must match the document. ``metadata`` is checked against
  Kubernetes' strict ``ObjectMeta``. The name must be present and valid.
* Any other kind that Kubernetes itself serves (Namespace, ServiceAccount, Secret, ConfigMap,
  Service, Deployment, PVC, StorageClass, RBAC, Job, ...): the strict schemas that the
  ``kubernetes-validate`` package ships for Kubernetes ``KUBERNETES_VERSION``, offline, the way
  that package checks them (Draft 2020-12), except that every error is reported, not just the first.
* Anything else is an error, never silently valid.

``validate_iam_policy`` checks the structure of IAM policy JSON, which has no JSON schema.

Each schema is loaded once per process (``functools.lru_cache``). The 1.9 MB InferenceService
CRD is parsed with ``yaml.CSafeLoader``. No schema is meta-validated at load time, because
Draft 2020-12 meta-validation of the ISVC CRD takes about 10 s. ``load_timings()`` reports what
each first load cost.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

__all__ = [
    "KUBERNETES_VERSION",
    "REPO_ROOT",
    "SCHEMA_DIR",
    "CHECKSUMS_FILE",
    "validate",
    "assert_valid",
    "validate_all",
    "assert_all_valid",
    "load_documents",
    "validate_iam_policy",
    "assert_valid_iam_policy",
    "strictify",
    "load_timings",
    "warm_up",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "tests" / "schemas"
CHECKSUMS_FILE = SCHEMA_DIR / "checksums.json"

# eksctl v0.230.0 creates 1.34 clusters by default; core kinds are checked against this release.
KUBERNETES_VERSION = "1.34"

EKSCTL_SCHEMA = "eksctl/clusterconfig.schema.json"

# (apiVersion, kind) -> CRD file under SCHEMA_DIR. The CRD itself says which group, versions
# and kind it serves; _crd_validator checks that it agrees with this table.
CRDS: dict[tuple[str, str], str] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve/serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "kserve/serving.kserve.io_servingruntimes.yaml",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): (
        "kserve/serving.kserve.io_clusterservingruntimes.yaml"
    ),
    ("serving.knative.dev/v1", "Service"): "knative/service.yaml",
}

_MAX_MESSAGE = 300
_timings: dict[str, float] = {}


# --------------------------------------------------------------------------- names

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _dns1123_label(value: str) -> str | None:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        return (
            "must be a DNS-1123 label: at most 63 lower-case alphanumerics or '-', alphanumeric at both ends"
        )
    return None


def _dns1123_subdomain(value: str) -> str | None:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        return (
            "must be a DNS-1123 subdomain: at most 253 lower-case alphanumerics, '-' or '.',"
            " alphanumeric at both ends"
        )
    return None


def _dns1035_label(value: str) -> str | None:
    if len(value) > 63 or not _DNS1035_LABEL.match(value):
        return (
            "must be a DNS-1035 label: at most 63 lower-case alphanumerics or '-', starting with a"
            " letter and ending with an alphanumeric"
        )
    return None


def _path_segment(value: str) -> str | None:
    if value in (".", "..") or "/" in value or "%" in value:
        return "must be a path segment name: not '.' or '..', and without '/' or '%'"
    return None


# How the API server (or, for InferenceService, KServe's webhook) checks metadata.name.
_NAME_RULES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): _dns1035_label,  # KServe IsvcNameFmt
    ("serving.knative.dev/v1", "Service"): _dns1035_label,
    ("v1", "Namespace"): _dns1123_label,
    ("v1", "Service"): _dns1035_label,
    **{
        ("rbac.authorization.k8s.io/v1", kind): _path_segment
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}


def _qualified_key_problem(key: Any) -> str | None:
    """Label and annotation keys: an optional DNS-1123 subdomain prefix, '/', then a name."""
    if not isinstance(key, str):
        return "key must be a string"
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "key may contain at most one '/'"
    prefix_problem = _dns1123_subdomain(prefix) if prefix else None
    if prefix_problem:
        return f"key prefix {prefix!r} {prefix_problem}"
    if len(name) > 63 or not _QUALIFIED_NAME_PART.match(name):
        return "key name must be at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends"
    return None


def _metadata_errors(doc: dict[str, Any], name_rule: Any) -> list[str]:
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return ["$.metadata: is required and must be a mapping"]
    errors = []
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        errors.append("$.metadata.name: is required (a non-empty string)")
    else:
        problem = name_rule(name)
        if problem:
            errors.append(f"$.metadata.name: {name!r} {problem}")
    namespace = metadata.get("namespace")
    if isinstance(namespace, str):
        problem = _dns1123_label(namespace)
        if problem:
            errors.append(f"$.metadata.namespace: {namespace!r} {problem}")
    for field in ("labels", "annotations"):
        entries = metadata.get(field)
        if not isinstance(entries, dict):
            continue  # a wrong type is reported by the schema
        for key, value in entries.items():
            problem = _qualified_key_problem(key)
            if problem:
                errors.append(f"$.metadata.{field}: {key!r}: {problem}")
            if field == "labels" and isinstance(value, str):
                if len(value) > 63 or not _LABEL_VALUE.match(value):
                    errors.append(
                        f"$.metadata.labels[{key!r}]: {value!r} must be empty or at most 63"
                        " alphanumerics, '-', '_' or '.', alphanumeric at both ends"
                    )
    return errors


# --------------------------------------------------------------------------- loading


def _timed(label: str):
    def decorate(load):
        @functools.wraps(load)
        def wrapper(*args):
            start = time.perf_counter()
            try:
                return load(*args)
            finally:
                key = label if not args else f"{label} {' '.join(map(str, args))}"
                _timings[key] = time.perf_counter() - start

        return wrapper

    return decorate


def load_timings() -> dict[str, float]:
    """Seconds each schema's first (uncached) load took in this process, by schema."""
    return dict(_timings)


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = ("additionalProperties", "additionalItems", "not", "contains", "propertyNames")


def strictify(schema: Any) -> Any:
    """Add ``additionalProperties: false`` to every object schema that lists ``properties``,
    has no ``additionalProperties`` and no ``x-kubernetes-preserve-unknown-fields``.

    The API server silently prunes unknown fields from custom resources, and plain JSON Schema
    accepts them, so without this a typo such as ``storageURI`` would pass. Works in place on the
    schema nodes only (never inside ``enum``/``default``/``example`` values) and returns it.
    """
    if not isinstance(schema, dict):
        return schema
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    for key in _SUBSCHEMA_MAPS:
        children = schema.get(key)
        if isinstance(children, dict):
            for child in children.values():
                strictify(child)
    for key in _SUBSCHEMA_LISTS:
        children = schema.get(key)
        if isinstance(children, list):
            for child in children:
                strictify(child)
    for key in _SUBSCHEMA_ONE:
        strictify(schema.get(key))
    items = schema.get("items")
    if isinstance(items, list):
        for child in items:
            strictify(child)
    else:
        strictify(items)
    return schema


@functools.cache
@_timed("eksctl ClusterConfig schema")
def _eksctl_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMA_DIR / EKSCTL_SCHEMA).read_bytes())
    return jsonschema.Draft7Validator(schema)


def _load_crd(relative: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / relative, "rb") as handle:
        return yaml.load(handle, Loader=yaml.CSafeLoader)  # noqa: S506 - CSafeLoader is safe


@functools.cache
@_timed("CRD")
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    relative = CRDS[(api_version, kind)]
    crd = _load_crd(relative)
    group, _, version = api_version.rpartition("/")
    spec = crd["spec"]
    if spec["group"] != group or spec["names"]["kind"] != kind:
        raise RuntimeError(
            f"{relative} defines {spec['group']} {spec['names']['kind']}, not {api_version} {kind}"
        )
    for entry in spec["versions"]:
        if entry["name"] == version and entry.get("served", True):
            schema = strictify(entry["schema"]["openAPIV3Schema"])  # a fresh load: change in place
            return jsonschema.Draft7Validator(schema)
    served = [entry["name"] for entry in spec["versions"] if entry.get("served", True)]
    raise RuntimeError(f"{relative} does not serve {version}; it serves {served}")


def _kubernetes_schema_dir() -> Path:
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    directory = Path(str(root)) / f"v{KUBERNETES_VERSION}.0-local-strict"
    if not directory.is_dir():
        available = sorted(p.name for p in Path(str(root)).iterdir() if p.name.endswith("-strict"))
        raise RuntimeError(
            f"kubernetes-validate ships no strict schemas for Kubernetes {KUBERNETES_VERSION};"
            f" it has {available}"
        )
    return directory


@functools.cache
@_timed(f"Kubernetes {KUBERNETES_VERSION} definitions")
def _kubernetes_registry() -> Registry:
    definitions = json.loads((_kubernetes_schema_dir() / "_definitions.json").read_bytes())
    return Resource.from_contents(definitions) @ Registry()


def _kubernetes_schema_file(api_version: str, kind: str) -> Path:
    # The same naming as kubernetes_validate.utils.validate: rbac.authorization.k8s.io/v1 -> rbac-v1
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return _kubernetes_schema_dir() / f"{kind.lower()}-{short}.json"


@functools.cache
def _kubernetes_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    """The strict schema of a kind Kubernetes serves, or None when it serves no such kind."""
    path = _kubernetes_schema_file(api_version, kind)
    if not path.is_file():
        return None
    schema = json.loads(path.read_bytes())
    group, _, version = api_version.rpartition("/")
    wanted = {"group": group, "version": version, "kind": kind}
    # Files for nested types (affinity-v1.json, ...) carry no group-version-kind: not top-level kinds.
    if wanted not in schema.get("x-kubernetes-group-version-kind", []):
        return None
    return jsonschema.Draft202012Validator(schema, registry=_kubernetes_registry())


@functools.cache
def _object_meta_validator() -> jsonschema.Draft202012Validator:
    ref = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=_kubernetes_registry())


def warm_up() -> dict[str, float]:
    """Load every schema now (otherwise each loads on first use) and return ``load_timings()``."""
    _eksctl_validator()
    for api_version, kind in CRDS:
        _crd_validator(api_version, kind)
    _object_meta_validator()
    return load_timings()


# --------------------------------------------------------------------------- validation


def _format(error: jsonschema.ValidationError, prefix: str = "$") -> str:
    message = error.message
    if error.context:  # anyOf / oneOf: name the closest branch's complaint too
        best = jsonschema.exceptions.best_match(error.context)
        message = f"{message} ({best.message})"
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    path = prefix + error.json_path[1:]
    return f"{path}: {message}"


def _schema_errors(validator: Any, instance: Any, prefix: str = "$") -> list[str]:
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    )
    return [_format(error, prefix) for error in errors]


def _describe(doc: Any) -> str:
    if not isinstance(doc, dict):
        return type(doc).__name__
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return f"{doc.get('apiVersion')} {doc.get('kind')} {metadata.get('name', '<no name>')!s}"


def validate(doc: dict[str, Any]) -> list[str]:
    """Check one document against the schema for its apiVersion/kind.

    Returns human-readable errors, each starting with the JSON path (``$.spec.predictor``); an
    empty list means valid. A kind without a schema is an error.
    """
    if not isinstance(doc, dict):
        return [f"$: a document must be a mapping, not {type(doc).__name__}"]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not api_version:
        return ["$.apiVersion: is required (a non-empty string)"]
    if not isinstance(kind, str) or not kind:
        return ["$.kind: is required (a non-empty string)"]

    if (api_version, kind) == ("eksctl.io/v1alpha5", "ClusterConfig"):
        return _schema_errors(_eksctl_validator(), doc)

    if (api_version, kind) in CRDS:
        errors = _schema_errors(_crd_validator(api_version, kind), doc)
        if isinstance(doc.get("metadata"), dict):
            errors += _schema_errors(_object_meta_validator(), doc["metadata"], "$.metadata")
        name_rule = _NAME_RULES.get((api_version, kind), _dns1123_subdomain)
        return errors + _metadata_errors(doc, name_rule)

    validator = _kubernetes_validator(api_version, kind)
    if validator is not None:
        errors = _schema_errors(validator, doc)
        name_rule = _NAME_RULES.get((api_version, kind), _dns1123_subdomain)
        return errors + _metadata_errors(doc, name_rule)

    same_kind = sorted(av for av, k in CRDS if k == kind)
    hint = f"; this project has schemas for {kind} only as {', '.join(same_kind)}" if same_kind else ""
    return [
        f"$: no schema for apiVersion {api_version!r} kind {kind!r}: not eksctl's ClusterConfig, not a"
        f" CRD in tests/schemas, not a Kubernetes {KUBERNETES_VERSION} kind{hint}"
    ]


def assert_valid(doc: dict[str, Any]) -> None:
    """Raise AssertionError listing every error if ``doc`` is not valid."""
    errors = validate(doc)
    if errors:
        raise AssertionError(
            f"{_describe(doc)} is invalid ({len(errors)} errors):\n" + "\n".join(f"  - {e}" for e in errors)
        )


def load_documents(path_or_text: str | os.PathLike[str]) -> list[Any]:
    """The non-empty YAML documents of a file (a path) or of YAML text.

    A ``pathlib.Path`` / ``os.PathLike`` is always a file. A ``str`` is a file when it has no
    line break and names an existing file; otherwise it is YAML text.
    """
    if isinstance(path_or_text, os.PathLike) or (
        isinstance(path_or_text, str) and "\n" not in path_or_text and Path(path_or_text).is_file()
    ):
        text = Path(path_or_text).read_text(encoding="utf-8")
    else:
        text = path_or_text
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc is not None]


def validate_all(path_or_text: str | os.PathLike[str]) -> list[str]:
    """Validate every document of a multi-document YAML file or text.

    Errors are prefixed with the document's index (from 0), kind and name. No documents at all is
    an error too.
    """
    docs = load_documents(path_or_text)
    if not docs:
        return ["no YAML documents found"]
    errors = []
    for index, doc in enumerate(docs):
        errors += [f"document {index} ({_describe(doc)}): {error}" for error in validate(doc)]
    return errors


def assert_all_valid(path_or_text: str | os.PathLike[str]) -> None:
    """Raise AssertionError listing every error of every document."""
    errors = validate_all(path_or_text)
    if errors:
        raise AssertionError(f"{len(errors)} errors:\n" + "\n".join(f"  - {e}" for e in errors))


# --------------------------------------------------------------------------- IAM policies

_IAM_POLICY_KEYS = {"Version", "Id", "Statement"}
_IAM_STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
_IAM_ACTION = re.compile(r"^(\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$")
_IAM_RESOURCE = re.compile(r"^(\*|arn:[^:]+:[^:]*:[^:]*:[^:]*:.+)$")
_IAM_SID = re.compile(r"^[A-Za-z0-9]+$")
_IAM_CONDITION_OPERATOR = re.compile(r"^((ForAllValues|ForAnyValue):)?[A-Za-z]+$")


def _string_or_strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def validate_iam_policy(doc: Any, *, trust: bool = False) -> list[str]:
    """Structural checks of an IAM policy document (IAM has no JSON schema).

    ``trust=True`` checks a role's trust (resource-based) policy: each statement names a
    ``Principal`` and carries no ``Resource``.

    ``Version`` must be ``2012-10-17``; ``Statement`` a non-empty list of statements, each with
    ``Effect`` Allow/Deny, one of ``Action``/``NotAction`` (``service:Name`` patterns), one of
    ``Resource``/``NotResource`` (``*`` or ARNs) and optionally ``Sid`` (alphanumeric, unique),
    ``Condition`` (operator -> key -> value(s)) and ``Principal``/``NotPrincipal``.
    Returns errors with JSON paths; empty means valid.
    """
    if not isinstance(doc, dict):
        return [f"$: a policy must be a mapping, not {type(doc).__name__}"]
    errors = [f"$: unknown key {key!r}" for key in sorted(set(doc) - _IAM_POLICY_KEYS, key=str)]
    if doc.get("Version") != "2012-10-17":
        errors.append(f"$.Version: must be '2012-10-17', got {doc.get('Version')!r}")
    statements = doc.get("Statement")
    if not isinstance(statements, list) or not statements:
        return errors + ["$.Statement: must be a non-empty list of statements"]
    sids: set[str] = set()
    for index, statement in enumerate(statements):
        at = f"$.Statement[{index}]"
        if not isinstance(statement, dict):
            errors.append(f"{at}: must be a mapping")
            continue
        errors += [
            f"{at}: unknown key {key!r}" for key in sorted(set(statement) - _IAM_STATEMENT_KEYS, key=str)
        ]
        if statement.get("Effect") not in ("Allow", "Deny"):
            errors.append(f"{at}.Effect: must be 'Allow' or 'Deny', got {statement.get('Effect')!r}")
        if "Sid" in statement:
            sid = statement["Sid"]
            if not isinstance(sid, str) or not _IAM_SID.match(sid):
                errors.append(f"{at}.Sid: must be alphanumeric, got {sid!r}")
            elif sid in sids:
                errors.append(f"{at}.Sid: {sid!r} is used twice")
            else:
                sids.add(sid)
        checks = [(("Action", "NotAction"), _IAM_ACTION, "'*' or 'service:Action' (wildcards allowed)")]
        if trust:
            if "Principal" not in statement and "NotPrincipal" not in statement:
                errors.append(f"{at}: a trust policy statement needs a Principal")
            errors += [f"{at}.{key}: a trust policy has no {key}" for key in ("Resource", "NotResource")
                       if key in statement]
        else:
            checks.append((("Resource", "NotResource"), _IAM_RESOURCE, "'*' or an ARN"))
        for keys, pattern, what in checks:
            present = [key for key in keys if key in statement]
            if len(present) != 1:
                errors.append(f"{at}: needs exactly one of {' / '.join(keys)}, has {present or 'none'}")
                continue
            values = _string_or_strings(statement[present[0]])
            if values is None:
                errors.append(f"{at}.{present[0]}: must be a string or a non-empty list of strings")
                continue
            errors += [
                f"{at}.{present[0]}: {value!r} is not {what}" for value in values if not pattern.match(value)
            ]
        for key in ("Principal", "NotPrincipal"):
            if key in statement and statement[key] != "*" and not isinstance(statement[key], dict):
                errors.append(f"{at}.{key}: must be '*' or a mapping such as {{'AWS': [...]}}")
        if "Condition" in statement:
            errors += _iam_condition_errors(statement["Condition"], f"{at}.Condition")
    return errors


def _iam_condition_errors(condition: Any, at: str) -> list[str]:
    if not isinstance(condition, dict) or not condition:
        return [f"{at}: must be a non-empty mapping of operator -> {{key: value(s)}}"]
    errors = []
    for operator, tests in condition.items():
        if not isinstance(operator, str) or not _IAM_CONDITION_OPERATOR.match(operator):
            errors.append(f"{at}: {operator!r} is not a condition operator")
        if not isinstance(tests, dict) or not tests:
            errors.append(f"{at}.{operator}: must be a non-empty mapping of condition key -> value(s)")
            continue
        for key, value in tests.items():
            scalars = value if isinstance(value, list) else [value]
            if not scalars or not all(isinstance(v, str | bool | int | float) for v in scalars):
                errors.append(f"{at}.{operator}.{key}: must be a string, number, boolean or a list of them")
    return errors


def assert_valid_iam_policy(doc: Any, *, trust: bool = False) -> None:
    """Raise AssertionError listing every structural problem of an IAM policy."""
    errors = validate_iam_policy(doc, trust=trust)
    if errors:
        raise AssertionError(
            f"IAM policy is invalid ({len(errors)} errors):\n" + "\n".join(f"  - {e}" for e in errors)
        )


# --------------------------------------------------------------------------- pytest plugin


@pytest.fixture(scope="session")
def schema_validator():
    """This module: ``schema_validator.assert_valid(doc)``, ``.validate_all(path)``, ..."""
    return sys.modules[__name__]


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook
    timings = load_timings()
    if timings:
        parts = ", ".join(f"{label} {seconds:.2f} s" for label, seconds in timings.items())
        terminalreporter.write_line(f"schema loads (first use, then cached): {parts}")
