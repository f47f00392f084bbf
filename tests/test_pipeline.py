"""The staged pipeline on real Ray and vLLM on CPU: TRL SFT -> TRL reward model (the judge) ->
self-play rounds -> DPO, each stage callable on its own, as the README shows."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from conftest import read_metrics, tiny_run
from transformers import AutoModelForCausalLM

from cluster.config import load_recipe, parse_config
from cluster.pipeline import PipelineError, RLHFPipeline
from league.records import GAME_SCHEMA, PAIR_SCHEMA, read_tables


@pytest.fixture(scope="module")
def staged(ray_cluster, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    config = parse_config(tiny_run(run_dir, reward_model={"steps": 150, "pairs": 1000}))
    pipe = RLHFPipeline(config, show_progress=False)
    out = {"sft": pipe.run_sft(), "reward": pipe.run_reward_model_training(), "rounds": []}
    for _ in range(2):
        pairs = pipe.run_self_play(n_games=96, refinement_iterations=1)
        out["rounds"].append((pairs, pipe.run_policy_optimization(method="dpo", data=pairs)))
    out["pipe"] = pipe
    yield out, run_dir
    pipe.close()


def test_sft_stage_writes_the_policy_the_generators_serve(staged) -> None:
    out, run_dir = staged
    assert out["sft"]["steps"] == 150 and out["sft"]["loss"] > 0
    sft = AutoModelForCausalLM.from_pretrained(run_dir / "model" / "sft")
    v0 = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "v0")  # the policy self-play started from
    base = AutoModelForCausalLM.from_pretrained(run_dir / "model" / "base")
    for (name, p), q in zip(sft.named_parameters(), v0.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(sft.model.embed_tokens.weight, base.model.embed_tokens.weight)
    assert read_metrics(run_dir)[0]["accuracy"] > 0.2  # SFT taught it something


def test_reward_model_learns_and_judges_every_game(staged) -> None:
    out, run_dir = staged
    assert out["reward"]["eval_accuracy"] > 0.6  # right answers ranked above near misses it never saw
    assert (Path(out["reward"]["path"]) / "config.json").is_file()
    games = read_tables(run_dir / "games", GAME_SCHEMA)
    assert set(games.column("judge").to_pylist()) == {"reward_model"}
    assert all("P(a beats b)" in r for r in games.column("reason").to_pylist())
    assert load_recipe(run_dir / "config.yaml").judge.kind == "reward_model"
    stages = [json.loads(line)["stage"] for line in (run_dir / "stages.jsonl").read_text().splitlines()]
    assert stages == ["sft", "reward_model"]


def test_self_play_returns_the_pairs_it_wrote(staged) -> None:
    out, run_dir = staged
    for k, (pairs, row) in enumerate(out["rounds"], start=1):
        assert pairs.schema.equals(PAIR_SCHEMA)
        assert set(pairs.column("source").to_pylist()) <= {"head_to_head", "refinement"}
        on_disk = pq.read_table(run_dir / "pairs" / f"round-{k:05d}.parquet")
        assert on_disk.num_rows == pairs.column("source").to_pylist().count("head_to_head")
        assert pq.read_table(run_dir / "traces" / f"round-{k:05d}.parquet").num_rows == 96
        assert row["games"] == 96 and row["refinement_traces"] == 96
        assert row["pairs"] == pairs.num_rows and row["version"] == k


def test_policy_optimization_changes_the_served_policy(staged) -> None:
    out, run_dir = staged
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1]["version"] == 2 and rows[-1]["loss"] is not None
    pipe = out["pipe"]
    assert pipe.evaluate() == rows[-1]["accuracy"]  # greedy accuracy of what the generator serves now


def test_stages_refuse_bad_calls_with_what_to_do(staged) -> None:
    pipe = staged[0]["pipe"]
    with pytest.raises(PipelineError, match="unknown policy-optimization method 'ppo'; supported: dpo"):
        pipe.run_policy_optimization(method="ppo")
    with pytest.raises(PipelineError, match="no preference data: call run_self_play first"):
        pipe.run_policy_optimization()
    with pytest.raises(PipelineError, match="run_sft must come before run_self_play"):
        pipe.run_sft()
    with pytest.raises(PipelineError, match="n_games must be at least 1"):
        pipe.run_self_play(n_games=0)



def test_trl_stages_use_bf16_only_on_a_gpu_that_has_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TRL defaults to bf16 autocast everywhere; on a CPU without native bf16 that is several times slower.
    from learner.trl_stages import StageSettings, _common_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _common_args(StageSettings(), tmp_path)["bf16"] is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert _common_args(StageSettings(), tmp_path)["bf16"] is True
