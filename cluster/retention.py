"""Capability retention: tasks the run does not train on in self-play, scored against the start.

Self-play pushes the policy hard on one task; a retention task measures what that costs
elsewhere. A built-in one (addition with another operand length) is taught in the warm-up
beside the main task, so the starting policy knows it and any later loss is forgetting.
"""
from __future__ import annotations

import numpy as np

from cluster.config import RunConfig
from judge.rules import RuleJudge
from learner.mixing import load_text_columns
from prompts.example import Example
from tasks.addition import AdditionTask
from tasks.base import Scorer, Task


def retention_tasks(config: RunConfig) -> dict[str, AdditionTask]:
    """The built-in retention tasks by name (those the warm-up teaches; the recipe check allows
    them only beside the addition task, whose options they share)."""
    t = config.task
    return {
        r.name: AdditionTask(r.digits, getattr(t, "held_out_every", 10), getattr(t, "reverse", True))
        for r in config.eval.retention if r.digits is not None
    }


def retention_scorers(config: RunConfig) -> dict[str, Scorer]:
    """What scores each retention task: a built-in one its own metric, one from a file its `metric` verifier."""
    taught = retention_tasks(config)
    return {r.name: taught.get(r.name) or RuleJudge(r.metric) for r in config.eval.retention}


def retention_problems(config: RunConfig) -> dict[str, list[Example]]:
    """The fixed problems each retention task is scored on, every iteration the same."""
    tasks = retention_tasks(config)
    out: dict[str, list[Example]] = {}
    for r in config.eval.retention:
        if r.path is not None:
            rows = load_text_columns(r.path, ("prompt", "answer"), f"retention task {r.name!r}").slice(0, r.size)
            out[r.name] = [Example(p, a) for p, a in zip(rows.column("prompt").to_pylist(), rows.column("answer").to_pylist())]
        else:
            out[r.name] = tasks[r.name].held_out(r.size, seed=config.seed + 4321)
    return out


def sft_problems(task: Task, extra: dict[str, AdditionTask], share: float, n: int, rng: np.random.Generator) -> list[Example]:
    """`n` warm-up problems: `share` of them (rounded) from the retention tasks, in turn, the rest from the task."""
    if not extra:
        return task.sft(n, rng)
    k = int(round(share * n))
    problems = task.sft(n - k, rng)
    tasks = list(extra.values())
    for i in range(k):
        problems += tasks[i % len(tasks)].sft(1, rng)
    return [problems[i] for i in rng.permutation(len(problems))]


def compared(now: dict[str, float], start: dict[str, float]) -> dict[str, float]:
    """Each task's accuracy now minus at the start (negative: forgotten)."""
    return {name: now[name] - start[name] for name in now}

