"""The asynchronous pipeline (`self_play.max_staleness: k`): when each phase of an iteration runs.

With k = 0 an iteration plays, trains, broadcasts and evaluates in turn: the synchronous loop.
With k > 0 the learner lags play by k rounds: while the generators play round t, the learner
trains on round t - k (started just before), so neither side waits for the other while both
have work. A round is played by the version its generators served, and trained on when the
learner is at most k versions past it; a round further behind (a run resumed with a smaller k)
is dropped, not trained on. New weights reach the generators after a play phase ends, never in
the middle of an answer. A broadcast version is evaluated off the learner's path: the learner
starts on its next waiting round first, and trains while the generators evaluate (with k = 0
no round waits then, except while a resumed run catches up, so there the evaluation stays on
the path).

This module is the schedule alone, plain Python over the `Phases` a driver supplies: the
orchestrator's real ones (Ray actors) and the benchmark's simulated costs (bench/pipeline.py)
run through the same code, and the tests drive it with neither.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Round:
    """A played round waiting for the learner: what its metrics row and its training need."""

    iteration: int
    version: int  # the policy version whose generators played it
    fields: dict[str, Any]  # the row's fields from play (JSON, so a saved state can keep them)
    pairs: list[Any] = field(default_factory=list)  # its pair tables, or references to them
    seconds: dict[str, float] = field(default_factory=dict)  # its play phases' times


class Phases(Protocol):
    """What the schedule runs. `train` starts the learner and returns at once (a round without
    pairs, a dropped one, need not start it); `finish` waits for it and sends the new weights to
    the generators: the trained round's metrics row, less its evaluation, which `evaluation`
    adds once the learner's next round (if any) has started. Phase times are the step's: `began`
    (`time.perf_counter()`) when the step started, `played` the round this step played (None when
    it played none: a drain, or a catch-up after resuming with a smaller k), `learner_busy_from`
    when the learner's next round started (None when it did not). `stopping` says the run stops
    after the step just finished: then no next round is started."""

    def play(self, iteration: int) -> Round: ...

    def train(self, round_: Round) -> Any: ...

    def finish(self, round_: Round, training: Any, began: float, played: Round | None) -> dict[str, Any]: ...

    def evaluation(self, row: dict[str, Any], began: float, learner_busy_from: float | None) -> dict[str, Any]: ...

    def stopping(self) -> bool: ...

    def learner_version(self) -> int: ...


@dataclass
class Step:
    """One finished row, and the rounds played but not yet trained on when its version was
    broadcast (a saved state keeps them: a resumed run trains on them, and plays no round twice;
    the learner's next round, started before the evaluation, is among them)."""

    row: dict[str, Any]
    waiting: list[Round]
    played: int  # the last round played


def stale(round_: Round, learner_version: int, max_staleness: int) -> bool:
    """A round played more than `max_staleness` versions before the learner's policy."""
    return learner_version - round_.version > max_staleness


def run_schedule(phases: Phases, iterations: Iterable[int], max_staleness: int, waiting: Iterable[Round] = ()) -> Iterator[Step]:
    """Play each of `iterations` and train on every round, the learner `max_staleness` rounds
    behind; `waiting` are rounds played before (a resumed run's: more of them than
    `max_staleness` are trained on first, without play, so the lag comes back to k). Rows come in
    the rounds' order; the rounds still waiting after the last play are trained on at the end. A
    caller that stops early (asked to) saves `Step.waiting` in its state instead, or trains on
    them with `drain`."""
    queue: deque[Round] = deque(waiting)
    played = queue[-1].iteration if queue else 0
    ahead: _Training | None = None  # the next round's training, started before the last step's evaluation
    for it in iterations:
        while len(queue) + (ahead is not None) > max_staleness:
            step, ahead = _step(phases, ahead or _start(phases, queue, max_staleness), queue, max_staleness, time.perf_counter(), None, played)
            yield step
        began = time.perf_counter()
        # the learner trains on the oldest of k waiting rounds while the generators play
        training = ahead or (_start(phases, queue, max_staleness) if max_staleness and len(queue) == max_staleness else None)
        just = phases.play(it)
        queue.append(just)
        played = it
        if not max_staleness:  # synchronous: train on what was just played
            training = _start(phases, queue, max_staleness)
        ahead = None
        if training is not None:  # none while the pipeline fills
            step, ahead = _step(phases, training, queue, max_staleness, began, just, played)
            yield step
    yield from drain(phases, queue, max_staleness, played, ahead)


def drain(phases: Phases, waiting: Iterable[Round], max_staleness: int, played: int, ahead: _Training | None = None) -> Iterator[Step]:
    """Train on each waiting round in turn, playing none (the end of a run, or one out of time);
    `ahead`: the first one's training, already started."""
    queue = deque(waiting)
    while queue or ahead is not None:
        step, ahead = _step(phases, ahead or _start(phases, queue, max_staleness), queue, max_staleness, time.perf_counter(), None, played)
        yield step


def _step(phases: Phases, training: _Training, queue: deque[Round], max_staleness: int, began: float, played: Round | None,
          last: int) -> tuple[Step, _Training | None]:
    """A trained round finished: its version broadcast, the learner started on the next waiting
    round (unless the run stops here), then the broadcast version evaluated."""
    row = phases.finish(training.round, training.handle, began, played)
    busy_from = time.perf_counter()
    ahead = _start(phases, queue, max_staleness) if queue and not phases.stopping() else None
    busy = ahead is not None and ahead.handle is not None  # a dropped round starts no training
    row = phases.evaluation(row, began, busy_from if busy else None)
    return Step(row, ([ahead.queued] if ahead is not None else []) + list(queue), last), ahead


@dataclass
class _Training:
    round: Round  # as trained: a stale round without its pairs
    handle: Any
    queued: Round  # as it waited (what a saved state keeps)


def _start(phases: Phases, queue: deque[Round], max_staleness: int) -> _Training:
    """The learner started on the oldest waiting round, or on none of its pairs when that round is stale."""
    queued = round_ = queue.popleft()
    if stale(round_, phases.learner_version(), max_staleness):
        round_ = Round(round_.iteration, round_.version, {**round_.fields, "stale_pairs_dropped": True}, [], round_.seconds)
    return _Training(round_, phases.train(round_), queued)
