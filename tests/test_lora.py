"""LoRA in the learner (learner/lora.py): only the policy's adapter trains and holds optimizer
state, the reference is the base with a frozen adapter of its own, merged weights load in
transformers unchanged, a reference refresh copies the adapter, and a saved state resumes exactly."""
import copy
from pathlib import Path

import pyarrow as pa
import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from learner.learner import DPOSettings, Learner
from learner.lora import LoRAOptions, adapter_weights, base_weights, merged_weights
from learner.sequences import encode_pairs, token_logps

PAIRS = pa.table({
    "prompt": ["210+543=", "999+100=", "005+005=", "321+654=", "111+111=", "400+400="],
    "chosen": ["7530", "0001", "0100", "9750", "2220", "0080"],
    "rejected": ["7531", "01", "0000", "975", "2221", "008"],
})
LORA = LoRAOptions(rank=4, alpha=8.0)


def _logps(model: torch.nn.Module, learner: Learner) -> torch.Tensor:
    batch = encode_pairs(learner.tokenizer, ["210+543="], ["7530"])
    with torch.no_grad():
        return token_logps(model, batch)[0]


def test_only_the_adapters_train_and_the_reference_is_the_base(tiny_model: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    learner = Learner(tiny_model, DPOSettings(batch_size=3, epochs=2, learning_rate=1e-2, ref_refresh_every=0), seed=0, lora=LORA)
    trained = [n for n, p in learner.policy.named_parameters() if p.requires_grad]
    assert trained and all(".lora_" in n and ".default." in n for n in trained) and learner.reference is None
    stats = learner.train(PAIRS)
    assert stats["steps"] == 4 and learner.version == 1
    state = learner.optimizer.state_dict()["state"]
    held = sum(t.numel() for s in state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0)
    adapters = sum(p.numel() for p in learner.policy.parameters() if p.requires_grad)
    assert held == 2 * adapters < 0.3 * sum(p.numel() for p in base.parameters())  # AdamW's two moments, adapters only
    batch = encode_pairs(learner.tokenizer, ["210+543="], ["7530"])
    assert torch.allclose(learner._reference_logps(batch), _logps(base, learner), atol=1e-6)  # the base, untouched
    assert not torch.allclose(_logps(learner.policy, learner), _logps(base, learner), atol=1e-4)  # the policy moved


def test_merged_weights_load_in_transformers_and_equal_the_policy(tiny_model: Path, tmp_path: Path) -> None:
    learner = Learner(tiny_model, DPOSettings(batch_size=3, epochs=1, learning_rate=1e-2, ref_refresh_every=0), seed=0, lora=LORA)
    learner.train(PAIRS)
    reference = copy.deepcopy(learner.policy).merge_and_unload().state_dict()
    merged = merged_weights(learner.policy)
    assert merged.keys() == reference.keys()
    for key in merged:
        assert torch.allclose(merged[key], reference[key], atol=1e-6), key
    plain = AutoModelForCausalLM.from_pretrained(learner.save_checkpoint(tmp_path / "v1"), dtype=torch.float32)
    assert not any("lora" in k for k in plain.state_dict())
    assert torch.allclose(_logps(plain, learner), _logps(learner.policy, learner), atol=1e-5)
    assert learner.publish().weights.keys() == plain.state_dict().keys()


def test_a_reference_refresh_copies_the_policys_adapter(tiny_model: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    learner = Learner(tiny_model, DPOSettings(batch_size=3, epochs=1, learning_rate=1e-2, ref_refresh_every=1), seed=0, lora=LORA)
    optimizer, base_weights = learner.optimizer, {k: v.clone() for k, v in base.state_dict().items()}
    learner.train(PAIRS)  # refreshes after the iteration
    batch = encode_pairs(learner.tokenizer, ["210+543="], ["7530"])
    assert torch.allclose(learner._reference_logps(batch), _logps(learner.policy, learner), atol=1e-6)
    assert not torch.allclose(learner._reference_logps(batch), _logps(base, learner), atol=1e-4)
    assert learner.optimizer is optimizer and optimizer.state  # Adam goes on across a refresh
    kept = learner.policy.get_base_model().state_dict()
    for key, value in base_weights.items():  # the base itself never changes
        assert torch.equal(kept.get(key, kept.get(key.replace(".weight", ".base_layer.weight"))), value), key
    assert all(".default." in n for n, p in learner.policy.named_parameters() if p.requires_grad)


def test_a_resumed_lora_learner_matches_an_uninterrupted_one(tiny_model: Path, tmp_path: Path) -> None:
    settings = DPOSettings(batch_size=3, epochs=1, ref_refresh_every=2, learning_rate=1e-2)
    steady = Learner(tiny_model, settings, seed=3, lora=LORA)
    steady.train(PAIRS)
    state = steady.save_state(tmp_path / "state")
    served = AutoModelForCausalLM.from_pretrained(Path(state) / "policy", dtype=torch.float32)  # what a resumed run's generators load
    assert torch.allclose(_logps(served, steady), _logps(steady.policy, steady), atol=1e-5)
    resumed = Learner(Path(state) / "policy", settings, seed=99, lora=LORA)
    assert resumed.load_state(state) == steady.version == 1
    for learner in (steady, resumed):
        learner.train(PAIRS)  # the second iteration refreshes the reference: adapters merge
    for (name, a), b in zip(merged_weights(steady.policy).items(), merged_weights(resumed.policy).values()):
        assert torch.allclose(a, b, atol=1e-6), name
    with pytest.raises(ValueError, match="saved with other learner.lora options"):
        Learner(Path(state) / "policy", settings, lora=LoRAOptions(rank=4, target_modules=["q_proj"])).load_state(state)


def test_folding_the_adapter_into_the_base_keeps_the_policy_and_makes_it_the_reference(tiny_model: Path) -> None:
    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=2, ref_refresh_every=0), lora=LORA)
    learner.train(PAIRS)
    trained, encoded = _logps(learner.policy, learner), encode_pairs(learner.tokenizer, ["210+543="], ["7530"])
    assert not torch.allclose(learner._reference_logps(encoded), trained, atol=1e-4)
    learner.fold_adapter()
    assert torch.allclose(_logps(learner.policy, learner), trained, atol=1e-5)  # the same policy ...
    assert torch.allclose(learner._reference_logps(encoded), trained, atol=1e-5)  # ... now the base, and the reference
    merged = merged_weights(learner.policy)
    assert all(torch.equal(merged[k], v) for k, v in base_weights(learner.policy).items())  # adapters add nothing
    assert not learner.optimizer.state
    learner.train(PAIRS)  # and training goes on through the adapters
    assert not torch.allclose(_logps(learner.policy, learner), trained, atol=1e-4)


