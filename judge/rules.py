"""Rule verifiers: the answer is checked against the known one, no model involved."""
from __future__ import annotations

from judge.base import Judge, JudgeError
from judge.verdict import Verdict, verdict_from_scores
from tasks.addition import Problem, is_correct


class ExactAnswerJudge(Judge):
    """Score 1 for a response that is exactly the answer (surrounding whitespace ignored), else 0."""

    name = "exact_answer"

    def score(self, problem: Problem, response: str) -> float:
        return 1.0 if is_correct(problem, response) else 0.0

    def judge(self, problems: list[Problem], responses_a: list[str], responses_b: list[str]) -> list[Verdict]:
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

