"""The GPU path, measured side by side in one run (GPU machines only; it says so and stops on others).

    python bench/gpu.py                 # a 0.5B-size model built from config (Qwen2.5-0.5B's shape)
    python bench/gpu.py --prompts 512 --tokens 64

1. Weight sync of the 0.5B model from a learner actor to one generator, as a run syncs it
   (`GeneratorPool.sync_from`): through the object store (publish, then the engine's
   `reload_weights`), and, with two GPUs or more, over vLLM's weight-transfer engine with the
   nccl backend (NCCL cannot put the learner and the generator on one GPU). On one GPU the
   learner and the generator share it.
2. Generation tokens/s: our generator actor against plain vLLM offline (`LLM.generate` in a Ray
   task of its own), the same model, prompts, sampling and seeds.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray  # noqa: E402
import torch  # noqa: E402

from actors.actor import generator_actor  # noqa: E402
from actors.generator import EngineSpec, Sampling  # noqa: E402
from actors.pool import GeneratorPool  # noqa: E402
from bench.timing import best_seconds  # noqa: E402
from cluster.run import WORKER_ENV  # noqa: E402
from learner.actor import learner_actor  # noqa: E402
from learner.learner import DPOSettings  # noqa: E402
from learner.tiny_model import HALF_BILLION, build_tiny_model  # noqa: E402

KV_CACHE = 4 * 2**30
SHARE = 0.4  # vLLM's share of a GPU's memory: one phase's engine may still be letting go of its memory as the next starts


def parameter_count(path: Path) -> int:
    """From the checkpoint's tensor shapes, without loading it (the GPUs stay free for the actors)."""
    import math

    from safetensors import safe_open

    total = 0
    for file in path.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return total


def sync_seconds(path: Path, transfer: str | None, gpus: float, repeats: int) -> float:
    spec = EngineSpec(str(path), "bfloat16", 512, KV_CACHE, 0, transfer, gpu_memory_utilization=SHARE * min(gpus, 1.0))
    pool = GeneratorPool(lambda n: generator_actor(f"bench-gpu-{transfer}-{n}", spec, "current", 0, num_gpus=gpus),
                         1, transfer=transfer)
    learner = learner_actor(f"bench-gpu-learner-{transfer}", path, DPOSettings(), 0, num_gpus=gpus)
    seconds = best_seconds(lambda: pool.sync_from(learner), repeats)
    pool.stop()
    ray.kill(learner)
    return seconds


@ray.remote(num_gpus=1)
def plain_vllm(path: str, prompts: list[str], tokens: int) -> tuple[float, int]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=path, dtype="bfloat16", max_model_len=512, kv_cache_memory_bytes=KV_CACHE, enforce_eager=True, seed=0,
              gpu_memory_utilization=SHARE)
    params = [SamplingParams(temperature=1.0, max_tokens=tokens, seed=i) for i in range(len(prompts))]
    llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    return seconds, sum(len(o.outputs[0].token_ids) for o in outs)


def actor_tokens(path: Path, prompts: list[str], tokens: int) -> tuple[float, int]:
    generator = generator_actor("bench-gpu-tokens", EngineSpec(str(path), "bfloat16", 512, KV_CACHE, 0, gpu_memory_utilization=SHARE),
                                "current", 0, num_gpus=1)
    sampling = Sampling(1.0, 1.0, tokens)
    ray.get(generator.generate_tokens.remote(prompts[:8], sampling, list(range(8))))  # warm-up
    start = time.perf_counter()
    out = ray.get(generator.generate_tokens.remote(prompts, sampling, list(range(len(prompts)))))
    seconds = time.perf_counter() - start
    ray.kill(generator)
    return seconds, sum(len(t) for t in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus:
        sys.exit("bench/gpu.py measures the GPU path and found no CUDA GPU; bench/generators.py measures the CPU path")
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "model", **HALF_BILLION)
        ray.init(address="local", include_dashboard=False, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
        params = parameter_count(path)
        print(f"model: {params / 1e6:.0f}M parameters (Qwen2.5-0.5B's shape, built from config); {gpus} GPU(s): "
              f"{torch.cuda.get_device_name(0)}")
        print(f"\n1. weight sync, learner actor -> one generator (best of {args.repeats})")
        share = 1.0 if gpus >= 2 else 0.45
        store = sync_seconds(path, None, share, args.repeats)
        print(f"   object store:          {store:8.3f} s" + ("  (learner and generator share the GPU)" if gpus < 2 else ""))
        if gpus >= 2:
            nccl = sync_seconds(path, "nccl", 1.0, args.repeats)
            print(f"   nccl transfer engine:  {nccl:8.3f} s   ({nccl / store:.2f}x the object store's time)")
        else:
            print("   nccl transfer engine:  needs two GPUs (NCCL cannot put two ranks on one)")
        prompts = [f"{a:03d}+{b:03d}=" for a in range(32) for b in range(32)][: args.prompts]
        seconds, n = ray.get(plain_vllm.remote(str(path), prompts, args.tokens))
        plain = n / seconds
        seconds, m = actor_tokens(path, prompts, args.tokens)
        ours = m / seconds
        print(f"\n2. generation, {len(prompts)} prompts, up to {args.tokens} new tokens, temperature 1, per-prompt seeds")
        print(f"   plain vLLM offline:    {plain:10.0f} tokens/s ({n} tokens)")
        print(f"   generator actor:       {ours:10.0f} tokens/s ({m} tokens; {ours / plain:.2f}x plain vLLM)")
        ray.shutdown()


if __name__ == "__main__":
    main()
