"""The evaluation round-robin (`eval.round_robin`): every two of the league's snapshots and the
current policy play a few games on held-out prompts, every N iterations.

In self-play the current policy meets snapshots, but snapshots never meet each other: their
ratings sit only as far apart as the current policy's games with each, played at different
times, can place them, and in the default demo v0, v7 and v13 rated within each other's
intervals. These games link every pair directly and anchor the fit. They are kept out of
training (no pairs), written to `round_robin/round-N.parquet`, and rated by the league
(Elo, payoff, Bradley-Terry; `selfplay league --by-version` reads them too).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from judge.verdict import truncation_loses
from league.records import ROUND_ROBIN, games_table

if TYPE_CHECKING:
    from cluster.agents import Agent
    from games.base import PlayContext

Player = tuple[str, int]  # name, version


def schedule(players: list[Player], games: int) -> list[tuple[Player, Player]]:
    """Every two players, `games` times each, taking turns as side a."""
    return [(a, b) if k % 2 == 0 else (b, a) for i, a in enumerate(players) for b in players[i + 1 :] for k in range(games)]


def play_round_robin(ctx: PlayContext, agent: Agent, round_: int, games: int) -> int:
    """The games of one round-robin, judged, written and rated; returns how many were played."""
    import ray

    from games.head_to_head import respond_as

    snapshots = [(name, version) for name, (_, version) in ray.get(ctx.league.checkpoints.remote()).items()]  # in matchmaking
    players = sorted(snapshots, key=lambda p: p[1]) + [(agent.name, agent.version)]
    matches = schedule(players, games)
    if not matches:
        return 0
    held = ctx.task.held_out()
    problems = [held[i % len(held)] for i in range(len(matches))]
    prompts, seeds = [ctx.render(p) for p in problems], ctx.seeds(2 * len(matches))
    side_a = respond_as(ctx, prompts, [a for (a, _), _ in matches], seeds[: len(matches)])
    side_b = respond_as(ctx, prompts, [b for _, (b, _) in matches], seeds[len(matches) :])
    (a_texts, a_cut), (b_texts, b_cut) = (list(zip(*ray.get(side), strict=True)) for side in (side_a, side_b))
    verdicts = ctx.judges.judge(problems, list(a_texts), list(b_texts))
    if ctx.config.judge.truncation == "loses":
        verdicts = truncation_loses(verdicts, list(a_cut), list(b_cut))
    table = _games(round_, matches, prompts, a_texts, b_texts, verdicts, ctx.judges.name())
    return int(ray.get(ctx.league.record_evaluation.remote(ROUND_ROBIN, round_, table)))


def _games(round_: int, matches: list[tuple[Player, Player]], prompts: list[str], a_texts: Any, b_texts: Any, verdicts: list,
           judge: str) -> pa.Table:
    """The games as records of the games table's schema, one side a at a time, ids of their own."""
    parts = []
    for a in dict.fromkeys(a for a, _ in matches):
        idx = [i for i, (x, _) in enumerate(matches) if x == a]
        parts.append(games_table(round_, ROUND_ROBIN, a, [matches[i][1] for i in idx], [prompts[i] for i in idx],
                                 [a_texts[i] for i in idx], [b_texts[i] for i in idx], [verdicts[i] for i in idx], judge, 0.0))
    table = pa.concat_tables(parts)
    ids = pa.array([f"rr{round_:05d}-g{i:06d}" for i in range(table.num_rows)])
    return table.set_column(table.schema.get_field_index("game_id"), "game_id", ids)
