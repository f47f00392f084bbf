"""Capability retention: which tasks count, how the warm-up teaches them, how they are checked."""
import json
from pathlib import Path

import numpy as np
import pytest

from cluster.config import ConfigError, parse_config
from cluster.retention import compared, retention_problems, retention_tasks, sft_problems
from tasks.addition import AdditionTask


def test_warm_up_batches_take_the_share_from_retention_tasks() -> None:
    main, two, one = AdditionTask(3), AdditionTask(2), AdditionTask(1)
    batch = sft_problems(main, {"two": two, "one": one}, 0.25, 64, np.random.default_rng(0))
    widths = [len(p.prompt.split("+")[0]) for p in batch]
    assert len(batch) == 64 and widths.count(3) == 48 and widths.count(2) == 8 and widths.count(1) == 8
    assert widths[:48] != [3] * 48  # shuffled, not appended
    plain = sft_problems(main, {}, 0.25, 64, np.random.default_rng(0))
    assert plain == main.train(64, np.random.default_rng(0))  # no retention task: the batch is unchanged


def test_retention_problems_are_fixed_and_held_out(tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"prompt": f"q{i}", "answer": f"a{i}"}) + "\n" for i in range(5)))
    config = parse_config({"eval": {"retention": [{"name": "two", "digits": 2, "size": 20}, {"name": "bench", "path": str(bench), "size": 3}]}})
    problems = retention_problems(config)
    assert problems == retention_problems(config)
    assert [p.answer for p in problems["bench"]] == ["a0", "a1", "a2"]
    two = retention_tasks(config)["two"]
    assert len(problems["two"]) == 20
    for p in problems["two"]:
        a, b = (int(x[::-1]) for x in p.prompt.rstrip("=").split("+"))  # operands are written reversed
        assert two.is_held_out(a, b)  # never in the warm-up's training problems
    assert compared({"two": 0.5, "bench": 0.25}, {"two": 0.75, "bench": 0.0}) == {"two": -0.25, "bench": 0.25}


def test_recipe_refuses_retention_it_cannot_measure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has digits 3, the task self-play trains on"):
        parse_config({"eval": {"retention": [{"name": "same", "digits": 3}]}})
    with pytest.raises(ConfigError, match="give exactly one of digits"):
        parse_config({"eval": {"retention": [{"name": "none"}]}})
    with pytest.raises(ConfigError, match="names .* repeat"):
        parse_config({"eval": {"retention": [{"name": "a", "digits": 2}, {"name": "a", "digits": 1}]}})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "reply": "a"}) + "\n")
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['answer'\]"):
        parse_config({"eval": {"retention": [{"name": "bad", "path": str(bad)}]}})


def test_file_retention_is_scored_by_its_own_verifier(tmp_path: Path) -> None:
    from cluster.retention import retention_scorers
    from tasks.base import metric

    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(4)))
    config = parse_config({"task": {"kind": "arithmetic"}, "sft": {"steps": 0}, "judge": {"kind": "numeric"},
                           "eval": {"retention": [{"name": "sums", "path": str(bench), "metric": "numeric"}]}})
    problems = retention_problems(config)["sums"]
    assert metric(retention_scorers(config)["sums"], problems, ["It is 1.", "2", "so 3!", "5"]) == 0.75
    with pytest.raises(ConfigError, match="digits: built-in addition taught beside an addition task"):
        parse_config({"task": {"kind": "arithmetic"}, "eval": {"retention": [{"name": "two", "digits": 2}]}})


def test_runs_written_before_task_kinds_still_read() -> None:
    assert parse_config({"task": {"name": "addition", "digits": 2}}).task.digits == 2
