"""``kservectl up`` and ``plan``: the task graph as data, the scheduler (needs, concurrency, the
first failure, Ctrl-C), phase options, retries of transient failures, the failure report and the
resume command, the progress view, ``up --dry-run`` and ``plan --diff`` / the cost estimate.
The whole flow end to end is tests/test_reliability.py."""

from __future__ import annotations

import _thread
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kservectl import config
from kservectl.aws import is_mutating
from kservectl.clock import FakeClock, StoppableClock, SystemClock
from kservectl.context import Context
from kservectl.errors import AwsError, KservectlError, KubeError, ToolError, UsageError
from kservectl.events import RecordingReporter
from kservectl.phases import ORDER, up
from kservectl.settings import Backoff, Settings


def make_ctx(**flags: Any) -> Context:
    loaded = config.load(env={}, cwd=Path("/nonexistent"), flags=flags)
    settings = Settings(phase_retry=Backoff(attempts=3, initial=1.0, maximum=4.0), interrupt_grace=5.0)
    return Context(config=loaded.config, settings=settings, clock=FakeClock(), reporter=RecordingReporter(),
                   command="up")


class Node:
    def __init__(self, name: str, needs: tuple[str, ...] = (), seconds: float = 0.0, fail: bool = False) -> None:
        self.name, self.needs, self.seconds, self.fail = name, needs, seconds, fail


