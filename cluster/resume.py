"""Resuming a run from its directory.

After every `self_play.save_every` iterations the orchestrator writes `state/`, as one
directory swapped into place: the learner's state (policy checkpoint, reference, optimizer,
counters), a copy of the league as it stood then, and the driver's own (iteration, policy
version, random generators, retention baseline, self-play seconds). A resumed run rewinds
the directory to that point (the league restored from the copy, later metrics rows and
round files removed, as a crash may have left them half-way through an iteration) and goes
on from the next iteration with identical ratings and population. With the asynchronous
pipeline the state also names the rounds played but not yet trained on: their records stay,
and the resumed learner trains on them first, so no game is lost and no pair trained twice.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.run_dir import is_run, write_text_atomic

ROUND_FILE = re.compile(r"round-(\d+)(?:-[a-z0-9_]+)?\.parquet$")


class ResumeError(RuntimeError):
    """A run directory that cannot be resumed; the message says why."""


@dataclass(frozen=True)
class ResumePoint:
    iteration: int
    version: int
    rng: dict[str, Any]
    league_rng: dict[str, Any]
    retention_start: dict[str, float]
    seconds: float
    learner: Path  # the learner's state; its `policy/` is a Hugging Face checkpoint
    # The asynchronous pipeline (cluster/overlap.py): rounds played after `iteration` but not yet
    # trained on (their iteration, version, fields and seconds; their pairs are on disk), and the last played.
    waiting: tuple[dict[str, Any], ...] = ()

    @property
    def played(self) -> int:
        return self.waiting[-1]["iteration"] if self.waiting else self.iteration

    @classmethod
    def read(cls, root: Path) -> ResumePoint:
        if not (is_run(root) or (root / "state" / "driver.json").is_file() or any(root.glob(".state.old-*"))):
            raise ResumeError(f"{str(root)!r} holds no selfplay run to resume")
        _recover(root)
        driver = root / "state" / "driver.json"
        if not driver.is_file():
            raise ResumeError(
                f"{str(root)!r} has no resumable state (state/driver.json); it was written by a run with "
                "self_play.save_every: 0, or stopped before its first iteration ended; start it anew with --overwrite"
            )
        d = _json(driver)
        missing = [k for k in DRIVER_KEYS if k not in d] if isinstance(d, dict) else list(DRIVER_KEYS)
        if missing:
            raise ResumeError(f"{str(driver)!r} lacks {', '.join(missing)}; {DAMAGED}")
        if not all(isinstance(d[k], int) and not isinstance(d[k], bool) for k in ("iteration", "version")):
            raise ResumeError(f"{str(driver)!r} has no whole-number iteration and version; {DAMAGED}")
        waiting = d.get("waiting", [])
        if not (isinstance(waiting, list) and all(isinstance(w, dict) and WAITING_KEYS.issubset(w) for w in waiting)):
            raise ResumeError(f"{str(driver)!r} has rounds waiting for the learner without {', '.join(sorted(WAITING_KEYS))}; {DAMAGED}")
        return cls(d["iteration"], d["version"], d["rng"], d["league_rng"], d["retention_start"], d["seconds"], root / "state" / "learner",
                   tuple(waiting))

    def check(self, root: Path, exploiters: Sequence[str] = (), pair_tags: Sequence[str] = ("",)) -> None:
        """Everything a resume reads, there and readable, before anything in the run changes:
        the league, the driver's learner and each of the recipe's `exploiters`', the metrics, and
        the pair files (one per game, by its tag) of the rounds waiting for the learner."""
        from games.base import pair_file
        from league.league import CURRENT

        state = root / "state"
        for waiting in self.waiting:
            for tag in pair_tags:
                path = root / "pairs" / pair_file(waiting["iteration"], CURRENT, tag)
                if not path.is_file():
                    raise ResumeError(f"{str(path)!r} is missing (round {waiting['iteration']} waits for the learner); {DAMAGED}")
        _json(state / "league.json")
        learners = [self.learner, *(state / "agents" / name for name in exploiters)]
        for learner in learners:
            for name in LEARNER_FILES:
                if not (learner / name).is_file():
                    raise ResumeError(f"{str(learner / name)!r} is missing; {DAMAGED}")
            if not any(all((learner / name).is_file() for name in names) for names in REFERENCE_FILES):
                raise ResumeError(f"{str(learner / REFERENCE_FILES[0][0])!r} is missing; {DAMAGED}")
            _json(learner / "learner.json")
        if not (root / "metrics.jsonl").is_file():
            raise ResumeError(f"{str(root / 'metrics.jsonl')!r} is missing; {DAMAGED}")


WAITING_KEYS = frozenset({"iteration", "version", "fields", "seconds"})
DRIVER_KEYS = ("iteration", "version", "rng", "league_rng", "retention_start", "seconds")
LEARNER_FILES = ("policy/config.json", "optimizer.pt", "learner.json")
# the reference's weights, or with LoRA the base (the reference) and the adapters
REFERENCE_FILES = (("reference.pt",), ("base.pt", "adapters.pt"))
DAMAGED = "the run's saved state is damaged, so it cannot be resumed; it was left as it was (start anew with --overwrite)"


def _json(path: Path) -> Any:
    """A state file's contents, or a ResumeError naming the file."""
    if not path.is_file():
        raise ResumeError(f"{str(path)!r} is missing; {DAMAGED}")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise ResumeError(f"{str(path)!r} cannot be read ({err}); {DAMAGED}") from None


def _recover(root: Path) -> None:
    """A crash between the two renames of a state swap leaves the previous state as
    `.state.old-<pid>` and no `state/`: take it back. Half-written `.state.tmp-*` are dropped."""
    olds = sorted(root.glob(".state.old-*"), key=lambda p: p.stat().st_mtime)
    if not (root / "state").exists() and olds:
        olds[-1].rename(root / "state")
    for leftover in [*root.glob(".state.tmp-*"), *root.glob(".state.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def driver_state(point: ResumePoint) -> str:
    return json.dumps({
        "iteration": point.iteration, "version": point.version, "rng": point.rng, "league_rng": point.league_rng,
        "retention_start": point.retention_start, "seconds": point.seconds, "waiting": list(point.waiting),
    })


def rewind(root: Path, point: ResumePoint) -> list[dict[str, Any]]:
    """Put the directory back where `point` left it; returns the metrics rows up to it."""
    shutil.copyfile(root / "state" / "league.json", root / ".league.json.resume")
    (root / ".league.json.resume").replace(root / "league.json")
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines() if line.strip()]
    kept = [r for r in rows if r["iteration"] <= point.iteration]
    write_text_atomic(root / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
    for folder in record_folders():
        for path in (root / folder).glob("round-*.parquet"):
            match = ROUND_FILE.match(path.name)
            if match and int(match.group(1)) > point.played:  # rounds played, even if not yet trained on, stay
                path.unlink()
    return kept


def record_folders() -> list[str]:
    """The folders of per-round records: every game's own, the round-robin's and `pairs/`."""
    from games.base import registry
    from league.records import ROUND_ROBIN

    return sorted({folder for game in registry().values() for folder in game.folders} | {"pairs", ROUND_ROBIN})
