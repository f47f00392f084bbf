"""Ratings per policy version: each version of the live policy is its own player, its frozen
versions the snapshots themselves, fitted from the games and episodes on disk."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.cli import main
from league.episodes import EPISODE_SCHEMA
from league.league import CURRENT, League, LeagueSettings
from league.records import GAME_SCHEMA
from league.versions import version_ratings


def _games(rows: list[tuple[str, int, str, int, str]]) -> pa.Table:
    names = [f.name for f in GAME_SCHEMA]
    filled = [{**dict.fromkeys(names), "game_id": str(i), "round": 1, "mode": "head_to_head", "policy_a": a, "version_a": va,
               "policy_b": b, "version_b": vb, "winner": w} for i, (a, va, b, vb, w) in enumerate(rows)]
    return pa.Table.from_pylist(filled, GAME_SCHEMA)


def _run(tmp_path: Path) -> Path:
    league = League(LeagueSettings())
    league.admit(0, "checkpoints/v0")
    league.admit(2, "checkpoints/v2")
    run = tmp_path / "run"
    (run / "games").mkdir(parents=True)
    (run / "episodes").mkdir()
    league.save(run / "league.json")
    games = ([(CURRENT, 1, "v0", 0, "a")] * 6 + [(CURRENT, 1, "v0", 0, "b")] * 4      # version 1: 0.6 against v0
             + [(CURRENT, 2, "v0", 0, "a")] * 9 + [(CURRENT, 2, "v0", 0, "b")] * 1    # version 2 (frozen as v2): 0.9
             + [(CURRENT, 3, "v2", 2, "a")] * 7 + [(CURRENT, 3, "v2", 2, "tie")] * 2 + [(CURRENT, 3, "v2", 2, "b")] * 1)
    pq.write_table(_games(games), run / "games" / "round-00001.parquet")
    episodes = [{"episode_id": f"e{i}", "round": 2, "game": "nim", "seed": i, "player_0": "v2", "version_0": 2, "player_1": CURRENT,
                 "version_1": 3, "turns": 3, "reward_0": -1.0, "reward_1": 1.0, "winner": 1, "reason": "win"} for i in range(4)]
    pq.write_table(pa.Table.from_pylist(episodes, EPISODE_SCHEMA), run / "episodes" / "round-00002.parquet")
    return run


def test_each_version_is_a_player_and_frozen_versions_are_their_snapshots(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rows = {r.player: r for r in version_ratings(League.load(run / "league.json"), run, np.random.default_rng(0), samples=50)}
    assert set(rows) == {"v0", "current@v1", "v2", "current@v3"}  # version 2 played as itself: it is v2
    assert [rows[p].games for p in ("v0", "current@v1", "v2", "current@v3")] == [20, 10, 24, 14]
    assert (rows["v2"].agent, rows["v2"].version, rows["current@v1"].agent, rows["current@v1"].version) == (CURRENT, 2, CURRENT, 1)
    ratings = [rows[p].rating.rating for p in ("v0", "current@v1", "v2", "current@v3")]
    assert ratings == sorted(ratings)  # the skill curve rises, as the games say
    assert all(r.rating.low <= r.rating.rating <= r.rating.high for r in rows.values())


def test_the_cli_prints_the_skill_curve(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _run(tmp_path)
    assert main(["league", str(run), "--by-version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["agent", "version", "player"]
    assert [line.split()[2] for line in lines[1:]] == ["v0", "current@v1", "v2", "current@v3"]
    assert main(["league", str(run), "--by-version", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "agent,version,player,games,bt,bt_low,bt_high"