class Recorder:
    """A ``work`` function that sleeps, records start and end, and fails when told."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def __call__(self, node: Node) -> str:
        with self._lock:
            self.started[node.name] = time.monotonic() - self.t0
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(node.seconds)
            if node.fail:
                raise KservectlError(f"{node.name} broke")
            return f"{node.name} ok"
        finally:
            with self._lock:
                self.running -= 1
                self.ended[node.name] = time.monotonic() - self.t0


# == the scheduler ==================================================================================
def test_a_task_starts_as_soon_as_everything_it_needs_is_done():
    work = Recorder()
    after_quick_began = threading.Event()

    def gated(node: Node) -> str:
        if node.name == "after-quick":
            after_quick_began.set()
        if node.name == "slow":  # slow until after-quick has begun (or 30 s, if it waited for slow)
            after_quick_began.wait(30)
        return work(node)

    nodes = [Node("slow", seconds=0.05), Node("quick", seconds=0.05), Node("after-quick", ("quick",)),
             Node("after-both", ("slow", "quick"))]
    outcome = up.schedule(nodes, gated)
    assert outcome.ok and outcome.states == dict.fromkeys(("slow", "quick", "after-quick", "after-both"), "done")
    assert work.started["after-quick"] < work.ended["slow"]  # did not wait for the unrelated slow task
    assert work.started["after-both"] >= work.ended["slow"] and work.started["after-both"] >= work.ended["quick"]
    assert outcome.values["after-both"] == "after-both ok"


def test_no_more_than_max_workers_tasks_run_at_once():
    work = Recorder()
    outcome = up.schedule([Node(f"t{i}", seconds=0.1) for i in range(6)], work, max_workers=2)
    assert outcome.ok and work.most == 2


def test_the_first_failure_stops_scheduling_and_lets_the_running_tasks_finish():
    work = Recorder()
    nodes = [Node("breaks", seconds=0.05, fail=True), Node("long", seconds=0.3), Node("needs-broken", ("breaks",)),
             Node("needs-long", ("long",))]
    outcome = up.schedule(nodes, work)
    assert outcome.states == {"breaks": "failed", "long": "done", "needs-broken": "not started",
                              "needs-long": "not started"}
    assert str(outcome.errors["breaks"]) == "breaks broke" and not outcome.ok
    assert "needs-long" not in work.started  # `long` finished after the failure: nothing new started


def test_ctrl_c_stops_the_run_and_a_running_task_ends_at_its_next_checkpoint():
    stop = threading.Event()
    clock = StoppableClock(SystemClock(), stop)
    ended: list[str] = []

    def work(node: Node) -> None:
        if node.name == "waits":
            threading.Timer(0.1, _thread.interrupt_main).start()
            try:
                clock.sleep(60)  # a long wait, ended at once by Ctrl-C
            except KeyboardInterrupt:
                ended.append("by the checkpoint")
                raise

    started = time.monotonic()
    outcome = up.schedule([Node("waits"), Node("next", ("waits",))], work, grace=30.0, stop=stop)
    assert time.monotonic() - started < 10  # neither the 60 s wait nor the 30 s grace was sat out
    assert outcome.interrupted and outcome.states == {"waits": "interrupted", "next": "not started"}
    assert ended == ["by the checkpoint"] and stop.is_set()


def test_a_task_that_never_looks_at_stop_is_reported_interrupted_when_the_grace_ends():
    release = threading.Event()

    def work(node: Node) -> None:
        threading.Timer(0.1, _thread.interrupt_main).start()
        release.wait(60)  # no checkpoint: only the grace ends the waiting for it

    started = time.monotonic()
    try:
        outcome = up.schedule([Node("deaf")], work, grace=1.0)
        waited = time.monotonic() - started
    finally:
        release.set()
    assert outcome.interrupted and outcome.states == {"deaf": "interrupted"}
    assert 1.0 <= waited < 30  # the grace, not the task's 60 s


def test_a_real_sigint_is_counted_by_a_handler_while_tasks_run_and_the_default_comes_back_after():
    import os
    import signal

    seen: list[Any] = []
    stop = threading.Event()
    clock = StoppableClock(SystemClock(), stop)

    def work(node: Node) -> None:
        seen.append(signal.getsignal(signal.SIGINT))  # (read from a worker thread: no exception can land here)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        clock.sleep(60)

    before = signal.getsignal(signal.SIGINT)
    outcome = up.schedule([Node("waits")], work, grace=30.0, stop=stop)
    assert outcome.interrupted and outcome.states == {"waits": "interrupted"}
    assert seen[0] is not before  # a handler counted the press: no KeyboardInterrupt can be lost
    assert signal.getsignal(signal.SIGINT) is before


def test_a_graph_with_an_unknown_need_or_a_cycle_is_refused_before_anything_runs():
    work = Recorder()
    with pytest.raises(ValueError, match="task a needs unknown task"):
        up.schedule([Node("a", ("ghost",))], work)
    with pytest.raises(ValueError, match="the task graph has a cycle: a -> b -> a"):
        up.schedule([Node("a", ("b",)), Node("b", ("a",))], work)
    assert work.started == {}


def test_the_critical_path_is_the_longest_chain_of_needs():
    durations = {"cluster": 14.0, "bucket": 1.0, "alb": 2.0, "kserve": 6.0, "storage": 0.5, "serve": 2.0}
    needs = {"alb": ["cluster"], "kserve": ["alb"], "storage": ["cluster", "bucket"],
             "serve": ["kserve", "storage"]}
    assert up.critical_path(durations, needs) == (24.0, ["cluster", "alb", "kserve", "serve"])


# == the graph and the phase options ================================================================
def test_the_bucket_and_the_iam_policies_need_no_cluster_and_run_while_eksctl_creates_it():
    graph = {t.name: t for t in up.tasks(make_ctx())}
    assert list(graph) == ["cluster", "alb/policy", "alb", "kserve", "storage/bucket", "storage/policies", "storage",
                           "mlflow", "serve", "test"]
    assert graph["storage/bucket"].needs == () and graph["alb/policy"].needs == () and graph["cluster"].needs == ()
    assert graph["storage/policies"].needs == ("storage/bucket",)  # its owner is checked first; no cluster
    assert graph["alb"].needs == ("cluster", "alb/policy")
    assert graph["kserve"].needs == ("alb",)  # the controller's webhook must serve before the gateway Service
    assert graph["storage"].needs == ("cluster", "storage/bucket", "storage/policies")  # roles trust the OIDC
    assert graph["mlflow"].needs == ("cluster", "storage")
    assert graph["serve"].needs == ("kserve", "mlflow", "storage") and graph["test"].needs == ("serve",)
    assert {t.phase for t in graph.values()} == set(ORDER)


def test_a_public_mlflow_waits_for_the_load_balancer_controller():
    graph = {t.name: t for t in up.tasks(make_ctx(**{"mlflow.public": True}))}
    assert "alb" in graph["mlflow"].needs


@pytest.mark.parametrize("options,chosen,needs", [
    ({"start": "kserve"}, ["kserve", "storage/bucket", "storage/policies", "storage", "mlflow", "serve", "test"],
     {"kserve": (), "storage": ("storage/bucket", "storage/policies"), "serve": ("kserve", "mlflow", "storage")}),
    ({"only": ["storage"]}, ["storage/bucket", "storage/policies", "storage"],
     {"storage": ("storage/bucket", "storage/policies")}),
    ({"only": ["alb", "kserve"]}, ["alb/policy", "alb", "kserve"], {"alb": ("alb/policy",), "kserve": ("alb",)}),
    ({"skip": ["test", "serve"]}, ["cluster", "alb/policy", "alb", "kserve", "storage/bucket", "storage/policies",
                                   "storage", "mlflow"],
     {"mlflow": ("cluster", "storage")}),
])
def test_from_only_and_skip_choose_phases_and_drop_needs_on_the_phases_left_out(options, chosen, needs):
    selected = up.select(up.tasks(make_ctx()), **options)
    assert [t.name for t in selected] == chosen
    by_name = {t.name: t for t in selected}
    for name, expected in needs.items():
        assert by_name[name].needs == expected


@pytest.mark.parametrize("options,message", [
    ({"start": "network"}, "--from 'network' is not a phase; phases are cluster, alb, kserve"),
    ({"only": ["kserv"]}, "--only 'kserv' is not a phase"),
    ({"skip": ["all"]}, "--skip 'all' is not a phase"),
    ({"start": "alb", "only": ["serve"]}, "give either --from or --only, not both"),
    ({"skip": list(ORDER)}, "nothing to run: the phase options leave out every phase"),
])
def test_bad_phase_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        up.select(up.tasks(make_ctx()), **options)


# == running: retries, failures, the report =========================================================
def fake_graph(fns: dict[str, Any], needs: dict[str, tuple[str, ...]] | None = None):
    def graph(ctx: Context, *, yes: bool = False, access: Any = None) -> list[up.Task]:
        return [up.Task(name, name.split("/")[0], (needs or {}).get(name, ()), fn, f"the {name} phase")
                for name, fn in fns.items()]

    return graph


@pytest.fixture
def no_preflight(monkeypatch):
    monkeypatch.setattr(up, "preflight", lambda ctx, chosen: {})


def test_a_transient_failure_runs_the_phase_again_with_backoff_and_bounded_attempts(no_preflight):
    ctx = make_ctx()
    calls = {"storage": 0, "mlflow": 0}

    def flaky(c: Context) -> dict:
        calls["storage"] += 1
        if calls["storage"] < 3:
            raise KubeError("GET /api/v1/namespaces/mlflow returned 503: unavailable", status=503)
        return {"ok": True}

    def always(c: Context) -> dict:
        calls["mlflow"] += 1
        raise AwsError("iam:CreateRole", "Throttling", "Rate exceeded")

    events: list[up.Event] = []
    result = up.run(ctx, only=["storage", "mlflow"], listener=events.append,
                    graph=fake_graph({"storage": flaky, "mlflow": always}))
    rows = {t.name: t for t in result.tasks}
    assert rows["storage"].state == "done" and rows["storage"].attempts == 3
    assert rows["mlflow"].state == "failed" and calls["mlflow"] == 3  # bounded
    assert ctx.clock.sleeps.count(1.0) == 2 and 2.0 in ctx.clock.sleeps  # backoff, on the injected clock
    retries = [e.text for e in events if e.kind == "retry" and e.task == "storage"]
    assert retries[0].endswith("running the phase again in 1s (attempt 2/3)")


def test_a_permanent_failure_is_not_retried_and_the_report_names_phase_step_output_log_and_resume(no_preflight):
    ctx = make_ctx(**{"cluster.name": "ml", "cluster.region": "eu-west-1"})

    def kserve(c: Context) -> dict:
        c.reporter.step("kserve", "install cert-manager v1.17.0 as cert-manager/cert-manager")
        c.reporter.tool_line("helm", "stdout", "Release \"cert-manager\" does not exist. Installing it now.")
        raise ToolError(["helm", "upgrade", "--install", "cert-manager"], 1, ["Error: chart not found"])

    events: list[up.Event] = []
    result = up.run(ctx, only=["kserve", "storage"], listener=events.append, config_path=Path("/etc/k.yaml"),
                    graph=fake_graph({"kserve": kserve, "storage": lambda c: {"done": 1}}))
    assert not result.ok and result.failure is not None
    f = result.failure
    assert (f["task"], f["phase"], f["state"]) == ("kserve", "kserve", "failed")
    assert f["step"] == "install cert-manager v1.17.0 as cert-manager/cert-manager"
    assert f["error"].startswith("`helm upgrade --install cert-manager` exited with code 1: Error: chart not found")
    assert f["tool_output"] == ["Error: chart not found"]
    assert f["log"] == str(ctx.log_path) and f["log"].endswith("-up.log")
    assert f["resume"] == "kservectl up -c ml -r eu-west-1 --config /etc/k.yaml"
    assert {t.name: t.attempts for t in result.tasks}["kserve"] == 1
    kinds = [(e.kind, e.task) for e in events if e.task == "kserve"]
    assert kinds == [("start", "kserve"), ("step", "kserve"), ("line", "kserve"), ("failed", "kserve")]


def test_after_ctrl_c_a_task_makes_no_further_aws_call(no_preflight, mock_aws):
    import boto3

    ctx = make_ctx()
    refused: list[str] = []

    def storage(c: Context) -> dict:
        c.aws.client("s3").list_buckets()  # before Ctrl-C: goes out
        threading.Timer(0.05, _thread.interrupt_main).start()
        assert c.clock.stop.wait(10)  # the task's clock carries the run's stop event
        try:
            c.aws.client("s3").create_bucket(Bucket="made-after-ctrl-c",
                                             CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        except KeyboardInterrupt:
            refused.append("CreateBucket")
            raise
        return {}

    result = up.run(ctx, only=["storage"], graph=fake_graph({"storage": storage}))
    assert result.interrupted and {t.name: t.state for t in result.tasks}["storage"] == "interrupted"
    assert refused == ["CreateBucket"]
    assert boto3.client("s3", region_name="us-west-2").list_buckets()["Buckets"] == []  # never reached AWS


def test_the_result_as_json_has_timings_tasks_failure_urls_cost_and_the_resume_command(no_preflight, mock_aws):
    ctx = make_ctx()
    result = up.run(ctx, only=["storage"], graph=fake_graph({"storage/bucket": lambda c: {"bucket": "b"},
                                                             "storage": lambda c: {"roles": 2}},
                                                            {"storage": ("storage/bucket",)}))
    data = result.as_dict()
    assert set(data) == {"provider", "cluster", "region", "ok", "interrupted", "timing", "tasks", "failure",
                         "urls", "cost", "test", "log", "resume"}
    assert data["ok"] is True and data["failure"] is None and data["urls"] is None
    assert set(data["timing"]) == {"wall_s", "sequential_s", "critical_path_s", "critical_path"}
    assert data["timing"]["critical_path"] == ["storage/bucket", "storage"]
    assert data["tasks"][1] == {"task": "storage", "phase": "storage", "needs": ["storage/bucket"],
                                "describe": "the storage phase", "state": "done",
                                "started_s": data["tasks"][1]["started_s"], "elapsed_s": 0.0, "attempts": 1,
                                "step": None, "error": None, "result": {"roles": 2}}
    assert data["cost"]["basis"] == "what exists" and data["cost"]["prices_as_of"]
    assert data["cost"]["total"]["monthly"] == 0 and data["cost"]["notes"] == [
        "nothing of cluster kservectl that is billed by the hour exists in us-west-2"]
    assert data["resume"] == "kservectl up -c kservectl -r us-west-2"


def test_the_failure_and_the_json_mask_a_secret_the_redactor_knows(no_preflight):
    secret = "s3cr3t-Passw0rd-xyz"
    ctx = make_ctx()
    ctx.redactor.add(secret)

    def mlflow(c: Context) -> dict:
        c.reporter.step("mlflow", f"creating the admin user with {secret}")
        c.reporter.tool_line("helm", "stdout", f"rendered value {secret}")
        raise ToolError(["helm", "upgrade", "--install", "mlflow"], 1, [f"Error: bad value {secret}"])

    def storage(c: Context) -> dict:
        raise KservectlError(f"the database URI postgresql://mlflow@db/{secret} is refused")

    events: list[up.Event] = []
    result = up.run(ctx, only=["mlflow", "storage"], listener=events.append,
                    graph=fake_graph({"mlflow": mlflow, "storage": storage}))
    data = result.as_dict()
    failure = data["failure"]
    assert failure["tool_output"] == ["Error: bad value <redacted>"]
    assert "<redacted>" in failure["error"] and "<redacted>" in failure["others"][0]["error"]
    assert failure["step"] == "creating the admin user with <redacted>"
    assert secret not in json.dumps(data, default=str)
    assert [e.text for e in events if e.kind == "line"] == ["helm: rendered value <redacted>"]
    assert not [e for e in events if secret in e.text]  # the view draws these


def test_up_prints_no_secret_of_a_failed_phase_on_stdout_or_stderr(cli, fake_platform, monkeypatch):
    secret = "hunter2-hunter2-hunter2"
    real_tasks = up.tasks

    def leaky(c: Context) -> dict:
        c.redactor.add(secret)  # as a phase does with a password it generates
        raise KservectlError(f"MLflow refused the password {secret}")

    def tasks(ctx, *, yes=False, access=None):
        return [up.Task(t.name, t.phase, t.needs, leaky if t.name == "mlflow" else t.fn, t.describe)
                for t in real_tasks(ctx, yes=yes)]

    monkeypatch.setattr(up, "tasks", tasks)
    result = cli("up", "--only", "mlflow", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failure"]["error"] == "MLflow refused the password <redacted>"
    assert "error: MLflow refused the password <redacted>" in result.stderr
    assert secret not in result.stdout and secret not in result.stderr


def test_each_task_gets_its_own_reporter_and_runner_copy_but_shares_config_clock_log_and_aws():
    ctx = make_ctx()
    ctx.aws = object()
    task = up.Task("alb", "alb", (), lambda c: {})
    reporter = up.TaskReporter(task, lambda event: None)
    tctx = up.task_context(ctx, reporter)
    assert tctx.reporter is reporter and tctx.runner is not ctx.runner and tctx.runner.sink == reporter.tool_line
    assert tctx.config is ctx.config and tctx.clock is ctx.clock and tctx.aws is ctx.aws
    assert tctx.log_path == ctx.log_path


@pytest.mark.parametrize("error,transient", [
    (AwsError("iam:CreatePolicy", "Throttling", "Rate exceeded"), True),
    (AwsError("s3:PutBucketPolicy", "SlowDown", "reduce your request rate"), True),
    (AwsError("iam:CreatePolicy", "AccessDenied", "not authorized"), False),
    (KubeError("POST ... returned 500: failed calling webhook", status=500), True),
    (KubeError("GET ... returned 429", status=429), True),
    (KubeError("cannot reach the Kubernetes API"), True),
    (KubeError("POST ... returned 403: forbidden", status=403), False),
    (KubeError("POST ... returned 422: invalid", status=422), False),
    (ToolError(["helm"], 1, ["Error: timed out"], transient=True), False),  # the runner retried it already
])
def test_only_transient_errors_run_a_phase_again(error, transient):
    assert up.is_transient(error) is transient


def test_the_preflight_checks_the_tools_the_chosen_phases_run_and_the_aws_identity(fake_tools, mock_aws,
                                                                                    monkeypatch, tmp_path):
    ctx = make_ctx()
    found = up.preflight(ctx, up.select(up.tasks(ctx), only=["alb"]))
    assert found["tools"] == {"eksctl": "0.230.0", "helm": "4.1.4"} and found["account_id"] == "123456789012"
    assert up.preflight(ctx, up.select(up.tasks(ctx), only=["storage"]))["tools"] == {}
    import sys

    (tmp_path / "python3").symlink_to(sys.executable)  # for the fakes' shebang; no kubectl on this PATH
    monkeypatch.setenv("PATH", f"{fake_tools.bin_dir}:{tmp_path}")
    with pytest.raises(KservectlError, match="kubectl was not found on PATH"):
        up.preflight(make_ctx(), up.select(up.tasks(ctx), only=["kserve"]))


def test_an_explicit_tracking_uri_is_used_without_opening_a_port_forward():
    access = up.MlflowAccess("http://mlflow.example.com:5000/")
    ctx = make_ctx()
    assert access.uri(ctx) == "http://mlflow.example.com:5000" and access.known(ctx) == access.explicit
    access.close(ctx)  # nothing was opened


# == the command =====================================================================================
@pytest.fixture
def fake_platform(monkeypatch, no_preflight):
    """`up` with the real graph's shape but phases that only record that they ran."""
    ran: list[str] = []
    real_tasks = up.tasks

    def tasks(ctx: Context, *, yes: bool = False, access: Any = None) -> list[up.Task]:
        def fn(name: str):
            def run(c: Context) -> dict:
                c.reporter.step(name.split("/")[0], f"doing {name}")
                if name in fail:
                    raise KservectlError(f"{name} cannot go on", hint="fix it")
                ran.append(name)
                return {"did": name}
            return run

        return [up.Task(t.name, t.phase, t.needs, fn(t.name), t.describe) for t in real_tasks(ctx, yes=yes)]

    fail: set[str] = set()
    monkeypatch.setattr(up, "tasks", tasks)
    monkeypatch.setattr("kservectl.phases.serve.urls", lambda ctx, **kw: {
        "gateway": {"hostname": "k8s-nlb.elb.us-west-2.amazonaws.com"}, "mlflow": {"url": None,
        "port_forward": "kubectl port-forward service/mlflow 5000:5000", "port_forward_url": "http://localhost:5000"},
        "services": [{"name": "wine", "url": "http://wine-predictor.models.example.com", "host_header":
                      "wine-predictor.models.example.com", "v2_infer_url": "http://k8s-nlb/v2/models/wine/infer"}]})
    return ran, fail


