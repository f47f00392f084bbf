"""The report's figures, one function each: the run's data in, a matplotlib figure out, or None
where the run has nothing to draw (no retention tasks, no multi-turn games, ...)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed, or opened

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from report.run_data import RunData  # noqa: E402

Drawing = Callable[[RunData], Figure | None]


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(iterations, values) of the rows that have a number under `key`."""
    pairs = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return [i for i, _ in pairs], [float(v) for _, v in pairs]


def _axes(title: str, ylabel: str, xlabel: str = "iteration") -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def _lines(data: RunData, title: str, ylabel: str, keys: dict[str, str], floor: tuple[float, str] | None = None) -> Figure | None:
    """One line per metrics key that the run recorded (label -> key)."""
    drawn = {label: _series(data.rows, key) for label, key in keys.items()}
    drawn = {label: xy for label, xy in drawn.items() if xy[0]}
    if not drawn:
        return None
    fig, ax = _axes(title, ylabel)
    for label, (x, y) in drawn.items():
        ax.plot(x, y, marker="o", markersize=3, label=label)
    if floor is not None:
        ax.axhline(floor[0], color="red", linestyle="--", linewidth=1, label=floor[1])
    ax.legend(fontsize=8)
    return fig


def held_out_metric(data: RunData) -> Figure | None:
    return _lines(data, "Held-out metric (the task's own)", "metric", {"held-out": "accuracy"})


def win_rate_vs_previous(data: RunData) -> Figure | None:
    rows = [r for r in data.rows if r.get("win_rate_vs_previous") is not None]
    if not rows:
        return None
    fig, ax = _axes("Win rate against the previous snapshot (95% Wilson interval)", "win rate")
    x, y = [r["iteration"] for r in rows], [r["win_rate_vs_previous"] for r in rows]
    low = [r["win_rate_vs_previous"] - (r.get("win_rate_vs_previous_ci") or [r["win_rate_vs_previous"]] * 2)[0] for r in rows]
    high = [(r.get("win_rate_vs_previous_ci") or [r["win_rate_vs_previous"]] * 2)[1] - r["win_rate_vs_previous"] for r in rows]
    ax.errorbar(x, y, yerr=[low, high], marker="o", markersize=3, capsize=2)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1)
    return fig


def skill_curve(data: RunData) -> Figure | None:
    """Each learning agent's versions in order, and snapshots at their versions: Bradley-Terry with intervals."""
    rated = [v for v in data.versions if v.version is not None]
    if not rated:
        return None
    fig, ax = _axes("Rating per version (Bradley-Terry, 95% bootstrap interval)", "rating", "policy version")
    for agent in sorted({v.agent for v in rated}):
        mine = sorted((v for v in rated if v.agent == agent), key=lambda v: v.version or 0)
        x = [v.version for v in mine]
        y = [v.rating.rating for v in mine]
        err = [[v.rating.rating - v.rating.low for v in mine], [v.rating.high - v.rating.rating for v in mine]]
        ax.errorbar(x, y, yerr=err, marker="o", markersize=3, capsize=2, label=agent)
    ax.legend(fontsize=8)
    return fig


def snapshot_ratings(data: RunData) -> Figure | None:
    """The league's ratings of its snapshots and agents, as the last iteration recorded them."""
    last = next((r["bt_by_policy"] for r in reversed(data.rows) if r.get("bt_by_policy")), None)
    if not last:
        return None
    names = list(last)
    fig, ax = _axes("Bradley-Terry rating per snapshot (95% interval), latest", "rating", "policy")
    mid = np.array([last[n][0] for n in names])
    ax.errorbar(range(len(names)), mid, yerr=[mid - [last[n][1] for n in names], [last[n][2] for n in names] - mid],
                fmt="o", capsize=2)
    ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    return fig


def payoff_matrix(data: RunData) -> Figure | None:
    """Row policy's score rate against the column policy, over every game the league rated."""
    if data.league is None:
        return None
    results, league = data.league.results, data.league
    names = [n for n in list(league.agents) + [s.name for s in league.snapshots_by_version()] if n in results]  # agents, then by version
    if len(names) < 2:
        return None
    rate = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            score, games = results.get(a, {}).get(b, (0.0, 0.0))
            if games:
                rate[i, j] = score / games
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(names) + 2), max(4, 0.35 * len(names) + 1.5)))
    image = ax.imshow(rate, cmap="RdBu", vmin=0, vmax=1)
    ax.set_title("Payoff matrix: row's score rate against column")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def diversity(data: RunData) -> Figure | None:
    floor = (data.min_distinct_2, "collapse floor (distinct-2)") if data.min_distinct_2 is not None else None
    return _lines(data, "Diversity of sampled answers", "score",
                  {"distinct-1": "distinct_1", "distinct-2": "distinct_2", "self-BLEU": "self_bleu"}, floor)


