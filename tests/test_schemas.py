"""The project's copies of the upstream schemas, and the validator that tests use on rendered output."""

from __future__ import annotations

import copy
import hashlib
import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from support import schemas
from support.schemas import (
    CHECKSUMS_FILE,
    REPO_ROOT,
    SCHEMA_DIR,
    assert_all_valid,
    assert_valid,
    strictify,
    validate,
    validate_all,
    validate_iam_policy,
)

CHECKSUMS = json.loads(CHECKSUMS_FILE.read_text(encoding="utf-8"))
SHARED_DIR = REPO_ROOT.parent / "shared"  # CI lays shared/ beside the clone; so does a developer's machine
IAM_POLICY = REPO_ROOT / "src/kservectl/data/aws-load-balancer-controller/iam_policy.json"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def mlflow_isvc() -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "wine-classifier", "namespace": "models", "labels": {"app": "wine"}},
        "spec": {
            "predictor": {
                "serviceAccountName": "kserve-s3",
                "model": {
                    "modelFormat": {"name": "mlflow"},
                    "protocolVersion": "v2",
                    "storageUri": "s3://example-models/wine/1",
                    "resources": {
                        "requests": {"cpu": "1", "memory": "2Gi"},
                        "limits": {"cpu": "1", "memory": "2Gi"},
                    },
                },
            }
        },
    }


def cluster_config() -> dict:
    return yaml.safe_load(
        """
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: kservectl-demo
  region: us-west-2
  version: "1.34"
  tags: {kservectl/cluster: kservectl-demo}
iam:
  withOIDC: true
managedNodeGroups:
  - name: ng-general
    instanceType: m5.large
    desiredCapacity: 2
    minSize: 1
    maxSize: 3
    volumeSize: 50
    labels: {role: general}
"""
    )


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "mlflow", "namespace": "mlflow", "labels": {"app.kubernetes.io/name": "mlflow"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "mlflow"}},
                "spec": {
                    "serviceAccountName": "mlflow",
                    "containers": [
                        {
                            "name": "mlflow",
                            "image": "ghcr.io/mlflow/mlflow:v3.1.0",
                            "args": ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"],
                            "ports": [{"containerPort": 5000, "name": "http"}],
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                        }
                    ],
                },
            },
        },
    }


def mlserver_runtime_with_real_image() -> dict:
    runtime = yaml.safe_load(
        (SCHEMA_DIR / "kserve/runtimes/kserve-mlserver.yaml").read_text(encoding="utf-8")
    )
    kustomization = yaml.safe_load(
        (SCHEMA_DIR / "kserve/runtimes/kustomization.yaml").read_text(encoding="utf-8")
    )
    image = next(entry for entry in kustomization["images"] if entry["name"] == "mlserver")
    container = runtime["spec"]["containers"][0]
    assert container["image"] == "mlserver:replace"
    container["image"] = f"{image['newName']}:{image['newTag']}"
    return runtime


# --------------------------------------------------------------------------- the copies


@pytest.mark.parametrize("relative", sorted(CHECKSUMS["sha256"]))
def test_every_copied_file_has_the_sha256_and_git_blob_recorded_upstream(relative):
    data = (REPO_ROOT / relative).read_bytes()
    assert hashlib.sha256(data).hexdigest() == CHECKSUMS["sha256"][relative]
    assert git_blob_id(data) == CHECKSUMS["git_blob"][relative]


def test_checksums_json_lists_every_file_copied_into_tests_schemas():
    own = {"tests/schemas/PROVENANCE.md", "tests/schemas/checksums.json"}
    present = {p.relative_to(REPO_ROOT).as_posix() for p in SCHEMA_DIR.rglob("*") if p.is_file()} - own
    listed = {path for path in CHECKSUMS["sha256"] if path.startswith("tests/schemas/")}
    assert present == listed
    assert set(CHECKSUMS["git_blob"]) == set(CHECKSUMS["sha256"]) == set(CHECKSUMS["shared_original"])


