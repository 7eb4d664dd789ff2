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
    kill_grace: float = 10.0


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
    inference_service_ready: float = 900.0
    http_ready: float = 120.0
    # A single watch call ends after this long and the wait re-lists (also covers missed events).
    watch_chunk: float = 10.0
    poll_interval: float = 2.0


@dataclass(frozen=True)
class Settings:
    tools: ToolTimeouts = field(default_factory=ToolTimeouts)
    tool_retry: Backoff = field(default_factory=Backoff)
    aws_max_attempts: int = 8
    aws_connect_timeout: float = 10.0
    aws_read_timeout: float = 60.0
    aws_retry: Backoff = field(default_factory=lambda: Backoff(attempts=6, initial=1.0, maximum=20.0))
    kube_request_timeout: float = 30.0
    waits: WaitDeadlines = field(default_factory=WaitDeadlines)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_SETTINGS = Settings()
