"""The run directory: where a run leaves its config, checkpoints, league, records and metrics."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.config import RunConfig, to_yaml
from league.records import replace_atomically


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked."""


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def create(cls, config: RunConfig, overwrite: bool = False) -> "RunDir":
        """Make the directory and write the resolved config; refuses to mix two runs in one directory."""
        if config.run_dir is None:
            raise RunDirError("the config has no run_dir; resolve it with cluster.config.with_run_dir first")
        root = config.run_dir.resolve()
        if root.exists() and any(root.iterdir()):
            if not (root / "config.yaml").is_file():
                raise RunDirError(
                    f"{str(root)!r} is not empty and holds no run (no config.yaml); "
                    "choose an empty or new directory with --run-dir (--overwrite only ever replaces a run)"
                )
            if not overwrite:
                raise RunDirError(
                    f"run directory {str(root)!r} already holds a run; choose another with --run-dir, "
                    "or pass --overwrite to replace it"
                )
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        run = cls(root)
        write_text_atomic(run.root / "config.yaml", to_yaml(config))
        return run

    @classmethod
    def reopen(cls, config: RunConfig) -> "RunDir":
        """An existing run's directory, to resume it; its config.yaml is rewritten with `config`."""
        if config.run_dir is None or not (config.run_dir / "config.yaml").is_file():
            raise RunDirError(f"{str(config.run_dir)!r} holds no run (no config.yaml) to resume")
        run = cls(config.run_dir.resolve())
        write_text_atomic(run.root / "config.yaml", to_yaml(config))
        return run

    def checkpoint(self, snapshot: str) -> Path:
        """Where the snapshot of that name (`v3`, `main_exploiter-v2`) is saved."""
        (self.root / "checkpoints").mkdir(exist_ok=True)
        return self.root / "checkpoints" / snapshot

    @property
    def base_model(self) -> Path:
        return self.root / "model" / "base"

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One JSON object per line; a line is written whole with a single write."""
        with open(self.root / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_text_atomic(self.root / "summary.json", json.dumps(summary, indent=1))


def write_text_atomic(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))
