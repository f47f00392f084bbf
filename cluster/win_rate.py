"""The held-out metric of an open-ended task: how often the run's judge prefers the current
policy's greedy answer to the starting policy's (v0) on the held-out prompts, ties counted
half, with a 95% Wilson interval.

v0's answers are taken once, while the generators still serve v0, and kept in the run
directory, so every iteration (and a resumed run) is compared against the same answers.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cluster.run_dir import write_text_atomic
from league.ratings import wilson_interval
from prompts.example import Example

V0_ANSWERS = "v0_held_out_answers.json"


def win_rate_vs_v0(
    judge: Callable[[list[Example], list[str], list[str]], Sequence[Any]],
    examples: list[Example],
    answers: list[str],
    v0_answers: list[str],
) -> dict[str, Any]:
    """`accuracy` (the win rate) and `accuracy_interval` of `answers` over `v0_answers`. Only
    the prompts where the two differ go to the judge: the same answer is a tie, and a judge asked
    about two copies of one answer (position bias) should not move the metric."""
    if not len(examples) == len(answers) == len(v0_answers):
        raise ValueError(f"{len(examples)} prompts, {len(answers)} answers and {len(v0_answers)} answers of v0")
    differ = [i for i, (a, b) in enumerate(zip(answers, v0_answers)) if a != b]
    verdicts = judge([examples[i] for i in differ], [answers[i] for i in differ], [v0_answers[i] for i in differ]) if differ else []
    wins = sum(1.0 if v.winner == "a" else 0.5 if v.winner == "tie" else 0.0 for v in verdicts)
    n = len(examples)
    rate = (wins + 0.5 * (n - len(differ))) / n if n else 0.5
    low, high = wilson_interval(rate, n)
    return {"accuracy": rate, "accuracy_interval": [low, high]}


def v0_answers(run_root: Path, answer: Callable[[], list[str]]) -> list[str]:
    """v0's held-out answers: read from the run directory, or made by `answer` and written there."""
    path = run_root / V0_ANSWERS
    if path.is_file():
        return json.loads(path.read_text())
    answers = answer()
    write_text_atomic(path, json.dumps(answers))
    return answers
