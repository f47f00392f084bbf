"""Online Elo: the live rating view, updated game by game."""
from __future__ import annotations


def expected_score(rating_a: float, rating_b: float, scale: float = 400.0) -> float:
    """Probability-like expected score of a against b."""
    return 1.0 / (1.0 + 10 ** ((rating_b - rating_a) / scale))


def elo_update(
    rating_a: float, rating_b: float, score_a: float, k: float, scale: float = 400.0
) -> tuple[float, float]:
    """New (a, b) ratings after one game; `score_a` is 1 for a win, 0.5 a tie, 0 a loss."""
    delta = k * (score_a - expected_score(rating_a, rating_b, scale))
    return rating_a + delta, rating_b - delta
