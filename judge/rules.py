"""Rule verifiers: the response is checked against the problem's reference answer, no model involved.

A verifier is a registered function `check(response, answer, **options) -> bool`; a recipe
names one as `judge.kind` and gives its options in `judge.options`, checked when the recipe is
read. Register your own with `@verifier("name")`.
"""
from __future__ import annotations

import math
import re
import string
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from judge.base import Judge, JudgeError, registrar
from judge.verdict import Verdict, verdict_from_scores
from prompts.example import Example

Check = Callable[..., bool]
VERIFIERS: dict[str, Check] = {}

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?|[-+]?\.\d+")
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
ARTICLES = re.compile(r"\b(a|an|the)\b")


# Register `check(response, answer, **options) -> bool`: `@verifier("name")`.
verifier = registrar(VERIFIERS)


@verifier("exact_answer")
def exact_answer(response: str, answer: str) -> bool:
    """Exactly the answer, whitespace around either ignored (the addition task's own check)."""
    return response.strip() == answer.strip()


def normalize(text: str, case_sensitive: bool = False, strip_punctuation: bool = True, remove_articles: bool = True) -> str:
    """SQuAD-style normalization: lower case, no punctuation, no articles, single spaces."""
    if not case_sensitive:
        text = text.lower()
    if strip_punctuation:
        text = text.translate(str.maketrans("", "", string.punctuation))
    if remove_articles:
        text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


@verifier("normalized_match")
def normalized_match(
    response: str, answer: str, case_sensitive: bool = False, strip_punctuation: bool = True, remove_articles: bool = True
) -> bool:
    """Equal after `normalize` (so "The Eiffel tower." matches "eiffel Tower")."""
    opts = dict(case_sensitive=case_sensitive, strip_punctuation=strip_punctuation, remove_articles=remove_articles)
    return normalize(response, **opts) == normalize(answer, **opts)


def parse_number(text: str) -> float | None:
    """A number as people write it: `-1,234.5`, `3/4`, `1e-3`; None when it is not one."""
    text = text.strip().replace(",", "").replace(" ", "")
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(response: str, extract: str = "last") -> float | None:
    """The number a response gives: the `last` (or `first`) number in it, or the content of its last `\\boxed{}`."""
    if extract == "boxed":
        boxes = BOXED.findall(response)
        return parse_number(boxes[-1]) if boxes else None
    found = NUMBER.findall(response)
    if not found:
        return None
    return parse_number(found[-1] if extract == "last" else found[0])


@verifier("numeric")
def numeric(response: str, answer: str, extract: str = "last", tolerance: float = 1e-6, relative_tolerance: float = 0.0) -> bool:
    """The extracted number equals the answer within `tolerance` (absolute) or `relative_tolerance`."""
    if extract not in ("last", "first", "boxed"):
        raise ValueError(f"extract must be last, first or boxed, not {extract!r}")
    if tolerance < 0 or relative_tolerance < 0:
        raise ValueError("tolerances must be at least 0")
    expected = parse_number(answer)
    if expected is None and answer.strip():
        raise JudgeError(f"numeric verifier: the reference answer {answer!r} is not a number")
    got = extract_number(response, extract)
    if got is None or expected is None:
        return False
    return math.isclose(got, expected, abs_tol=tolerance, rel_tol=relative_tolerance)


@verifier("regex")
def regex(response: str, answer: str, ignore_case: bool = False) -> bool:
    """The whole (stripped) response matches the reference answer read as a regular expression."""
    return re.fullmatch(answer, response.strip(), re.IGNORECASE if ignore_case else 0) is not None


