"""A league of 8 snapshots on SmolLM2-135M-Instruct (the converted built-in model), on CPU:
games per second when the snapshot engine serves them as LoRA adapters on one base (one batch
per round, `learner.lora.snapshots: adapters`) against full checkpoints it reloads whenever the
opponent changes (`snapshots: merged`, and every run without LoRA).

The snapshots are the same 8 policies both ways: v0 the base, v1..v7 a LoRA learner after one
more DPO step each, saved as peft adapters and as merged checkpoints. Each round matches a
batch of prompts with opponents drawn uniformly from the 8, as the league's matchmaking does,
and the snapshot engine answers it (`Generator.generate_as`, the call the games make). Each arm
runs in a fresh process on an engine of its own.

With `--one-engine` a single engine serves both sides of every game, as a machine with one
accelerator (or `generator.snapshot_replicas: 0`) runs: each round the current policy's new
version arrives (merged weights, or `learner.lora.broadcast: adapter`: its adapter alone), it
answers its side of the games, and the league answers the other; the merged arm then reloads
every opponent's checkpoint and its own weights after them.

    python bench/league_adapters.py                 # 5 rounds of 64 games each
    python bench/league_adapters.py --rounds 10 --games 128
    python bench/league_adapters.py --one-engine
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SNAPSHOTS = 8
LORA = {"rank": 16, "alpha": 32.0}


def prompts(n: int) -> list[str]:
    return [f"<|im_start|>user\nWhat is {11 + i % 37} + {23 + i % 29}?<|im_end|>\n<|im_start|>assistant\n" for i in range(n)]


def build_league(root: Path) -> tuple[str, dict[str, tuple[str, int]], dict[str, tuple[str, int]]]:
    """The base and the league both ways: name -> (adapter, version) and name -> (checkpoint, version);
    the current policy (one step past the league) both ways too, as `current-adapter` and `current-merged`."""
    import pyarrow as pa

    from learner.learner import DPOSettings, Learner
    from learner.lora import LoRAOptions
    from learner.pretrained import resolve_model

    base = str(resolve_model("smollm2-135m-instruct", show_progress=False))
    asks = prompts(8)
    pairs = pa.table({"prompt": asks, "chosen": [f"The answer is {34 + 2 * i}." for i in range(8)],
                      "rejected": [f"I think it is {35 + 2 * i}." for i in range(8)]})
    learner = Learner(base, DPOSettings(batch_size=8, epochs=1, learning_rate=2e-3, ref_refresh_every=0), lora=LoRAOptions(**LORA))
    adapters, merged = {"v0": (base, 0)}, {"v0": (base, 0)}
    for version in range(1, SNAPSHOTS):
        learner.train(pairs)
        adapters[f"v{version}"] = (learner.save_snapshot(root / f"adapter-v{version}", base), version)
        merged[f"v{version}"] = (learner.save_checkpoint(root / f"merged-v{version}"), version)
    learner.train(pairs)
    learner.save_snapshot(root / "current-adapter", base)
    learner.save_checkpoint(root / "current-merged")
    return base, adapters, merged


def play(base: str, league: dict[str, tuple[str, int]], adapters: bool, rounds: int, games: int, queue: mp.Queue) -> None:
    """In a fresh process: a snapshot engine on `base`, one untimed round, then `rounds` timed ones."""
    import numpy as np

    from actors.generator import EngineSpec, Generator, Sampling
    from learner.lora import LoRAOptions

    spec = EngineSpec(base, "float32", max_model_len=256, kv_cache_bytes=512 * 2**20, max_loras=SNAPSHOTS if adapters else 0,
                      max_lora_rank=LoRAOptions(**LORA).served_rank)
    engine, rng = Generator(spec, "v0", 0), np.random.default_rng(0)
    sampling, names = Sampling(temperature=1.0, max_new_tokens=24), sorted(league)
    asks = prompts(games)
    tokens = 0

    def round_(seed: int) -> int:
        opponents = [str(n) for n in rng.choice(names, size=games)]
        answers = engine.generate_as(asks, opponents, league, sampling, [seed * games + i for i in range(games)])
        return sum(len(text) for text, _ in answers)

    round_(0)  # loads what each arm keeps loaded (the adapters), as a run's first round does
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        tokens += round_(r)
    seconds = time.perf_counter() - start
    queue.put({"games_per_s": rounds * games / seconds, "seconds": seconds, "answer_chars": tokens})


def current_updates(root: Path, base: str, adapters: bool, rounds: int) -> list:
    """The current policy's version each round brings, as the learner publishes it: its merged
    weights, or its adapter (the first with the base, which the engine already holds)."""
    import json

    from safetensors.torch import load_file

    from actors.weight_sync import checkpoint_tensors
    from learner.learner import WeightUpdate
    from learner.lora import AdapterFiles

    if not adapters:
        weights = dict(checkpoint_tensors(str(root / "current-merged")))
        return [WeightUpdate(r, weights) for r in range(rounds + 1)]
    path = root / "current-adapter"
    adapter = AdapterFiles(json.loads((path / "adapter_config.json").read_text()), load_file(path / "adapter_model.safetensors"))
    base_weights = dict(checkpoint_tensors(base))
    return [WeightUpdate(r, base_weights if r == 0 else {}, adapter) for r in range(rounds + 1)]


def play_one_engine(base: str, league: dict[str, tuple[str, int]], adapters: bool, rounds: int, games: int, queue: mp.Queue) -> None:
    """In a fresh process: one engine on `base` for both sides, one untimed round, then `rounds`
    timed ones, each the current policy's new version, its answers and the league's."""
    import numpy as np

    from actors.generator import EngineSpec, Generator, Sampling
    from learner.lora import LoRAOptions

    spec = EngineSpec(base, "float32", max_model_len=256, kv_cache_bytes=512 * 2**20, max_loras=SNAPSHOTS if adapters else 0,
                      max_lora_rank=LoRAOptions(**LORA).served_rank, shared=True)
    engine, rng = Generator(spec, "current", 0), np.random.default_rng(0)
    sampling, names, asks = Sampling(temperature=1.0, max_new_tokens=24), sorted(league), prompts(games)
    updates, chars, synced = current_updates(Path(league["v1"][0]).parent, base, adapters, rounds), 0, 0.0

    def round_(r: int) -> tuple[int, float]:
        start = time.perf_counter()
        engine.load_weights(updates[r])
        sync = time.perf_counter() - start
        seeds = [r * games + i for i in range(games)]
        mine = engine.generate(asks, sampling, seeds)
        opponents = [str(n) for n in rng.choice(names, size=games)]
        theirs = engine.generate_as(asks, opponents, league, sampling, [s + 10**6 for s in seeds])
        return sum(map(len, mine)) + sum(len(text) for text, _ in theirs), sync

    round_(0)
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        n, sync = round_(r)
        chars, synced = chars + n, synced + sync
    seconds = time.perf_counter() - start
    update = updates[1].adapter.weights if adapters else updates[1].weights
    queue.put({"games_per_s": rounds * games / seconds, "seconds": seconds, "answer_chars": chars, "sync_s": synced / rounds,
               "update_mb": sum(t.numel() * t.element_size() for t in update.values()) / 2**20})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--games", type=int, default=64, help="games per round")
    parser.add_argument("--one-engine", action="store_true", help="one engine for the current policy and the league (see above)")
    args = parser.parse_args()
    arm = play_one_engine if args.one_engine else play
    ctx = mp.get_context("spawn")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        base, adapters, merged = build_league(Path(tmp))
        for name, league, as_adapters in (("checkpoint reloads", merged, False), ("adapters", adapters, True)):
            queue = ctx.Queue()
            process = ctx.Process(target=arm, args=(base, league, as_adapters, args.rounds, args.games, queue))
            process.start()
            out[name] = queue.get()
            process.join()
    print(f"A league of {SNAPSHOTS} snapshots, SmolLM2-135M-Instruct, CPU: {args.rounds} rounds of {args.games} games, "
          f"opponents drawn uniformly, up to 24 new tokens an answer" + (", one engine for both sides" if args.one_engine else ""))
    for name, r in out.items():
        sync = f", the new version ({r['update_mb']:.1f} MB) in {r['sync_s']:.2f} s a round" if "sync_s" in r else ""
        print(f"  {name:20s} {r['games_per_s']:8.2f} games/s  ({r['seconds']:.1f} s, {r['answer_chars']} answer characters{sync})")
    print(f"  adapters / reloads   {out['adapters']['games_per_s'] / out['checkpoint reloads']['games_per_s']:8.2f}x")


if __name__ == "__main__":
    main()
