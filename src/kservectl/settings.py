"""Every timeout, retry count and backoff in one place (STYLE 9).

Tests build a ``Settings`` with small numbers; nothing else in the code base holds a literal
timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ToolTimeouts:
    default: float = 600.0
    version: float = 20.0
    eksctl_create: float = 3600.0
    eksctl_delete: float = 3600.0
    helm: float = 900.0
    kubectl: float = 120.0
    kill_grace: float = 10.0  # after SIGTERM, how long a stopped tool gets before SIGKILL
    kill_wait: float = 5.0  # after SIGKILL, how long to wait for the process to be gone
    output_drain: float = 5.0  # after the tool exits, how long to wait for its last output lines
    stop_poll: float = 0.1  # while a tool runs, how often a task asks whether its run was stopped (Ctrl-C)


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    initial: float = 2.0
    maximum: float = 30.0


@dataclass(frozen=True)
class WaitDeadlines:
    nodes_ready: float = 1200.0
    deployment_available: float = 600.0
    crd_established: float = 120.0
    endpoints_ready: float = 300.0
    load_balancer: float = 600.0
    load_balancer_deleted: float = 600.0
    volumes_deleted: float = 600.0  # cleanup: PVCs gone and EC2 reporting their EBS volumes deleted
    stack_deleted: float = 1800.0  # a failed eksctl CloudFormation stack being deleted before a re-create
    nat_gateway_deleted: float = 600.0  # cleanup --orphans: a NAT gateway deleting (its EIP freed after)
    eks_deleted: float = 1800.0  # cleanup --orphans: an EKS cluster or managed node group deleting (~10 min each)
    instances_terminated: float = 900.0  # cleanup --orphans: Auto Scaling groups (force-deleted) and instances going
    inference_service_ready: float = 900.0
    nlb_active: float = 600.0  # ELBv2 state of the gateway NLB: provisioning -> active (usually 2-4 min)
    job_complete: float = 600.0  # e.g. Knative's default-domain Job (sslip.io magic DNS)
    http_ready: float = 120.0
    pvc_bound: float = 600.0  # WaitForFirstConsumer: scheduling (maybe a node scale-up) + EBS provisioning
    load_balancer_reachable: float = 600.0  # a new NLB's DNS name resolving and its targets turning healthy
    # A single watch call ends after this long and the wait re-lists (also covers missed events).
    watch_chunk: float = 10.0
    poll_interval: float = 2.0
    log_follow_poll: float = 0.5  # `logs --follow --provider local`: how often the log file is re-read


@dataclass(frozen=True)
class HttpTimeouts:
    """The data plane (``kservectl test``, the load generator) and MLflow client calls."""

    connect: float = 5.0
    request: float = 30.0  # one check of `kservectl test`, or one request of a load test
    mlflow_reachable: float = 5.0  # the health probe before any MLflow registry call (fails fast)
    cold_start: float = 600.0  # the first request to a service scaled to zero: pod start + model download
    cold_start_retry: float = 1.0  # pause between attempts while the activator answers 502/503/504
    server_start: float = 120.0  # a local MLflow or MLServer process answering its health endpoint


@dataclass(frozen=True)
class Settings:
    tools: ToolTimeouts = field(default_factory=ToolTimeouts)
    tool_retry: Backoff = field(default_factory=Backoff)
    aws_max_attempts: int = 8
    aws_connect_timeout: float = 10.0
    aws_read_timeout: float = 60.0
    aws_retry: Backoff = field(default_factory=lambda: Backoff(attempts=6, initial=1.0, maximum=20.0))
    # `up`: a phase that failed with a transient error (throttling, an API server 5xx, a webhook
    # not serving yet) runs again from its real state, at most this often.
    phase_retry: Backoff = field(default_factory=lambda: Backoff(attempts=3, initial=5.0, maximum=30.0))
    # `up`: after Ctrl-C, how long running phases get to stop their tools before kservectl exits.
    interrupt_grace: float = 20.0
    kube_request_timeout: float = 30.0
    # A Kubernetes API call answered 429 (any verb) or 5xx (reads) is sent again, at most this often.
    kube_retry: Backoff = field(default_factory=lambda: Backoff(attempts=4, initial=0.5, maximum=10.0))
    waits: WaitDeadlines = field(default_factory=WaitDeadlines)
    http: HttpTimeouts = field(default_factory=HttpTimeouts)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_SETTINGS = Settings()