@verifier("math")
def math_answer(response: str, answer: str, timeout_s: float = 5.0) -> bool:
    """Mathematically equal to the reference (HuggingFace's math-verify, as TRL, open-r1 and verl
    use it): boxed and LaTeX answers, fractions, equivalent expressions. math-verify bounds its
    own work with `signal.alarm`, which raises outside the main thread (judge pools, Ray actors),
    so its timeouts are off and the call runs in a daemon thread bounded by `timeout_s`: an
    answer that takes longer is wrong (and its thread is left to finish on its own)."""
    if timeout_s <= 0:
        raise ValueError("timeout_s must be above 0")
    if not response.strip():
        return False
    parse, verify = _math_verify()  # imported here, not inside the bounded call
    result: list[Any] = []

    def check() -> None:
        try:
            result.append(_math_equal(parse, verify, answer, response))
        except Exception as err:  # handed to the caller: a broken verifier must not read as a wrong answer
            result.append(err)

    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if result and isinstance(result[0], Exception):
        raise JudgeError(f"math verifier failed on reference {answer!r}: {result[0]!r}") from result[0]
    return bool(result and result[0])


def _math_verify() -> tuple[Callable[..., Any], Callable[..., Any]]:
    import logging

    try:
        from math_verify import parse, verify
    except ImportError as err:
        raise JudgeError("the math verifier needs the math-verify package (pip install math-verify)") from err
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call that its timeouts are off
    return parse, verify


def _math_equal(parse: Callable[..., Any], verify: Callable[..., Any], answer: str, response: str) -> bool:
    gold = parse(answer if "$" in answer or "\\" in answer else f"${answer}$", parsing_timeout=None)
    return bool(verify(gold, parse(response, parsing_timeout=None), timeout_seconds=None))


def check_verifier(kind: str, options: dict[str, Any]) -> None:
    """Fail when the recipe is read, not mid-run, on an unknown verifier or options it does not take."""
    if kind not in VERIFIERS:
        raise ValueError(f"unknown verifier {kind!r}; known: {', '.join(sorted(VERIFIERS))}")
    try:
        VERIFIERS[kind]("1", "1", **options)
    except TypeError as err:
        raise ValueError(f"judge options {options} do not fit verifier {kind!r} ({err})") from None
    except ValueError as err:
        raise ValueError(f"verifier {kind!r} with options {options}: {err}") from None


class RuleJudge(Judge):
    """Score 1 for a response the verifier accepts, else 0; equal scores tie."""

    def __init__(self, kind: str = "exact_answer", options: dict[str, Any] | None = None) -> None:
        if kind not in VERIFIERS:
            raise JudgeError(f"unknown verifier {kind!r}; known: {', '.join(sorted(VERIFIERS))}")
        self.name = kind
        self.check = VERIFIERS[kind]
        self.options = dict(options or {})

    def score(self, problem: Example, response: str) -> float:
        return 1.0 if self.check(response, problem.answer, **self.options) else 0.0

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        if not len(problems) == len(responses_a) == len(responses_b):
            raise JudgeError(
                f"{len(problems)} problems but {len(responses_a)} and {len(responses_b)} responses; "
                "every matchup needs one response per side"
            )
        verdicts = []
        for problem, a, b in zip(problems, responses_a, responses_b):
            sa, sb = self.score(problem, a), self.score(problem, b)
            reason = f"expected {problem.answer}: a {'right' if sa else 'wrong'}, b {'right' if sb else 'wrong'}"
            verdicts.append(verdict_from_scores(sa, sb, reason))
        return verdicts


class ScoreJudge(Judge):
    """Each answer scored by anything with `score(example, response)` in [0, 1] (the task's own
    metric, for `judge.kind: task`); the higher score wins, equal scores tie."""

    def __init__(self, scorer: Any, name: str) -> None:
        self.scorer = scorer
        self.name = name

    def score(self, problem: Example, response: str) -> float:
        return float(self.scorer.score(problem, response))

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        if not len(problems) == len(responses_a) == len(responses_b):
            raise JudgeError(f"{len(problems)} problems but {len(responses_a)} and {len(responses_b)} responses")
        verdicts = []
        for problem, a, b in zip(problems, responses_a, responses_b):
            sa, sb = self.score(problem, a), self.score(problem, b)
            verdicts.append(verdict_from_scores(sa, sb, f"{self.name}: a {sa:.3g}, b {sb:.3g}"))
        return verdicts


class ExactAnswerJudge(RuleJudge):
    """The built-in task's judge: exactly the answer."""

    def __init__(self) -> None:
        super().__init__("exact_answer")
