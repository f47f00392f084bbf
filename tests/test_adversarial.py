"""Adversarial filtering: the failure set and its (best, worst) pairs, unit and on real Ray + vLLM."""
from pathlib import Path

from conftest import mode_pairs, read_metrics

from league.adversarial import FAILURE_SCHEMA, filter_failures
from league.records import read_tables
from tasks.addition import AdditionTask


def test_filter_keeps_wide_spreads_and_pairs_best_with_worst() -> None:
    failures, pairs = filter_failures(
        2,
        ["p0", "p1", "p2"],
        [["a", "b", "c"], ["x", "x", "x"], ["m", "n", "o"]],
        [[0.0, 1.0, 0.5], [1.0, 1.0, 1.0], [0.2, 0.4, 0.3]],
        threshold=0.5,
    )
    assert failures.to_pylist() == [
        {"round": 2, "prompt": "p0", "samples": 3, "mean_score": 0.5, "spread": 1.0, "best": "b", "worst": "a"}
    ]
    [pair] = pairs.to_pylist()
    assert (pair["prompt"], pair["chosen"], pair["rejected"], pair["source"]) == ("p0", "b", "a", "adversarial")
    assert pair["margin"] == 1.0 and pair["game_id"] is None


def test_adversarial_mode_on_real_actors(solo_modes_run: Path) -> None:
    run_dir = solo_modes_run
    [row] = read_metrics(run_dir)[1:]
    failures = read_tables(run_dir / "failures", FAILURE_SCHEMA)
    pairs = mode_pairs(run_dir, "adversarial")
    assert row["adversarial_prompts"] == 24 and row["failures"] == failures.num_rows
    assert row["games"] == 0 and row["win_rate_vs_previous"] is None  # no head-to-head in this recipe
    assert len(pairs) == failures.num_rows
    # the row counts every mode's pairs, each mode's in a file of its own
    assert row["pairs"] == sum(len(mode_pairs(run_dir, tag)) for tag in ("adversarial", "refinement", "skill"))
    assert not (run_dir / "games").exists()
    task = AdditionTask(digits=1)
    answers = {task.problem(a, b).prompt: task.problem(a, b).answer for a in range(10) for b in range(10)}
    for failure in failures.to_pylist():
        assert failure["spread"] > 0.5 and failure["samples"] == 6
        assert failure["best"].strip() == answers[failure["prompt"]] != failure["worst"].strip()
    assert {p["source"] for p in pairs} <= {"adversarial"}


def test_samples_the_judge_failed_on_take_no_part() -> None:
    from league.adversarial import filter_failures

    nan = float("nan")
    failures, pairs = filter_failures(1, ["p", "q"], [["a", "b", "c"], ["x", "y"]], [[nan, 1.0, 0.0], [nan, 1.0]], 0.5)
    assert pairs.column("chosen").to_pylist() == ["b"] and pairs.column("rejected").to_pylist() == ["c"]
    assert failures.num_rows == 1 and failures.column("prompt").to_pylist() == ["p"]
