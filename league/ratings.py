"""Ratings for reporting: Bradley-Terry maximum likelihood with bootstrap intervals, and the
Wilson interval for a win rate.

Online Elo (league/elo.py) is the live view and depends on game order; Bradley-Terry is
fitted on all games at once, so it is the number to compare policies by.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ELO_PER_NAT = 400 / math.log(10)


@dataclass(frozen=True)
class Rating:
    rating: float
    low: float
    high: float


def pair_matrices(results: dict[str, dict[str, list[float]]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, score matrix S[i, j] (i's points against j, a tie half) and game counts N[i, j];
    a policy's games against itself (self-play) say nothing of its strength and are left out."""
    names = sorted(set(results) | {b for row in results.values() for b in row})
    index = {name: i for i, name in enumerate(names)}
    score = np.zeros((len(names), len(names)))
    games = np.zeros_like(score)
    for a, row in results.items():
        for b, (s, n) in row.items():
            if a == b:
                continue
            score[index[a], index[b]] = s
            games[index[a], index[b]] = n
    return names, score, games


def bradley_terry(score: np.ndarray, games: np.ndarray, prior: float = 1.0, iterations: int = 2000) -> np.ndarray:
    """Maximum-likelihood strengths on the Elo scale (mean 1000), by minorization-maximization.

    `prior` virtual games (drawn) against a reference player of average strength keep a policy
    that never won or never lost finite; 0 is the pure maximum-likelihood fit.
    """
    n = len(score)
    strength = np.ones(n)
    wins = score.sum(axis=1) + prior / 2
    for _ in range(iterations):
        pair = games / (strength[:, None] + strength[None, :])
        np.fill_diagonal(pair, 0.0)
        updated = wins / (pair.sum(axis=1) + prior / (strength + 1.0))
        updated /= np.exp(np.mean(np.log(updated)))
        if np.max(np.abs(updated - strength)) < 1e-10:
            strength = updated
            break
        strength = updated
    log_strength = np.log(strength)
    return 1000.0 + ELO_PER_NAT * (log_strength - log_strength.mean())


def bradley_terry_with_intervals(
    results: dict[str, dict[str, list[float]]], rng: np.random.Generator, samples: int = 200, prior: float = 1.0
) -> dict[str, Rating]:
    """Ratings with 95% intervals from a parametric bootstrap over pairings.

    Each pairing's score is redrawn as Binomial(games, observed rate): ties are treated as
    coin flips, so the intervals are slightly wider than the data strictly need.
    """
    names, score, games = pair_matrices(results)
    if not names:
        return {}
    point = bradley_terry(score, games, prior)
    upper = np.triu_indices(len(names), k=1)
    n_up = games[upper].astype(int)
    rate = np.divide(score[upper], games[upper], out=np.full(len(n_up), 0.5), where=games[upper] > 0)
    draws = np.empty((samples, len(names)))
    for k in range(samples):
        resampled = np.zeros_like(score)
        resampled[upper] = rng.binomial(n_up, rate)
        resampled.T[upper] = n_up - resampled[upper]
        draws[k] = bradley_terry(resampled, games, prior, iterations=500)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return {name: Rating(float(p), float(lo), float(hi)) for name, p, lo, hi in zip(names, point, low, high)}


def wilson_interval(rate: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a proportion observed as `rate` over `n` trials."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denom
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def simulate_games(
    strengths: np.ndarray, n_games: int, rng: np.random.Generator, tie_rate: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Score and game matrices of `n_games` random pairings between policies of known Elo
    `strengths`, decided by the Bradley-Terry law, `tie_rate` of them drawn (half a point each):
    ground truth for checking a rating fit."""
    k = len(strengths)
    score, games = np.zeros((k, k)), np.zeros((k, k))
    a = rng.integers(0, k, n_games)
    b = (a + rng.integers(1, k, n_games)) % k  # never oneself
    p = 1 / (1 + 10 ** ((strengths[b] - strengths[a]) / 400))
    u = rng.random(n_games)
    points = np.where(u < tie_rate, 0.5, (rng.random(n_games) < p).astype(float))
    np.add.at(score, (a, b), points)
    np.add.at(score, (b, a), 1 - points)
    np.add.at(games, (a, b), 1)
    np.add.at(games, (b, a), 1)
    return score, games
