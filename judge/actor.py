"""The judge as a Ray actor: hosts one `Judge` chosen by the recipe."""
from __future__ import annotations

from typing import Any

import ray

from judge.registry import JudgeSpec, make_judge
from judge.verdict import Verdict
from prompts.example import Example


class JudgeHost:
    def __init__(self, spec: JudgeSpec) -> None:
        self.impl = make_judge(spec)

    def name(self) -> str:
        return self.impl.name

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        return self.impl.judge(problems, responses_a, responses_b)

    def score(self, problems: list[Example], responses: list[str]) -> list[float]:
        return self.impl.score_all(problems, responses)

    def judge_range(self, problems: list[Example], responses_a: list[str], responses_b: list[str], begin: int, end: int) -> list[Verdict]:
        """The matchups begin..end of whole response lists (shared by every batch of a pool)."""
        return self.impl.judge(problems, responses_a[begin:end], responses_b[begin:end])

    def score_range(self, problems: list[Example], responses: list[str], begin: int, end: int) -> list[float]:
        return self.impl.score_all(problems, responses[begin:end])


def judge_actor(name: str, spec: JudgeSpec, num_gpus: float = 0, scheduling_strategy: Any = None):
    """`scheduling_strategy`: where it goes (the orchestrator keeps judges near the driver)."""
    return ray.remote(JudgeHost).options(name=name, num_cpus=0, num_gpus=num_gpus, scheduling_strategy=scheduling_strategy).remote(spec)
