"""Multi-digit addition: a task whose every answer can be checked exactly.

Problems are split by a hash of the operands, not by sampling order, so the held-out set
never leaks into training whatever seed or sample size a run uses.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str


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

    def __init__(self, digits: int = 3, held_out_every: int = 10, reverse: bool = True) -> None:
        self.digits = digits
        self.held_out_every = held_out_every
        self.reverse = reverse
        self.limit = 10**digits

    def problem(self, a: int, b: int) -> Problem:
        if not self.reverse:
            return Problem(prompt=f"{a}+{b}=", answer=str(a + b))
        width = self.digits
        return Problem(prompt=f"{a:0{width}d}"[::-1] + "+" + f"{b:0{width}d}"[::-1] + "=", answer=f"{a + b:0{width + 1}d}"[::-1])

    def is_held_out(self, a: int, b: int) -> bool:
        # A cryptographic hash, not arithmetic on a and b: any linear rule would hold out a
        # structured slice (say, every sum ending in 0) that training then never shows.
        digest = hashlib.blake2b(f"{a}+{b}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.held_out_every == 0

    def sample_train(self, n: int, rng: np.random.Generator) -> list[Problem]:
        """`n` training problems; held-out operand pairs are redrawn."""
        problems: list[Problem] = []
        while len(problems) < n:
            a, b = (int(x) for x in rng.integers(0, self.limit, size=2))
            if not self.is_held_out(a, b):
                problems.append(self.problem(a, b))
        return problems

    def held_out(self, n: int, seed: int = 1234) -> list[Problem]:
        """A fixed held-out set: the same `n` problems for every iteration and every run with this seed."""
        rng = np.random.default_rng(seed)
        problems: list[Problem] = []
        for _ in range(1000 * n + 100_000):
            a, b = (int(x) for x in rng.integers(0, self.limit, size=2))
            if self.is_held_out(a, b):
                problems.append(self.problem(a, b))
                if len(problems) == n:
                    return problems
        raise ValueError(f"found only {len(problems)} held-out problems of {n}; lower held_out_every or raise digits")


def is_correct(problem: Problem, response: str) -> bool:
    """Exactly the answer, whitespace around it ignored (the `exact_answer` verifier)."""
    return response.strip() == problem.answer.strip()


def accuracy(problems: list[Problem], responses: list[str]) -> float:
    """Fraction of responses that are correct."""
    if not problems:
        return 0.0
    return sum(is_correct(p, r) for p, r in zip(problems, responses, strict=True)) / len(problems)


def wrong_answer(problem: Problem, rng: np.random.Generator) -> str:
    """The answer with one digit changed: a near miss, the hardest kind of wrong for a verifier."""
    digits = list(problem.answer)
    i = int(rng.integers(len(digits)))
    digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
    return "".join(digits)