def test_the_provenance_notes_state_the_same_sha256_as_checksums_json():
    provenance = (SCHEMA_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    notice = (IAM_POLICY.parent / "NOTICE.md").read_text(encoding="utf-8")
    for relative, sha256 in CHECKSUMS["sha256"].items():
        note = notice if relative == IAM_POLICY.relative_to(REPO_ROOT).as_posix() else provenance
        assert f"`{sha256}`" in note, relative


@pytest.mark.skipif(not (SHARED_DIR / "schemas").is_dir(), reason="no shared/ beside the clone")
@pytest.mark.parametrize("relative", sorted(CHECKSUMS["shared_original"]))
def test_every_copy_equals_the_shared_original_when_shared_is_beside_the_clone(relative):
    original = SHARED_DIR / CHECKSUMS["shared_original"][relative]
    assert (REPO_ROOT / relative).read_bytes() == original.read_bytes()


# --------------------------------------------------------------------------- KServe / Knative CRDs


def test_a_minimal_mlflow_inference_service_is_valid():
    assert validate(mlflow_isvc()) == []


def test_a_storageURI_typo_is_caught_only_because_of_strictify():
    isvc = mlflow_isvc()
    model = isvc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")

    assert validate(isvc) == [
        "$.spec.predictor.model: Additional properties are not allowed ('storageURI' was unexpected)"
    ]
    crd = yaml.load(
        (SCHEMA_DIR / "kserve/serving.kserve.io_inferenceservices.yaml").read_bytes(), Loader=yaml.CSafeLoader
    )
    upstream_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert list(jsonschema.Draft7Validator(upstream_schema).iter_errors(isvc)) == []


def test_strictify_closes_objects_with_properties_unless_they_preserve_unknown_fields():
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"b": {}}}},
            "quantity": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
        "default": {"properties": {"not": "a schema"}},
    }
    strictify(schema)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["status"]
    assert schema["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert schema["properties"]["list"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["quantity"]
    assert schema["default"] == {"properties": {"not": "a schema"}}


def test_the_strictified_crd_schemas_are_still_valid_draft7_schemas():
    for api_version, kind in schemas.CRDS:
        jsonschema.Draft7Validator.check_schema(schemas._crd_validator(api_version, kind).schema)


def test_a_malformed_resource_quantity_in_an_inference_service_is_rejected():
    isvc = mlflow_isvc()
    isvc["spec"]["predictor"]["model"]["resources"]["limits"]["memory"] = "2 GB"
    [error] = validate(isvc)
    assert error.startswith("$.spec.predictor.model.resources.limits.memory: '2 GB' does not match")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"namespace": "models"}, "$.metadata.name: is required"),
        ({"name": "Wine_Classifier"}, "$.metadata.name: 'Wine_Classifier' must be a DNS-1035 label"),
        ({"name": "1-wine"}, "$.metadata.name: '1-wine' must be a DNS-1035 label"),
        ({"name": "wine", "namespace": "Models"}, "$.metadata.namespace: 'Models' must be a DNS-1123 label"),
        ({"name": "wine", "lables": {"a": "b"}}, "$.metadata: Additional properties are not allowed"),
        ({"name": "wine", "labels": {"version": "1.0+b"}}, "$.metadata.labels['version']: '1.0+b' must be"),
    ],
)
def test_bad_inference_service_metadata_is_rejected(metadata, expected):
    isvc = mlflow_isvc()
    isvc["metadata"] = metadata
    errors = validate(isvc)
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_an_inference_service_under_an_api_version_the_crd_does_not_serve_is_an_error():
    isvc = mlflow_isvc()
    isvc["apiVersion"] = "serving.kserve.io/v1alpha1"
    [error] = validate(isvc)
    assert "no schema for apiVersion 'serving.kserve.io/v1alpha1' kind 'InferenceService'" in error
    assert "only as serving.kserve.io/v1beta1" in error


def test_the_upstream_kserve_mlserver_runtime_validates_as_a_cluster_serving_runtime():
    assert validate(mlserver_runtime_with_real_image()) == []


def test_a_namespaced_serving_runtime_with_a_misspelt_field_is_rejected():
    runtime = mlserver_runtime_with_real_image()
    runtime["kind"] = "ServingRuntime"
    runtime["metadata"]["namespace"] = "models"
    assert validate(runtime) == []
    runtime["spec"]["supportedModelFormat"] = runtime["spec"].pop("supportedModelFormats")
    [error] = validate(runtime)
    assert "'supportedModelFormat' was unexpected" in error


