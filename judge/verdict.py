"""The record a judge returns for one matchup; shared with the league, which keeps it with the game."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Winner = Literal["a", "b", "tie"]

# Side a's points for each outcome: a tie is half a win, for Elo, win rates and Bradley-Terry alike.
SCORE_OF_WINNER: dict[str, float] = {"a": 1.0, "tie": 0.5, "b": 0.0}


@dataclass(frozen=True)
class Verdict:
    winner: Winner
    score_a: float
    score_b: float
    reason: str
    # per principle of a constitution: (adherence of a, adherence of b), each in [0, 1]
    principles: dict[str, tuple[float, float]] = field(default_factory=dict)


def verdict_from_scores(
    score_a: float,
    score_b: float,
    reason: str,
    tie_margin: float = 0.0,
    principles: dict[str, tuple[float, float]] | None = None,
) -> Verdict:
    """Higher score wins; scores within `tie_margin` of each other tie."""
    winner: Winner = "tie" if abs(score_a - score_b) <= tie_margin else ("a" if score_a > score_b else "b")
    return Verdict(winner, score_a, score_b, reason, dict(principles or {}))


def truncation_loses(verdicts: list[Verdict], cut_a: list[bool], cut_b: list[bool]) -> list[Verdict]:
    """`judge.truncation: loses`: an answer cut off at the token limit loses to one that ended,
    whatever the judge said (a policy must not learn that running on wins); two cut-off answers
    tie. Games with neither cut off keep the judge's verdict."""
    out = []
    for v, a, b in zip(verdicts, cut_a, cut_b, strict=True):
        if a == b:
            out.append(Verdict("tie", v.score_a, v.score_b, f"both truncated; {v.reason}", v.principles) if a else v)
        else:
            out.append(Verdict("b" if a else "a", v.score_a, v.score_b, f"{'a' if a else 'b'} truncated; {v.reason}", v.principles))
    return out
