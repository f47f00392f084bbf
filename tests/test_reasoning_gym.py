"""The `reasoning_gym` task kind: seeded procedural prompts from the reasoning-gym package,
scored exactly as the package scores them, and judged in games by the task's own metric."""
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import reasoning_gym
from conftest import read_metrics, tiny_run
from reasoning_gym.utils import extract_answer

from cluster.config import ConfigError, parse_config
from cluster.run import run_self_play

FAMILIES = ["chain_sum", "letter_counting", "spell_backward"]


def _task(name: str, **extra):
    return parse_config({"task": {"kind": "reasoning_gym", "name": name, "size": 200, "held_out_size": 16, **extra},
                         "judge": {"kind": "task"}, "sft": {"steps": 0}}).task


@pytest.mark.parametrize("name", FAMILIES)
def test_scores_equal_the_packages_own(name: str) -> None:
    task = _task(name).build(7)
    package = reasoning_gym.get_score_answer_fn(name)
    for example in task.held_out():
        entry = example.fields["entry"]
        for response in (f"<answer>{entry['answer']}</answer>", f"so <answer>{entry['answer']}x</answer>", "no idea",
                         f"I think {entry['answer']}"):
            expected = package(extract_answer(response) or response.strip(), entry)
            assert task.score(example, response) == expected
    right = [task.score(e, f"<answer>{e.reference}</answer>") for e in task.held_out()]
    assert right == [1.0] * len(right)


def test_seeded_split_with_no_held_out_question_trained_on() -> None:
    options = _task("chain_sum", config={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    a, b, other = options.build(0), options.build(0), options.build(1)
    assert [e.prompt for e in a.held_out()] == [e.prompt for e in b.held_out()] != [e.prompt for e in other.held_out()]
    held = {e.fields["entry"]["question"] for e in a.held_out()}
    drawn = a.train(300, np.random.default_rng(0))  # 1-digit sums: a small space, repeats across the split are common
    assert len(drawn) == 300 and not {e.fields["entry"]["question"] for e in drawn} & held
    assert a.held_out()[0].prompt[0] == {"role": "system", "content": reasoning_gym.utils.SYSTEM_PROMPTS["direct"]}
    warm = a.sft(4, np.random.default_rng(0))
    assert all(e.reference.startswith("<answer>") and a.score(e, e.reference) == 1.0 for e in warm)


def test_unknown_family_or_config_is_refused_when_the_recipe_is_read() -> None:
    with pytest.raises(ConfigError, match="reasoning_gym has no family 'chain_sums'"):
        _task("chain_sums")
    with pytest.raises(ConfigError, match="refused config"):
        _task("chain_sum", config={"no_such_field": 1})


def test_a_run_judged_by_the_tasks_own_metric(ray_cluster, tmp_path: Path) -> None:
    task = {"kind": "reasoning_gym", "name": "chain_sum", "size": 200, "held_out_size": 16, "system_prompt": None,
            "answer_tag": None, "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}
    recipe = tiny_run(tmp_path / "run", judge={"kind": "task"}, self_play={"iterations": 1, "games_per_iteration": 32},
                      model={"max_model_len": 128}, sft={"steps": 100})
    config = parse_config({**recipe, "task": task})
    run_self_play(config, show_progress=False)
    built = config.task.build(config.seed)
    entries = {built.dataset[i]["question"]: built.dataset[i] for i in range(200)}
    games = pq.read_table(tmp_path / "run" / "games").to_pylist()
    package = reasoning_gym.get_score_answer_fn("chain_sum")
    assert len(games) == 32 and all(g["judge"] == "task:reasoning_gym" for g in games)
    for g in games:  # each side's score is the package's score of its answer
        entry = entries[g["prompt"]]
        assert (g["score_a"], g["score_b"]) == (package(g["response_a"].strip(), entry), package(g["response_b"].strip(), entry))
    rows = read_metrics(tmp_path / "run")
    assert [r["iteration"] for r in rows] == [0, 1] and 0 <= rows[1]["accuracy"] <= 1
