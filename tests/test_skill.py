"""Skill-conditioned play: tags in the tokenizer and prompts, games across levels, pairs per level."""
from pathlib import Path

from conftest import read_metrics, tiny_run
from transformers import AutoTokenizer

from cluster.config import parse_config
from cluster.run import run_self_play
from judge.verdict import Verdict
from league.records import PAIR_SCHEMA, read_tables
from league.skill import SKILL_GAME_SCHEMA, skill_records
from tasks.addition import AdditionTask

LEVELS = ["<novice>", "<intermediate>", "<expert>"]


def test_higher_level_prefers_the_better_answer_and_lower_the_worse() -> None:
    games, pairs, rates = skill_records(
        1, ["p0", "p1"], [("<expert>", "<novice>")],
        {"<expert>": ["good", "same"], "<novice>": ["bad", "same"]},
        [[Verdict("a", 1, 0, ""), Verdict("tie", 1, 1, "")]],
    )
    assert games.num_rows == 2 and games.column("winner").to_pylist() == ["<expert>", "tie"]
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs.to_pylist()] == [
        ("<expert>p0", "good", "bad"),
        ("<novice>p0", "bad", "good"),
    ]
    assert rates == {"<expert>><novice>": 0.75}


def test_skill_mode_on_real_actors(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # three iterations asked, but the time budget ends self-play after the first
    config = parse_config(
        tiny_run(run_dir, self_play={"iterations": 3, "max_seconds": 0.001, "modes": ["skill"]}, skill={"prompts": 20})
    )
    run_self_play(config, show_progress=False)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "checkpoints" / "v0")
    for level in LEVELS:  # one token each, in the checkpoint the generators serve
        assert len(tokenizer(level, add_special_tokens=False)["input_ids"]) == 1
    [row] = read_metrics(run_dir)[1:]
    assert set(row["skill_win_rates"]) == {"<intermediate>><novice>", "<expert>><novice>", "<expert>><intermediate>"}
    games = read_tables(run_dir / "skill_games", SKILL_GAME_SCHEMA).to_pylist()
    assert len(games) == 20 * 3
    pairs = read_tables(run_dir / "pairs", PAIR_SCHEMA).to_pylist()
    decisive = [g for g in games if g["winner"] != "tie" and g["response_high"] != g["response_low"]]
    assert decisive, "a partly trained model should win some and lose some"
    assert row["pairs"] == len(pairs) == 2 * len(decisive)
    task = AdditionTask(digits=1)
    answers = {task.problem(a, b).prompt: task.problem(a, b).answer for a in range(10) for b in range(10)}
    for p in pairs:
        level = next(level for level in LEVELS if p["prompt"].startswith(level))
        plain = p["prompt"][len(level):]
        right = p["chosen"].strip() == answers[plain]
        # the top level always prefers the right answer, the bottom level always the wrong one
        if level == "<expert>":
            assert right
        if level == "<novice>":
            assert not right
