"""Constitutional scoring: a base judge's score plus weighted adherence to explicit principles.

score = base score + sum(weight x adherence), adherence in [0, 1] per principle. A principle's
adherence comes from a named rule registered here (a recipe names it and its options), so a
constitution is data, checked when the recipe is read, and every verdict records the
per-principle adherence of both sides.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from judge.base import Judge, JudgeError
from judge.verdict import Verdict, verdict_from_scores
from tasks.addition import Problem

Rule = Callable[..., float]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    """Register an adherence rule: `fn(problem, response, **options) -> float in [0, 1]`."""

    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


@rule("max_length")
def _max_length(problem: Problem, response: str, max_chars: int) -> float:
    """1 up to `max_chars` characters, then falling as max_chars / length."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    length = len(response.strip())
    return 1.0 if length <= max_chars else max_chars / length


@rule("matches")
def _matches(problem: Problem, response: str, pattern: str) -> float:
    """1 when the whole (stripped) response matches the regular expression."""
    return 1.0 if re.fullmatch(pattern, response.strip()) else 0.0


@rule("avoids")
def _avoids(problem: Problem, response: str, pattern: str) -> float:
    """1 when the regular expression occurs nowhere in the response."""
    return 0.0 if re.search(pattern, response) else 1.0


@dataclass(frozen=True)
class Principle:
    name: str
    rule: str
    weight: float
    options: dict[str, Any] = field(default_factory=dict)

    def adherence(self, problem: Problem, response: str) -> float:
        value = RULES[self.rule](problem, response, **self.options)
        if not 0.0 <= value <= 1.0:
            raise JudgeError(f"principle {self.name!r}: rule {self.rule!r} returned {value}, outside [0, 1]")
        return value


def check_principle(name: str, rule_name: str, options: dict[str, Any]) -> None:
    """Fail early, with the rules known, when a recipe names an unknown rule or bad options."""
    if rule_name not in RULES:
        raise ValueError(f"principle {name!r}: unknown rule {rule_name!r}; known rules: {', '.join(sorted(RULES))}")
    try:
        for probe in ("", "a probe response"):
            value = RULES[rule_name](Problem("", ""), probe, **options)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"adherence {value} is outside [0, 1]")
    except TypeError as err:
        raise ValueError(f"principle {name!r}: options {options} do not fit rule {rule_name!r} ({err})") from None
    except (re.error, ValueError, ZeroDivisionError) as err:
        raise ValueError(f"principle {name!r}: rule {rule_name!r} fails with options {options}: {err}") from None


class ConstitutionalJudge(Judge):
    """Wraps any judge; every mode that uses a judge can use this one."""

    def __init__(self, base: Judge, principles: list[Principle]) -> None:
        self.base = base
        self.principles = principles
        self.name = f"constitutional({base.name})"

    def score(self, problem: Problem, response: str) -> float:
        return self.base.score(problem, response) + sum(p.weight * p.adherence(problem, response) for p in self.principles)

    def judge(self, problems: list[Problem], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        base = self.base.judge(problems, responses_a, responses_b)
        verdicts = []
        for problem, a, b, v in zip(problems, responses_a, responses_b, base):
            adherence = {p.name: (p.adherence(problem, a), p.adherence(problem, b)) for p in self.principles}
            score_a = v.score_a + sum(p.weight * adherence[p.name][0] for p in self.principles)
            score_b = v.score_b + sum(p.weight * adherence[p.name][1] for p in self.principles)
            verdicts.append(verdict_from_scores(score_a, score_b, v.reason, principles=adherence))
        return verdicts
