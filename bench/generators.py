"""The elastic generator pool on a local Ray cluster, measured side by side in one run.

    python bench/generators.py                      # tiny model, 2048 games, 1/2/4 generators
    python bench/generators.py --hidden 512 --layers 8 --games 1024

1. Scaling: games per second with 1, 2 and 4 generators serving the current policy and one
   serving the snapshot, both sides of every game generated through the pools as the
   orchestrator does, judged by a cost-free exact-answer comparison in the driver, so what
   grows or shrinks between sizes is the pool's own overhead (sharding, checks, joining)
   against the engines' parallelism on this machine's cores.
2. Weight broadcast: seconds for a learner actor's weights to reach 1, 2 and 4 generator
   actors as a run syncs them (`GeneratorPool.sync_from`), through the object store (publish,
   then every engine's `reload_weights`) and over vLLM's weight-transfer engine with the gloo
   backend (the learner broadcasts; the GPU path's code with TCP for NCCL), against one
   `load_weights` of the same weights into a Generator in this process (no Ray).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray  # noqa: E402

from actors.actor import generator_actor  # noqa: E402
from actors.generator import EngineSpec, Generator, Sampling  # noqa: E402
from actors.pool import GeneratorPool  # noqa: E402
from bench.timing import best_seconds  # noqa: E402
from cluster.run import WORKER_ENV  # noqa: E402
from learner.learner import DPOSettings, Learner  # noqa: E402
from learner.tiny_model import build_tiny_model  # noqa: E402
from tasks.addition import AdditionTask  # noqa: E402

SIZES = (1, 2, 4)


def pool_of(spec: EngineSpec, size: int, tag: str) -> GeneratorPool:
    return GeneratorPool(lambda serial: generator_actor(f"bench-{tag}-{serial}", spec, "current", 0), size)


def games_per_second(spec: EngineSpec, size: int, games: int, rounds: int) -> float:
    task = AdditionTask(3)
    policy, snapshots = pool_of(spec, size, f"policy{size}"), pool_of(spec, 1, f"snap{size}")
    sampling = Sampling(1.0, 1.0, 8)
    checkpoints = {"v0": (spec.model_path, 0)}
    import numpy as np

    rng = np.random.default_rng(0)
    best = float("inf")
    for r in range(rounds + 1):  # round 0 warms the engines up
        problems = task.train(games, rng)
        prompts = [p.prompt for p in problems]
        start = time.perf_counter()
        a = policy.submit("generate", {"prompts": prompts, "seeds": list(range(games))}, sampling=sampling)
        b = snapshots.generate_as(prompts, ["v0"] * games, checkpoints, sampling, list(range(games, 2 * games)))
        answers_a, answers_b = ray.get([a.result(), b.result()])
        answers_b = [text for text, _ in answers_b]  # (text, cut off) pairs
        wins = sum((x.strip() == p.answer) > (y.strip() == p.answer) for p, x, y in zip(problems, answers_a, answers_b))
        if r:
            best = min(best, time.perf_counter() - start)
        assert 0 <= wins <= games
    policy.stop()
    snapshots.stop()
    return games / best


def broadcast_seconds(spec: EngineSpec, learner, size: int, repeats: int, transfer: str | None) -> float:
    spec = replace(spec, weight_transfer=transfer)
    pool = GeneratorPool(lambda serial: generator_actor(f"bench-sync-{transfer}-{size}-{serial}", spec, "current", 0),
                         size, transfer=transfer)
    seconds = best_seconds(lambda: pool.sync_from(learner), repeats)
    pool.stop()
    return seconds


def local_reload_seconds(spec: EngineSpec, update, repeats: int) -> float:
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    generator = Generator(spec)
    return best_seconds(lambda: generator.load_weights(update), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size (best kept)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "model", hidden_size=args.hidden, num_layers=args.layers,
                                intermediate_size=4 * args.hidden)
        spec = EngineSpec(str(path), "float32", 64, 64 * 2**20, 0)
        update = Learner(path, DPOSettings()).publish()
        params = sum(t.numel() for t in update.weights.values())
        local = local_reload_seconds(spec, update, args.repeats)  # before Ray: it runs vLLM in this process
        ray.init(address="local", num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False,
                 runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
        print(f"model: {params / 1e6:.1f}M parameters ({args.layers} layers, hidden {args.hidden}); {os.cpu_count()} CPU cores")
        rates = {n: games_per_second(spec, n, args.games, args.rounds) for n in SIZES}
        print(f"\n1. games/s, {args.games} games a round, cost-free judge (best of {args.rounds} rounds)")
        for n in SIZES:
            print(f"   {n} generator(s): {rates[n]:8.1f} games/s   ({rates[n] / rates[1]:.2f}x one generator)")
        print(f"\n2. weight broadcast of {params / 1e6:.1f}M parameters (best of {args.repeats})")
        print(f"   local reload_weights, no Ray: {local * 1e3:8.1f} ms")
        learner = ray.remote(Learner).options(num_cpus=0).remote(str(path), DPOSettings())
        for n in SIZES:
            store = broadcast_seconds(spec, learner, n, args.repeats, None)
            gloo = broadcast_seconds(spec, learner, n, args.repeats, "gloo")
            print(f"   to {n} generator actor(s): object store {store * 1e3:8.1f} ms ({store / local:5.2f}x the local reload), "
                  f"gloo transfer {gloo * 1e3:8.1f} ms ({gloo / local:5.2f}x; {gloo / store:.2f}x the object store's time)")
        ray.shutdown()


if __name__ == "__main__":
    main()
