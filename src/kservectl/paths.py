"""Where kservectl keeps per-cluster state: ``$KSERVECTL_HOME/<cluster>/``."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    value = os.environ.get("KSERVECTL_HOME")
    return Path(value).expanduser() if value else Path.home() / ".kservectl"


def cluster_dir(cluster: str) -> Path:
    return home() / cluster


def kubeconfig_path(cluster: str) -> Path:
    return cluster_dir(cluster) / "kubeconfig"


def logs_dir(cluster: str) -> Path:
    return cluster_dir(cluster) / "logs"
