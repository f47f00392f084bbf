"""Ratings per policy version: every version of a learning agent that played is its own player.

The league rates the live policy under one name, `current`, across every version it has been,
so its rating averages over them. The records keep the version of each side of every game and
episode, so a fit can tell them apart: here a learning agent at version N plays as
`current@v17` (`main_exploiter@v4`), and as its snapshot's name (`v17`) where that version was
frozen, since the two are the same weights and their games anchor each other. Snapshots keep
their names. Old runs' records carry the versions too, so they report the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from envs.base import outcome
from judge.verdict import SCORE_OF_WINNER
from league.episodes import EPISODE_SCHEMA
from league.league import League, snapshot_name
from league.ratings import Rating, bradley_terry_with_intervals
from league.records import GAME_SCHEMA, ROUND_ROBIN, read_tables

Tally = dict[str, dict[str, list[float]]]


@dataclass(frozen=True)
class VersionRating:
    agent: str  # the learning agent it is a version of, or "" for a player that is no agent's version
    version: int | None
    player: str  # its name in the fit: a snapshot's name, or `agent@vN`
    games: int
    rating: Rating


def player_name(league: League, policy: str, version: int) -> str:
    """A side of a record as a player of the per-version fit."""
    if policy not in league.agents:
        return policy
    frozen = snapshot_name(policy, version)
    return frozen if any(s.name == frozen for s in league.population + league.retired) else f"{policy}@v{version}"


def versioned_results(league: League, games: pa.Table, episodes: pa.Table) -> Tally:
    """Score and game counts between versioned players, from head-to-head games and episodes."""
    tally: Tally = {}
    for g in games.select(["policy_a", "version_a", "policy_b", "version_b", "winner"]).to_pylist():
        _add(tally, player_name(league, g["policy_a"], g["version_a"]), player_name(league, g["policy_b"], g["version_b"]),
             SCORE_OF_WINNER[g["winner"]])
    for e in episodes.select(["player_0", "version_0", "player_1", "version_1", "reward_0", "reward_1"]).to_pylist():
        _add(tally, player_name(league, e["player_0"], e["version_0"]), player_name(league, e["player_1"], e["version_1"]),
             outcome((e["reward_0"], e["reward_1"]), 0))
    return tally


def _add(tally: Tally, a: str, b: str, score_a: float) -> None:
    if a == b:  # a version against itself says nothing of its strength
        return
    for x, y, s in ((a, b, score_a), (b, a, 1.0 - score_a)):
        cell = tally.setdefault(x, {}).setdefault(y, [0.0, 0.0])
        cell[0] += s
        cell[1] += 1


def version_ratings(league: League, run_dir: Path, rng: np.random.Generator, samples: int = 200) -> list[VersionRating]:
    """Every versioned player's Bradley-Terry rating with its 95% interval, by agent and version
    (snapshots of an agent under it, at their versions)."""
    episodes = read_tables(run_dir / "episodes", EPISODE_SCHEMA) if (run_dir / "episodes").is_dir() else EPISODE_SCHEMA.empty_table()
    games = pa.concat_tables([read_tables(run_dir / folder, GAME_SCHEMA) if (run_dir / folder).is_dir() else GAME_SCHEMA.empty_table()
                              for folder in ("games", ROUND_ROBIN)])  # self-play games and the evaluation round-robin's
    tally = versioned_results(league, games, episodes)
    rated = bradley_terry_with_intervals(tally, rng, samples=samples)
    snapshots = {s.name: s for s in league.population + league.retired}
    rows = []
    for player, rating in rated.items():
        if player in snapshots:
            agent, version = snapshots[player].player, snapshots[player].version
        elif "@v" in player:
            agent, version = player.rsplit("@v", 1)[0], int(player.rsplit("@v", 1)[1])
        else:
            agent, version = "", None
        rows.append(VersionRating(agent, version, player, int(sum(n for _, n in tally[player].values())), rating))
    return sorted(rows, key=lambda r: (r.agent, -1 if r.version is None else r.version))


def metric_agreement(rows: list[VersionRating], metrics: list[dict], agent: str = "current") -> tuple[float, int] | None:
    """How far `agent`'s per-version ratings agree with the task's held-out metric of each version
    (metrics.jsonl rows: `accuracy` measured on `version`): Spearman's rank correlation and the
    number of versions, or None with fewer than three."""
    versions = [(r.get("version", 0 if r.get("iteration") == 0 else None), r.get("accuracy")) for r in metrics]  # row 0: the start, v0
    accuracy = {v: a for v, a in versions if isinstance(v, int) and a is not None}
    both = [(r.rating.rating, accuracy[r.version]) for r in rows if r.agent == agent and r.version in accuracy]
    if len(both) < 3:
        return None
    ratings, metric = (_ranks(np.array(column, dtype=float)) for column in zip(*both))
    if ratings.std() == 0 or metric.std() == 0:
        return None
    return float(np.corrcoef(ratings, metric)[0, 1]), len(both)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (as Spearman's correlation takes them)."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    for value in np.unique(x):
        ranks[x == value] = ranks[x == value].mean()
    return ranks


def render_versions(rows: list[VersionRating]) -> str:
    """The skill curve as text: each agent's versions in order, with games and rating."""
    width = max([10] + [len(r.player) for r in rows])
    lines = [f"{'agent':<16} {'version':>7} {'player':<{width}} {'games':>7} {'bradley-terry (95%)':>26}"]
    for r in rows:
        version = "-" if r.version is None else str(r.version)
        bt = f"{r.rating.rating:.1f} [{r.rating.low:.1f}, {r.rating.high:.1f}]"
        lines.append(f"{r.agent or '-':<16} {version:>7} {r.player:<{width}} {r.games:>7} {bt:>26}")
    return "\n".join(lines)
