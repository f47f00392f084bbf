"""Judges by the name a recipe gives them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from judge.base import Judge, JudgeError
from judge.code import CodeJudge
from judge.constitution import ConstitutionalJudge, Principle
from judge.pairwise import DEFAULT_PATTERN, DEFAULT_TEMPLATE, PairwiseLLMJudge
from judge.reward_model import RewardModelJudge
from judge.rules import VERIFIERS, RuleJudge, ScoreJudge
from prompts.chat import PromptRenderer

MODEL_KINDS = ("reward_model", "pairwise_llm")
CODE = "code"
TASK = "task"  # each answer scored by the task's own metric (reasoning-gym's score_answer, say)


def kinds() -> list[str]:
    """Every judge kind a recipe may name: the registered verifiers, the code judge, the model judges."""
    return sorted(VERIFIERS) + [CODE, TASK, *MODEL_KINDS]


@dataclass(frozen=True)
class JudgeSpec:
    """What the judge actor builds: a kind, its options, and the constitution around it."""

    kind: str = "exact_answer"
    options: dict = field(default_factory=dict)  # a verifier's options, or the code judge's limits
    reward_model: str | None = None  # a sequence-classification checkpoint, for kind reward_model
    tie_margin: float = 0.0  # reward model: rewards this close are a tie
    llm: Any = None  # pairwise_llm: the handle of the generator actor serving the judge model
    llm_sampling: Any = None  # and the sampling it answers with
    llm_path: str | None = None  # and its checkpoint, whose chat template renders each request
    template: str = DEFAULT_TEMPLATE
    pattern: str = DEFAULT_PATTERN
    constitution: list[Principle] = field(default_factory=list)
    task: Any = None  # kind task: the recipe's task options (built in the judge actor) and the run's seed
    task_seed: int = 0


def make_judge(spec: JudgeSpec | str, constitution: list[Principle] | None = None) -> Judge:
    """The judge a recipe names, wrapped in its constitution when it has one."""
    if isinstance(spec, str):
        spec = JudgeSpec(spec, constitution=list(constitution or []))
    if spec.kind in VERIFIERS:
        base: Judge = RuleJudge(spec.kind, spec.options)
    elif spec.kind == CODE:
        base = CodeJudge.from_options(spec.options)
    elif spec.kind == TASK:
        if spec.task is None:
            raise JudgeError("judge kind task needs the recipe's task options (the orchestrator gives them)")
        base = ScoreJudge(spec.task.build(spec.task_seed), f"task:{spec.task.kind}")
    elif spec.kind == "reward_model":
        if spec.reward_model is None:
            raise JudgeError("judge kind reward_model needs judge.reward_model: the path of a reward-model checkpoint")
        base = RewardModelJudge(spec.reward_model, spec.tie_margin)
    elif spec.kind == "pairwise_llm":
        if spec.llm is None:
            raise JudgeError("judge kind pairwise_llm needs a generator actor serving judge.llm (the orchestrator starts one)")
        render = PromptRenderer.for_model(spec.llm_path) if spec.llm_path else None
        base = PairwiseLLMJudge(_served_by(spec.llm, spec.llm_sampling), spec.template, spec.pattern, render)
    else:
        raise JudgeError(f"unknown judge kind {spec.kind!r}; known kinds: {', '.join(kinds())}")
    return ConstitutionalJudge(base, spec.constitution) if spec.constitution else base


def _served_by(llm: Any, sampling: Any) -> Callable[[list[str]], list[str]]:
    """Completions from the generator actor `llm` (a Ray handle), waited for here."""
    import ray

    return lambda prompts: ray.get(llm.generate.remote(prompts, sampling))
