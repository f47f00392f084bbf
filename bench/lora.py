"""LoRA against full fine-tuning on SmolLM2-135M-Instruct (the converted built-in model), on CPU:

1. the learner: the bytes its tensors hold (weights, reference, gradients, optimizer state: what
   grows with the model), the process's resident memory at its peak (with the Python and torch
   runtime, the activations and the loading), and time per DPO step on the same pairs, each
   learner in a fresh process so one's memory does not count in the other's;
2. self-play: the smollm2-arithmetic recipe's held-out accuracy after the same self-play time.

    python bench/lora.py                      # both parts
    python bench/lora.py --part learner       # only the first (about two minutes)
    python bench/lora.py --seconds 300        # self-play seconds per arm
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LORA = {"rank": 16, "alpha": 32.0}
LORA_LR = 2e-4  # adapters take a larger step than full weights (the recipe's 1e-5), as is usual for LoRA


def learner_figures(lora: bool, steps: int, queue: mp.Queue) -> None:
    """In a fresh process: build the learner, run `steps` DPO steps of 8 pairs, report."""
    import pyarrow as pa

    from learner.learner import DPOSettings, Learner
    from learner.lora import LoRAOptions
    from learner.pretrained import resolve_model

    path = resolve_model("smollm2-135m-instruct", show_progress=False)
    prompts = [f"<|im_start|>user\nWhat is {a} + {b}?<|im_end|>\n<|im_start|>assistant\n" for a, b in zip(range(10, 18), range(40, 48))]
    pairs = pa.table({"prompt": prompts, "chosen": [f"{a} + {b} = {a + b}." for a, b in zip(range(10, 18), range(40, 48))],
                      "rejected": [f"{a} + {b} = {a + b + 1}." for a, b in zip(range(10, 18), range(40, 48))]})
    settings = DPOSettings(batch_size=8, epochs=1, learning_rate=LORA_LR if lora else 1e-5, ref_refresh_every=0)
    learner = Learner(path, settings, lora=LoRAOptions(**LORA) if lora else None)
    learner.train(pairs)  # the first step allocates the optimizer's state
    start = time.perf_counter()
    for _ in range(steps):
        learner.train(pairs)
    step = (time.perf_counter() - start) / steps
    trained = sum(p.numel() for p in learner.policy.parameters() if p.requires_grad)
    queue.put({"tensors_gb": held_bytes(learner) / 2**30, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               "step_s": step, "trained_params": trained})


def held_bytes(learner) -> int:
    """Bytes of every distinct storage the learner keeps between steps: the policy's weights and
    gradients, the reference's weights (none with LoRA) and the optimizer's state."""
    import torch

    tensors = [p for p in learner.policy.parameters()] + [p.grad for p in learner.policy.parameters() if p.grad is not None]
    if learner.reference is not None:
        tensors += list(learner.reference.parameters())
    tensors += [t for state in learner.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def measure_learners(steps: int) -> dict[str, dict]:
    out = {}
    ctx = mp.get_context("spawn")
    for name, lora in (("full", False), ("lora", True)):
        queue = ctx.Queue()
        process = ctx.Process(target=learner_figures, args=(lora, steps, queue))
        process.start()
        out[name] = queue.get()
        process.join()
    return out


def measure_self_play(seconds: float, seed: int) -> dict[str, dict]:
    from cluster.config import RECIPES, load_recipe
    from cluster.run import run_self_play

    arms = {"full": {}, "lora": {"learner.lora": LORA, "dpo.learning_rate": LORA_LR}}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in arms.items():
            run_dir = Path(tmp) / name
            config = load_recipe(RECIPES / "smollm2-arithmetic.yaml", {
                "run_dir": str(run_dir), "seed": seed, "self_play.max_seconds": seconds, "self_play.iterations": 1000, **overrides})
            summary = run_self_play(config, show_progress=False)
            rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
            out[name] = {"start": rows[0]["accuracy"], "end": rows[-1]["accuracy"], "iterations": summary["iterations"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["learner", "self-play", "both"], default="both")
    parser.add_argument("--steps", type=int, default=5, help="timed DPO steps per learner")
    parser.add_argument("--seconds", type=float, default=240.0, help="self-play seconds per arm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"LoRA {LORA} against full fine-tuning, SmolLM2-135M-Instruct, CPU")
    if args.part in ("learner", "both"):
        figures = measure_learners(args.steps)
        full, lora = figures["full"], figures["lora"]
        print(f"  learner, DPO steps of 8 pairs:  {'full':>10s} {'lora':>10s} {'lora/full':>10s}")
        for key, unit in (("tensors_gb", "GB"), ("peak_rss_gb", "GB"), ("step_s", "s"), ("trained_params", "")):
            print(f"    {key + (' (' + unit + ')' if unit else ''):30s} {full[key]:10.3g} {lora[key]:10.3g} {lora[key] / full[key]:10.3f}")
    if args.part in ("self-play", "both"):
        runs = measure_self_play(args.seconds, args.seed)
        print(f"  smollm2-arithmetic, {args.seconds:g} s of self-play each (LoRA at lr {LORA_LR:g}, full at the recipe's): held-out accuracy")
        for name, r in runs.items():
            print(f"    {name:6s} iterations {r['iterations']:3d}  start {r['start']:.3f}  end {r['end']:.3f}  gain {r['end'] - r['start']:+.3f}")


if __name__ == "__main__":
    main()
