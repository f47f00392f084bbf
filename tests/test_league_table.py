import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cluster.cli import main
from league.league import CURRENT, GameResult, League, LeagueSettings
from league.table import league_table, render


def _league() -> League:
    league = League(LeagueSettings(k_factor=16))
    league.admit(0, "/ckpt/v0")
    league.record([GameResult(CURRENT, "v0", 1.0)] * 30 + [GameResult(CURRENT, "v0", 0.0)] * 10)
    league.admit(4, "/ckpt/v4")
    league.record([GameResult(CURRENT, "v4", 1.0)] * 5 + [GameResult(CURRENT, "v4", 0.5)] * 10 + [GameResult(CURRENT, "v4", 0.0)] * 5)
    return league


def test_table_rows() -> None:
    rows = league_table(_league(), np.random.default_rng(0), samples=50)
    assert [r["policy"] for r in rows] == ["v0", "v4", CURRENT]
    assert [r["version"] for r in rows] == [0, 4, None]
    assert [r["games"] for r in rows] == [40, 20, 60]
    current = rows[-1]
    assert current["win_rate_vs_previous"] == pytest.approx(0.5)  # against v4: 5 wins, 10 ties, 5 losses
    assert rows[0]["win_rate_vs_previous"] is None
    for r in rows:
        assert r["bt_low"] <= r["bt"] <= r["bt_high"]
    assert rows[0]["bt"] < current["bt"]


def test_cli_writes_text_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "run").mkdir()
    _league().save(tmp_path / "run" / "league.json")
    assert main(["league", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["policy", "version", "elo"] and "current" in text
    assert main(["league", str(tmp_path / "run"), "--format", "csv", "--output", str(tmp_path / "t.csv")]) == 0
    assert [r["policy"] for r in csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text()))] == ["v0", "v4", "current"]
    assert main(["league", str(tmp_path / "run"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["league", str(tmp_path / "nowhere")]) == 2
    assert "no league state" in capsys.readouterr().err
    assert render([], "text").startswith("policy")


def test_ratings_per_seat_show_the_first_movers_advantage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Episodes where whoever moves first wins 3 in 4: each policy rates higher in the first seat."""
    league = League(LeagueSettings(k_factor=16))
    league.admit(0, "/ckpt/v0")
    results = []
    for i in range(40):
        first_wins = 0.0 if i % 4 == 3 else 1.0
        results += [GameResult(CURRENT, "v0", first_wins, 0), GameResult(CURRENT, "v0", 1.0 - first_wins, 1)]
    results += [GameResult(CURRENT, CURRENT, 1.0, 0), GameResult(CURRENT, CURRENT, 0.0, 1)]  # one self-play episode, seen from both seats
    league.record(results)
    assert league.first_mover_score() == (pytest.approx((60 + 1) / 81), 81)  # the self-play episode counted once
    assert league.by_seat["current@first"]["current@second"] == [1.0, 1.0]
    assert league.win_rate(CURRENT, "v0") == pytest.approx(0.5)  # overall the seats cancel out
    rows = {r["policy"]: r for r in league_table(league, np.random.default_rng(0), samples=20)}
    for name in (CURRENT, "v0"):
        assert rows[name]["elo_first"] > rows[name]["elo_second"] + 50
    assert rows[CURRENT]["score_first"] == pytest.approx(31 / 41) and rows["v0"]["score_second"] == pytest.approx(10 / 40)
    league.admit(1, "/ckpt/v1")  # a snapshot starts at its agent's ratings, in each seat too
    assert [league.seat_ratings[f"v1@{s}"] for s in ("first", "second")] == [league.seat_ratings[f"current@{s}"] for s in ("first", "second")]
    league.save(tmp_path / "league.json")
    assert League.load(tmp_path / "league.json").by_seat == league.by_seat
    (tmp_path / "run").mkdir()
    league.save(tmp_path / "run" / "league.json")
    assert main(["league", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "elo first" in text.splitlines()[0] and "first mover scored 0.753 over 81" in text and "worth +194 Elo" in text