def test_a_snapshot_adapter_loads_in_peft_and_transformers_as_the_policy(tiny_model: Path, tmp_path: Path) -> None:
    from peft import PeftModel

    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=2), lora=LORA)
    learner.train(PAIRS)
    path = Path(learner.save_snapshot(tmp_path / "v1", tiny_model))
    assert sorted(p.name for p in path.iterdir() if p.suffix != ".md") == ["adapter_config.json", "adapter_model.safetensors"]
    expected = _logps(learner.policy, learner)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), path).eval()
    assert torch.allclose(_logps(peft_model, learner), expected, atol=1e-5)
    by_name = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()  # the adapter names its base
    assert torch.allclose(_logps(by_name, learner), expected, atol=1e-5)
    merged = Learner(tiny_model, DPOSettings(), lora=LoRAOptions(rank=4, snapshots="merged"))
    assert (Path(merged.save_snapshot(tmp_path / "v2", tiny_model)) / "config.json").is_file()


def test_one_engine_serves_a_league_of_adapters_as_their_merged_checkpoints_answer(ray_cluster, tiny_model: Path, tmp_path: Path) -> None:
    """Snapshots as adapters on one vLLM engine, in one batch, answer greedily token for token
    as the same snapshots merged into full checkpoints and loaded one after another; with every
    adapter slot taken, the base's own requests (v0) still get the base (actors/cpu_lora.py)."""
    from actors.actor import generator_actor
    from actors.generator import GREEDY, EngineSpec

    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=2, ref_refresh_every=0), lora=LoRAOptions(rank=8, alpha=16))
    adapters, merged = {"v0": (str(tiny_model), 0)}, {"v0": (str(tiny_model), 0)}
    for version in (1, 2, 3):
        learner.train(PAIRS)
        adapters[f"v{version}"] = (learner.save_snapshot(tmp_path / f"v{version}", tiny_model), version)
        merged[f"v{version}"] = (learner.save_checkpoint(tmp_path / f"merged-v{version}"), version)
    prompts = [p for p in PAIRS["prompt"].to_pylist() for _ in range(4)]
    names, seeds = [f"v{i % 4}" for i in range(len(prompts))], list(range(len(prompts)))
    served = generator_actor("test-adapters", EngineSpec(str(tiny_model), dtype="float32", max_loras=3, max_lora_rank=8), "v0", 0)
    reloading = generator_actor("test-reloads", EngineSpec(str(tiny_model), dtype="float32"), "v0", 0)
    answers = ray.get(served.generate_as.remote(prompts, names, adapters, GREEDY, seeds))
    assert answers == ray.get(reloading.generate_as.remote(prompts, names, merged, GREEDY, seeds))
    assert len({answers[i] for i in range(0, len(prompts), 4)} | {answers[i] for i in range(1, len(prompts), 4)}) > 2  # they differ
    with pytest.raises(ray.exceptions.RayTaskError, match="not a LoRA adapter.*learner.lora.snapshots: merged"):
        ray.get(served.generate_as.remote(prompts[:1], ["v1"], merged, GREEDY, [0]))
    ray.kill(served)
    ray.kill(reloading)


