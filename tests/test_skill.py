"""Skill-conditioned play: tags in the tokenizer and prompts, games across levels, pairs per level."""
from pathlib import Path

from conftest import mode_pairs, read_metrics
from transformers import AutoTokenizer

from judge.verdict import Verdict
from league.records import read_tables
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


def test_skill_mode_on_real_actors(solo_modes_run: Path) -> None:
    run_dir = solo_modes_run  # three iterations asked, but the time budget ended self-play after the first
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "checkpoints" / "v0")
    for level in LEVELS:  # one token each, in the checkpoint the generators serve
        assert len(tokenizer(level, add_special_tokens=False)["input_ids"]) == 1
    [row] = read_metrics(run_dir)[1:]
    assert set(row["skill_win_rates"]) == {"<intermediate>><novice>", "<expert>><novice>", "<expert>><intermediate>"}
    games = read_tables(run_dir / "skill_games", SKILL_GAME_SCHEMA).to_pylist()
    assert len(games) == 20 * 3
    pairs = mode_pairs(run_dir, "skill")
    decisive = [g for g in games if g["winner"] != "tie" and g["response_high"] != g["response_low"]]
    assert decisive, "a partly trained model should win some and lose some"
    assert len(pairs) == 2 * len(decisive)
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
