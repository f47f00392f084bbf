"""The `Task` protocol and the registry of task kinds.

A task says what is played about: where training prompts come from, a fixed held-out split,
warm-up examples where it has references, and its own held-out metric. A recipe picks one with
`task.kind`; each kind is one file in this folder with an options model (validated when the
recipe is read, like every other section) whose `build` makes the task. The driver, the judges
and the league see only `Example`s.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import model_validator

from cluster.section import RecipeSection
from prompts.example import Example

MAX_HELD_OUT = 100_000  # held-out prompts a task may ask for
WIN_RATE = "win_rate_vs_v0"  # the metric of an open-ended task: see `Task.open_ended`


class TaskError(ValueError):
    """A task that cannot be built or asked for what it lacks (no references for SFT, a bad data file)."""


class TaskOptions(RecipeSection):
    """A task kind's recipe section. Subclasses set `kind` (a Literal, the registry's key) and `build`."""
    kind: str
    held_out_size: int

    @model_validator(mode="after")
    def _held_out_is_bounded(self) -> TaskOptions:
        """Every held-out prompt is answered and scored every iteration; past this it is a typo."""
        if self.held_out_size > MAX_HELD_OUT:
            raise ValueError(f"held_out_size {self.held_out_size} is more than {MAX_HELD_OUT:,}; every held-out prompt "
                             "is answered each iteration, so choose a few hundred")
        return self

    @property
    def has_references(self) -> bool:
        """Whether the examples carry reference answers (what the SFT warm-up trains on)."""
        return True

    @property
    def has_tests(self) -> bool:
        """Whether the examples carry unit tests (what the code judge runs)."""
        return False

    def with_judge(self, kind: str, options: dict[str, Any]) -> TaskOptions:
        """The options once the recipe's judge is known (a task whose metric defaults to the judge's fills it in)."""
        return self

    def build(self, seed: int) -> Task:
        raise NotImplementedError(f"task kind {self.kind!r} defines no build()")


@runtime_checkable
class Task(Protocol):
    """What the driver asks of a task. Held-out evaluation, retention and the SFT stop all go
    through `metric`, so each task is measured in its own terms (exact match, a numeric
    answer, unit tests passed)."""

    name: str
    # An open-ended task (no reference, no tests) has no per-answer score: its held-out metric
    # is the judge's win rate of the current policy's answers over the starting policy's (v0).
    open_ended: bool

    def train(self, n: int, rng: np.random.Generator) -> list[Example]:
        """`n` training prompts, drawn with `rng` (never from the held-out split)."""

    def held_out(self) -> list[Example]:
        """The fixed held-out split: the same examples every iteration and every run with this seed."""

    def sft(self, n: int, rng: np.random.Generator) -> list[Example]:
        """`n` training examples with reference answers for the warm-up; a `TaskError` where there are none."""

    def score(self, example: Example, response: str) -> float:
        """One answer's held-out score in [0, 1] (a `TaskError` for an open-ended task)."""


class Scorer(Protocol):
    """Anything that scores one answer: a task, or a verifier's judge (retention files)."""

    def score(self, example: Example, response: str) -> float: ...


def metric(task: Scorer, examples: list[Example], responses: list[str]) -> float:
    """The task's held-out metric: its mean score over the examples."""
    if len(examples) != len(responses):
        raise TaskError(f"{len(examples)} examples but {len(responses)} responses to score")
    if not examples:
        return 0.0
    batch = getattr(task, "score_all", None)  # a task may score many answers at once (sandboxes in parallel)
    scores = batch(examples, responses) if batch is not None else [task.score(e, r) for e, r in zip(examples, responses)]
    return sum(scores) / len(examples)


Options = TypeVar("Options", bound=type[TaskOptions])
TASK_KINDS: dict[str, type[TaskOptions]] = {}


def task_kind(options: Options) -> Options:
    """Register a task kind by its options model; its `kind` field's default is the name."""
    fields: dict[str, Any] = options.__pydantic_fields__
    name = fields["kind"].default
    if not isinstance(name, str):
        raise TypeError(f"{options.__name__}.kind needs a string default (the task kind's name)")
    TASK_KINDS[name] = options
    return options


def kinds() -> dict[str, type[TaskOptions]]:
    """Every task kind, after importing each module of this folder (a new task is one new file)."""
    import tasks

    for module in pkgutil.iter_modules(tasks.__path__):
        importlib.import_module(f"tasks.{module.name}")
    return dict(TASK_KINDS)

