"""The `Judge` interface: a verdict per matchup, judged in batches."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from judge.verdict import Verdict
from prompts.example import Example

F = TypeVar("F", bound=Callable[..., Any])


def registrar(table: dict[str, Any]) -> Callable[[str], Callable[[F], F]]:
    """A decorator factory that files functions in `table` by name (verifiers, adherence rules)."""

    def named(name: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            table[name] = fn
            return fn

        return register

    return named


class JudgeError(RuntimeError):
    """A judge could not produce verdicts for a batch."""


class Judge(ABC):
    """Decides each matchup: the same problem answered by side a and side b."""

    name: str = "judge"

    @abstractmethod
    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        """One verdict per matchup, in order."""

    @abstractmethod
    def score(self, problem: Example, response: str) -> float:
        """One response's score on its own (adversarial filtering ranks many samples by it)."""

    def score_all(self, problems: list[Example], responses: list[str]) -> list[float]:
        if len(problems) != len(responses):
            raise JudgeError(f"{len(problems)} problems but {len(responses)} responses to score")
        return [self.score(p, r) for p, r in zip(problems, responses)]
