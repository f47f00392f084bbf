"""The code-execution judge: a response passes when its code passes the problem's unit tests.

The example's `tests` hold them (plain `assert`s: a test fails by raising);
the response's code is the last fenced ```python block (closed, or open to the end), or the
whole response when it has none. The example's `fields["setup"]` (imports the prompt assumes, as HumanEval's do), the
code, then the tests, run in one namespace in the sandbox (judge/sandbox.py); it
passes only when both run to the end, whatever exit status the code picks. So a
response that loops, forks, hogs memory or reaches outside is a recorded loss, never a stop.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from judge.base import Judge, JudgeError
from judge.sandbox import SandboxLimits, SandboxResult, run_python
from judge.verdict import Verdict, verdict_from_scores
from prompts.example import Example

# a block closed by its fence, or left open at the end (an answer cut at a stop string or the token limit)
FENCE = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(response: str) -> str:
    blocks = FENCE.findall(response)
    return blocks[-1] if blocks else response


class CodeJudge(Judge):
    name = "code"

    def __init__(self, limits: SandboxLimits = SandboxLimits(), workers: int = 4) -> None:
        if workers < 1:
            raise JudgeError(f"workers must be at least 1, got {workers}")
        for field, value in vars(limits).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise JudgeError(f"sandbox limit {field} must be a number above 0, got {value!r}")
        self.limits = limits
        self.workers = workers

    @classmethod
    def from_options(cls, options: dict) -> "CodeJudge":
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
        """Each response's code followed by its problem's tests, a few programs at a time."""
        pairs = [(_program(p, r), _tests(p)) for p, r in zip(problems, responses, strict=True)]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda pair: run_python(pair[0], self.limits, tests=pair[1]), pairs))

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


def _program(example: Example, response: str) -> str:
    setup = example.fields.get("setup")
    return f"{setup}\n{extract_code(response)}" if setup else extract_code(response)


def _tests(example: Example) -> str:
    """The example's unit tests; an example without them would let every program pass."""
    if not example.tests:
        raise JudgeError(f"example {example.id!r} has no tests: the code judge needs a task whose examples carry unit tests")
    return example.tests