def test_the_policy_broadcast_as_an_adapter_answers_as_its_merged_weights(ray_cluster, tiny_model: Path) -> None:
    """`broadcast: adapter`: the base goes out once (again after a fold changes it, and to a
    generator joining), then the adapter alone, and an engine serving it on the base answers
    greedily token for token as one given the merged weights."""
    from actors.actor import generator_actor
    from actors.generator import GREEDY, EngineSpec
    from learner.learner import WeightUpdate

    lora = LoRAOptions(rank=8, alpha=16, broadcast="adapter")
    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=2, ref_refresh_every=0), lora=lora)
    prompts = [p for p in PAIRS["prompt"].to_pylist() for _ in range(2)]
    adapter = generator_actor("test-adapter-broadcast", EngineSpec(str(tiny_model), dtype="float32", max_loras=1, max_lora_rank=8), "current", 0)
    merged = generator_actor("test-merged-broadcast", EngineSpec(str(tiny_model), dtype="float32"), "current", 0)
    before = ray.get(adapter.generate.remote(prompts, GREEDY))
    with_base = []
    for step in range(3):
        if step == 2:
            learner.fold_adapter()  # the base changes: it goes out again
        learner.train(PAIRS)
        update = learner.publish()
        with_base.append(bool(update.weights))
        assert ray.get(adapter.load_weights.remote(update)) == learner.version
        ray.get(merged.load_weights.remote(WeightUpdate(learner.version, learner.weights())))
        answers = ray.get(adapter.generate.remote(prompts, GREEDY))
        assert answers == ray.get(merged.generate.remote(prompts, GREEDY)), step
    assert with_base == [True, False, True]
    assert answers != before
    joining = learner.publish(served=True)
    assert joining.weights.keys() == base_weights(learner.policy).keys() and joining.adapter is not None
    assert ray.get(adapter.load_weights.remote(joining)) == learner.version  # base and adapter again: the same policy
    assert ray.get(adapter.generate.remote(prompts, GREEDY)) == answers
    with pytest.raises(ray.exceptions.RayTaskError, match="came as a LoRA adapter, but this engine was started without LoRA serving"):
        ray.get(merged.load_weights.remote(joining))
    ray.kill(adapter)
    ray.kill(merged)


ROLES = {"matchmaking": "alphastar", "roles": {"min_iterations": 1, "max_iterations": 1, "games_per_iteration": 16}}


@pytest.mark.parametrize("served", [{"broadcast": "merged", "snapshot_replicas": 1, "league": {}},
                                    {"broadcast": "adapter", "snapshot_replicas": 0, "league": ROLES}],
                         ids=["merged-and-a-snapshot-engine", "one-engine-of-adapters-and-exploiters"])
