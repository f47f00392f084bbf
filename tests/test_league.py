import math
from pathlib import Path

import numpy as np
import pytest

from league.elo import elo_update, expected_score
from league.league import CURRENT, GameResult, League, LeagueSettings


def test_elo_matches_hand_computed_example() -> None:
    # 1000 beats 1200 with K=32: E = 1 / (1 + 10^(200/400)) = 0.2402530734; delta = 32 * 0.7597469266
    assert expected_score(1000, 1200) == pytest.approx(0.2402530734, abs=1e-9)
    a, b = elo_update(1000, 1200, 1.0, k=32)
    assert a == pytest.approx(1024.3119016, abs=1e-6)
    assert b == pytest.approx(1175.6880984, abs=1e-6)
    # a tie between equals changes nothing; a loss mirrors a win
    assert elo_update(1000, 1000, 0.5, k=32) == (1000, 1000)
    assert elo_update(1000, 1000, 0.0, k=32) == (984, 1016)


def test_league_elo_is_sequential_over_games() -> None:
    league = League(LeagueSettings(k_factor=32))
    league.admit(0, "/ckpt/v0")
    league.record([GameResult(CURRENT, "v0", 1.0), GameResult(CURRENT, "v0", 0.0)])
    a, b = elo_update(1000, 1000, 1.0, 32)
    a, b = elo_update(a, b, 0.0, 32)
    assert league.ratings[CURRENT] == pytest.approx(a)
    assert league.ratings["v0"] == pytest.approx(b)
    assert league.win_rate(CURRENT, "v0") == 0.5
    assert league.win_rate("v0", "nobody") == 0.5


def _round(score_sum_wins: int, ties: int, losses: int) -> list[GameResult]:
    return (
        [GameResult(CURRENT, "v0", 1.0)] * score_sum_wins
        + [GameResult(CURRENT, "v0", 0.5)] * ties
        + [GameResult(CURRENT, "v0", 0.0)] * losses
    )


def test_admission_at_threshold_and_not_below() -> None:
    league = League(LeagueSettings(admission_threshold=0.6, min_admission_games=10))
    league.admit(0, "/ckpt/v0")
    at = league.close_round(_round(55, 10, 35), 1)  # (55 + 5) / 100 = 0.6
    assert at.win_rate_vs_latest == pytest.approx(0.6)
    assert at.admissible
    below = league.close_round(_round(54, 11, 35), 1)  # 0.595
    assert not below.admissible
    # the same version is never frozen twice, and too few games never admit
    assert not league.close_round(_round(100, 0, 0), 0).admissible
    assert not league.close_round(_round(9, 0, 0), 1).admissible


def test_admitted_snapshot_starts_at_current_rating() -> None:
    league = League(LeagueSettings(k_factor=16))
    league.admit(0, "/ckpt/v0")
    league.record(_round(5, 0, 0))
    snap = league.admit(3, "/ckpt/v3")
    assert snap.name == "v3" and league.latest == snap
    assert league.ratings["v3"] == league.ratings[CURRENT]
    with pytest.raises(ValueError, match="already"):
        league.admit(3, "/ckpt/v3")


def test_matchmaking_previous_and_uniform() -> None:
    rng = np.random.default_rng(0)
    league = League(LeagueSettings(matchmaking="previous"))
    for v in (0, 2, 5):
        league.admit(v, f"/ckpt/v{v}")
    assert set(league.matchmake(50, rng)) == {"v5"}
    uniform = League(LeagueSettings(matchmaking="uniform"), population=league.population)
    picks = uniform.matchmake(3000, rng)
    counts = {name: picks.count(name) for name in ("v0", "v2", "v5")}
    for count in counts.values():  # 1000 expected each; 5 sigma is about 130
        assert abs(count - 1000) < 130


def test_state_round_trips_through_disk(tmp_path: Path) -> None:
    league = League(LeagueSettings(k_factor=8))
    league.admit(0, "/ckpt/v0")
    league.record(_round(7, 3, 2))
    league.admit(1, "/ckpt/v1")
    path = tmp_path / "league.json"
    league.save(path)
    again = League.load(path)
    assert again.ratings == league.ratings
    assert again.population == league.population
    assert again.results == league.results
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_no_snapshot_yet_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="no snapshot"):
        _ = League(LeagueSettings()).latest
    assert math.isclose(League(LeagueSettings()).ratings[CURRENT], 1000.0)
