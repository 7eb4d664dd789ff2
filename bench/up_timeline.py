"""The timeline of ``kservectl up``, simulated at 1:60.

Runs ``kservectl up`` in the test sandbox (tests/support/sandbox.py: moto, the Kubernetes emulator,
the fake eksctl/helm/kubectl) with the fake tools and the simulated controllers sleeping for
real-world durations scaled down 1:60 (a 14-minute ``eksctl create cluster`` takes 14 s), then
prints each task's start, end and duration as a timeline, the total wall time beside the
sequential sum of the tasks and the critical path (the longest chain of needs, which no schedule
can beat), and the fake tools' own start-up cost, measured in the same run.

Target: wall time <= critical path + 2% + the start-up of the tool calls made outside the tasks
(the version checks before the first phase). The critical path is measured from the tasks'
own durations in this run (they include kservectl's reads of the real state, which the sandbox
does not scale down); the nominal 1:60 path is printed beside it.

Real-world durations (minutes): eksctl create cluster 14 (reference section 4: control plane
13-16 min); the gateway NLB 4 (settings: provisioning -> active usually 2-4 min). The rest are
assumptions, not from a source: an IRSA stack 1, a Helm release with a controller rollout 1-1.5,
a CRD-only release or manifest 1/6, Knative Serving core 1, net-kourier 1/2, an EBS volume for
a PVC 1/2, the MLflow pod (the -full image) 1.5, an InferenceService (pod start and model
download) 2.

    .venv/bin/python bench/up_timeline.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCALE = 60.0

# (what, tool, argv prefix or contains, real-world minutes)
TOOLS = [
    ("eksctl create cluster", "eksctl", {"argv_prefix": ["create", "cluster"]}, 14.0),
    ("eksctl create iamserviceaccount", "eksctl", {"argv_prefix": ["create", "iamserviceaccount"]}, 1.0),
    ("helm: Cluster Autoscaler", "helm", {"argv_prefix": ["upgrade", "--install", "cluster-autoscaler"]}, 1.0),
    ("helm: AWS Load Balancer Controller", "helm",
     {"argv_prefix": ["upgrade", "--install", "aws-load-balancer-controller"]}, 1.5),
    ("helm: cert-manager", "helm", {"argv_prefix": ["upgrade", "--install", "cert-manager"]}, 1.5),
    ("kubectl: Knative CRDs", "kubectl", {"argv_regex": r"serving-crds\.yaml"}, 1 / 6),
    ("kubectl: Knative Serving core", "kubectl", {"argv_regex": r"serving-core\.yaml"}, 1.0),
    ("kubectl: net-kourier", "kubectl", {"argv_regex": r"kourier\.yaml"}, 0.5),
    ("helm: kserve-crd", "helm", {"argv_prefix": ["upgrade", "--install", "kserve-crd"]}, 1 / 6),
    ("helm: kserve", "helm", {"argv_prefix": ["upgrade", "--install", "kserve", "oci://"]}, 1.5),
    ("helm: kserve-runtime-configs", "helm", {"argv_prefix": ["upgrade", "--install", "kserve-runtime-configs"]},
     1 / 6),
]
CONTROLLERS = {  # the sandbox's simulated controllers: sandbox.delays keys
    "nlb": ("the gateway NLB", 4.0),
    "pvc": ("an EBS volume for MLflow's PVC", 0.5),
    "deployment/mlflow": ("the MLflow pod", 1.5),
    "isvc": ("the InferenceService Ready", 2.0),
}
# What each task waits for, in the scripted durations above (seconds at 1:60), for the nominal path.
NOMINAL = {
    "cluster": 14.0 + 1.0,
    "alb/policy": 0.0,
    "alb": 1.0 + 1.5,
    # the NLB is created with the gateway Service (after cert-manager, CRDs, core) and provisions
    # while the rest installs; the phase ends when it has a hostname
    "kserve": 1.5 + 1 / 6 + 1.0 + max(4.0, 0.5 + 1 / 6 + 1.5 + 1 / 6),
    "storage/bucket": 0.0,
    "storage": 0.0,
    "mlflow": 0.5 + 1.5,
    "serve": 2.0,
    "test": 0.0,
}


def rules() -> list[dict]:
    out = []
    for what, tool, match, minutes in TOOLS:
        out.append({"tool": tool, **match, "delay_s": round(minutes * 60 / SCALE, 3), "passthrough": True,
                    "comment": f"{what}: {minutes:g} min at 1:{SCALE:g}"})
    return out


def startup_cost(box, calls: int = 5) -> float:
    """Mean wall time of a fake tool call that does nothing (``version``): the fakes' start-up."""
    env = dict(os.environ)
    argvs = [["eksctl", "version"], ["helm", "version", "--short"], ["kubectl", "version", "--client", "-o", "json"]]
    times = []
    for argv in argvs:
        for _ in range(calls):
            started = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=True, stdin=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
    return statistics.mean(times)