def test_a_lora_run_through_selfplay_run_snapshots_adapters_and_resumes(ray_cluster, tiny_model: Path, tmp_path: Path, served: dict) -> None:
    """The tiny model's run with learner.lora: merged weights reach the generators under the
    model's own names (each iteration a new version) and a snapshot engine serves the adapters on
    v0; or every learning agent's engine takes its policy as an adapter on v0, the main agent's
    serving every snapshot too, and an exploiter reset to v0 answers as v0 did. A resumed run
    takes up the adapters."""
    # LoRA adapts a trained model (from scratch its frozen random embeddings leave the adapters
    # little to learn from): the tiny model's SFT first, with full weights, as the starting point
    import numpy as np
    from conftest import read_metrics, tiny_run

    from cluster.cli import main
    from cluster.config import parse_config
    from cluster.run import run_self_play
    from tasks.addition import AdditionTask

    task, rng = AdditionTask(digits=1), np.random.default_rng(0)
    sft = Learner(tiny_model, DPOSettings())
    sft.sft_steps([([p.prompt for p in batch], [p.answer for p in batch]) for batch in (task.train(64, rng) for _ in range(150))], 3e-3)
    start = sft.save_checkpoint(tmp_path / "sft")
    run_dir = tmp_path / "run"
    recipe = tiny_run(run_dir, self_play={"iterations": 2, "games_per_iteration": 48}, sft={"steps": 0},
                      learner={"lora": {"rank": 8, "alpha": 16, "broadcast": served["broadcast"]}},
                      dpo={"learning_rate": 5e-3, "ref_refresh_every": 0},
                      league={"admission_threshold": 0.01, "min_admission_games": 1, **served["league"]},
                      generator={"snapshot_replicas": served["snapshot_replicas"]})
    recipe["model"] = {"path": start}
    run_self_play(parse_config(recipe), show_progress=False)
    rows = read_metrics(run_dir)
    if served["league"]:  # the reset exploiter's fresh adapter on v0, the base sent again: v0's greedy answers
        resets = [r["exploiters"]["main_exploiter"] for r in rows[1:] if r["exploiters"]["main_exploiter"]["reset"]]
        assert resets and all(x["accuracy"] == rows[0]["accuracy"] for x in resets), (rows[0]["accuracy"], resets)
    assert [(r["version"], r["pairs"] > 0) for r in rows[1:]] == [(1, True), (2, True)], [(r.get("pairs"), r.get("games")) for r in rows]
    snapshots = [p for p in (run_dir / "checkpoints").iterdir() if p.name != "v0"]
    assert snapshots and all((p / "adapter_config.json").is_file() and not (p / "config.json").exists() for p in snapshots)
    assert (run_dir / "state" / "learner" / "adapters.pt").is_file() and not (run_dir / "state" / "learner" / "reference.pt").exists()
    assert main(["run", "--resume", str(run_dir), "--iterations", "3", "--quiet"]) == 0
    assert [r["version"] for r in read_metrics(run_dir)[1:]] == [1, 2, 3]
    import json

    played = json.loads((run_dir / "league.json").read_text())["results"]["current"]
    assert any(played.get(p.name, (0, 0))[1] > 0 for p in snapshots), played  # the resumed snapshot engine served them


def test_a_lora_warm_up_keeps_its_optimizer_across_chunks(tiny_model: Path) -> None:
    learner = Learner(tiny_model, DPOSettings(), lora=LORA)
    batch = (["1+1=", "2+2="], ["2", "4"])
    learner.sft_steps([batch] * 3, 1e-2)
    optimizer = learner._sft_optimizer
    learner.sft_steps([batch] * 3, 1e-2)
    assert learner._sft_optimizer is optimizer and optimizer.state  # Adam's moments carried on
    trained = _logps(learner.policy, learner)  # and the reference follows the warmed-up policy
    encoded = encode_pairs(learner.tokenizer, ["210+543="], ["7530"])
    assert torch.allclose(learner._reference_logps(encoded), trained, atol=1e-5)


def test_a_snapshot_adapter_of_the_served_version_while_a_later_one_trains(tiny_model: Path, tmp_path: Path) -> None:
    """With `keep_served`, the adapter of the version the generators serve, not the one training."""
    from safetensors.torch import load_file

    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=2), lora=LORA)
    learner.train(PAIRS)
    learner.publish()  # version 1 served
    served = adapter_weights(learner.policy)
    learner.keep_served()
    learner.train(PAIRS)  # version 2 trains
    saved = load_file(Path(learner.save_snapshot(tmp_path / "v1", tiny_model, version=1)) / "adapter_model.safetensors")
    assert saved.keys() == served.keys() and all(torch.equal(v, served[k]) for k, v in saved.items())
    assert not all(torch.equal(v, adapter_weights(learner.policy)[k]) for k, v in saved.items())


def test_a_generator_joining_while_a_later_version_trains_gets_the_served_adapter(tiny_model: Path) -> None:
    """With the policy broadcast as an adapter and `keep_served`, a joining generator's update is
    the served version's adapter, with the base (which it may not hold), not the training one's."""
    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=2), lora=LoRAOptions(rank=4, broadcast="adapter"))
    learner.train(PAIRS)
    learner.keep_served()
    learner.publish()  # version 1 served
    served = adapter_weights(learner.policy)
    learner.train(PAIRS)  # version 2 trains
    joining = learner.publish(served=True)
    assert joining.version == 1 and joining.weights.keys() == base_weights(learner.policy).keys()
    assert joining.adapter is not None and all(torch.equal(v, served[k]) for k, v in joining.adapter.weights.items())
    assert not all(torch.equal(v, adapter_weights(learner.policy)[k]) for k, v in joining.adapter.weights.items())
    assert learner.publish().version == 2 and learner.publish().weights == {}  # the broadcasts: the base went out with version 1
