"""Judges by the name a recipe gives them."""
from __future__ import annotations

from judge.base import Judge, JudgeError
from judge.rules import ExactAnswerJudge

JUDGES: dict[str, type[Judge]] = {"exact_answer": ExactAnswerJudge}


def make_judge(kind: str) -> Judge:
    try:
        return JUDGES[kind]()
    except KeyError:
        raise JudgeError(f"unknown judge kind {kind!r}; known kinds: {', '.join(sorted(JUDGES))}") from None