def critical_path(durations: dict[str, float], needs: dict[str, list[str]]) -> tuple[float, list[str]]:
    sys.path.insert(0, str(REPO / "src"))
    from kservectl.phases.up import critical_path as longest

    return longest(durations, needs)


def bar(start: float, end: float, total: float, width: int = 48) -> str:
    a = int(round(start / total * width))
    b = max(a + 1, int(round(end / total * width)))
    return " " * a + "█" * (b - a)


def main() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "src"))
    import warnings

    warnings.filterwarnings("ignore")
    from support.sandbox import mlflow_template, world

    with tempfile.TemporaryDirectory(prefix="kservectl-bench-") as tmp:
        base = Path(tmp)
        with world(base / "world", mlflow_template(base)) as box:
            box.script(rules())
            for key, (_, minutes) in CONTROLLERS.items():
                box.delays[key] = minutes * 60 / SCALE
            per_call = startup_cost(box)
            calls_before = len(box.tools.records())
            began = time.monotonic()
            result = box.up("-o", "json")
            wall_outside = time.monotonic() - began
            if result.exit_code != 0:
                print(result.stderr, file=sys.stderr)
                print("up failed in the simulation", file=sys.stderr)
                return 1
            data = json.loads(result.stdout)
            tool_calls = len(box.tools.records()) - calls_before

    tasks = data["tasks"]
    wall = data["timing"]["wall_s"]
    sequential = data["timing"]["sequential_s"]
    cp, chain = critical_path({t["task"]: t["elapsed_s"] for t in tasks}, {t["task"]: t["needs"] for t in tasks})
    nominal, nominal_chain = critical_path(NOMINAL, {t["task"]: t["needs"] for t in tasks})
    first_start = min(t["started_s"] for t in tasks)
    preflight_calls = 3  # eksctl, helm and kubectl version checks before the first task
    allowance = preflight_calls * per_call
    target = cp * 1.02 + allowance

    print(f"kservectl up, simulated at 1:{SCALE:g} (real-world minutes become seconds)")
    for what, _, _, minutes in TOOLS:
        print(f"  {what:<38} {minutes:6.2f} min -> {minutes * 60 / SCALE:5.2f} s")
    for _, (what, minutes) in CONTROLLERS.items():
        print(f"  {what:<38} {minutes:6.2f} min -> {minutes * 60 / SCALE:5.2f} s")
    print()
    print(f"{'task':<15} {'start':>6} {'end':>6} {'took':>6} {'nominal':>8}  timeline (0 .. {wall:.1f} s)")
    for t in sorted(tasks, key=lambda t: t["started_s"]):
        end = t["started_s"] + t["elapsed_s"]
        print(f"{t['task']:<15} {t['started_s']:6.2f} {end:6.2f} {t['elapsed_s']:6.2f} {NOMINAL[t['task']]:8.2f}  "
              f"{bar(t['started_s'], end, wall)}")
    print()
    print(f"wall time of up:                         {wall:7.2f} s  (measured around it: {wall_outside:.2f} s)")
    print(f"sequential sum of the tasks:             {sequential:7.2f} s")
    print(f"critical path, measured task durations:  {cp:7.2f} s  ({' -> '.join(chain)})")
    print(f"critical path, nominal 1:60 durations:   {nominal:7.2f} s  ({' -> '.join(nominal_chain)})")
    print(f"fake tool start-up (measured, this run): {per_call * 1000:7.1f} ms per call; {tool_calls} tool calls "
          f"in up; {preflight_calls} before the first task (which started at {first_start:.2f} s)")
    print(f"target: wall <= critical path x 1.02 + start-up of those {preflight_calls} calls = {target:.2f} s")
    ok = wall <= target
    print(f"result: {'PASS' if ok else 'FAIL'} (wall - critical path = {wall - cp:.2f} s; "
          f"concurrency saved {sequential - wall:.2f} s over one phase after another)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
