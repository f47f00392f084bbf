"""A broadcast reaches a real vLLM engine inside a Ray actor: same greedy tokens as transformers."""
from pathlib import Path

import pyarrow as pa
import pytest
import ray
import torch

from actors.actor import generator_actor
from actors.generator import GREEDY, EngineSpec
from learner.learner import DPOSettings, Learner

PROMPTS = ["012+345=", "999+001=", "5+5=", "hello ", "77+23=", "abc"]


def _hf_greedy_tokens(learner: Learner, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    out = []
    for prompt in prompts:
        ids = learner.tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            gen = learner.policy.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        out.append(gen[0, ids["input_ids"].shape[1] :].tolist())
    return out


def test_broadcast_then_vllm_greedy_equals_transformers_greedy(ray_cluster, tiny_model: Path, tmp_path: Path) -> None:
    # shared: this engine also answers as snapshots (generator.snapshot_replicas: 0), then goes back to its own weights
    gen = generator_actor("test-generator", EngineSpec(str(tiny_model), dtype="float32", shared=True), "current", 0)
    before = ray.get(gen.generate.remote(PROMPTS, GREEDY))
    assert ray.get(gen.serving.remote()) == ("current", 0)

    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=4))
    # a few large DPO steps so the new weights produce different text than the initial ones
    pairs = pa.table({"prompt": PROMPTS[:4] * 4, "chosen": ["12", "34", "56", "78"] * 4, "rejected": ["9", "8", "7", "6"] * 4})
    learner.train(pairs)
    learner.train(pairs)
    update = learner.publish()
    assert update.version == 2

    expected = _hf_greedy_tokens(learner, PROMPTS, GREEDY.max_new_tokens)
    decoded = learner.tokenizer.batch_decode(expected, skip_special_tokens=True)
    assert decoded != before
    seeds = list(range(len(PROMPTS)))
    # the shared engine answers as the trained snapshot, then is its own checkpoint again (v0)
    v2 = {"v2": (learner.save_checkpoint(tmp_path / "v2"), 2)}
    assert [text for text, _ in ray.get(gen.generate_as.remote(PROMPTS, ["v2"] * len(PROMPTS), v2, GREEDY, seeds))] == decoded
    assert ray.get(gen.serving.remote()) == ("current", 0) and ray.get(gen.generate.remote(PROMPTS, GREEDY)) == before

    version = ray.get(gen.load_weights.remote(ray.put(update)))
    assert version == 2 and ray.get(gen.serving.remote()) == ("current", 2)
    after = ray.get(gen.generate_tokens.remote(PROMPTS, GREEDY))
    assert after == expected  # token for token, EOS included
    texts = ray.get(gen.generate.remote(PROMPTS, GREEDY))
    assert texts == decoded

    # ... and as v0 (and a snapshot that cannot load), then it has the weights it was sent again
    v0 = {"v0": (str(tiny_model), 0), "gone": (str(tmp_path / "gone"), 3)}
    assert [text for text, _ in ray.get(gen.generate_as.remote(PROMPTS, ["v0"] * len(PROMPTS), v0, GREEDY, seeds))] == before
    with pytest.raises(ray.exceptions.RayTaskError, match="snapshot 'gone': no checkpoint"):
        ray.get(gen.generate_as.remote(PROMPTS[:2], ["v0", "gone"], v0, GREEDY, seeds[:2]))
    assert ray.get(gen.serving.remote()) == ("current", 2) and ray.get(gen.generate_tokens.remote(PROMPTS, GREEDY)) == expected

    # and a frozen snapshot loads from its checkpoint on disk
    ray.get(gen.load_checkpoint.remote(str(tiny_model), "v0", 0))
    assert ray.get(gen.generate.remote(PROMPTS, GREEDY)) == before
    ray.kill(gen)

