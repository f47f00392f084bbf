"""Stopping a run on request, and going on after an actor dies.

Ctrl-C or SIGTERM asks the run to stop once the iteration in progress ends: the state is
saved, the way to resume is printed, and the command exits with 128 + the signal's number
(130, 143), as a shell expects. A second one abandons the iteration at once; the run then
resumes from the last saved state.

A league, learner or judge actor whose process dies takes the run's state in memory with
it; the run goes on from what is on disk, the way `--resume` would: every actor restarted
from the last saved `state/`, the directory rewound to it, the lost iterations replayed.
"""
from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

OUT_OF_TIME = "self_play.max_seconds"  # why a run stopped early when its time budget ran out
MAX_RESTARTS = 3  # restarts of the run's actors in one command before it gives up
ROLES = {"LeagueService": "league", "Learner": "learner", "JudgeHost": "judge", "RunControl": "control", "Generator": "generator"}


class Interrupted(BaseException):
    """A second Ctrl-C or SIGTERM: the iteration in progress is abandoned. A BaseException,
    as KeyboardInterrupt is, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.run_dir: Path | None = None  # the run it stopped, once known


def how_to_go_on(run_dir: Path) -> str:
    """What to run after a stop: the resume command, or why there is none."""
    from cluster.resume import ResumeError, ResumePoint

    try:
        point = ResumePoint.read(run_dir)
    except ResumeError:
        return f"nothing resumable was saved in {run_dir}; run it again (with --overwrite)"
    return f"its state after iteration {point.iteration} is saved; go on with: selfplay run --resume {run_dir}"


class ActorLost(RuntimeError):
    """An actor died and the run could not go on by itself; the message says how to resume."""


class StopRequest:
    """Set by the first Ctrl-C or SIGTERM; the driver's loop reads it between iterations."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM while the run plays (only the main thread may; a run
        started from another thread keeps Python's handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        note = (f"\nselfplay: {signal.Signals(signum).name}: stopping once this iteration ends and its state is saved "
                "(again to stop at once)\n")
        os.write(2, note.encode())  # not print: the handler may interrupt a write to stderr (a progress bar's)


@dataclass(frozen=True)
class Decision:
    """What a run decided when it broadcast a new version: whether this iteration's state is
    saved, and why the run stops after it (None: it goes on)."""

    saving: bool
    stopped: str | None


@dataclass(frozen=True)
class Pace:
    """When a run saves its state and stops. Decided as each new version is broadcast, before
    the learner starts on its next round (the asynchronous pipeline starts it while the version
    is evaluated): the learner's part of a saved state is asked for first, so the state never
    holds a round both trained on and waiting."""

    iterations: int
    save_every: int
    max_seconds: float | None
    started: float  # time.perf_counter() when the run's clock started (a resumed run's: earlier)
    stop: StopRequest | None = None

    def at_broadcast(self, iteration: int, now: float) -> Decision:
        out_of_time = self.max_seconds is not None and now - self.started >= self.max_seconds
        asked = self.stop is not None and self.stop.requested
        every = self.save_every
        saving = bool(every) and (iteration % every == 0 or iteration >= self.iterations or out_of_time or asked)
        stopped = OUT_OF_TIME if out_of_time else self.stop.name if self.stop is not None and asked and (saving or not every) else None
        return Decision(saving, stopped)

    def after_evaluation(self, decision: Decision) -> str | None:
        """Why the run stops once the version is evaluated: as decided, or, asked to stop since,
        at the state being saved (or at every iteration when none is saved)."""
        if decision.stopped is None and self.stop is not None and self.stop.requested and (decision.saving or not self.save_every):
            return self.stop.name
        return decision.stopped


def dead_actor(err: BaseException) -> str:
    """Which of the run's actors an ActorDiedError is about, in the recipe's words."""
    found = re.search(r"class_name: (\w+)", str(err))
    return f"the {ROLES.get(found.group(1), found.group(1))} actor" if found else "an actor"


def last_error_line(err: BaseException) -> str:
    """The line of a remote traceback that says what went wrong (`OSError: ...`)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
    return (errors or lines or [type(err).__name__])[-1][:300]
