"""The typed context every phase receives (STYLE 2): config, settings, clock, reporter, and
the runner, AWS and Kubernetes clients, each created on first use. Tests build one with fakes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl import paths
from kservectl.clock import Clock, SystemClock
from kservectl.config import Config
from kservectl.events import Reporter
from kservectl.redact import Redactor
from kservectl.runner import DryRunRunner, Runner
from kservectl.settings import DEFAULT_SETTINGS, Settings


@dataclass
class Context:
    config: Config
    settings: Settings = DEFAULT_SETTINGS
    clock: Clock = field(default_factory=SystemClock)
    reporter: Reporter = field(default_factory=Reporter)
    dry_run: bool = False
    command: str = "kservectl"
    redactor: Redactor = field(default_factory=Redactor)
    kubeconfig: Path | None = None
    _runner: Runner | None = None
    _aws: Any = None
    _kube: Any = None
    _log_path: Path | None = None

    @property
    def cluster(self) -> str:
        return self.config.cluster.name

    @property
    def region(self) -> str:
        return self.config.cluster.region

    @property
    def log_path(self) -> Path:
        """The per-run log file (created on first write)."""
        if self._log_path is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            name = self.command.replace(" ", "-")
            self._log_path = paths.logs_dir(self.cluster) / f"{stamp}-{name}.log"
        return self._log_path

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            cls = DryRunRunner if self.dry_run else Runner
            self._runner = cls(
                settings=self.settings, log_path=self.log_path, sink=self.reporter.tool_line,
                redactor=self.redactor, clock=self.clock,
            )
        return self._runner

    @runner.setter
    def runner(self, value: Runner) -> None:
        self._runner = value

    @property
    def aws(self):
        if self._aws is None:
            from kservectl.aws import AwsClients

            self._aws = AwsClients(self.region, self.config.aws.profile, self.settings)
        return self._aws

    @aws.setter
    def aws(self, value: Any) -> None:
        self._aws = value

    @property
    def kube(self):
        if self._kube is None:
            from kservectl.kube import Kube, load_api_client

            path = self.kubeconfig or paths.kubeconfig_path(self.cluster)
            self._kube = Kube(load_api_client(path, settings=self.settings), settings=self.settings,
                              clock=self.clock, on_wait=self.reporter.waiting)
        return self._kube

    @kube.setter
    def kube(self, value: Any) -> None:
        self._kube = value
