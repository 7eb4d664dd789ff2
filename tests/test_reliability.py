"""Reliability of ``kservectl up`` end to end, in the sandbox of tests/support/sandbox.py: moto, the
Kubernetes emulator with the test acting as the controllers, the fake eksctl/helm/kubectl, a
sqlite MLflow whose artifacts go to the moto bucket, and a stand-in model server behind the NLB.

* every step that ``plan`` lists fails once, and ``up`` again gets past it: no duplicate resource;
* transient faults at a steady rate (throttling, API server 5xx, helm timeouts, webhooks without
  endpoints) are absorbed within bounded retries; a permanent one stops ``up`` naming the phase;
* Ctrl-C stops the running tools and leaves a resumable state;
* a second ``up`` after success makes no mutating call;
* bad input exits 2 naming the field, before any AWS or Kubernetes call.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kservectl import aws as aws_mod
from kservectl.config import load
from kservectl.context import Context
from kservectl.errors import KservectlError
from kservectl.kube import KINDS
from kservectl.phases import plan as plan_phase
from support.sandbox import NAME, REGION, KubeTarget, Sandbox, mlflow_template, world

pytestmark = [
    # third-party warnings of MLflow's sqlite store and model logging, each named
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.store.tracking.sqlalchemy_store"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.models.utils"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

RESUME = f"kservectl up -c {NAME} -r {REGION}"
EXPECTED_STEPS = 57  # the plan of the default config; a change here means: review the injections below


def plan_steps() -> list[Any]:
    ctx = Context(config=load(env={}).config)
    return [s for p in plan_phase.build(ctx, Path("/plan")) for s in p.steps]


STEPS = plan_steps()


@pytest.fixture
def sandbox(tmp_path, tmp_path_factory):
    with world(tmp_path / "world", mlflow_template(tmp_path_factory.getbasetemp())) as box:
        yield box


def run_json(box: Sandbox, *args: str) -> tuple[Any, dict[str, Any]]:
    result = box.up("-o", "json", *args)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


# == failing at every step of the plan ============================================================
@dataclass
class Injection:
    """One permanent fault aimed at one plan step."""

    number: int
    step: Any
    how: str  # tool | aws | kube | http
    fault: Any = None
    fired_run: int = 0
    detail: str = ""


def _tool_rule(number: int, command: tuple[str, ...]) -> dict[str, Any]:
    tool = command[0]
    rule: dict[str, Any] = {"tool": tool, "exit_code": 1, "times": 1, "comment": f"plan step {number}",
                            "stderr": f"Error: injected failure of plan step {number}\n"}
    url = next((c for c in command if c.startswith("https://")), None)
    if tool == "kubectl" and url:
        rule["argv_contains"] = [url]
    else:
        prefix = []
        for item in command[1:4]:
            if item.startswith("/"):
                break
            prefix.append(item)
        rule["argv_prefix"] = prefix
    return rule


def _aws_operations(calls: tuple[str, ...]) -> frozenset[str]:
    """The operations a step names that change something (else all it names): the fault hits the
    first of them the phase calls."""
    ops = [name.strip() for call in calls for alt in call.split("|")
           for name in alt.strip().partition(":")[2].split("/")]
    return frozenset([op for op in ops if aws_mod.is_mutating(op)] or ops)


_PLURAL = {kind.kind: kind.plural for kind in KINDS.values() if kind.api_version != "serving.knative.dev/v1"}


def _kube_targets(calls: tuple[str, ...]) -> tuple[KubeTarget, ...]:
    targets = []
    for call in calls:
        words = call.split()
        verb = words[0]
        if verb == "watch":
            if words[1] == "nodes":
                targets.append(KubeTarget(frozenset({"LIST"}), "nodes"))
                continue
            if words[1] == "CRDs":
                targets.append(KubeTarget(frozenset({"LIST"}), "customresourcedefinitions"))
                continue
            kind = "Deployment" if words[1] == "Deployments" else words[1]
            namespace = words[words.index("in") + 1] if "in" in words else words[2].split("/")[0]
            targets.append(KubeTarget(frozenset({"LIST"}), _PLURAL[kind], namespace))
        elif verb in ("apply", "patch", "get") and words[1] in _PLURAL:
            ref = words[2]
            namespace, _, name = ref.rpartition("/")
            methods = {"apply": {"POST", "PATCH"}, "patch": {"PATCH"}, "get": {"GET"}}[verb]
            targets.append(KubeTarget(frozenset(methods), _PLURAL[words[1]], namespace or None, name))
    return tuple(targets)


class Chain:
    """One sandbox in which every plan step fails once: each ``up`` fails at the armed faults it
    meets first (a few at once when phases run side by side), and the next ``up`` resumes."""

    def __init__(self, box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.box = box
        self.injections: list[Injection] = []
        self.runs: list[dict[str, Any]] = []
        self.inventories: list[dict[str, int]] = []
        self.final_mutations: dict[str, list[str]] | None = None
        self._arm(monkeypatch)

    def _arm(self, mp: pytest.MonkeyPatch) -> None:
        box = self.box
        rules: list[dict[str, Any]] = []
        seen: dict[tuple, int] = {}
        for number, step in enumerate(STEPS, start=1):
            inj = Injection(number, step, step.kind)
            if step.kind == "tool":
                inj.fault = _tool_rule(number, step.command)
                rules.append(inj.fault)
            elif step.kind == "aws":
                ops = _aws_operations(step.calls)
                twins = [s for s in STEPS if s.phase == step.phase and s.kind == "aws"
                         and _aws_operations(s.calls) == ops]
                inj.fault = box.fail_aws(step.phase, *ops, mentions=step.action if len(twins) > 1 else None)
                inj.detail = ", ".join(sorted(ops))
            elif step.kind == "kube":
                targets = _kube_targets(step.calls)
                key = (step.phase, targets)
                seen[key] = seen.get(key, 0) + 1
                inj.fault = box.fail_kube(step.phase, *targets, nth=seen[key])
                inj.detail = f"#{seen[key]} of {[t.plural for t in targets]}"
            else:
                inj.how = "http"
            self.injections.append(inj)
        box.script(rules)
        self._arm_http(mp)

    def _arm_http(self, mp: pytest.MonkeyPatch) -> None:
        from kservectl import example, models
        from kservectl.phases import mlflow, serve

        box = self.box
        inside_resolve = {"now": False}

        def fail_once(inj: Injection, real: Any, *, only_in_resolve: bool = False) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if not inj.fired_run and (not only_in_resolve or inside_resolve["now"]):
                    inj.fired_run = box.runs
                    raise KservectlError(f"injected failure of plan step {inj.number}")
                return real(*args, **kwargs)
            return wrapper

        real_resolve_model = serve.resolve_model

        def resolve_model(*args: Any, **kwargs: Any) -> Any:
            inside_resolve["now"] = True
            try:
                return real_resolve_model(*args, **kwargs)
            finally:
                inside_resolve["now"] = False

        mp.setattr(serve, "resolve_model", resolve_model)
        for inj in self.injections:
            if inj.how != "http":
                continue
            text = " ".join(inj.step.calls)
            if "/proxy/health" in text:
                mp.setattr(mlflow, "check_health_via_proxy", fail_once(inj, mlflow.check_health_via_proxy))
            elif "log model" in text:
                mp.setattr(example, "log_and_register", fail_once(inj, example.log_and_register))
            elif "get model version" in text:
                mp.setattr(models, "resolve", fail_once(inj, models.resolve, only_in_resolve=True))
            elif "download MLmodel" in text:
                mp.setattr(models, "fetch_model_info", fail_once(inj, models.fetch_model_info,
                                                                 only_in_resolve=True))
            elif "/v2/health/ready" in text:
                inj.fault = "model server"
                box.model_server.fail_infer = 1
            else:
                raise AssertionError(f"no injection for plan step {inj.number}: {text}")

    def run(self) -> None:
        box = self.box
        hits_before: dict[str, int] = {}
        for _ in range(len(STEPS) + 2):
            result, data = run_json(box)
            hits = box.tools.state().get("rule_hits", {})
            fired = []
            for inj in self.injections:
                if inj.how == "tool":
                    key = next((k for k in hits if k.startswith(f"{self._rule_index(inj)}:")), None)
                    if key and hits[key] and not hits_before.get(key):
                        inj.fired_run = box.runs
                elif inj.how in ("aws", "kube") and inj.fault.fired and not inj.fired_run:
                    inj.fired_run = inj.fault.fired
                elif inj.fault == "model server" and box.model_server.fail_infer == 0 and not inj.fired_run:
                    inj.fired_run = box.runs
                if inj.fired_run == box.runs:
                    fired.append(inj.number)
            hits_before = dict(hits)
            failure = data.get("failure") or {}
            phases = {failure.get("phase")} | {o["task"].split("/")[0] for o in failure.get("others") or []}
            errors = " ".join([failure.get("error") or ""] + [o["error"] or "" for o in failure.get("others") or []])
            self.runs.append({"run": box.runs, "exit_code": result.exit_code, "fired": fired,
                              "failed_phases": phases - {None}, "errors": errors,
                              "resume": failure.get("resume"), "stderr": result.stderr})
            self.inventories.append(box.inventory())
            if result.exit_code == 0:
                break
        mark = box.mark()
        again, _ = run_json(box)
        assert again.exit_code == 0, again.stderr
        self.final_mutations = box.mutations(mark)

    def summary(self) -> str:
        return "\n".join(f"run {r['run']}: exit {r['exit_code']}, steps {r['fired']}, phases "
                         f"{sorted(r['failed_phases'])}" for r in self.runs)

    def _rule_index(self, inj: Injection) -> int:
        return [i for i in self.injections if i.how == "tool"].index(inj)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The whole chain, run once for the module; the sandbox is gone before the first assertion
    (only the record of each run is kept)."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("chain")
    try:
        with world(tmp / "world", mlflow_template(tmp_path_factory.getbasetemp())) as box:
            chained = Chain(box, mp)
            chained.run()
    finally:
        mp.undo()
    chained.box = None  # type: ignore[assignment]
    return chained


def test_the_plan_of_the_default_config_has_the_steps_the_injections_cover():
    assert len(STEPS) == EXPECTED_STEPS
    kinds = {s.kind for s in STEPS}
    assert kinds == {"aws", "tool", "kube", "http"}
    for step in STEPS:
        if step.kind == "kube":
            assert _kube_targets(step.calls), f"no Kubernetes target for {step.calls}"


def _step_id(step: Any, number: int) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", step.action.lower()).strip("-").split("-")[:5]
    return f"{number:02d}-{step.phase}-{step.kind}-{'-'.join(words)}"


@pytest.mark.timeout(600)  # the first one runs the whole chain (about 50 s here)
@pytest.mark.parametrize("number", range(1, len(STEPS) + 1),
                         ids=[_step_id(s, n) for n, s in enumerate(STEPS, start=1)])
def test_up_stops_at_a_failed_plan_step_and_the_next_up_gets_past_it(chain, number):
    inj = chain.injections[number - 1]
    assert inj.fired_run, f"plan step {number} ({inj.step.action}) was never reached by `up` ({inj.detail})"
    run = chain.runs[inj.fired_run - 1]
    assert run["exit_code"] == 1, run["stderr"]
    assert inj.step.phase in run["failed_phases"], (run["failed_phases"], run["errors"])
    assert run["resume"] == RESUME
    assert "up failed in phase" in run["stderr"] and f"resume with: {RESUME}" in run["stderr"]
    following = chain.runs[inj.fired_run]  # the next `up` resumed: this step no longer fails
    assert number not in following["fired"]


def test_after_every_failure_the_resumed_platform_has_no_duplicate_resource(chain):
    final = chain.inventories[-1]
    assert chain.runs[-1]["exit_code"] == 0
    assert final == {"eks clusters": 1, "buckets": 1, "kservectl policies": 3, "kservectl roles": 2,
                     "irsa stacks": 2, "load balancers": 1, "helm releases": 6, "helm release names": 6,
                     "inference services": 1, "registered models": 1}
    for inventory in chain.inventories:  # never more of anything along the way
        assert all(inventory[k] <= final[k] for k in final), inventory
    assert len(chain.runs) <= len(STEPS) + 1


def test_after_the_failures_a_second_up_makes_no_mutating_call(chain):
    assert chain.final_mutations == {"aws": [], "tools": [], "kube_writes": []}


# == a finished platform, and plan --diff ==========================================================
def test_up_builds_the_platform_reports_timings_urls_and_cost_and_a_second_up_changes_nothing(sandbox):
    from typer.testing import CliRunner

    from kservectl.cli.main import app

    before = CliRunner().invoke(app, ["plan", "--diff", "-o", "json"])
    assert before.exit_code == 0, before.stderr
    actions = {r["resource"]: r["action"] for r in json.loads(before.stdout)["diff"]}
    assert set(actions.values()) == {"create"}, actions

    result, data = run_json(sandbox)
    assert result.exit_code == 0, result.stderr
    assert data["ok"] is True and data["failure"] is None and data["resume"] == RESUME
    assert {t["task"]: t["state"] for t in data["tasks"]} == {
        t: "done" for t in ("cluster", "alb/policy", "alb", "kserve", "storage/bucket", "storage/policies", "storage",
                            "mlflow", "serve", "test")}
    timing = data["timing"]
    assert timing["critical_path"][0] == "cluster" and timing["critical_path"][-1] == "test"
    tasks = {t["task"]: t for t in data["tasks"]}  # the bucket was made while the cluster phase ran
    assert tasks["storage/bucket"]["started_s"] < tasks["cluster"]["started_s"] + tasks["cluster"]["elapsed_s"]
    service = data["urls"]["services"][0]
    assert service["name"] == "wine" and service["host_header"] == "wine-predictor.models.example.com"
    cost = data["cost"]
    assert cost["basis"] == "what exists" and cost["prices_as_of"]
    assert {i["resource"]: i["quantity"] for i in cost["items"]} == {  # read from moto and the cluster
        "EKS control plane": 1, "nodes (m5.xlarge)": 3, "node root volumes (gp3)": 3,
        "NLB k8s-kourier--kourier": 1, "public IPv4 addresses of the NLBs": 3,
        "volume of PVC mlflow/mlflow-data (gp3)": 1}
    assert cost["total"]["monthly"] == pytest.approx(sum(i["monthly"] for i in cost["items"]), abs=0.02)
    assert data["test"]["ok"] is True
    example = next(t for t in data["tasks"] if t["task"] == "serve")["result"]["example"]
    assert example["model_uri"] == "models:/wine/1"
    assert sandbox.model_server.requests.count("POST /v2/models/wine/infer") == 1

    after = CliRunner().invoke(app, ["plan", "--diff", "-o", "json"])
    assert after.exit_code == 0, after.stderr
    assert {r["action"] for r in json.loads(after.stdout)["diff"]} == {"keep"}

    mark = sandbox.mark()
    again, second = run_json(sandbox)
    assert again.exit_code == 0, again.stderr
    assert sandbox.mutations(mark) == {"aws": [], "tools": [], "kube_writes": []}
    assert sandbox.registered_versions() == ["1"]  # the example is not trained again
    assert next(t for t in second["tasks"] if t["task"] == "serve")["result"]["example"] is None


def test_the_storage_policies_are_made_while_eksctl_creates_the_cluster(sandbox):
    sandbox.script([{"tool": "eksctl", "argv_prefix": ["create", "cluster"], "delay_s": 10.0, "passthrough": True,
                     "times": 1}])
    result, data = run_json(sandbox, "--only", "cluster", "--only", "storage")
    assert result.exit_code == 0, result.stderr
    calls = sandbox.aws_calls
    policies = [(i, task) for i, (_, op, task) in enumerate(calls) if op == "CreatePolicy"]
    assert [task for _, task in policies] == ["storage/policies", "storage/policies"]
    roles = [i for i, (_, op, task) in enumerate(calls) if op == "CreateRole"]
    assert len(roles) == 2 and {calls[i][2] for i in roles} == {"storage"}  # they trust the OIDC provider
    assert max(i for i, _ in policies) < min(roles)
    tasks = {t["task"]: t for t in data["tasks"]}
    cluster_end = tasks["cluster"]["started_s"] + tasks["cluster"]["elapsed_s"]  # eksctl alone took 10 s
    assert tasks["storage/policies"]["started_s"] + tasks["storage/policies"]["elapsed_s"] < cluster_end - 0.5
    assert tasks["storage"]["started_s"] >= cluster_end - 0.02  # the times are rounded to 10 ms each
    assert tasks["storage/policies"]["result"]["policies"] == [f"kservectl-{NAME}-model-read",
                                                               f"kservectl-{NAME}-mlflow-artifacts"]


def test_plan_diff_says_change_for_what_drifted_from_the_config_and_keep_for_the_rest(sandbox, monkeypatch):
    from typer.testing import CliRunner

    from kservectl.cli.main import app
    from support.sandbox import BUCKET

    result, _ = run_json(sandbox)
    assert result.exit_code == 0, result.stderr
    # drift made outside kservectl ...
    sandbox.eks.update_nodegroup_config(clusterName=NAME, nodegroupName="ng-default", scalingConfig={"maxSize": 9})
    sandbox.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    read_policy = next(p["Arn"] for p in sandbox.iam.list_policies(Scope="Local")["Policies"]
                       if p["PolicyName"] == f"kservectl-{NAME}-model-read")
    sandbox.iam.create_policy_version(PolicyArn=read_policy, SetAsDefault=True, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    sandbox.kube.patch("apps/v1", "Deployment", "mlflow", "mlflow", {"spec": {"replicas": 3}})
    # ... and config changes: another chart version, another model
    monkeypatch.setenv("KSERVECTL_VERSIONS_CERT_MANAGER", "v1.16.5")
    monkeypatch.setenv("KSERVECTL_MODEL_URI", "models:/wine/7")
    mark = sandbox.mark()
    diff = CliRunner().invoke(app, ["plan", "--diff", "-o", "json"])
    assert diff.exit_code == 0, diff.stderr
    rows = {r["resource"]: (r["action"], r["detail"]) for r in json.loads(diff.stdout)["diff"]}
    changed = {k: v for k, v in rows.items() if v[0] == "change"}
    assert changed == {
        "node group ng-default": ("change", "nodes.max: config says 6, the cluster has 9 (change with `eksctl scale "
                                  "nodegroup --cluster kservectl --region us-west-2 --name ng-default --nodes 3 "
                                  "--nodes-min 3 --nodes-max 6`)"),
        "Helm release cert-manager/cert-manager (cert-manager v1.16.5)": ("change", "installed cert-manager-v1.17.0"),
        "ConfigMap kserve/kservectl-kserve": ("change", "the live object differs from the rendered manifest"),
        f"S3 bucket {BUCKET}": ("change", "versioning Suspended"),
        f"IAM policy kservectl-{NAME}-model-read": (
            "change", "a new default version: the live document differs from the rendered one"),
        "Deployment mlflow/mlflow": ("change", "the live object differs from the rendered manifest"),
        "InferenceService models/wine": ("change", "serves models:/wine/1"),
    }
    assert {v[0] for k, v in rows.items() if k not in changed} == {"keep"}
    assert sandbox.mutations(mark) == {"aws": [], "tools": [], "kube_writes": []}  # --diff only reads
    table = CliRunner().invoke(app, ["up", "--dry-run"])
    assert table.exit_code == 0 and "7 to change, 21 keep" in table.stdout


def test_the_table_output_shows_each_phase_the_summary_the_urls_and_the_monthly_cost(sandbox):
    result = sandbox.up()
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "kservectl up: phase timings" in out
    assert re.search(r"wall time .*; one phase after another would take .*; critical path", out)
    assert "model wine: http://" in out and "(Host: wine-predictor.models.example.com)" in out
    assert re.search(r"estimated cost of what now runs: \$\d+\.\d\d/month", out)
    assert "[cluster] started" in result.stderr and "[test] done in" in result.stderr


# == transient and permanent faults ================================================================
WEBHOOK = ('Internal error occurred: failed calling webhook "inferenceservice.kserve-webhook-server.defaulter": '
           'failed to call webhook: no endpoints available for service "kserve-webhook-server-service"')


def test_transient_faults_at_a_steady_rate_are_absorbed_within_bounded_retries(sandbox):
    sandbox.throttle_every = 6  # every sixth AWS request is throttled (botocore retries it)
    kube = sandbox.kube
    for verb, api_version, kind, namespace in (  # the API server answers 503 about once per phase
        ("list", "v1", "Node", None), ("list", "v1", "Endpoints", "kube-system"),
        ("get", "v1", "ConfigMap", "kserve"), ("get", "v1", "ServiceAccount", "models"),
        ("create", "v1", "PersistentVolumeClaim", "mlflow"),
    ):
        kube.fail_next(verb, api_version, kind, code=503, reason="ServiceUnavailable",
                       message="the server is currently unable to handle the request", namespace=namespace)
    kube.fail_next("create", "serving.kserve.io/v1beta1", "InferenceService", code=500, message=WEBHOOK)
    sandbox.script([  # three of the six releases time out once each
        *({"tool": "helm", "argv_prefix": ["upgrade", "--install", release], "times": 1, "exit_code": 1,
           "stderr": "Error: UPGRADE FAILED: context deadline exceeded\n"}
          for release in ("cluster-autoscaler", "aws-load-balancer-controller", "kserve")),
        {"tool": "kubectl", "argv_contains": ["apply"], "times": 1, "exit_code": 1,
         "stderr": 'Error from server (InternalError): failed calling webhook "webhook.serving.knative.dev": '
                   'no endpoints available for service "webhook"\n'},
    ])
    result, data = run_json(sandbox)
    assert result.exit_code == 0, result.stderr
    assert sandbox.throttled >= 10
    attempts = {t["task"]: t["attempts"] for t in data["tasks"]}
    assert max(attempts.values()) <= 3 and sum(attempts.values()) > len(attempts)  # some phases ran again
    assert "transient failure" in result.stderr and "attempt 2/3" in result.stderr
    upgrades = [c for c in sandbox.tools.calls("helm") if c[:2] == ["upgrade", "--install"]]
    assert len(upgrades) == 6 + 3  # six releases, three of them once more after a timeout
    assert sandbox.inventory()["inference services"] == 1


def test_a_permanent_fault_stops_up_naming_the_phase_and_the_command_that_resumes(sandbox):
    sandbox.fail_aws("alb", "CreatePolicy")
    result, data = run_json(sandbox)
    assert result.exit_code == 1
    failure = data["failure"]
    assert failure["phase"] == "alb" and failure["task"] == "alb/policy"
    assert "AWS iam:CreatePolicy failed with AccessDenied" in failure["error"]
    assert failure["resume"] == RESUME and failure["log"].endswith("-up.log")
    states = {t["task"]: t["state"] for t in data["tasks"]}
    # the phases already running finished; nothing new was started
    assert states["cluster"] == "done" and states["storage/bucket"] == "done"
    assert states["alb"] == "not started" and states["test"] == "not started"
    assert {t["task"]: t["attempts"] for t in data["tasks"]}["alb/policy"] == 1  # not retried
    assert "up failed in phase alb (task alb/policy)" in result.stderr
    assert f"resume with: {RESUME}" in result.stderr

    resumed, _ = run_json(sandbox)
    assert resumed.exit_code == 0, resumed.stderr
    assert sandbox.inventory()["eks clusters"] == 1


# == Ctrl-C ===========================================================================================
def _fake_processes(log: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"FAKE_TOOLS_LOG={log}".encode() in environ:
            pids.append(int(entry.name))
    return [p for p in pids if p != os.getpid()]


def test_ctrl_c_stops_the_running_tool_marks_the_phase_and_up_again_finishes_the_create(sandbox, monkeypatch):
    from kservectl.phases import serve

    sandbox.script([{"tool": "eksctl", "argv_prefix": ["create", "cluster"], "delay_s": 20,
                           "passthrough": True, "times": 1}])
    sandbox.interrupt_on = ("eksctl", "create", "cluster")
    started = time.monotonic()
    result, data = run_json(sandbox)
    assert result.exit_code == 130
    assert time.monotonic() - started < 15  # eksctl was stopped, not waited for
    assert _fake_processes(sandbox.tools.log_path) == []
    states = {t["task"]: t["state"] for t in data["tasks"]}
    assert states["cluster"] == "interrupted" and states["kserve"] == "not started"
    assert data["interrupted"] is True and data["failure"]["phase"] == "cluster"
    assert "up was interrupted in phase cluster" in result.stderr and f"resume with: {RESUME}" in result.stderr
    # eksctl had handed the cluster stack to CloudFormation, which finishes the control plane alone
    sandbox.interrupted_create()

    # up again finishes the create; this time Ctrl-C comes while it waits for the InferenceService
    import _thread

    real_wait = serve.wait_ready

    def slow_wait(ctx, name):
        monkeypatch.setattr(serve, "wait_ready", real_wait)
        _thread.interrupt_main()
        for _ in range(200):
            ctx.clock.sleep(0.05)  # the task's clock: the wait ends here once Ctrl-C is counted
        return real_wait(ctx, name)

    monkeypatch.setattr(serve, "wait_ready", slow_wait)
    result, data = run_json(sandbox)
    assert result.exit_code == 130
    assert {t["task"]: t["state"] for t in data["tasks"]}["serve"] == "interrupted"
    cluster_actions = next(t for t in data["tasks"] if t["task"] == "cluster")["result"]["actions"]
    finished = [a.split(" -f ")[0] for a in cluster_actions if a.startswith("ran: eksctl")]
    assert finished == ["ran: eksctl utils associate-iam-oidc-provider", "ran: eksctl create addon",
                        "ran: eksctl create nodegroup"]

    resumed, data = run_json(sandbox)
    assert resumed.exit_code == 0, resumed.stderr
    assert sandbox.inventory()["inference services"] == 1 and sandbox.inventory()["eks clusters"] == 1


# == bad input ========================================================================================
@dataclass
class Calls:
    aws: list[str] = field(default_factory=list)
    kube: list[str] = field(default_factory=list)


@pytest.fixture
def guarded(monkeypatch, fake_tools, mock_aws):
    """Every AWS client kservectl builds and every Kubernetes request it makes is recorded."""
    from kservectl.aws import AwsClients
    from kservectl.kube import Kube

    calls = Calls()
    real_init, real_request = AwsClients.__init__, Kube._request

    def init(clients, *args, **kwargs):
        real_init(clients, *args, **kwargs)
        clients.observers.append(lambda service, op: calls.aws.append(f"{service}:{op}"))

    def request(kube, method, path, **kwargs):
        calls.kube.append(f"{method} {path}")
        return real_request(kube, method, path, **kwargs)

    monkeypatch.setattr(AwsClients, "__init__", init)
    monkeypatch.setattr(Kube, "_request", request)
    return calls


BAD_FILES = {
    "not yaml": ("cluster: [unclosed", "--config"),
    "unknown key": ("nodes:\n  desird: 3\n", "nodes.desird"),
    "a number as text": ("nodes:\n  desired: three\n", "nodes.desired"),
    "a bad region": ("cluster:\n  region: mars-1\n", "cluster.region"),
    "min above max": ("nodes:\n  min: 5\n  max: 2\n  desired: 3\n", "nodes.desired"),
    "a bad scheme": ("exposure:\n  scheme: public\n", "exposure.scheme"),
    "a model uri of another scheme": ("model:\n  uri: ftp://models/wine\n", "model.uri"),
    "a models: uri without a version": ("model:\n  uri: models:/wine\n", "model.uri"),
    "an s3 uri without a bucket": ("model:\n  uri: s3://\n", "model.uri"),
    "a bad model name": ("model:\n  name: Wine_Model\n", "model.name"),
    "scale to zero in standard mode": ("kserve:\n  mode: standard\nmodel:\n  min_replicas: 0\n",
                                       "model.min_replicas"),
}
BAD_FLAGS = {
    "an unknown phase for --from": (["--from", "network"], "--from"),
    "an unknown phase for --only": (["--only", "kserv"], "--only"),
    "an unknown phase for --skip": (["--skip", "everything"], "--skip"),
    "--from with --only": (["--from", "alb", "--only", "serve"], "--from or --only"),
    "every phase skipped": ([f"--skip={p}" for p in ("cluster", "alb", "kserve", "storage", "mlflow", "serve",
                                                        "test")], "nothing to run"),
    "a bad cluster name": (["-c", "-bad-"], "cluster.name"),
    "a bad region flag": (["-r", "moon-1"], "cluster.region"),
    "a missing config file": (["--config", "/no/such/kservectl.yaml"], "--config"),
    "an unknown provider": (["--provider", "gcp"], "--provider"),
    "phase options with the local provider": (["--provider", "local", "--only", "serve"], "--only"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_config_file_exits_2_naming_the_field_before_any_call(cli, guarded, fake_tools, tmp_path, case):
    text, named = BAD_FILES[case]
    path = tmp_path / "kservectl.yaml"
    path.write_text(text)
    result = cli("up", "--config", str(path))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert named in result.stderr
    assert guarded.aws == [] and guarded.kube == [] and fake_tools.records() == []


@pytest.mark.parametrize("case", BAD_FLAGS, ids=list(BAD_FLAGS))
def test_a_bad_flag_exits_2_naming_it_before_any_call(cli, guarded, fake_tools, case):
    args, named = BAD_FLAGS[case]
    result = cli("up", *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert named in result.stderr
    assert guarded.aws == [] and guarded.kube == [] and fake_tools.records() == []


@pytest.mark.parametrize("variable,value,named", [
    ("KSERVECTL_MODEL_URI", "http://example.com/model", "model.uri"),
    ("KSERVECTL_NODES_DESIRED", "many", "nodes.desired"),
    ("KSERVECTL_MLFLOW_PUBLIC", "perhaps", "mlflow.public"),
])
def test_a_bad_environment_value_exits_2_naming_the_field_before_any_call(cli, guarded, fake_tools, monkeypatch,
                                                                          variable, value, named):
    monkeypatch.setenv(variable, value)
    result = cli("up")
    assert result.exit_code == 2 and named in result.stderr
    assert guarded.aws == [] and guarded.kube == [] and fake_tools.records() == []