def test_a_knative_service_is_checked_against_the_knative_crd():
    service = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                "spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go:latest"}]},
            },
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }
    assert validate(service) == []
    service["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    [error] = validate(service)
    assert error.startswith("$.spec.template.spec.containers[0]: Additional properties")


# --------------------------------------------------------------------------- eksctl


def test_a_minimal_cluster_config_with_oidc_and_managed_node_groups_is_valid():
    assert validate(cluster_config()) == []


def test_an_unquoted_kubernetes_version_in_a_cluster_config_is_rejected():
    config = cluster_config()
    config["metadata"]["version"] = yaml.safe_load("version: 1.30")["version"]  # the float 1.3
    assert validate(config) == ["$.metadata.version: 1.3 is not of type 'string'"]


def test_an_unknown_field_in_a_cluster_config_is_rejected():
    config = cluster_config()
    config["managedNodeGroups"][0]["instanceTypes"] = ["m5.large"]  # valid; the typo below is not
    config["managedNodeGroups"][0]["desiredSize"] = 2
    assert validate(config) == [
        "$.managedNodeGroups[0]: Additional properties are not allowed ('desiredSize' was unexpected)"
    ]


def test_a_cluster_config_without_a_region_is_rejected():
    config = cluster_config()
    del config["metadata"]["region"]
    assert validate(config) == ["$.metadata: 'region' is a required property"]


# --------------------------------------------------------------------------- core Kubernetes kinds


def test_a_valid_deployment_is_accepted():
    assert validate(deployment()) == []


def test_a_deployment_with_an_unknown_field_is_rejected_with_every_error_listed():
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    bad["spec"]["replicas"] = "1"
    assert validate(bad) == [
        "$.spec.replicas: '1' is not of type 'integer', 'null'",
        "$.spec.template.spec.containers[0]: Additional properties are not allowed"
        " ('imagePullPolice' was unexpected)",
    ]


def test_the_verdict_on_deployments_agrees_with_kubernetes_validate_strict():
    assert kubernetes_validate.validate(deployment(), schemas.KUBERNETES_VERSION, strict=True) == "1.34"
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, schemas.KUBERNETES_VERSION, strict=True)
    assert validate(bad) != []


def test_core_kinds_are_checked_against_kubernetes_1_34():
    pod_spec = deployment()["spec"]["template"]["spec"]
    new_in_1_34 = copy.deepcopy(deployment())
    new_in_1_34["spec"]["template"]["spec"] = {**pod_spec, "hostnameOverride": "mlflow-0"}
    assert validate(new_in_1_34) == []
    new_in_1_35 = copy.deepcopy(deployment())
    new_in_1_35["spec"]["template"]["spec"] = {**pod_spec, "workloadRef": {}}
    [error] = validate(new_in_1_35)
    assert "'workloadRef' was unexpected" in error


def test_a_gp3_storage_class_is_valid():
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }
    assert validate(storage_class) == []


def test_a_core_service_name_must_be_a_dns_1035_label():
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "5000-mlflow"},
        "spec": {"ports": [{"port": 5000}]},
    }
    [error] = validate(service)
    assert error.startswith("$.metadata.name: '5000-mlflow' must be a DNS-1035 label")


@pytest.mark.parametrize(
    "doc",
    [
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "v1", "kind": "Affinity"},  # a nested type kubernetes-validate has a file for
        {"apiVersion": "apps.example.com/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        {"apiVersion": "eksctl.io/v1alpha4", "kind": "ClusterConfig", "metadata": {"name": "c"}},
    ],
    ids=["unknown group", "nested type", "look-alike group", "old eksctl version"],
)
def test_an_unknown_api_version_or_kind_is_an_error(doc):
    [error] = validate(doc)
    assert error.startswith(f"$: no schema for apiVersion {doc['apiVersion']!r} kind {doc['kind']!r}")


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"kind": "Namespace"}, "$.apiVersion: is required"),
        ({"apiVersion": "v1"}, "$.kind: is required"),
        (["not", "a", "mapping"], "$: a document must be a mapping, not list"),
    ],
)
def test_a_document_without_api_version_or_kind_is_an_error(doc, expected):
    [error] = validate(doc)
    assert error.startswith(expected)


# --------------------------------------------------------------------------- multi-document files

PLATFORM_YAML = """\
apiVersion: v1
kind: Namespace
metadata: {name: models}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kserve-s3
  namespace: models
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/kserve-s3"}
---
apiVersion: v1
kind: Secret
metadata: {name: mlflow-db, namespace: mlflow}
type: Opaque
stringData: {password: example}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: mlflow-config, namespace: mlflow}
data: {MLFLOW_SERVER_ALLOWED_HOSTS: "mlflow.mlflow.svc"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: mlflow-data, namespace: mlflow}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: gp3
  resources: {requests: {storage: 10Gi}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kservectl:reader"}
rules:
  - apiGroups: [serving.kserve.io]
    resources: [inferenceservices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kservectl:reader"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kservectl:reader"}
subjects: [{kind: ServiceAccount, name: kserve-s3, namespace: models}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: train-wine, namespace: mlflow}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: train, image: "python:3.11-slim", command: [python, -c, "print(1)"]}]
---
"""


