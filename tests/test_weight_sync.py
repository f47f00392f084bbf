"""A broadcast reaches a real vLLM engine inside a Ray actor: same greedy tokens as transformers."""
from pathlib import Path

import pyarrow as pa
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


def test_broadcast_then_vllm_greedy_equals_transformers_greedy(ray_cluster, tiny_model: Path) -> None:
    gen = generator_actor("test-generator", EngineSpec(str(tiny_model), dtype="float32"), "current", 0)
    before = ray.get(gen.generate.remote(PROMPTS, GREEDY))
    assert ray.get(gen.serving.remote()) == ("current", 0)

    learner = Learner(tiny_model, DPOSettings(learning_rate=5e-2, batch_size=4))
    # a few large DPO steps so the new weights produce different text than the initial ones
    pairs = pa.table({"prompt": PROMPTS[:4] * 4, "chosen": ["12", "34", "56", "78"] * 4, "rejected": ["9", "8", "7", "6"] * 4})
    learner.train(pairs)
    learner.train(pairs)
    update = learner.publish()
    assert update.version == 2

    version = ray.get(gen.load_weights.remote(ray.put(update)))
    assert version == 2 and ray.get(gen.serving.remote()) == ("current", 2)
    after = ray.get(gen.generate_tokens.remote(PROMPTS, GREEDY))
    expected = _hf_greedy_tokens(learner, PROMPTS, GREEDY.max_new_tokens)
    assert after == expected  # token for token, EOS included
    texts = ray.get(gen.generate.remote(PROMPTS, GREEDY))
    assert texts == learner.tokenizer.batch_decode(expected, skip_special_tokens=True)
    assert texts != before

    # and a frozen snapshot loads from its checkpoint on disk
    ray.get(gen.load_checkpoint.remote(str(tiny_model), "v0", 0))
    assert ray.get(gen.generate.remote(PROMPTS, GREEDY)) == before
    ray.kill(gen)
