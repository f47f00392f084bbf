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
import socket
import tempfile
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
    def create(cls, config: RunConfig, overwrite: bool = False) -> RunDir:
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
            _mark(root)
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
        _check_not_replacing(root)
        if root.exists() and any(root.iterdir()):
            if not is_run(root):
                raise RunDirError(
                    f"{str(root)!r} is not empty and holds no selfplay run (no {MARKER} marker); choose an empty or new "
                    "directory with --run-dir (--overwrite only ever replaces a run; a run written before runs were marked "
                    f"can be marked with: touch {root / MARKER})"
                )
            _check_idle(root)
            if not overwrite:
                raise RunDirError(
                    f"run directory {str(root)!r} already holds a run; choose another with --run-dir, "
                    "or pass --overwrite to replace it"
                )
        return root

    @classmethod
    def reopen(cls, config: RunConfig) -> RunDir:
        """An existing run's directory, to resume it; its config.yaml is rewritten with `config`."""
        root = config.run_dir.resolve() if config.run_dir is not None else None
        if root is None or not (is_run(root) or (root / "state" / "driver.json").is_file()):
            raise RunDirError(f"{str(config.run_dir)!r} holds no selfplay run (no {MARKER} marker) to resume")
        _check_idle(root)
        _mark(root)
        write_text_atomic(root / "config.yaml", to_yaml(config))
        return cls(root)

    def keep_new(self) -> None:
        """The new run has started: the one it replaces can go."""
        if self.replaced is not None and self.replaced.exists():
            shutil.rmtree(self.replaced)

    def restore_old(self) -> None:
        """The new run failed to start: put the replaced run back as it was."""
        if self.replaced is None or not self.replaced.exists():
            return
        failed = self.root.with_name(f".{self.root.name}.failed-{os.getpid()}")
        if self.root.exists():
            self.root.rename(failed)  # a rename, not a removal: an actor still writing cannot block it
        self.replaced.rename(self.root)
        shutil.rmtree(failed, ignore_errors=True)

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


def _mark(root: Path) -> None:
    """The marker says which process drives the run, so a second command keeps off a live one."""
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_text_atomic(root / MARKER, json.dumps(owner))


def _check_idle(root: Path) -> None:
    """Refuse a run another selfplay process on this machine is driving now."""
    try:
        owner = json.loads((root / MARKER).read_text())
        pid, host = int(owner["pid"]), owner["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # an unmarked or older marker: nobody recorded as driving it
    if host == socket.gethostname() and pid != os.getpid() and _is_python(pid):
        raise RunDirError(f"{str(root)!r} is being written by a running selfplay (process {pid}); stop it first, "
                          "or choose another --run-dir")


def _is_python(pid: int) -> bool:
    """Whether `pid` runs now as a Python process (a reused pid of another program is not a driver)."""
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _check_not_replacing(root: Path) -> None:
    """An --overwrite killed before the new run started leaves the old run aside: say where."""
    for aside in root.parent.glob(f".{root.name}.replaced-*") if root.parent.is_dir() else []:
        raise RunDirError(f"an earlier --overwrite of {str(root)!r} was interrupted; the run it replaced is at "
                          f"{str(aside)!r}: move it back (or remove it), then run again")


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
    try:  # the one sure test of "can a folder be made here": make one, and remove it at once
        os.rmdir(tempfile.mkdtemp(prefix=".selfplay-probe-", dir=existing))
    except OSError as err:
        raise RunDirError(f"--run-dir {str(root)!r} cannot be created in {str(existing)!r} ({err.strerror}); "
                          "give a directory you can write") from None


def write_text_atomic(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))
