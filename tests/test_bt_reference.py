"""Bradley-Terry against an independent fit: the same likelihood maximized by a general-purpose
optimizer (scipy's BFGS) on the same games."""
import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from league.ratings import ELO_PER_NAT, bradley_terry, bradley_terry_with_intervals, simulate_games


def maximum_likelihood_elo(score: np.ndarray, games: np.ndarray) -> np.ndarray:
    """Bradley-Terry's log-likelihood (a win counts 1, a tie half, as `score` holds them) over
    every pair that played, maximized with its gradient by BFGS; ratings in Elo around 1000."""
    i, j = np.nonzero(np.triu(games, 1))
    won, played = score[i, j], games[i, j]
    total = played.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[i] - theta[j]
        nll = (won * np.logaddexp(0, -d) + (played - won) * np.logaddexp(0, d)).sum() / total
        slope = (played * expit(d) - won) / total  # d nll / d d
        grad = np.zeros_like(theta)
        np.add.at(grad, i, slope)
        np.add.at(grad, j, -slope)
        return nll, grad

    result = minimize(loss, np.zeros(len(score)), jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    return 1000 + ELO_PER_NAT * (result.x - result.x.mean())


def test_ratings_agree_with_a_general_optimizer_within_one_elo_point() -> None:
    rng = np.random.default_rng(7)
    strengths = np.linspace(800, 1240, 12)
    rng.shuffle(strengths)
    score, games = simulate_games(strengths, 40_000, rng, tie_rate=0.1)
    ours = bradley_terry(score, games, prior=0.0)
    reference = maximum_likelihood_elo(score, games)
    assert np.max(np.abs(ours - reference)) < 1.0
    assert list(np.argsort(ours)) == list(np.argsort(strengths))  # the true order is recovered
    # without ties (which, counted as half, pull every rating toward the mean) the scale is the truth's
    score, games = simulate_games(strengths, 40_000, rng)
    centred = strengths - strengths.mean() + 1000
    assert np.max(np.abs(bradley_terry(score, games, prior=0.0) - centred)) < 25


def test_bootstrap_intervals_cover_the_truth() -> None:
    rng = np.random.default_rng(3)
    strengths = np.array([900.0, 1000.0, 1100.0, 1000.0])
    score, games = simulate_games(strengths, 4000, rng, tie_rate=0.1)
    names = ["a", "b", "c", "d"]
    results = {names[i]: {names[j]: [score[i, j], games[i, j]] for j in range(4) if games[i, j]} for i in range(4)}
    rated = bradley_terry_with_intervals(results, rng, samples=200, prior=0.0)
    for name, truth in zip(names, strengths):
        r = rated[name]
        assert r.low <= truth <= r.high, (name, r)
        assert r.high - r.low < 60  # 4000 games pin each rating to a few tens of points
