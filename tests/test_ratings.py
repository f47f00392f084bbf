import math

import numpy as np
import pytest

from league.ratings import bradley_terry, bradley_terry_with_intervals, pair_matrices, wilson_interval


def test_wilson_matches_hand_computed_interval() -> None:
    # 60 of 100: centre = (0.6 + 0.0192073) / 1.0384146 = 0.596300; half = 0.097922 / 1.0384146 = 0.094299
    low, high = wilson_interval(0.6, 100)
    assert low == pytest.approx(0.50200, abs=1e-4)
    assert high == pytest.approx(0.69060, abs=1e-4)
    assert wilson_interval(0.0, 10)[0] == 0.0
    assert wilson_interval(0.5, 0) == (0.0, 1.0)


def test_two_player_bradley_terry_is_the_log_odds() -> None:
    # a beats b 75 times in 100: the ML gap is 400 log10(3) Elo points
    score = np.array([[0.0, 75.0], [25.0, 0.0]])
    games = np.array([[0.0, 100.0], [100.0, 0.0]])
    ratings = bradley_terry(score, games, prior=0.0)
    assert ratings[0] - ratings[1] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert ratings.mean() == pytest.approx(1000.0)


def test_bradley_terry_recovers_known_strengths() -> None:
    rng = np.random.default_rng(0)
    true = np.array([1000.0, 1100.0, 1250.0, 900.0])
    results: dict[str, dict[str, list[float]]] = {}
    for i in range(4):
        for j in range(i + 1, 4):
            p = 1 / (1 + 10 ** ((true[j] - true[i]) / 400))
            wins = rng.binomial(4000, p)
            results.setdefault(f"p{i}", {})[f"p{j}"] = [float(wins), 4000.0]
            results.setdefault(f"p{j}", {})[f"p{i}"] = [4000.0 - wins, 4000.0]
    rated = bradley_terry_with_intervals(results, np.random.default_rng(1), samples=100, prior=0.0)
    names = [f"p{i}" for i in range(4)]
    fitted = np.array([rated[n].rating for n in names])
    assert list(np.argsort(fitted)) == list(np.argsort(true))
    assert np.abs((fitted - fitted.mean()) - (true - true.mean())).max() < 15
    for n in names:
        assert rated[n].low <= rated[n].rating <= rated[n].high
        assert rated[n].high - rated[n].low < 60


def test_pair_matrices_read_the_league_results() -> None:
    names, score, games = pair_matrices({"a": {"b": [3.5, 5.0]}, "b": {"a": [1.5, 5.0]}})
    assert names == ["a", "b"]
    assert score[0, 1] == 3.5 and games[1, 0] == 5.0
