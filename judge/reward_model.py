"""The reward-model judge: a learned scalar reward per response, compared Bradley-Terry style.

P(a beats b) = sigmoid(r_a - r_b), the probability the reward model was trained to express;
rewards closer than `tie_margin` are a tie, so a reward model that cannot tell two answers
apart gives no preference pair rather than a coin flip.
"""
from __future__ import annotations

import math
from pathlib import Path

from judge.base import Judge, JudgeError
from judge.verdict import Verdict, verdict_from_scores
from prompts.example import Example


def win_probability(reward_a: float, reward_b: float) -> float:
    """Bradley-Terry probability that a is preferred to b."""
    return 1.0 / (1.0 + math.exp(reward_b - reward_a))


class RewardModelJudge(Judge):
    name = "reward_model"

    def __init__(self, path: str | Path, tie_margin: float = 0.0) -> None:
        if tie_margin < 0:
            raise JudgeError(f"tie_margin must be at least 0, got {tie_margin}")
        from judge.scorer import ScorerError, load_scorer  # torch loads in the judge actor, not when a recipe is read

        try:
            self.scorer = load_scorer(str(Path(path).resolve()))
        except ScorerError as err:
            raise JudgeError(f"reward model: {err}") from None
        if self.scorer.num_labels != 1:
            raise JudgeError(
                f"reward model {str(path)!r} has {self.scorer.num_labels} labels; a reward model has one "
                "(train it with TRL's RewardTrainer, or load it with num_labels=1)"
            )
        self.tie_margin = tie_margin

    def rewards(self, problems: list[Example], responses: list[str]) -> list[float]:
        return self.scorer.logits([p.prompt for p in problems], responses)[:, 0].tolist()

    def score(self, problem: Example, response: str) -> float:
        return self.rewards([problem], [response])[0]

    def score_all(self, problems: list[Example], responses: list[str]) -> list[float]:
        if len(problems) != len(responses):
            raise JudgeError(f"{len(problems)} problems but {len(responses)} responses to score")
        return self.rewards(problems, responses)

    def judge(self, problems: list[Example], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
        if not len(problems) == len(responses_a) == len(responses_b):
            raise JudgeError(f"{len(problems)} problems but {len(responses_a)} and {len(responses_b)} responses")
        both = self.rewards(problems + problems, responses_a + responses_b)
        n = len(problems)
        verdicts = []
        for ra, rb in zip(both[:n], both[n:]):
            reason = f"reward a {ra:.3f}, b {rb:.3f}; P(a beats b) {win_probability(ra, rb):.3f}"
            verdicts.append(verdict_from_scores(ra, rb, reason, tie_margin=self.tie_margin))
        return verdicts
