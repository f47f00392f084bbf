"""The current policy to its generators with LoRA, on SmolLM2-135M-Instruct (the converted
built-in model) on CPU: merged weights every step (`learner.lora.broadcast: merged`) against the
adapter alone (`broadcast: adapter`), the way a run sends them: a learner actor publishes, a
generator actor loads the update through Ray's object store, then answers a round's prompts.

Each round the learner takes one DPO step on the same pairs, then the sync is timed (publish,
object store, load) and so is the generation that follows (up to 24 new tokens a prompt at
temperature 1, seeded). The first round is untimed (it carries the base with the adapter). Both
arms train the same adapters, so with the same seeds they must write the same answers: the
bench says whether they did.

    python bench/broadcast.py                   # 5 rounds of 64 prompts
    python bench/broadcast.py --rounds 10 --prompts 128
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray  # noqa: E402

from bench.league_adapters import LORA, prompts  # noqa: E402
from cluster.run import WORKER_ENV  # noqa: E402


def arm(base: str, broadcast: str, rounds: int, n: int) -> dict[str, Any]:
    """One learner actor and one generator actor, `rounds` timed rounds after an untimed one."""
    import pyarrow as pa

    from actors.actor import generator_actor
    from actors.generator import EngineSpec, Sampling
    from learner.learner import DPOSettings, Learner
    from learner.lora import LoRAOptions

    lora = LoRAOptions(**LORA, broadcast=broadcast)
    asks = prompts(n)
    pairs = pa.table({"prompt": asks[:8], "chosen": [f"The answer is {34 + 2 * i}." for i in range(8)],
                      "rejected": [f"I think it is {35 + 2 * i}." for i in range(8)]})
    settings = DPOSettings(batch_size=8, epochs=1, learning_rate=2e-3, ref_refresh_every=0)
    learner = ray.remote(Learner).options(num_cpus=0).remote(base, settings, 0, "cpu", lora)
    spec = EngineSpec(base, "float32", max_model_len=256, kv_cache_bytes=512 * 2**20, max_loras=1 if broadcast == "adapter" else 0,
                      max_lora_rank=lora.served_rank)
    generator = generator_actor(f"bench-broadcast-{broadcast}", spec, "current", 0)
    sampling = Sampling(temperature=1.0, max_new_tokens=24)
    out: dict[str, Any] = {"sync_s": 0.0, "generate_s": 0.0, "tokens": 0, "answers": []}
    for r in range(rounds + 1):
        ray.get(learner.train.remote(pairs))
        start = time.perf_counter()
        update = learner.publish.remote()
        ray.get(generator.load_weights.remote(update))
        synced = time.perf_counter()
        answers = ray.get(generator.generate_tokens.remote(asks, sampling, [r * n + i for i in range(n)]))
        if r:
            out["sync_s"] += (synced - start) / rounds
            out["generate_s"] += (time.perf_counter() - synced) / rounds
            out["tokens"] += sum(map(len, answers))
            out["answers"].append(answers)
            sent = ray.get(update)
            tensors = list(sent.weights.values()) + (list(sent.adapter.weights.values()) if sent.adapter else [])
            out["sent_mb"] = sum(t.numel() * t.element_size() for t in tensors) / 2**20
    out["tokens_per_s"] = out["tokens"] / (out["generate_s"] * rounds)
    ray.kill(generator)
    ray.kill(learner)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=64)
    args = parser.parse_args()
    from learner.pretrained import resolve_model

    base = str(resolve_model("smollm2-135m-instruct", show_progress=False))
    ray.init(address="local", include_dashboard=False, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    arms = {name: arm(base, name, args.rounds, args.prompts) for name in ("merged", "adapter")}
    print(f"The current policy to one generator, SmolLM2-135M-Instruct, LoRA rank {LORA['rank']} on every linear layer, CPU: "
          f"{args.rounds} rounds, {args.prompts} prompts each, up to 24 new tokens")
    for name, r in arms.items():
        step = r["sync_s"] + r["generate_s"]
        print(f"  broadcast: {name:8s} sync {r['sync_s']:6.3f} s ({r['sent_mb']:6.1f} MB)  generation {r['generate_s']:6.2f} s "
              f"({r['tokens_per_s']:6.0f} tokens/s)  sync + generation {step:6.2f} s")
    merged, adapter = arms["merged"], arms["adapter"]
    print(f"  adapter / merged: sync {adapter['sync_s'] / merged['sync_s']:.2f}x, tokens/s {adapter['tokens_per_s'] / merged['tokens_per_s']:.2f}x, "
          f"sync + generation {(adapter['sync_s'] + adapter['generate_s']) / (merged['sync_s'] + merged['generate_s']):.2f}x")
    print(f"  same answers both ways: {'yes' if merged['answers'] == adapter['answers'] else 'no'}")


if __name__ == "__main__":
    main()