def retention(data: RunData) -> Figure | None:
    tasks = sorted({t for r in data.rows for t in (r.get("retention_vs_start") or {})})
    if not tasks:
        return None
    fig, ax = _axes("Retention: accuracy minus the starting policy's", "change")
    for task in tasks:
        pairs = [(r["iteration"], r["retention_vs_start"][task]) for r in data.rows if (r.get("retention_vs_start") or {}).get(task) is not None]
        ax.plot([i for i, _ in pairs], [v for _, v in pairs], marker="o", markersize=3, label=task)
    ax.axhline(0, color="grey", linestyle=":", linewidth=1)
    ax.legend(fontsize=8)
    return fig


def loss(data: RunData) -> Figure | None:
    return _lines(data, "Loss and its parts", "loss", {"loss": "loss", "DPO terms": "dpo_loss", "NLL (sft)": "nll", "policy gradient": "pg_loss"})


def throughput(data: RunData) -> Figure | None:
    return _lines(data, "Throughput", "per second", {"games/s": "games_per_s", "episodes/s": "episodes_per_s"})


def generation(data: RunData) -> Figure | None:
    """Tokens/s of the generators over each round's play phase (their own scale: hundreds where games/s are tens)."""
    return _lines(data, "Generation: tokens per second of play", "tokens/s", {"tokens/s": "tokens_per_s"})


def phase_times(data: RunData) -> Figure | None:
    """Each iteration's seconds on the driver's path, phase after phase (play with its judging
    and recording, the wait for the learner, the weight sync, the evaluation), and the learner's
    step as a line: with the asynchronous pipeline it overlaps play instead of following it.
    Runs written before rows had `phase_s`: the learner, the sync and the rest."""
    rows = [r for r in data.rows if r.get("iteration") and isinstance(r.get("seconds"), int | float)]
    if not rows:
        return None
    x = [r["iteration"] for r in rows]
    fig, ax = _axes("Time per phase of each iteration", "seconds")
    if all("phase_s" in r for r in rows):
        bottom = np.zeros(len(rows))
        for phase, label in PATH.items():
            values = np.array([r["phase_s"].get(phase, 0.0) for r in rows])
            ax.bar(x, values, bottom=bottom, label=label)
            bottom += values
        ax.plot(x, [r["phase_s"]["learning"] for r in rows], "k.-", label="learner's step (overlaps play and evaluation with max_staleness > 0)")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)  # below: the bars fill the axes
        return fig
    learn = np.array([r.get("learner_seconds") or 0.0 for r in rows])
    sync = np.array([r.get("weight_sync_s") or 0.0 for r in rows])
    rest = np.maximum(np.array([r["seconds"] for r in rows]) - learn - sync, 0.0)
    ax.bar(x, rest, label="play, judging, evaluation")
    ax.bar(x, learn, bottom=rest, label="learner")
    ax.bar(x, sync, bottom=rest + learn, label="weight sync")
    ax.legend(fontsize=8)
    return fig


# The driver's path through an iteration, one phase after another (`phase_s` of a metrics row).
PATH = {"play": "play (judging, recording within)", "waited_for_learner": "waiting for the learner", "weight_sync": "weight sync",
        "evaluation": "evaluation"}


def fixed_opponents(data: RunData) -> Figure | None:
    return _lines(data, "Multi-turn games: win rate against the fixed opponents (draws count half)", "win rate",
                  {"vs random": "win_rate_vs_random", "vs expert": "win_rate_vs_expert"})


FIGURES: dict[str, Drawing] = {
    "held_out_metric": held_out_metric,
    "win_rate_vs_previous": win_rate_vs_previous,
    "skill_curve": skill_curve,
    "snapshot_ratings": snapshot_ratings,
    "payoff_matrix": payoff_matrix,
    "diversity": diversity,
    "retention": retention,
    "loss": loss,
    "throughput": throughput,
    "generation": generation,
    "phase_times": phase_times,
    "fixed_opponents": fixed_opponents,
}
