"""The record a judge returns for one matchup; shared with the league, which keeps it with the game."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Winner = Literal["a", "b", "tie"]


@dataclass(frozen=True)
class Verdict:
    winner: Winner
    score_a: float
    score_b: float
    reason: str


def verdict_from_scores(score_a: float, score_b: float, reason: str, tie_margin: float = 0.0) -> Verdict:
    """Higher score wins; scores within `tie_margin` of each other tie."""
    if abs(score_a - score_b) <= tie_margin:
        return Verdict("tie", score_a, score_b, reason)
    return Verdict("a" if score_a > score_b else "b", score_a, score_b, reason)
