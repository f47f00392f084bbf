"""Judges by the name a recipe gives them."""
from __future__ import annotations

from dataclasses import dataclass, field

from judge.base import Judge, JudgeError
from judge.constitution import ConstitutionalJudge, Principle
from judge.reward_model import RewardModelJudge
from judge.rules import ExactAnswerJudge

KINDS = ("exact_answer", "reward_model")


@dataclass(frozen=True)
class JudgeSpec:
    """What the judge actor builds: a kind, its options, and the constitution around it."""

    kind: str = "exact_answer"
    reward_model: str | None = None  # a sequence-classification checkpoint, for kind reward_model
    tie_margin: float = 0.0  # reward model: rewards this close are a tie
    constitution: list[Principle] = field(default_factory=list)


def make_judge(spec: JudgeSpec | str, constitution: list[Principle] | None = None) -> Judge:
    """The judge a recipe names, wrapped in its constitution when it has one."""
    if isinstance(spec, str):
        spec = JudgeSpec(spec, constitution=list(constitution or []))
    if spec.kind == "exact_answer":
        base: Judge = ExactAnswerJudge()
    elif spec.kind == "reward_model":
        if spec.reward_model is None:
            raise JudgeError("judge kind reward_model needs judge.reward_model: the path of a reward-model checkpoint")
        base = RewardModelJudge(spec.reward_model, spec.tie_margin)
    else:
        raise JudgeError(f"unknown judge kind {spec.kind!r}; known kinds: {', '.join(KINDS)}")
    return ConstitutionalJudge(base, spec.constitution) if spec.constitution else base
