"""The code-execution judge: a response passes when its code passes the problem's tests.

The example's `tests` hold them, in one of two forms:

- test code (plain `assert`s, as HumanEval's `check(candidate)`): a test fails by raising. It
  runs in the sandbox's harness, apart from the program, after the example's `fields["setup"]`
  (the prompt's imports and helpers, trusted); the program (setup, then the response's code)
  hands over only plain data, so an object that claims equality with everything loses;
- stdin/stdout cases: a JSON list of {"input": ..., "output": ...} objects (LiveCodeBench,
  Codeforces). Each case runs the program afresh with the input on stdin; its stdout must equal
  the output, trailing whitespace of each line and trailing blank lines aside.

The response's code is the last fenced ```python block (closed, or open to the end), or the
whole response when it has none. It passes only when every test ran and held, whatever exit
status the code picks, so a response that loops, forks, hogs memory, reads or reaches outside,
or games the comparison is a recorded loss, never a stop.
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from judge.base import Judge, JudgeError
from judge.sandbox import IOCase, SandboxLimits, SandboxResult, run_python
from judge.verdict import Verdict, verdict_from_scores
from prompts.example import Example

# a block closed by its fence, or left open at the end (an answer cut at a stop string or the token limit)
FENCE = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(response: str) -> str:
    blocks = FENCE.findall(response)
    return blocks[-1] if blocks else response


class CodeJudge(Judge):
    name = "code"

    def __init__(self, limits: SandboxLimits | None = None, workers: int = 4) -> None:
        limits = limits or SandboxLimits()
        if workers < 1:
            raise JudgeError(f"workers must be at least 1, got {workers}")
        for field, value in vars(limits).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise JudgeError(f"sandbox limit {field} must be a number above 0, got {value!r}")
        self.limits = limits
        self.workers = workers

    @classmethod
    def from_options(cls, options: dict) -> CodeJudge:
        """From a recipe's `judge.options`: any SandboxLimits field, and `workers`."""
        options = dict(options)
        workers = options.pop("workers", 4)
        try:
            limits = SandboxLimits(**options)
        except TypeError:
            known = ", ".join(sorted([*SandboxLimits.__dataclass_fields__, "workers"]))
            raise JudgeError(f"code judge options {sorted(options)}: known options are {known}") from None
        return cls(limits, workers)

    def run(self, problems: list[Example], responses: list[str]) -> list[SandboxResult]:
        """Each response's code judged by its problem's tests, a few programs at a time."""
        jobs = [_job(p, r) for p, r in zip(problems, responses, strict=True)]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda job: run_python(limits=self.limits, **job), jobs))

    def score(self, problem: Example, response: str) -> float:
        return self.score_all([problem], [response])[0]

    def score_all(self, problems: list[Example], responses: list[str]) -> list[float]:
        return [1.0 if r.passed else 0.0 for r in self.run(problems, responses)]

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        if not len(problems) == len(responses_a) == len(responses_b):
            raise JudgeError(f"{len(problems)} problems but {len(responses_a)} and {len(responses_b)} responses")
        results = self.run(problems + problems, responses_a + responses_b)
        n = len(problems)
        return [
            verdict_from_scores(float(a.passed), float(b.passed), f"a: {a.reason}; b: {b.reason}")
            for a, b in zip(results[:n], results[n:])
        ]


def io_cases(tests: str, where: str = "tests") -> list[IOCase] | None:
    """The stdin/stdout cases when `tests` is a JSON list of {"input", "output"} objects; None
    when it is test code. A malformed or empty list is an error, not code that tests nothing."""
    text = tests.strip()
    if not text.startswith("["):
        return None
    try:
        items = json.loads(text)
    except ValueError:
        return None  # Python that happens to start with a list
    if not isinstance(items, list):
        return None
    if not items:
        raise JudgeError(f"{where}: an empty list of stdin/stdout cases would let every program pass")
    return [_case(item, number, where) for number, item in enumerate(items, start=1)]


def _case(item: Any, number: int, where: str) -> IOCase:
    if not (isinstance(item, dict) and isinstance(item.get("input"), str) and isinstance(item.get("output"), str)):
        raise JudgeError(f'{where}: case {number} must be an object with text "input" and "output", not {str(item)[:100]}')
    return IOCase(item["input"], item["output"])


def _job(example: Example, response: str) -> dict[str, Any]:
    """run_python's arguments for one response: the program (setup first), and the tests with
    the setup, or the stdin/stdout cases."""
    setup = example.fields.get("setup") or ""
    program = f"{setup}\n{extract_code(response)}" if setup else extract_code(response)
    tests = _tests(example)
    cases = io_cases(tests, f"tests of example {example.id!r}")
    return {"source": program, "cases": cases} if cases is not None else {"source": program, "tests": tests, "setup": setup}


def _tests(example: Example) -> str:
    """The example's tests; an example without them would let every program pass."""
    if not example.tests:
        raise JudgeError(f"example {example.id!r} has no tests: the code judge needs a task whose examples carry unit tests")
    return example.tests
