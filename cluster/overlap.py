"""The asynchronous pipeline (`self_play.max_staleness: k`): when each phase of an iteration runs.

With k = 0 an iteration plays, trains, broadcasts and evaluates in turn: the synchronous loop.
With k > 0 the learner lags play by k rounds: while the generators play round t, the learner
trains on round t - k (started just before), so neither side waits for the other while both
have work. A round is played by the version its generators served, and trained on when the
learner is at most k versions past it; a round further behind (a run resumed with a smaller k)
is dropped, not trained on. New weights reach the generators after a play phase ends, never in
the middle of an answer.

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
    pairs, a dropped one, need not start it); `finish` waits for it, sends the new weights to the
    generators and evaluates them: the trained round's metrics row. Its phase times are the
    step's: `began` (`time.perf_counter()`) when the step started, `played` the round this step
    played (None when it played none: a drain, or a catch-up after resuming with a smaller k)."""

    def play(self, iteration: int) -> Round: ...

    def train(self, round_: Round) -> Any: ...

    def finish(self, round_: Round, training: Any, began: float, played: Round | None) -> dict[str, Any]: ...

    def learner_version(self) -> int: ...


@dataclass
class Step:
    """One finished row, and the rounds played but not yet trained on when it finished (a saved
    state keeps them: a resumed run trains on them, and plays no round twice)."""

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
    them with `drain`. Between two steps (where the caller writes its state) the learner is idle."""
    queue: deque[Round] = deque(waiting)
    played = queue[-1].iteration if queue else 0
    for it in iterations:
        while len(queue) > max_staleness:
            yield _step(phases, queue, max_staleness, time.perf_counter(), None, played)
        began = time.perf_counter()
        # the learner starts on the oldest of k waiting rounds and trains while the generators play
        training = _start(phases, queue, max_staleness) if max_staleness and len(queue) == max_staleness else None
        just = phases.play(it)
        queue.append(just)
        played = it
        if not max_staleness:  # synchronous: train on what was just played
            training = _start(phases, queue, max_staleness)
        if training is not None:  # none while the pipeline fills
            yield Step(phases.finish(training.round, training.handle, began, just), list(queue), played)
    yield from drain(phases, queue, max_staleness, played)


def drain(phases: Phases, waiting: Iterable[Round], max_staleness: int, played: int) -> Iterator[Step]:
    """Train on each waiting round in turn, playing none (the end of a run, or one out of time)."""
    queue = deque(waiting)
    while queue:
        yield _step(phases, queue, max_staleness, time.perf_counter(), None, played)


def _step(phases: Phases, queue: deque[Round], max_staleness: int, began: float, played: Round | None, last: int) -> Step:
    training = _start(phases, queue, max_staleness)
    return Step(phases.finish(training.round, training.handle, began, played), list(queue), last)


@dataclass
class _Training:
    round: Round
    handle: Any


def _start(phases: Phases, queue: deque[Round], max_staleness: int) -> _Training:
    """The learner started on the oldest waiting round, or on none of its pairs when that round is stale."""
    round_ = queue.popleft()
    if stale(round_, phases.learner_version(), max_staleness):
        round_ = Round(round_.iteration, round_.version, {**round_.fields, "stale_pairs_dropped": True}, [], round_.seconds)
    return _Training(round_, phases.train(round_))
