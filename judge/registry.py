"""Judges by the name a recipe gives them."""
from __future__ import annotations

from judge.base import Judge, JudgeError
from judge.constitution import ConstitutionalJudge, Principle
from judge.rules import ExactAnswerJudge

JUDGES: dict[str, type[Judge]] = {"exact_answer": ExactAnswerJudge}


def make_judge(kind: str, constitution: list[Principle] | None = None) -> Judge:
    """The judge a recipe names, wrapped in its constitution when it has one."""
    try:
        base = JUDGES[kind]()
    except KeyError:
        raise JudgeError(f"unknown judge kind {kind!r}; known kinds: {', '.join(sorted(JUDGES))}") from None
    return ConstitutionalJudge(base, constitution) if constitution else base
