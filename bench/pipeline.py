"""The asynchronous pipeline (`self_play.max_staleness`) against the synchronous loop, side by side.

Simulated costs (`--simulated`, the default): generators that sleep `play` seconds a round (and
`eval` seconds to evaluate each new version) and a learner that sleeps `learn` seconds a round
(in a thread of its own, as the learner actor is a process of its own), judges that cost
nothing, run through the orchestrator's own schedule (cluster/overlap.py) at k = 0, 1, 2. For
each mix it prints the wall time, the bound max(play + eval, learn) per round computed from the
synchronous run's own phase times, and the ratios.

Real runs (`--recipe PATH`, repeatable; `--seeds`): the same iterations of a recipe at each k, its
wall time of self-play, the bound from the k = 0 run's metrics rows, and the final held-out metric.

    python bench/pipeline.py                       # simulated mixes, about 40 s
    python bench/pipeline.py --recipe default --iterations 20 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster.overlap import Round, run_schedule  # noqa: E402

# (play, learn, evaluation) seconds a round; the last mix evaluates each version as long as it plays
MIXES = {"generation-heavy": (0.30, 0.10, 0.0), "learning-heavy": (0.10, 0.30, 0.0), "equal": (0.20, 0.20, 0.0),
         "with evaluation": (0.10, 0.20, 0.10)}


@dataclass
class SimulatedPhases:
    """`Phases` whose costs are sleeps: play and evaluation on the driver (the generators' work),
    learning on a worker thread, a weight sync of `sync` seconds. It keeps what a test checks: the
    versions each round was played and trained at, and every phase's time as the orchestrator's
    rows give them."""

    play_s: float
    learn_s: float
    sync_s: float = 0.0
    eval_s: float = 0.0
    version: int = 0
    learner: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    trained: list[tuple[int, int, int]] = field(default_factory=list)  # (round, played by, learner version then)
    stop_after: int | None = None  # the round after whose broadcast the run stops
    last: int = 0  # the round last broadcast

    def play(self, iteration: int) -> Round:
        start = time.perf_counter()
        time.sleep(self.play_s)
        return Round(iteration, self.version, {"games": 1}, [f"pairs-{iteration}"], {"play": time.perf_counter() - start})

    def train(self, round_: Round) -> Future | None:
        self.trained.append((round_.iteration, round_.version, self.version))
        return self.learner.submit(self._learn) if round_.pairs else None  # a dropped round: nothing to learn

    def _learn(self) -> dict[str, float]:
        start = time.perf_counter()
        time.sleep(self.learn_s)
        return {"seconds": time.perf_counter() - start, "pairs": 1.0}

    def learner_version(self) -> int:
        return self.version

    def finish(self, round_: Round, training: Future | None, began: float, played: Round | None) -> dict[str, Any]:
        waited = time.perf_counter()
        stats = training.result() if training is not None else {"seconds": 0.0, "pairs": 0.0}
        waited = time.perf_counter() - waited
        time.sleep(self.sync_s)
        self.version += 1 if stats["pairs"] else 0
        self.last = round_.iteration
        return {"iteration": round_.iteration, "version": self.version, "played_by": round_.version, "pairs": stats["pairs"],
                "phase_s": {"play": played.seconds["play"] if played else 0.0, "learning": stats["seconds"],
                            "weight_sync": self.sync_s, "waited_for_learner": waited}}

    def evaluation(self, row: dict[str, Any], began: float, learner_busy_from: float | None) -> dict[str, Any]:
        start = time.perf_counter()
        time.sleep(self.eval_s)
        row["phase_s"]["evaluation"] = time.perf_counter() - start
        row["learner_busy_from"] = None if learner_busy_from is None else learner_busy_from - began
        row["seconds"] = time.perf_counter() - began
        return row

    def stopping(self) -> bool:
        return self.stop_after is not None and self.last >= self.stop_after


def simulate(play_s: float, learn_s: float, iterations: int, k: int, sync_s: float = 0.0, eval_s: float = 0.0) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of `iterations` rounds at staleness `k`, and the rows."""
    phases = SimulatedPhases(play_s, learn_s, sync_s, eval_s)
    start = time.perf_counter()
    rows = [step.row for step in run_schedule(phases, range(1, iterations + 1), k)]
    phases.learner.shutdown()
    return time.perf_counter() - start, rows


def bound(rows: list[dict[str, Any]]) -> float:
    """The pipeline's floor from a synchronous run's own phase times: per round, the generators'
    play and evaluation against the learner's step, whichever is longer, plus the weight sync,
    the one phase both wait for."""
    total = 0.0
    for row in rows:
        p = row["phase_s"]
        total += max(p["play"] + p.get("evaluation", 0.0), p["learning"]) + p.get("weight_sync", 0.0)
    return total


def run_simulated(iterations: int) -> None:
    print(f"simulated costs, {iterations} rounds, judges free (seconds of wall time; ratio = k=0 / k)")
    print(f"{'mix':18s} {'play':>5s} {'learn':>5s} {'eval':>5s} {'k=0':>7s} {'k=1':>7s} {'k=2':>7s} {'bound':>7s} {'k=1/bound':>9s} "
          f"{'speed-up k=1':>12s}")
    for name, (play_s, learn_s, eval_s) in MIXES.items():
        walls, rows0 = {}, []
        for k in (0, 1, 2):
            walls[k], rows = simulate(play_s, learn_s, iterations, k, eval_s=eval_s)
            rows0 = rows if k == 0 else rows0
        floor = bound(rows0)
        print(f"{name:18s} {play_s:5.2f} {learn_s:5.2f} {eval_s:5.2f} {walls[0]:7.2f} {walls[1]:7.2f} {walls[2]:7.2f} {floor:7.2f} "
              f"{walls[1] / floor:9.3f} {walls[0] / walls[1]:11.2f}x")


def run_recipe(recipe: str, iterations: int, seeds: list[int], root: Path) -> None:
    """Each k on each seed: wall seconds of self-play, the bound from k = 0's rows, the final metric."""
    from cluster.config import load_recipe
    from cluster.run import run_self_play

    print(f"recipe {recipe}, {iterations} iterations, seeds {seeds}")
    results: dict[int, list[tuple[float, float, float]]] = {0: [], 1: [], 2: []}
    for seed in seeds:
        for k in (0, 1, 2):
            run_dir = root / f"{Path(recipe).stem}-k{k}-s{seed}"
            overrides = {"seed": seed, "run_dir": str(run_dir), "self_play.iterations": iterations, "self_play.max_staleness": k,
                         "self_play.max_seconds": None}
            config = load_recipe(None if recipe == "default" else Path(recipe), overrides)
            summary = run_self_play(config, show_progress=False)
            rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
            wall = summary["seconds"]  # the whole loop: with k > 0 the first k plays have no row of their own
            results[k].append((wall, bound(rows), summary["final_accuracy"]))
            print(f"  seed {seed} k={k}: {wall:7.1f} s of self-play, final metric {summary['final_accuracy']:.3f}", flush=True)
    floor = statistics.mean(b for _, b, _ in results[0])
    base = statistics.mean(w for w, _, _ in results[0])
    for k, runs in results.items():
        wall = statistics.mean(w for w, _, _ in runs)
        metric = [m for _, _, m in runs]
        spread = f" ± {statistics.stdev(metric):.3f}" if len(metric) > 1 else ""
        print(f"k={k}: {wall:7.1f} s (k=0 / k = {base / wall:.2f}x, k / bound {wall / floor:.2f}), "
              f"final metric {statistics.mean(metric):.3f}{spread}")
    print(f"bound max(play + evaluation, learn) + weight sync per iteration, from k=0's rows: {floor:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", default=[], help="'default' or a recipe file; repeatable")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--root", type=Path, default=Path("runs/bench-pipeline"))
    args = parser.parse_args()
    if not args.recipe:
        run_simulated(args.iterations)
    for recipe in args.recipe:
        run_recipe(recipe, args.iterations, args.seeds, args.root)


if __name__ == "__main__":
    main()
