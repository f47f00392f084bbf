"""Population cap and retirement, the payoff matrix with decay, and both surviving a reload."""
from pathlib import Path

import numpy as np
import pytest

from league.league import CURRENT, GameResult, League, LeagueSettings
from league.table import league_table, render


def _games(opponent: str, wins: int, losses: int) -> list[GameResult]:
    return [GameResult(CURRENT, opponent, 1.0)] * wins + [GameResult(CURRENT, opponent, 0.0)] * losses


def test_lowest_rated_snapshot_retires_beyond_the_cap_and_keeps_its_games(tmp_path: Path) -> None:
    league = League(LeagueSettings(max_snapshots=2, k_factor=16))
    league.admit(0, "/ckpt/v0")
    league.record(_games("v0", 20, 0))  # v0 loses everything: the weakest
    league.admit(1, "/ckpt/v1")
    league.record(_games("v1", 5, 15))
    league.admit(2, "/ckpt/v2")  # three snapshots, cap two: v0 retires
    assert [s.name for s in league.population] == ["v1", "v2"] and [s.name for s in league.retired] == ["v0"]
    assert league.results[CURRENT]["v0"] == [20.0, 20.0] and "v0" in league.ratings
    assert set(league.matchmake(200, np.random.default_rng(0))) <= {"v1", "v2"}
    with pytest.raises(ValueError, match="already in the league"):
        league.admit(0, "/ckpt/v0")
    league.save(tmp_path / "league.json")
    again = League.load(tmp_path / "league.json")
    assert again.retired == league.retired and again.population == league.population and again.recent == league.recent
    rows = league_table(again, np.random.default_rng(0), samples=20)
    assert [(r["policy"], r["retired"]) for r in rows] == [("v0", True), ("v1", False), ("v2", False), (CURRENT, False)]
    assert "v0 (ret.)" in render(rows, "text")


def test_the_newest_snapshot_never_retires() -> None:
    league = League(LeagueSettings(max_snapshots=2, k_factor=32))
    league.admit(0, "/ckpt/v0")
    league.admit(1, "/ckpt/v1")
    league.record(_games("v0", 0, 10) + _games("v1", 10, 0))  # v1 now rated lowest
    league.admit(2, "/ckpt/v2")  # starts at the current policy's high rating
    league.record([GameResult("v2", "v1", 0.0)] * 50)  # v2 falls below everyone
    assert league.ratings["v2"] < min(league.ratings["v0"], league.ratings["v1"])
    league.settings = LeagueSettings(max_snapshots=1, k_factor=32)
    league._retire_beyond_cap()
    assert [s.name for s in league.population] == ["v2"]


def test_payoff_matrix_with_exponential_decay() -> None:
    league = League(LeagueSettings(payoff_decay=0.5))
    league.admit(0, "/ckpt/v0")
    league.admit(1, "/ckpt/v1")
    league.record(_games("v0", 4, 0))  # round 1: 4/4 against v0
    league.record(_games("v0", 0, 4))  # round 2: 0/4; round 1 now weighs half
    names, payoff = league.payoff()
    assert names == ["v0", "v1", CURRENT]
    i, j = names.index(CURRENT), names.index("v0")
    assert payoff[i, j] == pytest.approx(2 / 6)  # (4 * 0.5 + 0) / (4 * 0.5 + 4)
    assert payoff[j, i] == pytest.approx(4 / 6)
    assert payoff[i, names.index("v1")] == 0.5 and payoff[0, 1] == 0.5  # never played
    assert league.win_rate(CURRENT, "v0") == 0.5  # all games, undecayed, for ratings and tables
    _, undecayed = league.payoff(recent=False)
    assert undecayed[i, j] == 0.5
