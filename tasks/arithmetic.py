"""Arithmetic word questions for chat models ("What is 37 + 45?"), checked by the number the
answer ends with: the task a pretrained instruct model improves on by self-play in minutes.

Unlike the built-in `addition` task (bare `a+b=` strings for a model trained from scratch),
prompts are chat messages and the answer is free text; the score is the `numeric` verifier's,
so "37 + 45 = 82." and "The answer is 82" both count, and so does a model that explains first
as long as it gets to the number before its token limit.
"""
from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from judge.rules import numeric
from prompts.example import Example
from tasks.base import TaskOptions, task_kind

OPERATIONS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@task_kind
class ArithmeticOptions(TaskOptions):
    """`digits`-digit operands, one of `operations` each, asked with `template` (over {a}, {op}, {b})."""

    kind: Literal["arithmetic"] = "arithmetic"
    digits: int = Field(2, ge=1, le=6)
    operations: list[Literal["+", "-", "*"]] = Field(["+"], min_length=1)
    template: str = Field("What is {a} {op} {b}?", description="the question, over {a}, {op} and {b}")
    held_out_size: int = Field(128, ge=8, description="held-out questions scored every iteration")
    held_out_every: int = Field(10, ge=2, description="one question in this many is held out of training")

    @model_validator(mode="after")
    def _template_fills(self) -> ArithmeticOptions:
        try:
            self.template.format(a=1, op="+", b=2)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"template {self.template!r} is not a format string over {{a}}, {{op}}, {{b}}: {err!r}") from None
        task = ArithmeticTask(self, 0)
        size = (task.high - task.low) ** 2 * len(self.operations)
        pool = size // self.held_out_every if size > 100_000 else sum(1 for _ in task.every_question(held_out=True))
        if pool < self.held_out_size:
            raise ValueError(
                f"{self.digits}-digit operands with one question in {self.held_out_every} held out give {pool} held-out "
                f"questions, fewer than held_out_size ({self.held_out_size}); lower held_out_every or raise digits"
            )
        return self

    def build(self, seed: int) -> ArithmeticTask:
        return ArithmeticTask(self, seed + 1234)


class ArithmeticTask:
    name = "arithmetic"
    open_ended = False

    def __init__(self, options: ArithmeticOptions, held_out_seed: int) -> None:
        self.options = options
        self.held_out_seed = held_out_seed
        self.low = 10 ** (options.digits - 1) if options.digits > 1 else 0
        self.high = 10**options.digits

    def question(self, a: int, op: str, b: int) -> Example:
        text = self.options.template.format(a=a, op=op, b=b)
        return Example([{"role": "user", "content": text}], str(OPERATIONS[op](a, b)), id=f"{a}{op}{b}")

    def is_held_out(self, a: int, op: str, b: int) -> bool:
        digest = hashlib.blake2b(f"{a}{op}{b}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.options.held_out_every == 0

    def _draw(self, rng: np.random.Generator, held_out: bool) -> Example:
        while True:
            a, b = (int(x) for x in rng.integers(self.low, self.high, size=2))
            op = self.options.operations[int(rng.integers(len(self.options.operations)))]
            if self.is_held_out(a, op, b) == held_out:
                return self.question(a, op, b)

    def train(self, n: int, rng: np.random.Generator) -> list[Example]:
        return [self._draw(rng, held_out=False) for _ in range(n)]

    sft = train  # every question has its answer

    def every_question(self, held_out: bool) -> Iterator[tuple[int, str, int]]:
        for op in self.options.operations:
            for a in range(self.low, self.high):
                for b in range(self.low, self.high):
                    if self.is_held_out(a, op, b) == held_out:
                        yield a, op, b

    def held_out(self) -> list[Example]:
        """`held_out_size` distinct held-out questions, the same for every run with this seed (the
        recipe check made sure there are that many)."""
        rng = np.random.default_rng(self.held_out_seed)
        seen: dict[str, Example] = {}
        while len(seen) < self.options.held_out_size:
            example = self._draw(rng, held_out=True)
            seen.setdefault(example.id, example)
        return list(seen.values())

    def score(self, example: Example, response: str) -> float:
        """The last number in the answer equals the result."""
        return float(numeric(response, example.answer))
