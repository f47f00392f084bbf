"""The game registry: every way of playing is one file in games/, found by name, and the
league actor writes, rates and counts what each game's `record` returns."""
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.config import ConfigError, parse_config
from cluster.resume import record_folders
from games.base import GAMES, Game, Recorded, game, pair_file, registry
from judge.verdict import Verdict
from league.league import CURRENT, LeagueSettings
from league.records import PAIR_SCHEMA, read_tables
from league.service import LeagueService


def test_every_mode_is_a_registered_game_with_its_records_and_its_count() -> None:
    games = registry()
    assert {"head_to_head", "adversarial", "refinement", "skill"} <= set(games)
    for name, g in games.items():
        assert g.name == name and g.folders and g.counted, name
    assert {"games", "failures", "traces", "skill_games", "pairs"} <= set(record_folders())


def test_a_recipe_names_only_known_games_and_gets_each_games_own_section() -> None:
    with pytest.raises(ConfigError, match="unknown game 'chess' in modes; known games: adversarial, head_to_head"):
        parse_config({"self_play": {"modes": ["head_to_head", "chess"]}})
    config = parse_config({"self_play": {"modes": ["refinement"]}, "refinement": {"rounds": 3}, "skill": {"prompts": 7}})
    assert config.refinement.rounds == 3 and config.skill.prompts == 7
    with pytest.raises(ConfigError, match=r"skill\.levelz: unknown key"):
        parse_config({"skill": {"levelz": ["<a>"]}})


def test_a_game_defined_anywhere_is_playable_by_name(tmp_path: Path) -> None:
    @game
    class Echo(Game):
        name = "echo_test"
        tag = "echo"
        folders = ("echoes",)
        counted = "echoes"

        @staticmethod
        def record(round_: int, agent: str, version: int, prompts: list[str]) -> Recorded:
            table = pa.table({"prompt": prompts})
            pairs = pa.Table.from_pylist([{"pair_id": f"e{i}", "game_id": None, "round": round_, "prompt": p, "chosen": "x",
                                           "rejected": "y", "source": "echo", "margin": 1.0} for i, p in enumerate(prompts)], PAIR_SCHEMA)
            return Recorded({"echoes": len(prompts)}, pairs, {"echoes": table})

    try:
        assert parse_config({"self_play": {"modes": ["echo_test"]}}).self_play.modes == ["echo_test"]
        league = LeagueService(tmp_path, LeagueSettings())
        fields, pairs = league.record("echo_test", 4, CURRENT, 0, ["p", "q"])
        assert fields == {"echoes": 2} and pairs.num_rows == 2
        assert pq.read_table(tmp_path / "echoes" / "round-00004.parquet").column("prompt").to_pylist() == ["p", "q"]
        assert read_tables(tmp_path / "pairs", PAIR_SCHEMA).num_rows == 2
        assert (tmp_path / "pairs" / "round-00004-echo.parquet").exists()
    finally:
        GAMES.pop("echo_test")


def test_the_league_rates_head_to_head_results_and_counts_skill_games(tmp_path: Path) -> None:
    league = LeagueService(tmp_path, LeagueSettings())
    league.admit(0, str(tmp_path / "checkpoints" / "v0"))
    win, loss = Verdict("a", 1, 0, ""), Verdict("b", 0, 1, "")
    fields, pairs = league.record(
        "head_to_head", 1, CURRENT, 1, ["p0", "p1", "p2"], [("v0", 0)] * 3, ["r", "r", "w"], ["w", "w", "r"], [win, win, loss],
        "exact_answer", 1.0, ([False] * 3, [False] * 3),
    )
    summary = fields["summary"]
    assert summary.games == 3 and summary.win_rate_vs_latest == pytest.approx(2 / 3)
    assert league.ratings()[CURRENT] > league.ratings()["v0"]
    assert pairs.num_rows == 3 and (tmp_path / "games" / pair_file(1, CURRENT, "")).exists()
    fields, _ = league.record("skill", 1, CURRENT, 1, ["p"], [("<hi>", "<lo>")], {"<hi>": ["a"], "<lo>": ["b"]}, [[win]])
    assert fields["skill_games"] == 1  # what the dashboard's games counter adds for skill play
