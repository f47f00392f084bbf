"""The learner's GPU path and the colocated weight hand-off, on what a bare GPU machine has
(torch, transformers, peft; no Ray, no vLLM). `bench/gpu_check.sh` runs it; on CPU it runs the
same code on a small model so the test suite can hold it to working (`--device cpu --small`).

1. The learner (`learner.learner.Learner`, the class the learner actor hosts) on a 0.5B-size
   model built from config (Qwen2.5-0.5B's shape as a Llama): one DPO step on 8 pairs, timed and
   its peak memory read, in bf16 autocast (fp32 master weights and AdamW state), full
   fine-tuning and LoRA (rank 16, every linear layer), each with and without gradient
   checkpointing; and training tokens per second. Each arm builds a fresh learner.
2. The colocated hand-off: the whole model's weights (bf16) from one process to another on the
   same device, as vLLM's `ipc` weight-transfer engine moves them: the sender shares its tensors
   (CUDA IPC handles, through torch.multiprocessing), the receiver opens them and copies each into
   its own weights. Timed against the same bytes copied device to device inside one process,
   the bound the hand-off cannot beat.

    python bench/gpu_check.py                       # on a GPU: the 0.5B model
    python bench/gpu_check.py --device cpu --small  # the same code on a small model, on CPU
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402
import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from learner.tiny_model import HALF_BILLION, build_tiny_model  # noqa: E402

SMALL = dict(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256, max_position_embeddings=512)
PROMPT_CHARS, ANSWER_CHARS = 192, 56  # the character-level tokenizer: a character a token


def pairs(n: int) -> pa.Table:
    """`n` DPO pairs of random characters, the same every call."""
    rng, letters = random.Random(0), "abcdefghijklmnopqrstuvwxyz0123456789 +="
    text = lambda n: "".join(rng.choice(letters) for _ in range(n))  # noqa: E731
    return pa.table({"prompt": [text(PROMPT_CHARS) for _ in range(n)], "chosen": [text(ANSWER_CHARS) for _ in range(n)],
                     "rejected": [text(ANSWER_CHARS) for _ in range(n)]})


def learner_arm(path: Path, device: str, lora: bool, checkpointing: bool, steps: int, n_pairs: int) -> dict[str, float]:
    """One fresh learner: `steps` timed DPO steps after a first one (which allocates AdamW's state)."""
    from learner.learner import DPOSettings, Learner
    from learner.lora import LoRAOptions

    settings = DPOSettings(batch_size=n_pairs, epochs=1, learning_rate=1e-5, gradient_checkpointing=checkpointing,
                           precision="bf16" if device == "cuda" else "fp32")
    learner = Learner(path, settings, device=device, lora=LoRAOptions(rank=16, alpha=32.0) if lora else None)
    table = pairs(n_pairs)
    learner.train(table)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        learner.train(table)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    tokens = 2 * n_pairs * (1 + PROMPT_CHARS + ANSWER_CHARS + 1)  # BOS, prompt, answer, EOS; chosen and rejected
    del learner
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"step_s": seconds, "peak_gb": peak, "tokens_per_s": tokens / seconds}


def _receive(inbox: mp.Queue, outbox: mp.Queue, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], device: str) -> None:
    """The receiving process: weights of its own, then each handed-off set opened and copied in."""
    mine = {name: torch.empty(shape, dtype=dtype, device=device) for name, (shape, dtype) in shapes.items()}
    outbox.put("ready")
    while (shared := inbox.get()) is not None:
        for name, tensor in shared.items():
            mine[name].copy_(tensor)
        if device == "cuda":
            torch.cuda.synchronize()
        del shared
        outbox.put(float(sum(t.float().sum().item() for t in list(mine.values())[:2])))


def hand_off(path: Path, device: str, repeats: int) -> dict[str, float]:
    """Best seconds of a whole hand-off to another process, and of the in-process copy of the same bytes."""
    from transformers import AutoModelForCausalLM

    weights = {k: v.detach().contiguous() for k, v in AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(device).state_dict().items()}
    weights = {k: v for k, v in weights.items() if k != "lm_head.weight" or v.data_ptr() != weights["model.embed_tokens.weight"].data_ptr()}
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    receiver = ctx.Process(target=_receive, args=(inbox, outbox, {k: (tuple(v.shape), v.dtype) for k, v in weights.items()}, device))
    receiver.start()
    assert outbox.get(timeout=300) == "ready"
    expected = float(sum(t.float().sum().item() for t in list(weights.values())[:2]))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        inbox.put(weights)
        got = outbox.get(timeout=300)
        best = min(best, time.perf_counter() - start)
        assert abs(got - expected) <= 1e-3 * max(1.0, abs(expected)), (got, expected)  # the receiver holds the sender's weights
    inbox.put(None)
    receiver.join(timeout=60)
    copies = {k: torch.empty_like(v) for k, v in weights.items()}
    bound = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for k, v in weights.items():
            copies[k].copy_(v)
        if device == "cuda":
            torch.cuda.synchronize()
        bound = min(bound, time.perf_counter() - start)
    return {"hand_off_s": best, "copy_s": bound, "gb": sum(v.numel() * v.element_size() for v in weights.values()) / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--small", action="store_true", help="a small model instead of the 0.5B one (the CPU test)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8, help="pairs in a DPO step (8 is launch-bound on a GPU; 64 shows its throughput)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu_check.py: no CUDA device here; `--device cpu --small` runs the same code on CPU")
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "model", **(SMALL if args.small else HALF_BILLION))
        size = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(path).parameters())
        print(f"model: {size / 1e6:.0f}M parameters ({'small' if args.small else 'Qwen2.5-0.5B shape'}, built from config); "
              f"{where}; torch {torch.__version__}, transformers {__import__('transformers').__version__}")
        print(f"\n1. learner, one DPO step of {args.pairs} pairs ({PROMPT_CHARS}+{ANSWER_CHARS} tokens), mean of {args.steps}")
        arms = {(lora, gc_): learner_arm(path, args.device, lora, gc_, args.steps, args.pairs) for lora in (False, True) for gc_ in (False, True)}
        for (lora, gc_), r in arms.items():
            peak = f"peak {r['peak_gb']:6.2f} GB" if args.device == "cuda" else "peak  (CUDA only)"
            print(f"   {'lora' if lora else 'full':4s} {'checkpointing' if gc_ else 'no checkpointing':16s} step {r['step_s']:7.3f} s   "
                  f"{peak}   {r['tokens_per_s']:9.0f} tokens/s")
        for gc_ in (False, True) if args.device == "cuda" else ():
            ratio = arms[(True, gc_)]["peak_gb"] / arms[(False, gc_)]["peak_gb"]
            print(f"   lora / full peak memory, {'with' if gc_ else 'without'} checkpointing: {ratio:.2f}")
        r = hand_off(path, args.device, args.repeats)
        print(f"\n2. hand-off of the whole model ({r['gb']:.2f} GB bf16) to another process, best of {args.repeats}")
        print(f"   shared and copied in:   {r['hand_off_s']:8.4f} s")
        print(f"   in-process copy bound:  {r['copy_s']:8.4f} s   (hand-off / bound {r['hand_off_s'] / r['copy_s']:.1f}x)")


if __name__ == "__main__":
    main()