def test_up_runs_every_phase_and_prints_timings_urls_and_the_monthly_cost(cli, fake_platform, mock_aws):
    ran, _ = fake_platform
    result = cli("up")
    assert result.exit_code == 0, result.stderr
    assert sorted(ran) == sorted(["cluster", "alb/policy", "alb", "kserve", "storage/bucket", "storage/policies",
                                  "storage", "mlflow", "serve", "test"])
    assert ran.index("alb") > ran.index("cluster") and ran.index("test") == len(ran) - 1
    out = result.stdout
    assert "kservectl up: phase timings" in out and "critical path" in out
    assert "model wine: http://k8s-nlb/v2/models/wine/infer (Host: wine-predictor.models.example.com)" in out
    assert "estimated cost of what now runs: $" in out and "/month" in out
    assert "[alb] doing alb" in result.stderr and "[test] done in" in result.stderr


def test_up_only_and_skip_run_just_those_phases(cli, fake_platform):
    ran, _ = fake_platform
    assert cli("up", "--only", "storage", "--only", "mlflow", "-o", "json").exit_code == 0
    assert sorted(ran) == ["mlflow", "storage", "storage/bucket", "storage/policies"]
    ran.clear()
    assert cli("up", "--from", "serve").exit_code == 0
    assert ran == ["serve", "test"]
    ran.clear()
    result = cli("up", "--skip", "test", "-o", "json")
    assert "test" not in ran and {t["task"]: t["state"] for t in json.loads(result.stdout)["tasks"]}["test"] == \
        "excluded"


