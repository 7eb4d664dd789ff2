"""What the local provider started and serves, in ``$KSERVECTL_HOME/<cluster>/local/state.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kservectl import paths
from kservectl.local.procs import Proc


def local_dir(cluster: str) -> Path:
    return paths.cluster_dir(cluster) / "local"


@dataclass
class ServedModel:
    name: str  # the served name: /v2/models/<name>/infer
    model_uri: str  # models:/<registered>/<version>
    path: str  # local folder holding MLmodel
    proc: Proc | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model_uri": self.model_uri, "path": self.path,
                "proc": self.proc.as_dict() if self.proc else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedModel:
        proc = Proc.from_dict(data["proc"]) if data.get("proc") else None
        return cls(data["name"], data["model_uri"], data["path"], proc)


@dataclass
class LocalState:
    root: Path
    mlflow: Proc | None = None
    models: dict[str, ServedModel] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.root / "state.json"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @classmethod
    def load(cls, cluster: str) -> LocalState:
        root = local_dir(cluster)
        state = cls(root)
        if state.file.is_file():
            data = json.loads(state.file.read_text())
            state.mlflow = Proc.from_dict(data["mlflow"]) if data.get("mlflow") else None
            state.models = {name: ServedModel.from_dict(m) for name, m in (data.get("models") or {}).items()}
        return state

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"mlflow": self.mlflow.as_dict() if self.mlflow else None,
                "models": {name: m.as_dict() for name, m in self.models.items()}}
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.file)
