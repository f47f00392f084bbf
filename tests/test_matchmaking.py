import numpy as np
import pytest

from league.league import CURRENT, GameResult, League, LeagueSettings
from league.matchmaking import near_skill_probabilities, pfsp_probabilities

RATES = np.array([0.2, 0.5, 0.9])


@pytest.mark.parametrize(
    "weighting, weights",
    [
        ("squared", [0.64, 0.25, 0.01]),
        ("variance", [0.16, 0.25, 0.09]),
        ("linear", [0.8, 0.5, 0.1]),
        ("linear_capped", [0.5, 0.5, 0.1]),
    ],
)
def test_pfsp_weightings_match_hand_computed_values(weighting: str, weights: list[float]) -> None:
    expected = np.array(weights) / sum(weights)
    assert pfsp_probabilities(RATES, weighting) == pytest.approx(expected)


def test_pfsp_falls_back_to_uniform_when_every_weight_is_zero() -> None:
    assert pfsp_probabilities(np.array([1.0, 1.0]), "squared") == pytest.approx([0.5, 0.5])
    assert pfsp_probabilities(np.array([0.0, 1.0]), "variance") == pytest.approx([0.5, 0.5])


def test_near_skill_weights_by_elo_gap() -> None:
    probs = near_skill_probabilities(np.array([1000.0, 1100.0, 1300.0]), current_elo=1100.0, width=100.0)
    weights = np.exp(-0.5 * np.array([1.0, 0.0, 4.0]))
    assert probs == pytest.approx(weights / weights.sum())


def _league_with_history(kind: str) -> League:
    league = League(LeagueSettings(matchmaking=kind, pfsp_weighting="squared", k_factor=32))
    for v in (0, 1, 2):
        league.admit(v, f"/ckpt/v{v}")
    # current wins 80% against v0, 50% against v1, 20% against v2
    for name, wins in (("v0", 8), ("v1", 5), ("v2", 2)):
        league.record([GameResult(CURRENT, name, 1.0)] * wins + [GameResult(CURRENT, name, 0.0)] * (10 - wins))
    return league


def test_pfsp_opponent_frequencies_match_the_weighting() -> None:
    league = _league_with_history("pfsp")
    expected = np.array([0.04, 0.25, 0.64]) / 0.93
    assert league.opponent_probabilities() == pytest.approx(expected)
    n = 20000
    picks = league.matchmake(n, np.random.default_rng(0))
    for name, p in zip(("v0", "v1", "v2"), expected):
        sigma = np.sqrt(n * p * (1 - p))
        assert abs(picks.count(name) - n * p) < 5 * sigma


def test_previous_always_picks_the_latest_snapshot() -> None:
    league = _league_with_history("previous")
    assert set(league.matchmake(100, np.random.default_rng(0))) == {"v2"}
    near = _league_with_history("near_skill")
    probs = near.opponent_probabilities()
    assert probs.sum() == pytest.approx(1.0) and len(probs) == 3
