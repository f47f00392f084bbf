"""Matchmaking: which snapshot the current policy plays next.

Prioritized fictitious self-play (PFSP, as in AlphaStar) weights each opponent by a function
of the current policy's win rate x against it, so training time goes where it teaches most:
`squared` (1-x)^2 and `linear` 1-x chase the opponents it still loses to, `variance` x(1-x)
the ones it is even with, `linear_capped` min(0.5, 1-x) stops over-weighting a few hard ones.
Near-skill sampling weights opponents by how close their Elo is to the current policy's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

Matchmaking = Literal["previous", "uniform", "pfsp", "near_skill", "alphastar"]  # alphastar: league/roles.py
PFSPWeighting = Literal["squared", "variance", "linear", "linear_capped"]

PFSP_WEIGHTINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "squared": lambda x: (1 - x) ** 2,
    "variance": lambda x: x * (1 - x),
    "linear": lambda x: 1 - x,
    "linear_capped": lambda x: np.minimum(0.5, 1 - x),
}


def pfsp_probabilities(win_rates: np.ndarray, weighting: PFSPWeighting) -> np.ndarray:
    """Sampling probabilities over opponents from the current policy's win rate against each.

    When every weight is zero (won everything, or `variance` at the extremes) the choice is uniform.
    """
    weights = PFSP_WEIGHTINGS[weighting](np.asarray(win_rates, dtype=float))
    total = weights.sum()
    return weights / total if total > 0 else np.full(len(weights), 1 / len(weights))


def near_skill_probabilities(opponent_elos: np.ndarray, current_elo: float, width: float) -> np.ndarray:
    """Gaussian weights on the Elo gap: an opponent `width` points away is weighted exp(-1/2)."""
    gaps = (np.asarray(opponent_elos, dtype=float) - current_elo) / width
    weights = np.exp(-0.5 * gaps**2)
    return weights / weights.sum()


def sample_opponents(names: list[str], probabilities: np.ndarray, n: int, rng: np.random.Generator) -> list[str]:
    return [names[i] for i in rng.choice(len(names), size=n, p=probabilities)]
