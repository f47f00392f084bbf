"""Dashboard metrics: what a run reports through `ray.util.metrics` (Ray's Prometheus export,
the Ray dashboard's Metrics view, and the Grafana board in cluster/grafana/selfplay.json).

The driver records one iteration's row at a time, every series tagged with the run's name
(`run`); the generators count their own tokens (actors/generator.py), tagged by the policy they serve.
"""
from __future__ import annotations

from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from games.base import registry

SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]


_COUNTED: dict[str, int] = {}  # per run: the last iteration whose games this process counted


class RunMetrics:
    def __init__(self, run: str) -> None:
        self.run = run
        tags = ("run",)
        self.games = Counter("selfplay_games", "games played, by self-play mode", tag_keys=("run", "mode"))
        self.elo = Gauge("selfplay_elo", "online Elo per policy", tag_keys=("run", "policy"))
        self.win_rate = Gauge("selfplay_win_rate_vs_previous", "current policy's score rate against the latest snapshot", tag_keys=tags)
        self.accuracy = Gauge("selfplay_accuracy", "greedy held-out accuracy of the current policy", tag_keys=tags)
        self.games_per_s = Gauge("selfplay_games_per_second", "head-to-head games per second of play", tag_keys=tags)
        self.judge_latency = Histogram("selfplay_judge_latency_seconds", "one judge call (a batch)", SECONDS, tag_keys=tags)
        self.queue_depth = Gauge("selfplay_queue_depth", "prompts asked of the current policy's generators in an iteration", tag_keys=tags)
        self.loss = Gauge("selfplay_learner_loss", "DPO loss of the latest update", tag_keys=tags)
        self.step = Histogram("selfplay_learner_step_seconds", "one learner update (an iteration's DPO)", SECONDS, tag_keys=tags)
        self.sync = Gauge("selfplay_weight_sync_seconds", "the latest weight broadcast to the current policy's generators", tag_keys=tags)
        self.generators = Gauge("selfplay_generators", "generators serving the current policy", tag_keys=tags)
        self.iteration = Gauge("selfplay_iteration", "the latest finished iteration", tag_keys=tags)
        self.phases = Gauge("selfplay_phase_seconds", "each phase's seconds in the latest iteration (play, judging, recording, "
                            "learning, weight_sync, evaluation) and each side's wait (waited_for_learner, learner_idle)",
                            tag_keys=("run", "phase"))
        self.staleness = Gauge("selfplay_staleness", "versions between the policy that played a round and the one trained on it",
                               tag_keys=tags)

    def record(self, row: dict[str, Any], judge_seconds: list[float]) -> None:
        """One iteration's metrics row, and the judge calls made during it."""
        run = {"run": self.run}
        if row["iteration"] > _COUNTED.get(self.run, 0):  # an iteration replayed after a restart is counted once
            _COUNTED[self.run] = row["iteration"]
            self._count_games(row)
        for policy, elo in (row.get("elo_by_policy") or {}).items():
            self.elo.set(elo, {**run, "policy": policy})
        gauges = {"win_rate_vs_previous": self.win_rate, "accuracy": self.accuracy, "games_per_s": self.games_per_s,
                  "queue_depth": self.queue_depth, "loss": self.loss, "weight_sync_s": self.sync,
                  "generators": self.generators, "iteration": self.iteration, "staleness": self.staleness}
        for key, gauge in gauges.items():
            if row.get(key) is not None:
                gauge.set(row[key], run)
        for phase, seconds in (row.get("phase_s") or {}).items():
            self.phases.set(seconds, {**run, "phase": phase})
        if row.get("learner_seconds") is not None:
            self.step.observe(row["learner_seconds"], run)
        for seconds in judge_seconds:
            self.judge_latency.observe(seconds, run)

    def _count_games(self, row: dict[str, Any]) -> None:
        run = {"run": self.run}
        for mode, game in registry().items():  # each game's count, under the field it names
            if game.counted and row.get(game.counted):
                self.games.inc(row[game.counted], {**run, "mode": mode})
        for agent in (row.get("exploiters") or {}).values():
            if agent.get("games"):
                self.games.inc(agent["games"], {**run, "mode": "exploiter"})
