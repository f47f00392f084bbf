"""Multi-digit addition: the built-in task, whose every answer can be checked exactly.

Problems are split by a hash of the operands, not by sampling order, so the held-out set
never leaks into training whatever seed or sample size a run uses.
"""
from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from prompts.example import Example
from tasks.base import TaskOptions, task_kind


@task_kind
class AdditionOptions(TaskOptions):
    """The built-in verifiable task: `digits`-digit addition, answers checked exactly."""

    kind: Literal["addition"] = "addition"
    digits: int = Field(3, ge=1, le=6)
    reverse: bool = Field(True, description="every number zero-padded, least-significant digit first")
    held_out_size: int = Field(256, ge=8, description="held-out problems scored every iteration")
    held_out_every: int = Field(10, ge=2, description="one problem in this many is held out of training")

    @model_validator(mode="after")
    def _held_out_pool_suffices(self) -> AdditionOptions:
        pool = 100**self.digits // self.held_out_every  # about this many operand pairs are held out
        if pool < 4:
            raise ValueError(
                f"with {self.digits}-digit operands and one pair in {self.held_out_every} held out, about {pool} "
                "problems are held out; lower held_out_every or raise digits"
            )
        return self

    def build(self, seed: int) -> AdditionTask:
        return AdditionTask(self.digits, self.held_out_every, self.reverse, self.held_out_size, seed + 1234)


class AdditionTask:
    """`a+b=` prompts with `digits`-digit operands; the answer is the decimal sum.

    With `reverse=True` (the default) every number is zero-padded and written least-significant
    digit first, operands and sum alike: 12 + 345 is `210+543=7530`. The i-th digit of the sum
    then sits at the same distance from the i-th digits of both operands for every i, so one
    relative-position pattern (what rotary attention learns) computes them all, plus a carry
    from the digits just before. A four-layer model learns it in a few hundred steps whatever
    the seed; with only the sum reversed, each digit needs its own offsets and the model
    often stalls on one of them for thousands of steps; written most-significant first, it
    needs many times the steps again.
    """

    name = "addition"
    open_ended = False

    def __init__(self, digits: int = 3, held_out_every: int = 10, reverse: bool = True, held_out_size: int = 256,
                 held_out_seed: int = 1234) -> None:
        self.digits = digits
        self.held_out_every = held_out_every
        self.reverse = reverse
        self.limit = 10**digits
        self.held_out_size = held_out_size
        self.held_out_seed = held_out_seed

    def problem(self, a: int, b: int) -> Example:
        if not self.reverse:
            return Example(f"{a}+{b}=", str(a + b), id=f"{a}+{b}")
        width = self.digits
        prompt = f"{a:0{width}d}"[::-1] + "+" + f"{b:0{width}d}"[::-1] + "="
        return Example(prompt, f"{a + b:0{width + 1}d}"[::-1], id=f"{a}+{b}")

    def is_held_out(self, a: int, b: int) -> bool:
        # A cryptographic hash, not arithmetic on a and b: any linear rule would hold out a
        # structured slice (say, every sum ending in 0) that training then never shows.
        digest = hashlib.blake2b(f"{a}+{b}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.held_out_every == 0

    def train(self, n: int, rng: np.random.Generator) -> list[Example]:
        """`n` training problems; held-out operand pairs are redrawn."""
        problems: list[Example] = []
        while len(problems) < n:
            a, b = (int(x) for x in rng.integers(0, self.limit, size=2))
            if not self.is_held_out(a, b):
                problems.append(self.problem(a, b))
        return problems

    sft = train  # every problem has its answer

    def held_out(self, n: int | None = None, seed: int | None = None) -> list[Example]:
        """A fixed held-out set: the same `n` problems for every iteration and every run with this seed."""
        n = self.held_out_size if n is None else n
        rng = np.random.default_rng(self.held_out_seed if seed is None else seed)
        problems: list[Example] = []
        for _ in range(1000 * n + 100_000):
            a, b = (int(x) for x in rng.integers(0, self.limit, size=2))
            if self.is_held_out(a, b):
                problems.append(self.problem(a, b))
                if len(problems) == n:
                    return problems
        raise ValueError(f"found only {len(problems)} held-out problems of {n}; lower held_out_every or raise digits")

    def score(self, example: Example, response: str) -> float:
        """Exactly the answer, whitespace around it ignored (the `exact_answer` verifier)."""
        return float(response.strip() == example.answer.strip())


def wrong_answer(problem: Example, rng: np.random.Generator) -> str:
    """The answer with one digit changed: a near miss, the hardest kind of wrong for a verifier."""
    digits = list(problem.answer)
    i = int(rng.integers(len(digits)))
    digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
    return "".join(digits)
