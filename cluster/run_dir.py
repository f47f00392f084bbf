"""The run directory: where a run leaves its config, checkpoints, league, records and metrics.

A run directory is known by its own marker file, `.selfplay-run`, never by a file name a
user's folder might also hold (a `config.yaml` of their own). Only a marked directory is
ever replaced, and only once the new run has started: `--overwrite` moves the old run
aside, and it comes back if the new one fails to start.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.config import RunConfig, to_yaml
from league.records import replace_atomically

MARKER = ".selfplay-run"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked."""


def is_run(root: Path) -> bool:
    """A directory this project wrote a run into (its marker is there)."""
    return (root / MARKER).is_file()


@dataclass(frozen=True)
class RunDir:
    root: Path
    replaced: Path | None = None  # the previous run, moved aside by --overwrite until the new one has started

    @classmethod
    def create(cls, config: RunConfig, overwrite: bool = False) -> "RunDir":
        """Make the directory, mark it and write the resolved config; refuses to mix two runs in
        one directory and never touches a directory that holds no run."""
        root = cls.check(config, overwrite)
        replaced = None
        if root.exists() and any(root.iterdir()):
            replaced = root.with_name(f".{root.name}.replaced-{os.getpid()}")
        try:
            if replaced is not None:
                root.rename(replaced)
            root.mkdir(parents=True, exist_ok=True)
            run = cls(root, replaced)
            write_text_atomic(root / MARKER, json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%S")}))
            write_text_atomic(root / "config.yaml", to_yaml(config))
        except OSError as err:
            cls(root, replaced).restore_old()
            raise RunDirError(f"cannot write the run directory {str(root)!r}: {err.strerror or err}") from err
        return run

    @staticmethod
    def check(config: RunConfig, overwrite: bool = False) -> Path:
        """The directory `create` would use, refused now (nothing written) if it cannot be."""
        if config.run_dir is None:
            raise RunDirError("the config has no run_dir; resolve it with cluster.config.with_run_dir first")
        root = config.run_dir.resolve()
        _check_usable(root)
        if root.exists() and any(root.iterdir()):
            if not is_run(root):
                raise RunDirError(
                    f"{str(root)!r} is not empty and holds no selfplay run (no {MARKER} marker); "
                    "choose an empty or new directory with --run-dir (--overwrite only ever replaces a run)"
                )
            if not overwrite:
                raise RunDirError(
                    f"run directory {str(root)!r} already holds a run; choose another with --run-dir, "
                    "or pass --overwrite to replace it"
                )
        return root

    @classmethod
    def reopen(cls, config: RunConfig) -> "RunDir":
        """An existing run's directory, to resume it; its config.yaml is rewritten with `config`."""
        root = config.run_dir.resolve() if config.run_dir is not None else None
        if root is None or not (is_run(root) or (root / "state" / "driver.json").is_file()):
            raise RunDirError(f"{str(config.run_dir)!r} holds no selfplay run (no {MARKER} marker) to resume")
        if not is_run(root):  # a run written before runs were marked
            write_text_atomic(root / MARKER, json.dumps({"created": "before markers"}))
        write_text_atomic(root / "config.yaml", to_yaml(config))
        return cls(root)

    def keep_new(self) -> None:
        """The new run has started: the one it replaces can go."""
        if self.replaced is not None and self.replaced.exists():
            shutil.rmtree(self.replaced)

    def restore_old(self) -> None:
        """The new run failed to start: put the replaced run back as it was."""
        if self.replaced is not None and self.replaced.exists():
            shutil.rmtree(self.root, ignore_errors=True)
            self.replaced.rename(self.root)

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


def _check_usable(root: Path) -> None:
    """Refuse, before anything is written, a path that is a file, lies under a file, or
    whose nearest existing folder this user cannot write into."""
    if root.exists() and not root.is_dir():
        raise RunDirError(f"--run-dir {str(root)!r} is a file, not a directory; give a directory path")
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"--run-dir {str(root)!r} lies under {str(existing)!r}, which is a file; give a directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"--run-dir {str(root)!r}: no permission to write in {str(existing)!r}; give a directory you can write")


def write_text_atomic(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))
