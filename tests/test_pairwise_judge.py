"""Pairwise LLM-as-judge: position swap, agreement, invalid answers; a unit test with a scripted
judge model, and an integration test with a real vLLM generator actor serving one."""
from pathlib import Path

import pytest
import ray
from conftest import tiny_run

from actors.actor import generator_actor
from actors.generator import EngineSpec, Sampling
from cluster.config import ConfigError, parse_config
from cluster.run import run_self_play
from judge.base import JudgeError
from judge.pairwise import DEFAULT_TEMPLATE, PairwiseLLMJudge
from judge.registry import JudgeSpec, make_judge
from league.records import GAME_SCHEMA, read_tables
from learner.tiny_model import build_tiny_model
from prompts.example import Example

P = Example("1+1=", "20")


def scripted(replies: dict[str, str]):
    """A stand-in judge model: the reply is chosen by which answer it was shown as Answer A."""
    seen: list[str] = []

    def generate(prompts: list[str]) -> list[str]:
        seen.extend(prompts)
        return [replies[p.split("Answer A: ")[1].split("\n")[0]] for p in prompts]

    return generate, seen


def test_both_orders_must_agree() -> None:
    # the model prefers "20" wherever it stands: consistent, so a verdict
    generate, seen = scripted({"20": "[[A]]", "3": "[[B]]"})
    [v] = PairwiseLLMJudge(generate).judge([P], ["20"], ["3"])
    assert (v.winner, v.score_a, v.score_b) == ("a", 1.0, 0.0) and v.reason.startswith("both orders agree")
    assert seen == [DEFAULT_TEMPLATE.format(prompt="1+1=", a="20", b="3"), DEFAULT_TEMPLATE.format(prompt="1+1=", a="3", b="20")]
    [v] = PairwiseLLMJudge(generate).judge([P], ["3"], ["20"])
    assert v.winner == "b"
    # a model that always picks the first answer it reads: position bias, so a tie
    [v] = PairwiseLLMJudge(scripted({"20": "[[A]]", "3": "[[A]]"})[0]).judge([P], ["20"], ["3"])
    assert v.winner == "tie" and v.reason.startswith("orders disagree")
    [v] = PairwiseLLMJudge(scripted({"20": "[[C]]", "3": "[[C]]"})[0]).judge([P], ["20"], ["3"])
    assert v.winner == "tie" and v.reason.startswith("both orders agree")


def test_unreadable_answers_are_recorded_invalid() -> None:
    [v] = PairwiseLLMJudge(scripted({"20": "A is better", "3": "[[B]]"})[0]).judge([P], ["20"], ["3"])
    assert v.winner == "tie" and v.reason.startswith("invalid:") and "A is better" in v.reason
    with pytest.raises(JudgeError, match="not a format string"):
        PairwiseLLMJudge(lambda ps: ps, template="{question}")
    with pytest.raises(JudgeError, match="exactly one group"):
        PairwiseLLMJudge(lambda ps: ps, pattern="[ABC]")
    with pytest.raises(JudgeError, match="gives no score to one"):
        PairwiseLLMJudge(lambda ps: ps).score(P, "2")


def test_served_by_a_vllm_generator_actor(ray_cluster, tmp_path: Path) -> None:
    judge_model = build_tiny_model(tmp_path / "judge", hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128,
                                   max_position_embeddings=256)  # the judge's prompt holds both answers
    spec = EngineSpec(str(judge_model), max_model_len=256, kv_cache_bytes=32 * 2**20)
    llm = generator_actor("test-pairwise-judge-llm", spec, "judge", 0)
    try:
        judge = make_judge(JudgeSpec("pairwise_llm", llm=llm, llm_sampling=Sampling(0.0, 1.0, 8)))
        verdicts = judge.judge([P, Example("2+2=", "40")], ["20", "40"], ["3", "41"])
        assert len(verdicts) == 2
        for v in verdicts:  # an untrained judge model: unreadable, recorded as such, no crash
            assert v.winner in ("a", "b", "tie") and v.reason.split(":")[0] in ("invalid", "orders disagree", "both orders agree")
        assert all(v.reason.startswith("invalid") for v in verdicts)  # a random tiny model never writes [[A]]
    finally:
        ray.kill(llm)


def test_a_run_judged_by_an_llm(ray_cluster, tmp_path: Path) -> None:
    judge_model = build_tiny_model(tmp_path / "judge", hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128,
                                   max_position_embeddings=256)
    config = parse_config(tiny_run(tmp_path / "run", self_play={"iterations": 1, "games_per_iteration": 32},
                                   judge={"kind": "pairwise_llm", "llm": str(judge_model), "llm_max_model_len": 256}))
    summary = run_self_play(config, show_progress=False)
    games = read_tables(tmp_path / "run" / "games", GAME_SCHEMA).to_pylist()
    assert len(games) == summary["games"] == 32
    assert {g["judge"] for g in games} == {"pairwise_llm"}
    assert all(g["reason"].startswith(("invalid", "orders disagree", "both orders agree")) for g in games)
    with pytest.raises(ConfigError, match="needs llm"):
        parse_config({"judge": {"kind": "pairwise_llm"}})
    with pytest.raises(ConfigError, match="scores single answers"):
        parse_config({"judge": {"kind": "pairwise_llm", "llm": str(judge_model)}, "self_play": {"modes": ["adversarial"]}})


def test_the_judge_model_reads_each_request_through_its_own_chat_template(smollm2: Path) -> None:
    generate, seen = scripted({"20": "[[A]]", "2": "[[B]]"})
    judge = make_judge(JudgeSpec("pairwise_llm", llm="scripted", llm_path=str(smollm2)))  # as the judge actor builds it
    judge.generate = generate  # scripted instead of the vLLM actor
    [v] = judge.judge([Example([{"role": "user", "content": "1+1="}], "20")], ["20"], ["2"])
    assert v.winner == "a"
    request = DEFAULT_TEMPLATE.format(prompt="1+1=", a="20", b="2")
    assert seen[0].startswith("<|im_start|>system\n") and f"<|im_start|>user\n{request}<|im_end|>\n<|im_start|>assistant\n" in seen[0]
