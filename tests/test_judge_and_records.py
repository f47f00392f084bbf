from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from judge.base import JudgeError
from judge.registry import make_judge
from judge.rules import ExactAnswerJudge
from judge.verdict import Verdict
from league.records import GAME_SCHEMA, PAIR_SCHEMA, games_table, pairs_from_games, read_tables, write_table_atomic
from prompts.example import Example
from tasks.addition import AdditionTask
from tasks.base import metric


def test_exact_answer_judge_picks_the_correct_side() -> None:
    judge = ExactAnswerJudge()
    p = Example("12+30=", "42")
    verdicts = judge.judge([p, p, p, p], ["42", " 42\n", "41", "41"], ["41", "42", "42", "40"])
    assert [v.winner for v in verdicts] == ["a", "tie", "b", "tie"]
    assert (verdicts[0].score_a, verdicts[0].score_b) == (1.0, 0.0)
    assert "expected 42" in verdicts[0].reason


def test_judge_refuses_mismatched_batches() -> None:
    with pytest.raises(JudgeError, match="one response per side"):
        ExactAnswerJudge().judge([Example("1+1=", "2")], ["2"], [])
    with pytest.raises(JudgeError, match="known kinds: exact_answer"):
        make_judge("oracle")


def test_addition_split_is_disjoint_and_answers_are_right() -> None:
    task = AdditionTask(digits=3)
    train = task.train(2000, np.random.default_rng(0))
    held = task.held_out(200)
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    p = task.problem(12, 345)
    assert p.prompt == "210+543=" and p.answer == "7530"  # 012 + 345 = 0357, every number reversed
    assert AdditionTask(3, reverse=False).problem(12, 345) == Example("12+345=", "357", id="12+345")
    assert metric(task, [p, p], ["7530", "753"]) == 0.5


def _games() -> pa.Table:
    verdicts = [Verdict("a", 1, 0, "r"), Verdict("tie", 1, 1, "r"), Verdict("b", 0, 1, "r"), Verdict("a", 1, 0, "r")]
    return games_table(
        3, "head_to_head", ("current", 4), [("v0", 0)] * 4, ["p0", "p1", "p2", "p3"],
        ["good", "same", "bad", "x"], ["bad", "same", "good", "x"], verdicts, "exact_answer", 2.0,
    )


def test_pairs_take_the_winner_as_chosen_and_drop_ties() -> None:
    pairs = pairs_from_games(_games())
    assert pairs.schema == PAIR_SCHEMA
    rows = pairs.to_pylist()
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [("p0", "good", "bad"), ("p2", "good", "bad")]
    assert {r["game_id"] for r in rows} <= set(_games().column("game_id").to_pylist())


def test_atomic_writes_leave_only_whole_files(tmp_path: Path) -> None:
    games = _games()
    write_table_atomic(games, tmp_path / "games" / "round-00001.parquet")
    write_table_atomic(games, tmp_path / "games" / "round-00002.parquet")
    (tmp_path / "games" / ".round-00003.parquet.tmp-1").write_bytes(b"half a file")
    table = read_tables(tmp_path / "games", GAME_SCHEMA)
    assert table.num_rows == 8
    assert read_tables(tmp_path / "empty", GAME_SCHEMA).num_rows == 0


def test_held_out_set_is_not_a_structured_slice() -> None:
    task = AdditionTask(digits=3)
    held = task.held_out(500)
    # the held-out answers start (least-significant digit first) with every digit, as training ones do
    assert {p.answer[0] for p in held} == set("0123456789")
