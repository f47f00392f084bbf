"""Open-ended prompts (no reference, no tests) judged by a model: the held-out metric is the
judge's win rate of the current policy over v0, with a 95% interval, recomputed here by hand."""
import json
from pathlib import Path

import pytest
import torch
from conftest import read_metrics, tiny_run
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from cluster.config import ConfigError, parse_config
from cluster.orchestrator import judge_spec
from cluster.run import run_self_play
from cluster.win_rate import V0_ANSWERS, win_rate_vs_v0
from judge.registry import make_judge
from judge.verdict import Verdict
from prompts.example import Example
from tasks.base import WIN_RATE, TaskError


def test_win_rate_counts_ties_half_and_never_asks_about_identical_answers() -> None:
    asked: list[tuple[str, str]] = []

    def judge(examples, a, b):
        asked.extend(zip(a, b))
        return [Verdict("a" if x == "good" else "b" if y == "good" else "tie", 1.0, 0.0, "") for x, y in zip(a, b)]

    examples = [Example(f"q{i}") for i in range(4)]
    out = win_rate_vs_v0(judge, examples, ["good", "same", "bad", "meh"], ["bad", "same", "good", "meh2"])
    assert asked == [("good", "bad"), ("bad", "good"), ("meh", "meh2")]
    assert out["accuracy"] == (1 + 0.5 + 0 + 0.5) / 4
    low, high = out["accuracy_interval"]
    assert 0 < low < out["accuracy"] < high < 1
    assert win_rate_vs_v0(judge, examples, ["x"] * 4, ["x"] * 4)["accuracy"] == 0.5 and len(asked) == 3


@pytest.fixture(scope="module")
def reward_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)
    path = tmp_path_factory.mktemp("rm") / "rm"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(path)
    return path


def _prompts(tmp_path: Path) -> dict:
    path = tmp_path / "open.jsonl"
    path.write_text("".join(json.dumps({"q": f"say {a}{b}:"}) + "\n" for a in "abcdefgh" for b in "ijklmnop"))
    return {"kind": "dataset", "path": str(path), "columns": {"prompt": "q"}, "held_out_every": 4, "held_out_size": 12}


def test_open_ended_prompts_need_a_model_judge(tmp_path: Path, reward_model: Path) -> None:
    config = parse_config({"task": _prompts(tmp_path), "sft": {"steps": 0}, "judge": {"kind": "reward_model", "reward_model": str(reward_model)}})
    assert config.task.metric == WIN_RATE and config.task.build(0).open_ended
    with pytest.raises(TaskError, match="open-ended task scores no single answer"):
        config.task.build(0).score(Example("q"), "a")
    with pytest.raises(ConfigError, match="judge open-ended prompts with reward_model or pairwise_llm"):
        parse_config({"task": _prompts(tmp_path), "sft": {"steps": 0}, "judge": {"kind": "exact_answer"}})


def test_a_run_reports_the_judges_win_rate_against_v0(ray_cluster, tmp_path: Path, reward_model: Path) -> None:
    run_dir = tmp_path / "run"
    recipe = tiny_run(run_dir, sft={"steps": 0}, judge={"kind": "reward_model", "reward_model": str(reward_model)},
                      self_play={"iterations": 1, "games_per_iteration": 48}, dpo={"learning_rate": 3e-3})
    config = parse_config({**recipe, "task": _prompts(tmp_path)})
    run_self_play(config, show_progress=False)
    rows = read_metrics(run_dir)
    assert rows[0]["accuracy"] == 0.5 and rows[0]["accuracy_interval"][0] < 0.5 < rows[0]["accuracy_interval"][1]  # v0 against itself
    task = config.task.build(config.seed)
    v0 = json.loads((run_dir / V0_ANSWERS).read_text())
    assert len(v0) == len(task.held_out()) == 12
    # recomputed by hand: transformers' greedy answers of the trained policy, judged by the reward model against v0's
    policy_dir = run_dir / "state" / "learner" / "policy"
    tokenizer, model = AutoTokenizer.from_pretrained(policy_dir), AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    answers = []
    for example in task.held_out():
        ids = tokenizer(example.prompt, return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=config.generator.max_new_tokens, do_sample=False)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert answers != v0  # DPO moved the policy
    judge = make_judge(judge_spec(config.judge))
    expected = win_rate_vs_v0(judge.judge, task.held_out(), answers, v0)
    assert rows[1]["accuracy"] == pytest.approx(expected["accuracy"]) and rows[1]["accuracy_interval"] == pytest.approx(expected["accuracy_interval"])