def test_a_multi_document_file_of_core_kinds_is_valid(tmp_path):
    assert validate_all(PLATFORM_YAML) == []
    path = tmp_path / "platform.yaml"
    path.write_text(PLATFORM_YAML + yaml.safe_dump(mlflow_isvc()), encoding="utf-8")
    assert validate_all(path) == []
    assert validate_all(str(path)) == []
    assert_all_valid(path)


def test_validate_all_names_the_document_each_error_belongs_to():
    text = PLATFORM_YAML + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {port: 5000}\n"
    assert validate_all(text) == [
        "document 8 (v1 ConfigMap cfg): $.data.port: 5000 is not of type 'string', 'null'",
    ]
    with pytest.raises(AssertionError, match="document 8"):
        assert_all_valid(text)


def test_validate_all_of_no_documents_is_an_error():
    assert validate_all("---\n# nothing rendered\n") == ["no YAML documents found"]


def test_assert_valid_lists_every_error():
    config = cluster_config()
    config["metadata"]["version"] = 1.3
    config["iam"]["withOIDCC"] = True
    with pytest.raises(AssertionError) as raised:
        assert_valid(config)
    message = str(raised.value)
    assert "ClusterConfig kservectl-demo is invalid (2 errors)" in message
    assert "$.metadata.version" in message and "'withOIDCC' was unexpected" in message


# --------------------------------------------------------------------------- IAM policy


def test_the_shipped_alb_controller_iam_policy_passes_the_structural_checks():
    policy = json.loads(IAM_POLICY.read_bytes())
    assert validate_iam_policy(policy) == []
    assert len(policy["Statement"]) == 16


def _broken(change) -> dict:
    policy = json.loads(IAM_POLICY.read_bytes())
    change(policy)
    return policy


def _statement(index: int, **changes):
    return lambda policy: policy["Statement"][index].update(changes)


def _without(index: int, key: str):
    return lambda policy: policy["Statement"][index].pop(key)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda p: p.update(Version="2008-10-17"), "$.Version: must be '2012-10-17'", id="version"
        ),
        pytest.param(
            lambda p: p.update(Statement={}), "$.Statement: must be a non-empty list", id="statement"
        ),
        pytest.param(_statement(0, Effect="allow"), "$.Statement[0].Effect: must be", id="effect"),
        pytest.param(_without(1, "Resource"), "$.Statement[1]: needs exactly one of Resource", id="resource"),
        pytest.param(_without(2, "Action"), "$.Statement[2]: needs exactly one of Action", id="action"),
        pytest.param(
            _statement(3, Action=["DescribeVpcs"]), "$.Statement[3].Action: 'Desc", id="action-format"
        ),
        pytest.param(_statement(4, Resource="vpc-123"), "$.Statement[4].Resource: 'vpc-123'", id="arn"),
        pytest.param(_statement(0, Condition=[]), "$.Statement[0].Condition: must be", id="condition"),
        pytest.param(_statement(0, Sid="alb-controller"), "$.Statement[0].Sid: must be", id="sid"),
        pytest.param(_statement(0, Actions=["ec2:*"]), "$.Statement[0]: unknown key 'Actions'", id="key"),
    ],
)
def test_a_broken_iam_policy_fails_the_structural_checks(change, expected):
    errors = validate_iam_policy(_broken(change))
    assert any(error.startswith(expected) for error in errors), errors


# --------------------------------------------------------------------------- the plugin


def test_the_schema_validator_fixture_offers_the_api(schema_validator):
    schema_validator.assert_valid(mlflow_isvc())
    assert schema_validator.validate_all(PLATFORM_YAML) == []
    assert schema_validator.validate_iam_policy({"Version": "2012-10-17"}) != []


def test_each_schema_is_loaded_once_per_session():
    validate(mlflow_isvc())
    first = schemas.load_timings()
    validate(mlflow_isvc())
    validate(cluster_config())
    assert "CRD serving.kserve.io/v1beta1 InferenceService" in first
    assert schemas._crd_validator("serving.kserve.io/v1beta1", "InferenceService").schema is (
        schemas._crd_validator("serving.kserve.io/v1beta1", "InferenceService").schema
    )
    assert schemas._crd_validator.cache_info().hits >= 1


def test_a_trust_policy_needs_a_principal_and_no_resource():
    from support.schemas import validate_iam_policy

    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
        "Action": "sts:AssumeRoleWithWebIdentity"}]}
    assert validate_iam_policy(trust, trust=True) == []
    assert any("needs exactly one of Resource" in e for e in validate_iam_policy(trust))
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                   "Resource": "*"}]}
    assert validate_iam_policy(bad, trust=True) == [
        "$.Statement[0]: a trust policy statement needs a Principal",
        "$.Statement[0].Resource: a trust policy has no Resource"]