def test_a_failed_phase_exits_1_printing_the_phase_step_log_and_the_resume_command(cli, fake_platform, tmp_path):
    _, fail = fake_platform
    fail.add("kserve")
    path = tmp_path / "kservectl.yaml"
    path.write_text("cluster:\n  name: ml\n")
    result = cli("up", "--config", str(path), "-r", "eu-west-1", "-o", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["failure"]["phase"] == "kserve" and data["failure"]["step"] == "doing kserve"
    err = result.stderr
    assert "up failed in phase kserve (task kserve) at step: doing kserve" in err
    assert "error: kserve cannot go on (fix it)" in err and "log: " in err
    assert f"resume with: kservectl up -c ml -r eu-west-1 --config {path}" in err
    states = {t["task"]: t["state"] for t in data["tasks"]}
    assert states["serve"] == "not started" and states["kserve"] == "failed"


def test_ctrl_c_during_up_exits_130_naming_the_interrupted_phase(cli, fake_platform, monkeypatch):
    real_tasks = up.tasks

    def tasks(ctx, *, yes=False, access=None):
        def wait(c):
            threading.Timer(0.1, _thread.interrupt_main).start()
            for _ in range(300):
                c.clock.sleep(0.01)  # the task's clock: Ctrl-C ends the wait here
                time.sleep(0.01)  # (real time passes even if the clock were a fake one)
            return {}
        return [up.Task(t.name, t.phase, t.needs, wait if t.name == "cluster" else t.fn, t.describe)
                for t in real_tasks(ctx, yes=yes)]

    monkeypatch.setattr(up, "tasks", tasks)
    result = cli("up", "-o", "json")
    assert result.exit_code == 130
    assert "up was interrupted in phase cluster (task cluster)" in result.stderr
    assert "resume with: kservectl up -c kservectl -r us-west-2" in result.stderr
    assert {t["task"]: t["state"] for t in json.loads(result.stdout)["tasks"]}["alb"] == "not started"


def test_up_dry_run_says_what_each_resource_would_get_and_makes_no_mutating_call(cli, mock_aws, monkeypatch):
    from kservectl.aws import AwsClients

    seen: list[str] = []
    real_init = AwsClients.__init__

    def init(clients, *args, **kwargs):
        real_init(clients, *args, **kwargs)
        clients.observers.append(lambda service, op: seen.append(op))

    monkeypatch.setattr(AwsClients, "__init__", init)
    result = cli("up", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["phases"] == list(ORDER)
    actions = {r["resource"]: r["action"] for r in data["changes"]}
    assert actions["EKS cluster kservectl (us-west-2)"] == "create"
    assert actions["S3 bucket kservectl-kservectl-123456789012-us-west-2"] == "create"
    assert set(actions.values()) == {"create"}
    assert seen and not [op for op in seen if is_mutating(op)]
    table = cli("up", "--dry-run", "--only", "storage")
    assert "(dry run) nothing was changed" in table.stdout and "EKS cluster" not in table.stdout


def test_the_local_provider_still_runs_its_own_up_and_refuses_the_eks_phase_options(cli, monkeypatch):
    from types import SimpleNamespace

    from kservectl.local import platform

    monkeypatch.setattr(platform, "up", lambda ctx: SimpleNamespace(
        tracking_uri="http://127.0.0.1:5001", actions=["started MLflow"], models=[], report=None))
    result = cli("up", "--provider", "local", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["provider"] == "local"
    refused = cli("up", "--provider", "local", "--from", "serve")
    assert refused.exit_code == 2 and "--from applies to the EKS provider" in refused.stderr


# == plan: cost and --diff ===========================================================================
def test_plan_prices_every_resource_per_hour_day_and_month_with_the_table_date_and_source(cli, no_network):
    result = cli("plan", "-r", "eu-central-1", "-o", "json")
    assert result.exit_code == 0 and no_network == []
    cost = json.loads(result.stdout)["cost"]
    assert cost["region"] == "eu-central-1" and cost["prices_as_of"]
    item = next(i for i in cost["items"] if i["resource"] == "EKS control plane")
    assert item["hourly"] == 0.1 and item["daily"] == 2.4 and item["monthly"] == 73.0
    assert item["estimate"] is True and item["source"] and item["date"]  # not a region the sources cover
    assert json.loads(result.stdout)["diff"] is None
    table = cli("plan", "-r", "us-east-1")
    assert "estimated cost in us-east-1" in table.stdout and "per month" in table.stdout
    assert "[1] AWS containers blog" in table.stdout and "* estimate" not in table.stdout
    marked = cli("plan", "-r", "eu-central-1")
    assert "EKS control plane*" in marked.stdout and "* estimate: the price table has no figure" in marked.stdout


def test_plan_diff_without_a_cluster_says_create_for_everything_and_changes_nothing(cli, mock_aws, monkeypatch):
    from kservectl.aws import AwsClients

    seen: list[str] = []
    real_init = AwsClients.__init__

    def init(clients, *args, **kwargs):
        real_init(clients, *args, **kwargs)
        clients.observers.append(lambda service, op: seen.append(op))

    monkeypatch.setattr(AwsClients, "__init__", init)
    result = cli("plan", "--diff", "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["diff"]
    assert {r["phase"] for r in rows} == {"cluster", "alb", "kserve", "storage", "mlflow", "serve"}
    assert {r["action"] for r in rows} == {"create"}
    assert "Helm release kserve/kserve" in {r["resource"] for r in rows}
    assert not [op for op in seen if is_mutating(op)]
    table = cli("plan", "--diff")
    assert "what exists already" in table.stdout and " to create" in table.stdout


def test_plan_diff_needs_credentials(cli, monkeypatch):
    result = cli("plan", "--diff")
    assert result.exit_code == 1 and "no AWS credentials found" in result.stderr


# == the cost of what exists ==========================================================================
def billed_world(desired: int = 5, instance_type: str = "t3.large") -> dict[str, Any]:
    """In moto: cluster kservectl with its node group scaled to ``desired`` (the config says 3
    m5.xlarge), its gateway NLB, a NAT gateway and a loose volume; and another cluster's NLB."""
    import boto3

    ec2, eks, elbv2 = (boto3.client(s, region_name="us-west-2") for s in ("ec2", "eks", "elbv2"))
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-west-2{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    role = "arn:aws:iam::123456789012:role/node"
    eks.create_cluster(name="kservectl", roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    eks.create_nodegroup(clusterName="kservectl", nodegroupName="ng-default", nodeRole=role, subnets=subnets,
                         scalingConfig={"minSize": 1, "maxSize": 6, "desiredSize": desired},
                         instanceTypes=[instance_type], diskSize=80)
    for cluster_name in ("kservectl", "kservectl-2"):
        elbv2.create_load_balancer(Name=f"k8s-{cluster_name}", Subnets=subnets, Type="network",
                                   Scheme="internet-facing",
                                   Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": cluster_name}])
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip, TagSpecifications=[{
        "ResourceType": "natgateway", "Tags": [{"Key": "alpha.eksctl.io/cluster-name", "Value": "kservectl"}]}])
    volume = ec2.create_volume(Size=10, AvailabilityZone="us-west-2a", VolumeType="gp3", TagSpecifications=[{
        "ResourceType": "volume", "Tags": [{"Key": "kservectl.io/cluster", "Value": "kservectl"}]}])
    return {"eks": eks, "nat": nat["NatGateway"]["NatGatewayId"], "volume": volume["VolumeId"]}


def test_the_cost_after_up_prices_what_exists_at_its_actual_size_not_the_config(mock_aws):
    from kservectl import costs

    world = billed_world(desired=5, instance_type="t3.large")
    ctx = make_ctx()
    cost = up.running_cost(ctx)
    assert cost["basis"] == "what exists" and cost["notes"] == []
    items = {i["resource"]: i for i in cost["items"]}
    assert set(items) == {"EKS control plane", "nodes (t3.large)", "node root volumes (gp3)", "NLB k8s-kservectl",
                          f"NAT gateway {world['nat']}", f"EBS volume {world['volume']} (gp3)",
                          "public IPv4 addresses of the NLBs"}  # not the other cluster's NLB
    nodes = items["nodes (t3.large)"]
    assert nodes["quantity"] == 5 and nodes["detail"].startswith("node group ng-default: desired 5 (min 1, max 6)")
    t3 = costs.price(costs.INSTANCE, "us-west-2", instance_type="t3.large").monthly
    assert nodes["monthly"] == round(5 * t3, 2)
    assert items["node root volumes (gp3)"]["detail"] == "80 GiB each"
    assert items["public IPv4 addresses of the NLBs"]["quantity"] == 3  # 3 zones per internet-facing NLB
    assert cost["total"]["monthly"] == pytest.approx(sum(i["monthly"] for i in cost["items"]), abs=0.02)
    assert cost["total"]["monthly"] != costs.platform_estimate(ctx.config).as_dict()["total"]["monthly"]

    world["eks"].update_nodegroup_config(clusterName="kservectl", nodegroupName="ng-default",
                                         scalingConfig={"desiredSize": 2})  # scaled in by hand
    scaled = up.running_cost(ctx)
    gp3_80 = costs.price("ebs-gp3", "us-west-2", gb=80).monthly
    assert {i["resource"]: i["quantity"] for i in scaled["items"]}["nodes (t3.large)"] == 2
    assert scaled["total"]["monthly"] == pytest.approx(cost["total"]["monthly"] - 3 * (t3 + gp3_80), abs=0.02)


def test_without_readable_aws_the_cost_is_the_config_estimate_and_says_so():
    from kservectl import costs

    cost = up.running_cost(make_ctx())  # no credentials at all
    assert cost["basis"] == "config"
    assert cost["total"] == costs.platform_estimate(make_ctx().config).as_dict()["total"]
    assert cost["notes"] == [
        "what exists could not be read (AWS eks:DescribeCluster failed with NoCredentials: no AWS credentials found "
        "(run `aws configure` or set AWS_PROFILE)): this is the estimate of the configured platform, as "
        "`kservectl plan` prints it"]


def test_a_failed_up_prints_the_cost_of_what_exists_at_that_moment(cli, fake_platform, mock_aws):
    import boto3

    _, fail = fake_platform
    fail.add("kserve")
    boto3.client("eks", region_name="us-west-2").create_cluster(
        name="kservectl", roleArn="arn:aws:iam::123456789012:role/x", resourcesVpcConfig={"subnetIds": []})
    result = cli("up")
    assert result.exit_code == 1
    assert "estimated cost of what exists now (up did not finish): $73.00/month" in result.stdout
    assert "EKS control plane: $73.00/month (cluster kservectl, ACTIVE" in result.stdout
    data = json.loads(cli("up", "-o", "json").stdout)
    assert data["ok"] is False and data["cost"]["basis"] == "what exists"
    assert [i["resource"] for i in data["cost"]["items"]] == ["EKS control plane"]


def test_up_says_when_its_cost_is_the_config_estimate(cli, fake_platform):
    result = cli("up")  # no AWS credentials: what exists cannot be read
    assert result.exit_code == 0
    assert "estimated cost of the configured platform (what exists could not be read): $" in result.stdout
    assert "note: what exists could not be read (AWS" in result.stdout


# == the view ========================================================================================
def test_the_plain_view_prints_starts_steps_retries_and_ends_but_not_tool_output(capsys):
    from kservectl.cli.up_view import UpView

    graph = up.tasks(make_ctx())
    view = UpView(graph, {t.name for t in graph}, live=False)
    with view:
        for event in (up.Event("start", "cluster", "cluster", "EKS cluster"),
                      up.Event("step", "cluster", "cluster", "creating cluster kservectl with eksctl"),
                      up.Event("line", "cluster", "cluster", "eksctl: building cluster stack"),
                      up.Event("retry", "cluster", "cluster", "503; running the phase again", 2),
                      up.Event("done", "cluster", "cluster", "1.0s")):
            view(event)
    err = capsys.readouterr().err
    assert "[cluster] started: EKS cluster" in err and "[cluster] creating cluster kservectl with eksctl" in err
    assert "[cluster] transient failure: 503" in err and "[cluster] done in 1.0s" in err
    assert "building cluster stack" not in err
    assert view.rows["cluster"].state == "done" and view.rows["alb"].state == "pending"


def test_the_live_view_shows_each_phase_state_time_step_and_the_tail_of_the_tool_output():
    from rich.console import Console

    from kservectl.cli.up_view import UpView

    graph = up.tasks(make_ctx())
    view = UpView(graph, {t.name for t in graph} - {"test"}, live=False)
    view._console = Console(record=True, width=120)
    view(up.Event("start", "cluster", "cluster"))
    view(up.Event("step", "cluster", "cluster", "creating cluster kservectl with eksctl (about 20 minutes)"))
    view(up.Event("line", "cluster", "cluster", "eksctl: waiting for CloudFormation stack"))
    view(up.Event("start", "storage/bucket", "storage"))
    view(up.Event("done", "storage/bucket", "storage"))
    console = Console(record=True, width=120)
    console.print(view.render())
    text = console.export_text()
    assert "cluster" in text and "running" in text and "creating cluster kservectl with eksctl" in text
    assert "storage/bucket" in text and "done" in text
    assert "test" in text and "skipped" in text
    assert "cluster output:" in text and "eksctl: waiting for CloudFormation stack" in text


# == resuming an interrupted eksctl create ============================================================
def test_an_interrupted_create_of_our_cluster_is_finished_and_a_foreign_cluster_is_left_alone():
    from kservectl.phases import cluster

    ctx = make_ctx()
    ctx.dry_run = True
    ours = {"name": "kservectl", "status": "ACTIVE", "tags": {"kservectl.io/cluster": "kservectl"}}
    assert cluster.finish_interrupted_create(ctx, {**ours, "tags": {}}, []) == []  # not ours: drift only
    assert cluster.finish_interrupted_create(ctx, ours, [{"nodegroupName": "ng-other"}]) == []  # has nodes
    done = cluster.finish_interrupted_create(ctx, ours, [])
    assert [d.split(" -f ")[0] for d in done] == ["would run: eksctl utils associate-iam-oidc-provider",
                                                  "would run: eksctl create addon",
                                                  "would run: eksctl create nodegroup"]
    assert [argv[:3] for argv in ctx.runner.recorded] == [["eksctl", "utils", "associate-iam-oidc-provider"],
                                                        ["eksctl", "create", "addon"],
                                                        ["eksctl", "create", "nodegroup"]]
    assert "its create was interrupted" in ctx.reporter.messages("warn")[0]

