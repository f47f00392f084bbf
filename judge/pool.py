"""A pool of judge actors: batches spread across them, each call with a deadline.

A batch whose judge raises, dies or passes `timeout_s` is sent to the next judge in the pool
(a judge that timed out is killed and replaced, since a running actor call cannot be
stopped), up to `retries` more times; a judge whose process died is replaced too. After
that a batch's games are marked, not lost: a tie whose reason starts with `judge error`, or
a NaN score. A call in which more than `max_error_share` of the items end so is not a result
but a failure (JudgeFailure): judges that keep failing stop the run rather than let it train
on nothing.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from judge.verdict import Verdict

StartJudge = Callable[[int, int], Any]  # (slot, generation) -> a new judge actor handle


class JudgeFailure(RuntimeError):
    """Most of a call's games could not be judged; the message says why and what to change."""


@dataclass
class _Call:
    begin: int
    end: int
    tries: int
    slot: int  # the judge it ran on last (-1: none yet)
    deadline: float


class JudgePool:
    def __init__(self, start: StartJudge, size: int = 1, batch_size: int = 256, timeout_s: float = 120.0, retries: int = 1,
                 max_error_share: float = 1.0) -> None:
        if size < 1 or batch_size < 1 or timeout_s <= 0 or retries < 0:
            raise ValueError(f"a judge pool needs size >= 1, batch_size >= 1, timeout_s > 0, retries >= 0 (got {size}, {batch_size}, {timeout_s}, {retries})")
        self.start, self.batch_size, self.timeout_s, self.retries = start, batch_size, timeout_s, retries
        self.max_error_share = max_error_share
        self.errors: list[str] = []  # every failed call, and every judge that died starting, for the run's log
        self.generation = [0] * size
        self.actors = [start(slot, 0) for slot in range(size)]  # all at once; then each waited for
        # the name is kept, since asking a judge killed between calls would fail where its batches would have been retried
        self.judge_name: str = [self._ready(slot) for slot in range(size)][0]
        self.call_seconds: list[float] = []  # each finished call's latency, for the dashboard
        self.busy_seconds = 0.0  # wall time spent judging, all calls together (the metrics row's judging phase)

    def name(self) -> str:
        return self.judge_name

    def judge(self, problems: list, responses_a: Any, responses_b: Any) -> list[Verdict]:
        """One verdict per matchup; responses may be lists or object references to lists."""
        a, b = _stored(responses_a), _stored(responses_b)
        out = self._run(len(problems), lambda actor, lo, hi: actor.judge_range.remote(problems[lo:hi], a, b, lo, hi))
        return [v if v is not None else _marked(reason) for v, reason in out]

    def score(self, problems: list, responses: Any) -> list[float]:
        r = _stored(responses)
        out = self._run(len(problems), lambda actor, lo, hi: actor.score_range.remote(problems[lo:hi], r, lo, hi))
        return [math.nan if s is None else s for s, _ in out]

    def take_call_seconds(self) -> list[float]:
        """Latencies of the calls finished since the last take."""
        taken, self.call_seconds = self.call_seconds, []
        return taken

    def stop(self) -> None:
        for actor in self.actors:
            ray.kill(actor)

    def _run(self, n: int, submit: Callable[[Any, int, int], Any]) -> list[tuple[Any, str]]:
        """Results per item, as (value, "") or (None, why it failed). Each judge has at most one
        call in flight, so a deadline measures that call alone, not a queue behind it."""
        began = time.monotonic()
        try:
            return self._judged(n, submit)
        finally:
            self.busy_seconds += time.monotonic() - began

    def _judged(self, n: int, submit: Callable[[Any, int, int], Any]) -> list[tuple[Any, str]]:
        results: list[tuple[Any, str]] = [(None, "")] * n
        queue = deque(_Call(begin, min(begin + self.batch_size, n), 0, -1, 0.0) for begin in range(0, n, self.batch_size))
        free = list(range(len(self.actors)))
        pending: dict[Any, _Call] = {}
        while queue or pending:
            while queue and free:  # a retry goes to another judge when one is free
                call = queue.popleft()
                slot = next((s for s in free if s != call.slot), free[0])
                free.remove(slot)
                call.slot, call.deadline = slot, time.monotonic() + self.timeout_s
                pending[submit(self.actors[slot], call.begin, call.end)] = call
            wait = max(0.0, min(c.deadline for c in pending.values()) - time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait)
            for ref in ready:
                call = pending.pop(ref)
                free.append(call.slot)
                self.call_seconds.append(time.monotonic() - (call.deadline - self.timeout_s))
                try:
                    results[call.begin : call.end] = [(v, "") for v in ray.get(ref)]
                except RayError as err:
                    if isinstance(err, RayActorError):  # its process is gone: calls to it would all fail
                        self._replace(call.slot)
                    self._retry(call, f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:200]}", queue, results)
            now = time.monotonic()
            for ref, call in [(r, c) for r, c in pending.items() if c.deadline <= now]:
                del pending[ref]
                self._replace(call.slot)
                free.append(call.slot)
                self._retry(call, f"timed out after {self.timeout_s:g}s", queue, results)
        self._check(results)
        return results

    def _check(self, results: list[tuple[Any, str]]) -> None:
        failed = [why for value, why in results if value is None]
        if results and len(failed) / len(results) > self.max_error_share:
            raise JudgeFailure(
                f"{len(failed)} of {len(results)} games could not be judged ({failed[-1]}); the judges keep failing, so the "
                f"run stops rather than learn from ties (judge.max_error_share is {self.max_error_share:g})"
            )

    def _retry(self, call: _Call, why: str, queue: deque, results: list) -> None:
        self.errors.append(f"judge {call.slot}, items {call.begin}-{call.end}: {why}")
        if call.tries < self.retries:
            queue.append(_Call(call.begin, call.end, call.tries + 1, call.slot, 0.0))
        else:
            results[call.begin : call.end] = [(None, f"judge error after {call.tries + 1} tries: {why}")] * (call.end - call.begin)

    def _replace(self, slot: int) -> None:
        """A judge stuck in a call cannot be interrupted: kill it and start a fresh one in its slot."""
        self._restart(slot)
        self._ready(slot)  # started before its first deadline runs

    def _restart(self, slot: int) -> None:
        ray.kill(self.actors[slot])
        self.generation[slot] += 1
        self.actors[slot] = self.start(slot, self.generation[slot])

    def _ready(self, slot: int) -> str:
        """The name of the judge in `slot` once it has started (start-up is not counted against a
        call's deadline); one that dies while starting is started again, up to `retries` times. One
        whose own start raised (a judge the recipe describes wrongly) fails at once, with its error."""
        tries = 0
        while True:
            try:
                return ray.get(self.actors[slot].name.remote())
            except RayActorError as err:
                if err.actor_init_failed:
                    raise
                why = str(err).strip().splitlines()[-1][:200]
                self.errors.append(f"judge {slot} died while starting: {why}")
                if tries == self.retries:
                    raise JudgeFailure(f"judge {slot} died each of the {tries + 1} times it started (judge.retries is "
                                       f"{self.retries}); last: {why}") from None
            tries += 1
            self._restart(slot)


def _stored(values: Any) -> Any:
    """Lists go to the object store once, not once per batch."""
    return values if isinstance(values, ray.ObjectRef) else ray.put(values)


def _marked(reason: str) -> Verdict:
    return Verdict("tie", 0.0, 0.0, reason)

