"""Bradley-Terry against an independent fit: logistic regression (scikit-learn) on the same games."""
import numpy as np
from sklearn.linear_model import LogisticRegression

from league.ratings import ELO_PER_NAT, bradley_terry, bradley_terry_with_intervals, simulate_games


def logistic_regression_elo(score: np.ndarray, games: np.ndarray) -> np.ndarray:
    """The same maximum-likelihood problem as a weighted logistic regression on e_i - e_j."""
    k = len(score)
    rows, labels, weights = [], [], []
    for i in range(k):
        for j in range(i + 1, k):
            if games[i, j]:
                x = np.zeros(k)
                x[i], x[j] = 1, -1
                rows += [x, x]
                labels += [1, 0]
                weights += [score[i, j], games[i, j] - score[i, j]]
    model = LogisticRegression(C=1e12, fit_intercept=False, tol=1e-12, max_iter=100_000)
    model.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    coef = model.coef_[0]
    return 1000 + ELO_PER_NAT * (coef - coef.mean())


def test_ratings_agree_with_logistic_regression_within_one_elo_point() -> None:
    rng = np.random.default_rng(7)
    strengths = np.linspace(800, 1240, 12)
    rng.shuffle(strengths)
    score, games = simulate_games(strengths, 40_000, rng, tie_rate=0.1)
    ours = bradley_terry(score, games, prior=0.0)
    reference = logistic_regression_elo(score, games)
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
