"""Pairwise LLM-as-judge: a language model reads both answers and says which is better.

LLM judges favour whichever answer they read first, so every matchup is asked in both
orders (position swap) and counts only when the two answers agree; a disagreement is a tie.
An answer the judge's verdict pattern cannot read is recorded as invalid (a tie whose reason
starts with `invalid`), never a crash. The judge model is served by a vLLM generator actor;
this class only needs a function from prompts to completions.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable

from judge.base import Judge, JudgeError
from judge.verdict import Verdict, verdict_from_scores
from prompts.example import Example

DEFAULT_TEMPLATE = (
    "Question: {prompt}\nAnswer A: {a}\nAnswer B: {b}\n"
    "Which answer is better? Reply with [[A]], [[B]], or [[C]] for a tie.\nVerdict: "
)
DEFAULT_PATTERN = r"\[\[([ABC])\]\]"


def check_template(template: str, pattern: str) -> None:
    try:
        template.format(prompt="", a="", b="")
    except (KeyError, IndexError, ValueError, AttributeError) as err:
        raise ValueError(f"judge template {template!r} is not a format string over {{prompt}}, {{a}}, {{b}}: {err!r}") from None
    names = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    missing = [f"{{{n}}}" for n in ("a", "b") if n not in names]
    if missing:
        raise ValueError(f"judge template {template!r} lacks {' and '.join(missing)}, so the judge would never see that "
                         "answer; put both {a} and {b} in it")
    try:
        if re.compile(pattern).groups != 1:
            raise ValueError(f"verdict pattern {pattern!r} needs exactly one group capturing A, B or C")
    except re.error as err:
        raise ValueError(f"verdict pattern {pattern!r} is not a regular expression: {err}") from None


class PairwiseLLMJudge(Judge):
    name = "pairwise_llm"

    def __init__(self, generate: Callable[[list[str]], list[str]], template: str = DEFAULT_TEMPLATE, pattern: str = DEFAULT_PATTERN,
                 render: Callable[[str], str] | None = None) -> None:
        """`render`: the judge model's own way of reading a request (its chat template, the
        filled-in template as the user's turn); raw text without it."""
        try:
            check_template(template, pattern)
        except ValueError as err:
            raise JudgeError(str(err)) from None
        self.generate = generate
        self.template = template
        self.pattern = re.compile(pattern)
        self.render = render or (lambda text: text)

    def ask(self, problem: Example, first: str, second: str) -> str:
        """The request for one order of the two answers, as the judge model reads it."""
        return self.render(self.template.format(prompt=problem.text, a=first, b=second))

    def read(self, answer: str) -> str | None:
        """The verdict letter in a judge's answer (the first match), or None."""
        match = self.pattern.search(answer)
        return match.group(1) if match and match.group(1) in ("A", "B", "C") else None

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        if not len(problems) == len(responses_a) == len(responses_b):
            raise JudgeError(f"{len(problems)} problems but {len(responses_a)} and {len(responses_b)} responses")
        forward = [self.ask(p, a, b) for p, a, b in zip(problems, responses_a, responses_b)]
        swapped = [self.ask(p, b, a) for p, a, b in zip(problems, responses_a, responses_b)]
        answers = self.generate(forward + swapped)
        n = len(problems)
        return [self._combine(first, second) for first, second in zip(answers[:n], answers[n:])]

    def _combine(self, first: str, second: str) -> Verdict:
        """`first` saw (a, b), `second` (b, a): a wins only if first says A and second says B."""
        one, two = self.read(first), self.read(second)
        heard = f"a-first said {first.strip()[:60]!r}, b-first said {second.strip()[:60]!r}"
        if one is None or two is None:
            return verdict_from_scores(0.5, 0.5, f"invalid: {heard}")
        a_first = {"A": 1.0, "B": 0.0, "C": 0.5}[one]
        b_first = {"A": 0.0, "B": 1.0, "C": 0.5}[two]  # in the swapped order, A is side b
        if a_first != b_first:
            return verdict_from_scores(0.5, 0.5, f"orders disagree: {heard}")
        return verdict_from_scores(a_first, 1.0 - a_first, f"both orders agree: {heard}")

    def score(self, problem: Example, response: str) -> float:
        raise JudgeError("a pairwise judge compares two answers; it gives no score to one (adversarial filtering needs a scoring judge)")
