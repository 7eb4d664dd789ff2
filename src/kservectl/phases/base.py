"""The plan is data (STYLE 3): a phase returns rendered files and ordered, described steps.
Applying runs them; ``--dry-run`` and ``kservectl plan`` print them."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from kservectl.render import placeholder


@dataclass(frozen=True)
class Step:
    phase: str
    action: str  # what it achieves, e.g. "create the EKS cluster"
    kind: str  # tool | aws | kube | http | local
    command: tuple[str, ...] = ()  # the exact argv for tool steps
    calls: tuple[str, ...] = ()  # AWS API calls or Kubernetes operations
    files: tuple[str, ...] = ()  # rendered files the step uses

    def describe(self) -> str:
        if self.command:
            return f"will run: {shlex.join(self.command)}"
        if self.calls:
            return f"will {self.action} ({', '.join(self.calls)})"
        return f"will {self.action}"


@dataclass
class PhasePlan:
    phase: str
    summary: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> rendered text
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class LiveValues:
    """Values only a live account or cluster knows. ``plan`` uses the marked placeholders."""

    account_id: str = placeholder("account-id")
    oidc_issuer: str = placeholder("oidc-issuer")
    vpc_id: str = placeholder("vpc-id")
    gateway_hostname: str = placeholder("gateway-nlb-hostname")

    @property
    def oidc_provider(self) -> str:
        return self.oidc_issuer.removeprefix("https://")
