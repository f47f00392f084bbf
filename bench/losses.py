"""DPO's loss family side by side: held-out accuracy after the same self-play wall time for
sigmoid+sft (the default), ipo, sppo_hard (SPPO's square loss) and apo_zero.

    python bench/losses.py                                     # the default demo, 180 s each
    python bench/losses.py --recipe smollm2-arithmetic.yaml --seconds 240

Every loss starts from the same warm-up (same recipe, same seed) and self-plays for `--seconds`;
the figure is the task's held-out metric at the start, at the end and the best over the
iterations. The terms other than sigmoid+sft run alone (`nll_weight: 0`), as the papers define them.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster.config import RECIPES, load_recipe  # noqa: E402
from cluster.run import run_self_play  # noqa: E402

LOSSES: dict[str, dict] = {
    "sigmoid+sft": {"dpo.loss_type": ["sigmoid"], "dpo.nll_weight": 1.0},
    "ipo": {"dpo.loss_type": ["ipo"], "dpo.nll_weight": 0.0},
    "sppo_hard": {"dpo.loss_type": ["sppo_hard"], "dpo.nll_weight": 0.0},
    "apo_zero": {"dpo.loss_type": ["apo_zero"], "dpo.nll_weight": 0.0},
}


def measure(recipe: str, loss: str, seconds: float, seed: int, root: Path) -> dict:
    run_dir = root / loss
    overrides = {"run_dir": str(run_dir), "seed": seed, "self_play.max_seconds": seconds, "self_play.iterations": 1000, **LOSSES[loss]}
    summary = run_self_play(load_recipe(RECIPES / recipe, overrides), show_progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"start": rows[0]["accuracy"], "end": rows[-1]["accuracy"], "best": max(r["accuracy"] for r in rows[1:]),
            "iterations": summary["iterations"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="default.yaml", help="a recipe in cluster/recipes/")
    parser.add_argument("--seconds", type=float, default=180.0, help="self-play seconds per loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--losses", nargs="*", default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {loss: measure(args.recipe, loss, args.seconds, args.seed, Path(tmp)) for loss in args.losses}
    print(f"{args.recipe}, {args.seconds:g} s of self-play each, seed {args.seed}: held-out accuracy")
    print(f"  {'loss':12s} {'iterations':>10s} {'start':>7s} {'end':>7s} {'best':>7s} {'end - start':>12s}")
    for loss, r in results.items():
        print(f"  {loss:12s} {r['iterations']:10d} {r['start']:7.3f} {r['end']:7.3f} {r['best']:7.3f} {r['end'] - r['start']:+12.3f}")


if __name__ == "__main__":
    main()
